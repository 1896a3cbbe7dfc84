"""The model and tokenizer a run starts from: a random encoder, a pretrained encoder directory
(fresh GLiNER head), or a GLiNER directory to fine-tune.

New rows of the word-embedding table ([FLERT], <<ENT>>, <<SEP>> beyond the checkpoint's rows) are
initialised as transformers >= 4.46 `resize_token_embeddings(mean_resizing=True)` does: drawn from
N(mean of the old rows, 1e-9 x their covariance), i.e. the mean of the old rows plus tiny noise.
When the table already has enough rows (DeBERTa-v3: 128100 rows for a 128001-token tokenizer) it
is cut to the tokenizer's length and the added tokens take the spare rows, as the reference does.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from gliner_jax import weights
from gliner_jax.config import EncoderConfig, GlinerConfig
from gliner_jax.convert import dir_family, model_from_state, resolve_model_dir
from gliner_jax.layers import Precision
from gliner_jax.modeling import build_model as build_gliner
from gliner_jax.modeling.families import symbol
from gliner_jax.processing import Processor, load_tokenizer
from gliner_jax.weights import (
    WeightsError,
    export_state,
    load_into,
    read_checkpoint,
    strip_prefixes,
)
from train.config import DataConfig, ModelConfig

ENCODER_PREFIX = "token_rep_layer.bert_layer.model."
BASE_PREFIXES = ("deberta.", "bert.", "roberta.", "electra.")
# pretraining heads in transformers checkpoints: not part of the encoder (transformers' AutoModel
# drops them too); counted and reported, never silently
HEAD_PREFIXES = ("lm_predictions.", "mask_predictions.", "cls.", "lm_head.", "generator_lm_head.")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float64": jnp.float64}


def precision(cfg: ModelConfig) -> Precision:
    param = DTYPES[cfg.param_dtype]
    compute = DTYPES[cfg.compute_dtype]
    return Precision(None if compute == param else compute, param)


def resize_rows(table: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """transformers' mean-resizing of an embedding table to `rows` rows (cut when fewer)."""
    old = table.shape[0]
    if rows <= old:
        return table[:rows]
    mean = table.mean(0, dtype=np.float64)
    centered = table.astype(np.float64) - mean
    cov = centered.T @ centered / old
    new = np.random.default_rng(seed).multivariate_normal(mean, 1e-9 * cov, size=rows - old,
                                                          method="eigh")
    return np.concatenate([table, new.astype(table.dtype)])


def _head_config(mcfg: ModelConfig, data: DataConfig, enc: EncoderConfig, rows: int,
                 name: str) -> GlinerConfig:
    base = GlinerConfig()
    pick = {f: getattr(mcfg, f) if getattr(mcfg, f) is not None else getattr(base, f)
            for f in ("hidden_size", "max_width", "dropout", "max_len", "span_mode")}
    return GlinerConfig(encoder=dataclasses.replace(enc, vocab_size=rows), model_name=name,
                        vocab_size=rows, class_token_index=rows - 2, max_types=data.max_types,
                        max_neg_type_ratio=data.max_neg_type_ratio, **pick)


def _encoder_config(path: Path, overrides: dict) -> EncoderConfig:
    raw = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() \
        else {"model_type": "bert"}
    return EncoderConfig.from_dict({**raw, **overrides})


def encoder_state(path: Path, rows: int, seed: int) -> tuple[dict, list[str]]:
    """A transformers encoder checkpoint, GLiNER-named, with the vocabulary resized; and the
    names of the pretraining-head keys left out."""
    sd = strip_prefixes(read_checkpoint(path), BASE_PREFIXES)
    heads = sorted(k for k in sd if k.startswith(HEAD_PREFIXES))
    sd = {k: v for k, v in sd.items() if k not in heads and not k.endswith(weights.KNOWN_BUFFERS)}
    table = "embeddings.word_embeddings.weight"
    if table not in sd:
        raise WeightsError(f"{path}: no {table} in the checkpoint")
    sd[table] = resize_rows(np.asarray(sd[table], np.float32), rows, seed)
    return {ENCODER_PREFIX + k: v for k, v in sd.items()}, heads


def _prompt_processor(model, tokenizer, mcfg: ModelConfig) -> Processor:
    cfg = model.config
    return Processor.from_config(tokenizer, cfg.class_token_index, cfg)


