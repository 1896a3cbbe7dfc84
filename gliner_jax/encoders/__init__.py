"""Transformer encoders: DeBERTa-v2/v3, the BERT family and ModernBERT, loaded from transformers
directories."""

from __future__ import annotations

import json
from pathlib import Path

from flax import nnx

from gliner_jax.config import ConfigError, EncoderConfig
from gliner_jax.encoders.bert import BertModel
from gliner_jax.encoders.deberta import DebertaV2Model
from gliner_jax.encoders.modernbert import ModernBertModel
from gliner_jax.layers import Precision
from gliner_jax.weights import load_into, read_checkpoint, strip_prefixes

__all__ = ["BertModel", "DebertaV2Model", "ModernBertModel", "build_encoder", "load_encoder",
           "read_encoder_config"]

# prefixes under which transformers task models keep the base model
_BASE_PREFIXES = ("deberta.", "bert.", "roberta.", "electra.")
# task heads of a family's pretraining checkpoints, dropped by name when loading the base encoder
# (ModernBertForMaskedLM: head.dense / head.norm / decoder)
_TASK_HEADS = {"modernbert": ("head.", "decoder.")}


def build_encoder(cfg: EncoderConfig, prec: Precision = Precision(), *, rngs: nnx.Rngs,
                  add_pooling_layer: bool | None = None) -> nnx.Module:
    """A randomly initialised encoder for `cfg` (DeBERTa-v2/v3, BERT family or ModernBERT)."""
    if cfg.family == "deberta":
        return DebertaV2Model(cfg, prec, rngs=rngs)
    if cfg.family == "modernbert":
        return ModernBertModel(cfg, prec, rngs=rngs)
    return BertModel(cfg, prec, rngs=rngs,
                     add_pooling_layer=True if add_pooling_layer is None else add_pooling_layer)


def read_encoder_config(path: str | Path) -> EncoderConfig:
    f = Path(path) / "config.json"
    if not f.is_file():
        raise ConfigError(f"{path}: no config.json (not a transformers model directory)")
    return EncoderConfig.from_dict(json.loads(f.read_text()))


def load_encoder(path: str | Path, prec: Precision = Precision()) -> nnx.Module:
    """Read a transformers model directory (config.json + model.safetensors or
    pytorch_model.bin) into an NNX encoder in eval mode.

    Every checkpoint key must map to a parameter with the same shape, and every parameter must be
    filled; otherwise a `WeightsError` names all offending keys.
    """
    cfg = read_encoder_config(path)
    sd = strip_prefixes(read_checkpoint(path), _BASE_PREFIXES)
    heads = _TASK_HEADS.get(cfg.family, ())
    sd = {k: v for k, v in sd.items() if not k.startswith(heads)} if heads else sd
    has_pooler = any(k.startswith("pooler.") for k in sd)
    model = nnx.eval_shape(lambda: build_encoder(cfg, prec, rngs=nnx.Rngs(0),
                                                 add_pooling_layer=has_pooler))
    model = load_into(model, sd, what=f"checkpoint in {path}")
    model.eval()
    return model
