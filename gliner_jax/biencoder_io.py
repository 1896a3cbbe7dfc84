"""Bi-encoder GLiNER directories <-> models, and label-vector cache files.

A bi-encoder directory in the reference layout (gliner 0.2.29 `BiEncoderSpanGLiNER` /
`BiEncoderTokenGLiNER`) holds
`gliner_config.json` (with `labels_encoder` and `labels_encoder_config`), the weights, the text
tokenizer files, and `labels_tokenizer/` (else the labels tokenizer comes from the directory or
hub id named by `labels_encoder`, as the reference does). The reference adds the GLiNER tokens to
the text tokenizer but never resizes the text encoder's embeddings (`resize_embeddings` is a
no-op for bi-encoders), so the tokenizer may be longer than the embedding table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from gliner_jax.config import GlinerConfig
from gliner_jax.convert import (
    ENCODER_PREFIX,
    ModelLoadError,
    embedding_rows,
    read_gliner_config,
    resolve_model_dir,
    save_gliner,
)
from gliner_jax.layers import Precision
from gliner_jax.modeling import build_model
from gliner_jax.modeling.biencoder import BiEncoder
from gliner_jax.weights import load_into, read_checkpoint, strip_prefixes

TEXT_PREFIX = ENCODER_PREFIX
LABELS_PREFIX = "token_rep_layer.labels_encoder.model."
LABELS_TOKENIZER_DIR = "labels_tokenizer"


def biencoder_from_state(cfg: GlinerConfig, sd: dict[str, np.ndarray],
                         prec: Precision = Precision(),
                         what: str = "checkpoint") -> BiEncoder:
    """The config's bi-encoder family (span or token) from a reference-named state dict
    (asserted key table)."""
    sd = strip_prefixes(sd)
    enc = dataclasses.replace(cfg.encoder, vocab_size=embedding_rows(sd, TEXT_PREFIX, what))
    lab = dataclasses.replace(cfg.labels_encoder_config,
                              vocab_size=embedding_rows(sd, LABELS_PREFIX, what))
    cfg = dataclasses.replace(cfg, encoder=enc, labels_encoder_config=lab)
    abstract = nnx.eval_shape(lambda: build_model(cfg, prec, rngs=nnx.Rngs(0)))
    model = load_into(abstract, sd, what=what)
    model.eval()
    return model


def load_labels_tokenizer(model_dir: Path, cfg: GlinerConfig, *, local_files_only: bool = False):
    """`labels_tokenizer/` of the directory, else the one at `labels_encoder` (reference order);
    pad falls back to eos (reference `_check_and_set_special_tokens`)."""
    from transformers import AutoTokenizer

    sub = model_dir / LABELS_TOKENIZER_DIR
    source = str(sub) if (sub / "tokenizer_config.json").is_file() else cfg.labels_encoder
    try:
        tok = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"no labels tokenizer: {model_dir} has no {LABELS_TOKENIZER_DIR}/ "
                             f"and labels_encoder {source!r} could not be loaded: {e}") from None
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def load_biencoder(model_dir: str | Path, prec: Precision = Precision(), *,
                   local_files_only: bool = False, fast_tokenizer: bool = False,
                   **hub_options):
    """(BiEncoderSpanModel / BiEncoderTokenModel in eval mode, text tokenizer, labels
    tokenizer): the family table's
    loader (`modeling.families`). `fast_tokenizer` is not used: the labels tokenizer needs
    transformers anyway, so the text tokenizer comes through it too, as in the reference."""
    from gliner_jax.processing import load_tokenizer

    d = resolve_model_dir(model_dir, local_files_only=local_files_only, **hub_options)
    cfg = read_gliner_config(d, local_files_only=local_files_only)
    if not cfg.labels_encoder:
        raise ModelLoadError(f"{d} is not a bi-encoder GLiNER (no labels_encoder in its config)")
    try:
        tokenizer, _ = load_tokenizer(d, cfg, local_files_only=local_files_only)
        sd = read_checkpoint(d)
    except (FileNotFoundError, ValueError) as e:
        raise ModelLoadError(str(e)) from None
    labels_tokenizer = load_labels_tokenizer(d, cfg, local_files_only=local_files_only)
    model = biencoder_from_state(cfg, sd, prec, what=f"checkpoint in {d}")
    return model, tokenizer, labels_tokenizer


def save_biencoder(model: BiEncoder, tokenizer, labels_tokenizer, out_dir: str | Path,
                   dtype=None) -> Path:
    """The reference layout: what `save_gliner` writes, with both encoder configs, plus
    `labels_tokenizer/`. class_token_index / vocab_size stay as configured (the reference keeps
    -1: its bi-encoder text embeddings are never resized)."""
    cfg = model.config
    out = save_gliner(model, tokenizer, out_dir, dtype=dtype)
    f = out / "gliner_config.json"
    d = json.loads(f.read_text())
    d["vocab_size"], d["class_token_index"] = cfg.vocab_size, cfg.class_token_index
    f.write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")
    if labels_tokenizer is not None:
        labels_tokenizer.save_pretrained(out / LABELS_TOKENIZER_DIR)
    return out


# ---------------------------------------------------------------------------------------------
# label-vector cache files


def labels_fingerprint(model: BiEncoder) -> str:
    """sha256 of the labels encoder's and labels_projection's parameters: a cache file is only
    reused with the weights that produced it."""
    h = hashlib.sha256()
    tr = model.token_rep_layer
    parts = [tr.labels_encoder] + ([tr.labels_projection] if hasattr(tr, "labels_projection")
                                   else [])
    for part in parts:
        for path, var in sorted(nnx.to_flat_state(nnx.state(part, nnx.Param)),
                                key=lambda kv: tuple(map(str, kv[0]))):
            h.update("/".join(map(str, path)).encode())
            h.update(np.ascontiguousarray(jax.device_get(var[...])).tobytes())
    return h.hexdigest()


def save_label_cache(path: str | Path, labels: list[str], vectors: np.ndarray,
                     fingerprint: str) -> Path:
    path = Path(path)
    vectors = np.asarray(vectors)
    if vectors.shape[0] != len(labels):
        raise ValueError(f"{len(labels)} labels but {vectors.shape[0]} vectors")
    with open(path, "wb") as f:  # np.savez would append .npz to other names
        np.savez(f, labels=np.array(labels, dtype=object).astype(str), vectors=vectors,
                 fingerprint=np.array(fingerprint))
    return path


def read_label_cache(path: str | Path, fingerprint: str) -> dict[str, np.ndarray]:
    """{label: vector} from a cache file written for the same labels-encoder weights, or a
    ValueError saying why it cannot be used."""
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            labels, vectors, fp = list(z["labels"]), z["vectors"], str(z["fingerprint"])
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: not a label cache file ({e})") from None
    if fp != fingerprint:
        raise ValueError(f"{path}: label cache was computed with other labels-encoder weights")
    return dict(zip(labels, vectors, strict=True))
