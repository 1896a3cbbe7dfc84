"""The model-family and span-mode tables: the one place a config is turned into a model.

A family is a row of FAMILIES: the reference's model_type, the NNX module that builds it, what
its logits hold (`head`), and the rule that picks it from a config (the reference's
`GLiNER._get_gliner_class`, in its order: the first row that matches wins). `head` keys the other
per-family tables: decoding (`decoding.HEADS`), training targets (`processing`) and the loss
(`train/step.py LOSSES`); `inputs` keys how a training batch feeds it (`train/step.py
INPUTS`); `api`, `load` and `save` name its user API class and its directory reader / writer
(`GLiNER.from_pretrained`, `convert` and training dispatch on them). A span mode is a row of
SPAN_MODES. Adding a family or a mode is adding a row (and its module); nothing else branches
on names.

Heads:
    span   logits [B, W, K, C]: span (start word, width) x type
    token  logits [B, W, C, 3]: word x type x (start, end, inside)
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable

from flax import nnx

from gliner_jax.config import ConfigError, GlinerConfig
from gliner_jax.layers import Precision
from gliner_jax.modeling import span_conv, span_rep
from gliner_jax.modeling.biencoder import BiEncoderSpanModel, BiEncoderTokenModel
from gliner_jax.modeling.gliner import SpanModel, TokenModel
from gliner_jax.modeling.relex import RelexModel, relex_settings


@dataclasses.dataclass(frozen=True)
class SpanMode:
    name: str
    module: type               # (D, K, dropout, prec, rngs=) ; (words, prompts, lengths) -> logits
    factorised: str            # how the jitted kernel avoids per-span matmuls ("" when it can't)
    batch_coupled: bool = False  # a text's scores depend on the other texts of its batch


SPAN_MODES: dict[str, SpanMode] = {m.name: m for m in (
    SpanMode("markerV0", span_rep.SpanMarkerV0, "out_project split per word, last layer folded"),
    SpanMode("marker", span_rep.SpanMarker, "start term + end term, out_project folded"),
    SpanMode("markerV1", span_rep.SpanMarkerV1, "as markerV0 plus a per-text term",
             batch_coupled=True),
    SpanMode("markerV2", span_rep.SpanMarkerV2, "as markerV0 plus a per-text term",
             batch_coupled=True),
    SpanMode("query", span_conv.SpanQuery, ""),
    SpanMode("mlp", span_conv.SpanMLP, "one per-word matmul"),
    SpanMode("cat", span_conv.SpanCAT, "per-word + per-width terms"),
    SpanMode("conv_conv", span_conv.SpanConv, "per-word taps, project folded into the types"),
    SpanMode("conv_max", span_conv.SpanConvMax, "pooling, project folded into the types"),
    SpanMode("conv_mean", span_conv.SpanConvMean, "pooling, project folded into the types"),
    SpanMode("conv_sum", span_conv.SpanConvSum, "pooling, project folded into the types"),
    SpanMode("conv_share", span_conv.ConvShare, "prefix sums of per-word taps, project folded"),
)}
TOKEN_LEVEL = "token_level"


@dataclasses.dataclass(frozen=True)
class Family:
    name: str                                  # the reference's model_type
    model: type | None                         # None: recognised, not supported
    head: str                                  # "span" | "token" (see the module docstring)
    matches: Callable[[GlinerConfig], bool]
    relations: bool = False                    # also extracts relations (modeling/relex.py)
    check: Callable[[GlinerConfig], object] | None = None  # raises a ConfigError naming a key
    # how the labels reach the model: "prompt" (in the text: `<<ENT>> label ... <<SEP>>`) or
    # "labels_encoder" (each label alone through its own encoder); keys train/step.py INPUTS
    inputs: str = "prompt"
    # "module:name" of the user API class, of the directory loader `(dir, prec, *,
    # local_files_only, fast_tokenizer, **hub) -> (model, *tokenizers)` and of the writer
    # `(model, *tokenizers, out_dir, dtype=) -> Path`; imported when used (they import this)
    api: str = "gliner_jax.model:GLiNER"
    load: str = "gliner_jax.convert:load_gliner"
    save: str = "gliner_jax.convert:save_gliner"


def _raw(key: str):
    return lambda cfg: cfg.raw.get(key) is not None


def _token(cfg: GlinerConfig) -> bool:
    return cfg.span_mode == TOKEN_LEVEL


# the bi-encoders' labels path, loader and writer
_BI = dict(inputs="labels_encoder", load="gliner_jax.biencoder_io:load_biencoder",
           save="gliner_jax.biencoder_io:save_biencoder")

FAMILIES: tuple[Family, ...] = (
    Family("gliner_streaming_span", None, "span",
           lambda c: c.raw.get("model_type") == "gliner_streaming_span"),
    Family("gliner_uni_encoder_token_relex", None, "token",
           lambda c: _raw("relations_layer")(c) and _token(c)),
    Family("gliner_uni_encoder_span_relex", RelexModel, "span", _raw("relations_layer"),
           relations=True, check=relex_settings),
    Family("gliner_uni_encoder_token_decoder", None, "token",
           lambda c: _raw("labels_decoder")(c) and _token(c)),
    Family("gliner_uni_encoder_span_decoder", None, "span", _raw("labels_decoder")),
    Family("gliner_bi_encoder_token", BiEncoderTokenModel, "token",
           lambda c: _raw("labels_encoder")(c) and _token(c),
           api="gliner_jax.biencoder:BiEncoderTokenGLiNER", **_BI),
    Family("gliner_bi_encoder_span", BiEncoderSpanModel, "span", _raw("labels_encoder"),
           api="gliner_jax.biencoder:BiEncoderGLiNER", **_BI),
    Family("gliner_uni_encoder_token", TokenModel, "token", _token),
    Family("gliner_uni_encoder_span", SpanModel, "span", lambda c: True),
)


def span_mode(name: str) -> SpanMode:
    if name not in SPAN_MODES:
        raise ConfigError(f"unknown span_mode {name!r}; supported: "
                          f"{', '.join([*SPAN_MODES, TOKEN_LEVEL])}")
    return SPAN_MODES[name]


def family_of(cfg: GlinerConfig) -> Family:
    """The family a config builds, or a ConfigError naming what it asks for."""
    fam = next(f for f in FAMILIES if f.matches(cfg))
    if fam.model is None:
        raise ConfigError(f"model family {fam.name!r} is not supported; supported: "
                          f"{', '.join(f.name for f in FAMILIES if f.model is not None)}")
    if fam.head == "span":
        span_mode(cfg.span_mode)
    if fam.check is not None:
        fam.check(cfg)
    return fam


def symbol(ref: str):
    """The object a "module:name" reference of a Family row names."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def batch_coupled(cfg: GlinerConfig) -> bool:
    """Whether a text's scores depend on the other texts of its batch (see SpanMode)."""
    return family_of(cfg).head == "span" and SPAN_MODES[cfg.span_mode].batch_coupled


def build_model(cfg: GlinerConfig, prec: Precision = Precision(), *,
                rngs: nnx.Rngs) -> nnx.Module:
    """The config's family module (SpanModel, TokenModel, ...)."""
    return family_of(cfg).model(cfg, prec, rngs=rngs)