def _labels_encoder_processor(model, tokenizer, mcfg: ModelConfig) -> Processor:
    """A bi-encoder's: the text alone, the labels through the labels tokenizer of the
    fine-tuned directory."""
    from gliner_jax.biencoder import BiEncoderProcessor
    from gliner_jax.biencoder_io import load_labels_tokenizer

    processor = BiEncoderProcessor.from_config(tokenizer, -1, model.config)
    processor.labels_tokenizer = load_labels_tokenizer(
        resolve_model_dir(mcfg.path, local_files_only=True), model.config, local_files_only=True)
    return processor


# the processor of each way labels reach the model (gliner_jax.modeling.families Family.inputs)
PROCESSORS = {"prompt": _prompt_processor, "labels_encoder": _labels_encoder_processor}


def make_processor(model, tokenizer, mcfg: ModelConfig) -> Processor:
    """The training processor of the model's family."""
    return PROCESSORS[model.config.family.inputs](model, tokenizer, mcfg)


def build_model(mcfg: ModelConfig, data: DataConfig, seed: int):
    """(GLiNER model with the run's dropout, tokenizer, notes for the log)."""
    prec = precision(mcfg)
    if mcfg.init == "gliner":  # any family: its row names the loader (a bi-encoder's too)
        fam = dir_family(resolve_model_dir(mcfg.path, local_files_only=True),
                         local_files_only=True)
        model, tokenizer, *_ = symbol(fam.load)(mcfg.path, prec, local_files_only=True)
        over = {f: getattr(mcfg, f) for f in ("dropout", "max_len") if getattr(mcfg, f) is not None}
        for f in ("hidden_size", "max_width", "span_mode"):
            if getattr(mcfg, f) not in (None, getattr(model.config, f)):
                raise ValueError(f"model.{f}={getattr(mcfg, f)} differs from the checkpoint's "
                                 f"{getattr(model.config, f)}")
        cfg = dataclasses.replace(model.config, max_types=data.max_types,
                                  max_neg_type_ratio=data.max_neg_type_ratio, **over)
        # rebuilt with the run's dropout: the loaded config already holds the vocabulary sizes
        model = load_into(nnx.eval_shape(lambda: build_gliner(cfg, prec, rngs=nnx.Rngs(0))),
                          export_state(model), what=mcfg.path)
        model.eval()
        return model, tokenizer, [f"fine-tuning the {fam.name} model in {mcfg.path}"]

    path = Path(mcfg.path)
    enc = _encoder_config(path, mcfg.encoder)
    tokenizer, cls_index = load_tokenizer(path, GlinerConfig(encoder=enc, model_name=str(path)))
    rows = len(tokenizer)
    assert cls_index == rows - 2
    cfg = _head_config(mcfg, data, enc, rows, str(path))
    model = build_gliner(cfg, prec, rngs=nnx.Rngs(params=seed, dropout=seed + 1))
    if mcfg.init == "random":
        return model, tokenizer, [f"random {enc.model_type} encoder, tokenizer from {path}"]

    sd = export_state(model)  # the fresh head (and a random pooler if the checkpoint has none)
    enc_sd, heads = encoder_state(path, rows, seed)
    unknown = sorted(k for k in enc_sd if k not in sd)
    if unknown:
        raise WeightsError(f"encoder checkpoint {path} has keys the model does not: {unknown}")
    missing = sorted(k[len(ENCODER_PREFIX):] for k in sd
                     if k.startswith(ENCODER_PREFIX) and k not in enc_sd)
    if any(not k.startswith("pooler.") for k in missing):
        raise WeightsError(f"encoder checkpoint {path} lacks keys: {missing}")
    sd.update(enc_sd)
    model = model_from_state(cfg, sd, prec, what=f"encoder in {path}")
    notes = [f"pretrained {enc.model_type} encoder from {path}; fresh GLiNER head",
             f"{rows} vocabulary rows (tokenizer + [FLERT], {cfg.ent_token}, {cfg.sep_token})"]
    if heads:
        notes.append(f"left out {len(heads)} pretraining-head keys ({heads[0]}, ...)")
    if missing:
        notes.append(f"randomly initialised (absent from the checkpoint): {missing}")
    return model, tokenizer, notes

