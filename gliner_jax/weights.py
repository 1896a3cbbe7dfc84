"""Weights in and out: safetensors / pytorch_model.bin files and the NNX <-> torch key table.

The table is explicit: each kind of NNX leaf maps to one torch suffix and one transform, and a few
module renames map NNX attribute names to torch's (`in_proj` -> `0`). Loading asserts that every
checkpoint key is used exactly once and every parameter is filled with the right shape; otherwise
it stops with an error naming every offending key. (The reference loads with strict=False and
silently ignores mismatches; we do not.)
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx

# (NNX leaf name, torch leaf name, NNX array -> torch array). The inverse transform of a
# transpose is a transpose; identity otherwise.
LEAF_TABLE: tuple[tuple[str, str, Callable[[np.ndarray], np.ndarray]], ...] = (
    ("kernel", "weight", lambda a: a.T),      # nn.Linear.weight [out, in] <-> kernel [in, out]
    ("scale", "weight", lambda a: a),         # LayerNorm.weight
    ("embedding", "weight", lambda a: a),     # nn.Embedding.weight
    ("bias", "bias", lambda a: a),
)
# NNX attribute names that differ from torch module names (torch Sequential indices):
# Linear-ReLU-Dropout-Linear MLPs (`in_proj`, `out_proj`), Sequential(Linear, ReLU) (`linear_0`),
# Sequential(ReLU, Linear) (`linear_1`), Sequential(Linear, ReLU, Linear) (`linear_0`,
# `linear_2`: the relex MLP adjacency); torch MultiheadAttention's `out_proj` is NNX
# `attn_out_proj` (the relex attention adjacencies), since `out_proj` names index 3 above.
MODULE_RENAMES = {"in_proj": "0", "out_proj": "3", "linear_0": "0", "linear_1": "1",
                  "linear_2": "2", "attn_out_proj": "out_proj"}
# Checkpoint entries that are buffers, not weights: accepted and ignored, by name.
KNOWN_BUFFERS = ("embeddings.position_ids",)
# Wrapper prefixes stripped from checkpoint keys (GLiNER wrapper, torch.compile).
STRIP_PREFIXES = ("model.", "_orig_mod.")


class WeightsError(ValueError):
    """A checkpoint does not match the model: the message names every offending key."""


# ---------------------------------------------------------------------------------------------
# safetensors (own reader/writer so bf16/fp16 work with numpy alone)

_ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
    "BOOL": np.bool_,
}
_ST_NAMES = {np.dtype(v): k for k, v in _ST_DTYPES.items()}


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    raw = Path(path).read_bytes()
    if len(raw) < 8:
        raise WeightsError(f"{path}: not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", raw[:8])
    try:
        header = json.loads(raw[8:8 + n])
    except ValueError as e:
        raise WeightsError(f"{path}: not a safetensors file ({e})") from None
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _ST_DTYPES:
            raise WeightsError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        b, e = info["data_offsets"]
        arr = np.frombuffer(raw, dtype=_ST_DTYPES[info["dtype"]], count=-1,
                            offset=base + b) if e > b else np.zeros(0, _ST_DTYPES[info["dtype"]])
        out[name] = arr[: int(np.prod(info["shape"], dtype=np.int64))].reshape(info["shape"]).copy()
    return out


def write_safetensors(path: str | Path, tensors: Mapping[str, np.ndarray]) -> None:
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        if a.dtype not in _ST_NAMES:
            raise WeightsError(f"cannot write tensor {name} of dtype {a.dtype}")
        data = a.tobytes()
        header[name] = {"dtype": _ST_NAMES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # align the data to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


def read_checkpoint(model_dir: str | Path) -> dict[str, np.ndarray]:
    """model.safetensors (preferred, as the reference) or pytorch_model.bin of a directory."""
    d = Path(model_dir)
    if (d / "model.safetensors").is_file():
        return read_safetensors(d / "model.safetensors")
    if (d / "pytorch_model.bin").is_file():
        try:
            import torch
        except ImportError:
            raise WeightsError(
                f"{d}/pytorch_model.bin needs PyTorch to read; install torch or convert the "
                "checkpoint to model.safetensors") from None
        sd = torch.load(d / "pytorch_model.bin", map_location="cpu", weights_only=True)
        if isinstance(sd, dict) and "model_weights" in sd:  # gliner_base.pt-style bundle
            sd = sd["model_weights"]
        return {k: (v.float() if v.dtype == torch.bfloat16 else v).numpy() for k, v in sd.items()}
    raise WeightsError(f"{d}: no model.safetensors or pytorch_model.bin found")


# ---------------------------------------------------------------------------------------------
# NNX state <-> flat torch-named dict

def _param_leaves(model: nnx.Module) -> dict[tuple, nnx.Variable]:
    state = nnx.state(model, nnx.Param)
    return {tuple(path): var for path, var in nnx.to_flat_state(state)}


def torch_name(path: tuple, prefix: str = "") -> tuple[str, Callable]:
    """NNX parameter path -> (torch key, NNX->torch transform)."""
    *mods, leaf = [str(p) for p in path]
    mods = [MODULE_RENAMES.get(m, m) for m in mods]
    for nnx_leaf, torch_leaf, fn in LEAF_TABLE:
        if leaf == nnx_leaf:
            return prefix + ".".join([*mods, torch_leaf]), fn
    return prefix + ".".join([*mods, leaf]), lambda a: a  # raw torch-layout params (LSTM)


def key_table(model: nnx.Module, prefix: str = "") -> dict[str, tuple[tuple, Callable, tuple]]:
    """torch key -> (NNX path, transform, torch shape), for every parameter of the model."""
    table = {}
    for path, var in _param_leaves(model).items():
        key, fn = torch_name(path, prefix)
        if key in table:
            raise AssertionError(f"two parameters map to the torch key {key}")
        shape = tuple(var.shape)
        table[key] = (path, fn, shape[::-1] if path[-1] == "kernel" else shape)
    return table


def strip_prefixes(sd: Mapping[str, np.ndarray], extra: tuple[str, ...] = ()) -> dict:
    out = {}
    for k, v in sd.items():
        for p in STRIP_PREFIXES + extra:
            if k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def check_keys(table: Mapping, sd: Mapping[str, np.ndarray], what: str) -> None:
    """Every expected key present with its shape, and nothing else: or one error naming all."""
    given = {k for k in sd if not any(k.endswith(b) for b in KNOWN_BUFFERS)}
    missing = sorted(set(table) - given)
    unexpected = sorted(given - set(table))
    shaped = sorted(f"{k}: checkpoint {tuple(sd[k].shape)} != model {table[k][2]}"
                    for k in set(table) & given if tuple(sd[k].shape) != table[k][2])
    if missing or unexpected or shaped:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if shaped:
            parts.append(f"mis-shaped keys ({len(shaped)}): {'; '.join(shaped)}")
        raise WeightsError(f"{what} does not match the model: " + " | ".join(parts))


def _concrete_non_params(state):
    """Abstract (eval_shape) RNG keys and counters -> concrete values."""
    def fill(x):
        if isinstance(x, jax.ShapeDtypeStruct):
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                return jax.random.split(jax.random.key(0), x.shape) if x.shape else (
                    jax.random.key(0))
            return jnp.zeros(x.shape, x.dtype)
        return x
    return jax.tree.map(fill, state)


def load_into(abstract_model: nnx.Module, sd: Mapping[str, np.ndarray], *, prefix: str = "",
              what: str = "checkpoint") -> nnx.Module:
    """Fill an (abstract, from nnx.eval_shape) model with checkpoint tensors, asserting the table.

    Values are cast to each parameter's dtype.
    """
    table = key_table(abstract_model, prefix)
    relevant = {k: v for k, v in sd.items() if k.startswith(prefix)}
    check_keys(table, relevant, what)
    graphdef, params, rest = nnx.split(abstract_model, nnx.Param, ...)
    flat = dict(nnx.to_flat_state(params))
    for key, (path, fn, _) in table.items():
        var = flat[path]
        flat[path] = var.replace(jnp.asarray(fn(np.asarray(sd[key])), dtype=var.dtype))
    params = nnx.from_flat_state(flat)
    return nnx.merge(graphdef, params, _concrete_non_params(rest))


def export_state(model: nnx.Module, prefix: str = "", dtype=None) -> dict[str, np.ndarray]:
    """Model parameters as a flat torch-named dict of numpy arrays (torch layouts)."""
    out = {}
    for path, var in _param_leaves(model).items():
        key, fn = torch_name(path, prefix)
        a = np.asarray(jax.device_get(var[...]))
        if dtype is not None:
            a = a.astype(dtype)
        out[key] = np.ascontiguousarray(fn(a))
    return out
