"""GLiNER directories <-> gliner_jax models, and `python -m gliner_jax.convert SRC DST`.

A GLiNER directory is the reference's layout: `gliner_config.json`, `model.safetensors` or
`pytorch_model.bin`, and tokenizer files (absent in legacy v2.1 folders, which then take the
tokenizer and the encoder config from `model_name`). Weights map through the asserted table of
`gliner_jax.weights`: every key used once, every shape equal, or an error naming the keys.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from flax import nnx

from gliner_jax.config import ConfigError, EncoderConfig, GlinerConfig
from gliner_jax.hub import HubError, download, looks_like_repo_id
from gliner_jax.layers import Precision
from gliner_jax.modeling import build_model
from gliner_jax.modeling.families import FAMILIES, Family, family_of, symbol
from gliner_jax.weights import (
    WeightsError,
    export_state,
    load_into,
    read_checkpoint,
    strip_prefixes,
    write_safetensors,
)

ENCODER_PREFIX = "token_rep_layer.bert_layer.model."
# the token-embedding table of each encoder family (BERT / DeBERTa, ModernBERT)
EMBEDDING_KEYS = ("embeddings.word_embeddings.weight", "embeddings.tok_embeddings.weight")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "spm.model", "vocab.txt", "sentencepiece.bpe.model")


class ModelLoadError(ValueError):
    """A model directory or hub id cannot be loaded: the message says why."""


def resolve_model_dir(name_or_path: str | Path, *, local_files_only: bool = False,
                      **hub_options) -> Path:
    """A local directory as is; otherwise a Hugging Face hub id, downloaded (or taken from the
    cache) through `gliner_jax.hub.download` with `hub_options` (revision, cache_dir, token,
    force_download)."""
    p = Path(name_or_path).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelLoadError(f"{p} is a file, not a model directory")
        return p
    s = str(name_or_path)
    if not looks_like_repo_id(s):
        raise ModelLoadError(f"model directory {s} does not exist")
    try:
        return download(s, local_files_only=local_files_only, **hub_options)
    except HubError as e:
        raise ModelLoadError(str(e)) from None


def read_gliner_config(model_dir: Path, *, local_files_only: bool = False) -> GlinerConfig:
    f = model_dir / "gliner_config.json"
    if not f.is_file():
        raise ModelLoadError(f"{model_dir} is not a GLiNER model directory (no gliner_config.json)")
    try:
        raw = json.loads(f.read_text())
    except ValueError as e:
        raise ModelLoadError(f"{f}: invalid JSON ({e})") from None
    encoder = None
    if not raw.get("encoder_config"):  # legacy v2.1: the encoder config lives at model_name
        if not raw.get("model_name"):
            raise ModelLoadError(f"{f} has neither encoder_config nor model_name")
        enc_dir = resolve_model_dir(raw["model_name"], local_files_only=local_files_only)
        if not (enc_dir / "config.json").is_file():
            raise ModelLoadError(f"encoder {raw['model_name']} has no config.json")
        encoder = EncoderConfig.from_dict(json.loads((enc_dir / "config.json").read_text()))
    try:
        return GlinerConfig.from_dict(raw, encoder)
    except ConfigError as e:
        raise ModelLoadError(f"{f}: {e}") from None


def model_from_state(cfg: GlinerConfig, sd: dict[str, np.ndarray],
                     prec: Precision = Precision(), what: str = "checkpoint") -> nnx.Module:
    """Build the config's model family from a reference-named state dict (asserted key table)."""
    sd = strip_prefixes(sd)
    rows = embedding_rows(sd, ENCODER_PREFIX, what)
    if cfg.vocab_size not in (-1, rows):
        raise WeightsError(f"{what}: config vocab_size {cfg.vocab_size} != {rows} rows of "
                           "the encoder's token embeddings")
    if not 0 <= cfg.class_token_index < rows:
        raise WeightsError(f"{what}: class_token_index {cfg.class_token_index} is outside the "
                           f"{rows} embedding rows")
    enc = dataclasses.replace(cfg.encoder, vocab_size=rows)
    cfg = dataclasses.replace(cfg, encoder=enc, vocab_size=rows)
    abstract = nnx.eval_shape(lambda: build_model(cfg, prec, rngs=nnx.Rngs(0)))
    model = load_into(abstract, sd, what=what)
    model.eval()
    return model


def embedding_key(sd: dict, prefix: str) -> str | None:
    """The key of the token-embedding table under `prefix` (any encoder family), or None."""
    return next((prefix + k for k in EMBEDDING_KEYS if prefix + k in sd), None)


def embedding_rows(sd: dict, prefix: str, what: str) -> int:
    """Rows of the token-embedding table under `prefix`, or a WeightsError naming the keys."""
    key = embedding_key(sd, prefix)
    if key is None:
        raise WeightsError(f"{what} has no token embeddings under {prefix} "
                           f"({' or '.join(EMBEDDING_KEYS)})")
    return sd[key].shape[0]


