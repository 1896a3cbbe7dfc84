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
MODERNBERT_TYPES = ("modernbert",)
# ModernBERT config.json names -> EncoderConfig fields shared with the other families
_MODERNBERT_RENAMES = {"norm_eps": "layer_norm_eps", "hidden_activation": "hidden_act",
                       "embedding_dropout": "hidden_dropout_prob",
                       "attention_dropout": "attention_probs_dropout_prob"}
# fields only ModernBERT reads (written back to its config.json only)
_MODERNBERT_FIELDS = ("layer_types", "local_attention", "global_rope_theta", "local_rope_theta",
                      "norm_bias", "attention_bias", "mlp_bias", "mlp_dropout")


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
    # ModernBERT only (transformers' ModernBertConfig; see _modernbert_kwargs)
    layer_types: tuple[str, ...] = ()    # "full_attention" / "sliding_attention" per layer
    local_attention: int = 128           # sliding window: |i - j| <= local_attention // 2
    global_rope_theta: float = 160000.0
    local_rope_theta: float = 10000.0
    norm_bias: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    mlp_dropout: float = 0.0
    # the full config.json as read, written back on save (keys we do not use are kept)
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False,
                                          hash=False)

    @property
    def family(self) -> str:
        if self.model_type in DEBERTA_TYPES:
            return "deberta"
        if self.model_type in BERT_TYPES:
            return "bert"
        if self.model_type in MODERNBERT_TYPES:
            return "modernbert"
        raise ConfigError(
            f"encoder model_type {self.model_type!r} is not supported; "
            f"supported: {', '.join(DEBERTA_TYPES + BERT_TYPES + MODERNBERT_TYPES)}"
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
        if d.get("model_type") in MODERNBERT_TYPES:
            kw.update(_modernbert_kwargs(d))
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
        if self.family == "modernbert":
            return _modernbert_to_dict(self, d)
        for f in dataclasses.fields(self):
            if f.name == "raw" or f.name in _MODERNBERT_FIELDS:
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


def _modernbert_kwargs(d: dict[str, Any]) -> dict[str, Any]:
    """EncoderConfig fields from a ModernBERT config.json: transformers 5 (`layer_types`,
    `rope_parameters`) or 4.x (`global_attn_every_n_layers`, `global_rope_theta`, ...)."""
    kw = {new: d[old] for old, new in _MODERNBERT_RENAMES.items() if d.get(old) is not None}
    kw.setdefault("layer_norm_eps", 1e-5)
    kw.setdefault("hidden_dropout_prob", 0.0)
    kw.setdefault("attention_probs_dropout_prob", 0.0)
    kw.setdefault("max_position_embeddings", 8192)
    n = int(d.get("num_hidden_layers", EncoderConfig.num_hidden_layers))
    types = d.get("layer_types")
    if not types:
        every = int(d.get("global_attn_every_n_layers", 3))
        types = ["sliding_attention" if i % every else "full_attention" for i in range(n)]
    if len(types) != n or set(types) - {"full_attention", "sliding_attention"}:
        raise ConfigError(f"ModernBERT layer_types {types!r} must name full_attention or "
                          f"sliding_attention for each of the {n} layers")
    kw["layer_types"] = tuple(types)
    rope = d.get("rope_parameters") or {}
    for kind, key in (("full_attention", "global_rope_theta"),
                      ("sliding_attention", "local_rope_theta")):
        params = rope.get(kind) or {}
        if params.get("rope_type", "default") != "default":
            raise ConfigError(f"ModernBERT rope_type {params['rope_type']!r} ({kind}) is not "
                              "supported; only 'default'")
        theta = params.get("rope_theta", d.get(key))
        if theta is not None:
            kw[key] = float(theta)
    if d.get("head_dim") not in (None, d.get("hidden_size", 0) // max(
            d.get("num_attention_heads", 1), 1)):
        raise ConfigError("ModernBERT head_dim != hidden_size / num_attention_heads is not "
                          "supported")
    return kw


def _modernbert_to_dict(cfg: EncoderConfig, d: dict[str, Any]) -> dict[str, Any]:
    """ModernBERT config.json: its own key names (transformers 5 layout)."""
    for f in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "intermediate_size", "max_position_embeddings", "pad_token_id", "initializer_range",
              "local_attention", "norm_bias", "attention_bias", "mlp_bias", "mlp_dropout"):
        d[f] = getattr(cfg, f)
    for old, new in _MODERNBERT_RENAMES.items():
        d[old] = getattr(cfg, new)
    d["layer_types"] = list(cfg.layer_types)
    d["rope_parameters"] = {
        "full_attention": {"rope_type": "default", "rope_theta": cfg.global_rope_theta},
        "sliding_attention": {"rope_type": "default", "rope_theta": cfg.local_rope_theta}}
    for legacy in ("global_rope_theta", "local_rope_theta"):
        d.pop(legacy, None)
    d["model_type"] = cfg.model_type
    return d


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
    # gliner_jax only (the reference ignores it): words per inference window for longer texts,
    # where a model reads long contexts worse than short ones; None: max_len
    window_size: int | None = None
    # bi-encoder (gliner BiEncoderSpanModel): the labels' own encoder, by name and config
    labels_encoder: str | None = None
    labels_encoder_config: EncoderConfig | None = None
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
        if self.num_rnn_layers not in ((0, 1) if self.labels_encoder else (1,)):
            problems.append(f"num_rnn_layers {self.num_rnn_layers} (only 1)")
        if self.fuse_layers:
            problems.append("fuse_layers true")
        if self.words_splitter_type != "whitespace":
            problems.append(f"words_splitter_type {self.words_splitter_type!r} (only 'whitespace')")
        if self.labels_encoder and self.labels_encoder_config is None:
            problems.append(f"labels_encoder {self.labels_encoder!r} without labels_encoder_config")
        for key in ("post_fusion_schema", "span_encoder_config", "represent_spans"):
            if self.raw.get(key):
                problems.append(f"{key} = {self.raw[key]!r}")
        if self.window_size is not None and not self.max_width <= self.window_size <= self.max_len:
            problems.append(f"window_size {self.window_size} (must be between max_width "
                            f"{self.max_width} and max_len {self.max_len} words)")
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
                  "max_types", "max_neg_type_ratio", "num_rnn_layers", "window_size"):
            if k in kw:
                kw[k] = int(kw[k])
        kw["dropout"] = float(kw.get("dropout", cls.dropout))
        if isinstance(kw.get("labels_encoder_config"), dict):
            kw["labels_encoder_config"] = EncoderConfig.from_dict(kw["labels_encoder_config"])
        cfg = cls(encoder=encoder, **kw, raw=d)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.raw)
        d.pop("model_type", None)
        for f in dataclasses.fields(self):
            if f.name in ("raw", "encoder", "labels_encoder_config"):
                continue
            d[f.name] = getattr(self, f.name)
        if self.window_size is None:
            d.pop("window_size")
        d["encoder_config"] = self.encoder.to_dict()
        if self.labels_encoder_config is not None:
            d["labels_encoder_config"] = self.labels_encoder_config.to_dict()
        return d
