"""Configs as typed dataclasses: the encoder (DeBERTa-v2/v3 or BERT family) and the GLiNER head.

Both read and write the JSON the PyTorch world uses (`config.json` of a transformers model,
`gliner_config.json` of the `gliner` package), keeping keys we do not interpret so that a
round trip loses nothing.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

DEBERTA_TYPES = ("deberta-v2", "deberta")
BERT_TYPES = ("bert", "roberta", "xlm-roberta", "electra")


class ConfigError(ValueError):
    """A configuration file asks for something gliner_jax cannot build."""


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """The transformer encoder. Field names follow transformers' config.json."""

    model_type: str = "deberta-v2"
    vocab_size: int = 128100
    hidden_size: int = 768
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 0
    layer_norm_eps: float = 1e-7
    pad_token_id: int = 0
    initializer_range: float = 0.02
    # DeBERTa-v2/v3 only
    relative_attention: bool = True
    max_relative_positions: int = -1
    position_buckets: int = 256
    pos_att_type: tuple[str, ...] = ("p2c", "c2p")
    norm_rel_ebd: str = "layer_norm"
    share_att_key: bool = True
    position_biased_input: bool = False
    embedding_size: int | None = None  # != hidden_size adds embed_proj
    # the full config.json as read, written back on save (keys we do not use are kept)
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False,
                                          hash=False)

    @property
    def family(self) -> str:
        if self.model_type in DEBERTA_TYPES:
            return "deberta"
        if self.model_type in BERT_TYPES:
            return "bert"
        raise ConfigError(
            f"encoder model_type {self.model_type!r} is not supported; "
            f"supported: {', '.join(DEBERTA_TYPES + BERT_TYPES)}"
        )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def max_relative(self) -> int:
        """The largest relative distance DeBERTa distinguishes (`max_relative_positions`, or
        `max_position_embeddings` when that is not set)."""
        return self.max_relative_positions if self.max_relative_positions > 0 else (
            self.max_position_embeddings)

    @property
    def att_span(self) -> int:
        """Half the number of relative-position embeddings (DeBERTa `pos_ebd_size`)."""
        return self.position_buckets if self.position_buckets > 0 else self.max_relative

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EncoderConfig:
        d = dict(d)
        if "model_type" not in d:
            raise ConfigError("encoder config has no 'model_type'")
        fields = {f.name for f in dataclasses.fields(cls)} - {"raw"}
        kw = {k: d[k] for k in fields if k in d and d[k] is not None}
        pat = kw.get("pos_att_type", ("p2c", "c2p"))
        if isinstance(pat, str):  # transformers accepts "p2c|c2p"
            pat = [p.strip() for p in pat.lower().split("|") if p.strip()]
        kw["pos_att_type"] = tuple(pat)
        if d.get("model_type") in BERT_TYPES:
            kw.setdefault("type_vocab_size", 2)
            kw.setdefault("layer_norm_eps", 1e-12)
            kw["relative_attention"] = False
            kw["position_biased_input"] = True
            kw["pos_att_type"] = ()
        if d.get("model_type") == "deberta-v2":
            # transformers' DebertaV2Config defaults (not the dataclass ones above)
            kw.setdefault("relative_attention", False)
            kw.setdefault("position_biased_input", True)
            kw.setdefault("position_buckets", -1)
            kw.setdefault("norm_rel_ebd", "none")
            kw.setdefault("share_att_key", False)
            kw.setdefault("type_vocab_size", 0)
            kw.setdefault("pos_att_type", ())
        if d.get("conv_kernel_size", 0):
            raise ConfigError("DeBERTa ConvLayer (conv_kernel_size > 0) is not supported")
        if d.get("model_type") == "deberta":
            raise ConfigError("DeBERTa v1 ('deberta') is not supported; use deberta-v2/v3")
        if kw.get("embedding_size") == kw.get("hidden_size", cls.hidden_size):
            kw["embedding_size"] = None
        cfg = cls(**kw, raw=d)
        cfg.family  # noqa: B018 -- validates model_type
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ConfigError(
                f"hidden_size {cfg.hidden_size} is not a multiple of "
                f"num_attention_heads {cfg.num_attention_heads}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.raw)
        for f in dataclasses.fields(self):
            if f.name == "raw":
                continue
            v = getattr(self, f.name)
            if f.name == "pos_att_type":
                if self.family == "bert":
                    continue
                v = list(v)
            if f.name in ("relative_attention", "max_relative_positions", "position_buckets",
                          "norm_rel_ebd", "share_att_key", "position_biased_input",
                          "embedding_size") and self.family == "bert":
                continue
            if f.name == "embedding_size" and v is None:
                continue
            d[f.name] = v
        return d

    @classmethod
    def from_json_file(cls, path: str | Path) -> EncoderConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclasses.dataclass(frozen=True)
class GlinerConfig:
    """The span model (`gliner_config.json`). Defaults are the reference's (gliner 0.2.29)."""

    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    model_name: str = "microsoft/deberta-v3-small"
    max_width: int = 12          # K: longest span, in words
    hidden_size: int = 512       # D
    dropout: float = 0.4
    max_len: int = 384           # words per text
    span_mode: str = "markerV0"
    subtoken_pooling: str = "first"
    num_rnn_layers: int = 1
    embed_ent_token: bool = True
    fuse_layers: bool = False
    words_splitter_type: str = "whitespace"
    ent_token: str = "<<ENT>>"
    sep_token: str = "<<SEP>>"
    class_token_index: int = -1
    vocab_size: int = -1
    max_types: int = 25
    max_neg_type_ratio: int = 1
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False,
                                          hash=False)

    @property
    def has_projection(self) -> bool:
        return self.encoder.hidden_size != self.hidden_size

    @property
    def family(self):
        """The model family row (gliner_jax.modeling.families.FAMILIES) this config builds."""
        from gliner_jax.modeling.families import family_of  # the table lives with the models

        return family_of(self)

    def validate(self) -> None:
        problems = []
        try:
            self.family  # noqa: B018 -- resolves the family and the span mode, or names them
        except ConfigError as e:
            problems.append(str(e))
        if self.subtoken_pooling != "first":
            problems.append(f"subtoken_pooling {self.subtoken_pooling!r} (only 'first')")
        if self.num_rnn_layers != 1:
            problems.append(f"num_rnn_layers {self.num_rnn_layers} (only 1)")
        if self.fuse_layers:
            problems.append("fuse_layers true")
        if self.words_splitter_type != "whitespace":
            problems.append(f"words_splitter_type {self.words_splitter_type!r} (only 'whitespace')")
        for key in ("post_fusion_schema", "span_encoder_config", "represent_spans"):
            if self.raw.get(key):
                problems.append(f"{key} = {self.raw[key]!r}")
        if self.hidden_size % 2:
            problems.append(f"hidden_size {self.hidden_size} is odd (the BiLSTM needs D/2)")
        if problems:
            raise ConfigError("unsupported GLiNER configuration: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, d: dict[str, Any], encoder: EncoderConfig | None = None) -> GlinerConfig:
        d = dict(d)
        if encoder is None:
            if not d.get("encoder_config"):
                raise ConfigError(
                    "gliner_config.json has no 'encoder_config'; pass the encoder config "
                    "(read from the directory named by 'model_name')")
            encoder = EncoderConfig.from_dict(d["encoder_config"])
        fields = {f.name for f in dataclasses.fields(cls)} - {"raw", "encoder"}
        kw = {k: d[k] for k in fields if k in d and d[k] is not None}
        if "num_rnn_layers" not in d and d.get("has_rnn") is False:
            kw["num_rnn_layers"] = 0
        for k in ("max_width", "hidden_size", "max_len", "class_token_index", "vocab_size",
                  "max_types", "max_neg_type_ratio", "num_rnn_layers"):
            if k in kw:
                kw[k] = int(kw[k])
        kw["dropout"] = float(kw.get("dropout", cls.dropout))
        cfg = cls(encoder=encoder, **kw, raw=d)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.raw)
        d.pop("model_type", None)
        for f in dataclasses.fields(self):
            if f.name in ("raw", "encoder"):
                continue
            d[f.name] = getattr(self, f.name)
        d["encoder_config"] = self.encoder.to_dict()
        return d