def dir_family(model_dir: Path, *, local_files_only: bool = False) -> Family:
    """The family row (`modeling.families`) of a local GLiNER directory's config; the
    uni-encoder span row when it has no gliner_config.json (legacy folders, which load_gliner
    then reports on)."""
    if not (model_dir / "gliner_config.json").is_file():
        return FAMILIES[-1]
    return family_of(read_gliner_config(model_dir, local_files_only=local_files_only))


def load_gliner(model_dir: str | Path, prec: Precision = Precision(), *,
                local_files_only: bool = False, fast_tokenizer: bool = False, **hub_options):
    """(model in eval mode, tokenizer) from a GLiNER directory or hub id (`hub_options`:
    revision, cache_dir, token, force_download). `fast_tokenizer`: see `load_tokenizer`."""
    from gliner_jax.processing import load_tokenizer

    d = resolve_model_dir(model_dir, local_files_only=local_files_only, **hub_options)
    if not Path(model_dir).expanduser().exists() and not (d / "gliner_config.json").is_file():
        raise ModelLoadError(f"hub repo {model_dir} has no gliner_config.json: it is not a GLiNER "
                             "model")
    cfg = read_gliner_config(d, local_files_only=local_files_only)
    try:
        tokenizer, cls_index = load_tokenizer(d, cfg, local_files_only=local_files_only,
                                              fast=fast_tokenizer)
    except (FileNotFoundError, ValueError) as e:
        raise ModelLoadError(str(e)) from None
    try:
        sd = read_checkpoint(d)
    except WeightsError as e:
        raise ModelLoadError(str(e)) from None
    stripped = strip_prefixes(sd)
    rows = stripped.get(embedding_key(stripped, ENCODER_PREFIX))
    if rows is not None and rows.shape[0] != len(tokenizer) and cfg.vocab_size == -1:
        raise ModelLoadError(
            f"{d}: the tokenizer has {len(tokenizer)} tokens after adding the GLiNER tokens but "
            f"the checkpoint has {rows.shape[0]} word-embedding rows")
    cfg = dataclasses.replace(cfg, class_token_index=cls_index)
    if cfg.family.relations:
        from gliner_jax.processing import relation_token_index
        try:
            rel_index = relation_token_index(tokenizer, cfg)
        except ValueError as e:
            raise ModelLoadError(f"{d}: {e}") from None
        cfg = dataclasses.replace(cfg, raw={**cfg.raw, "rel_token_index": rel_index})
    model = model_from_state(cfg, sd, prec, what=f"checkpoint in {d}")
    return model, tokenizer


def save_gliner(model: nnx.Module, tokenizer, out_dir: str | Path, dtype=None) -> Path:
    """Write the reference layout: model.safetensors, a complete gliner_config.json (with
    encoder_config, class_token_index, vocab_size) and the tokenizer files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    rows = cfg.encoder.vocab_size
    d = cfg.to_dict()
    d["vocab_size"] = rows
    d["class_token_index"] = cfg.class_token_index
    d["encoder_config"]["vocab_size"] = rows
    d.setdefault("model_type", None)
    write_safetensors(out / "model.safetensors", export_state(model, dtype=dtype))
    (out / "gliner_config.json").write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def convert(src: str | Path, dst: str | Path, dtype: str | None = None) -> Path:
    """Any loadable GLiNER directory (reference .bin or .safetensors, legacy v2.1, ours) ->
    a complete reference-layout directory with model.safetensors."""
    np_dtype = {"float32": np.float32, "float16": np.float16, None: None}
    if dtype == "bfloat16":
        import ml_dtypes
        np_dtype["bfloat16"] = ml_dtypes.bfloat16
    fam = dir_family(resolve_model_dir(src))
    model, *tokenizers = symbol(fam.load)(src)
    out = symbol(fam.save)(model, *tokenizers, dst, dtype=np_dtype[dtype])
    for name in ("README.md", "LICENSE"):
        if (Path(src) / name).is_file() and not (out / name).exists():
            shutil.copy(Path(src) / name, out / name)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m gliner_jax.convert",
        description="Convert a GLiNER directory (reference layout, legacy v2.1, or ours) into a "
                    "complete reference-layout directory that both gliner and gliner_jax load.")
    ap.add_argument("src", help="GLiNER directory or hub id")
    ap.add_argument("dst", help="output directory")
    ap.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default=None,
                    help="storage dtype of the written weights (default: as loaded, float32)")
    args = ap.parse_args(argv)
    try:
        out = convert(args.src, args.dst, args.dtype)
    except (ModelLoadError, WeightsError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
