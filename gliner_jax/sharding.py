"""Mesh axes, the one table mapping logical parameter axes to them, and the shardings built from it.

Model code names only logical axes (`layers.axes_meta`); `LOGICAL_RULES` maps each to a mesh axis.
A mesh axis is used at most once per array (a kernel tagged ("embed", "embed") shards its first
dimension only), and a dimension its mesh axes do not divide stays replicated, so any model fits
any mesh.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")
LOGICAL_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", ("data", "fsdp")),   # examples of a batch
    ("embed", "fsdp"),             # model width: parameters sharded ZeRO-3 style
    ("heads", "tensor"),           # attention heads (Megatron column / row split)
    ("mlp", "tensor"),             # feed-forward and GLiNER MLP hidden units, LSTM gates
    ("vocab", None),               # embedding rows: 128k+3 is not a multiple of anything
    ("norm", None),                # LayerNorm scale / bias
    ("length", None),              # tokens, words, spans, classes
)


def make_mesh(shape: Sequence[int] = (-1, 1, 1), devices=None) -> jax.sharding.Mesh:
    """A ("data", "fsdp", "tensor") mesh; one -1 in `shape` takes the remaining devices."""
    devices = list(jax.devices() if devices is None else devices)
    shape = list(shape)
    if shape.count(-1) > 1 or len(shape) != len(MESH_AXES):
        raise ValueError(f"mesh shape {tuple(shape)}: three sizes, at most one -1")
    if -1 in shape:
        shape[shape.index(-1)] = len(devices) // math.prod(s for s in shape if s != -1)
    if math.prod(shape) != len(devices):
        raise ValueError(f"mesh shape {tuple(shape)} needs {math.prod(shape)} devices; "
                         f"{len(devices)} are available")
    return jax.make_mesh(tuple(shape), MESH_AXES, devices=devices,
                         axis_types=(jax.sharding.AxisType.Auto,) * len(MESH_AXES))


def logical_to_spec(axes: Sequence[str | None], shape: Sequence[int],
                    mesh: jax.sharding.Mesh, rules=LOGICAL_RULES) -> PartitionSpec:
    """PartitionSpec of an array with logical `axes`, by the rules table."""
    table = dict(rules)
    used: set[str] = set()
    spec = []
    for name, dim in zip(axes, shape, strict=True):
        if name is not None and name not in table:
            raise KeyError(f"logical axis {name!r} has no rule in LOGICAL_RULES")
        mapped = table.get(name) if name is not None else None
        mapped = (mapped,) if isinstance(mapped, str) else tuple(mapped or ())
        mapped = tuple(a for a in mapped if a not in used and mesh.shape[a] > 1)
        if mapped and dim % math.prod(mesh.shape[a] for a in mapped):
            mapped = ()
        used.update(mapped)
        spec.append(mapped[0] if len(mapped) == 1 else (mapped or None))
    return PartitionSpec(*spec)


def param_axes(state: nnx.State) -> dict[tuple, tuple]:
    """Flat path -> logical axes of every variable in `state` (all None when untagged)."""
    return {tuple(path): tuple(var.get_metadata().get("out_sharding")
                               or (None,) * np.ndim(var.get_value()))
            for path, var in nnx.to_flat_state(state)}


def state_shardings(state: nnx.State, mesh: jax.sharding.Mesh) -> dict:
    """Pure-dict tree (like `nnx.to_pure_dict(state)`) of NamedShardings by the rules table."""
    shapes = {tuple(p): np.shape(v.get_value()) for p, v in nnx.to_flat_state(state)}
    flat = {path: NamedSharding(mesh, logical_to_spec(axes, shapes[path], mesh))
            for path, axes in param_axes(state).items()}
    return nnx.to_pure_dict(nnx.from_flat_state(flat))


def batch_sharding(mesh: jax.sharding.Mesh, ndim: int, leading: int = 0) -> NamedSharding:
    """Rows (axis `leading`; before it e.g. micro-batches) over the "batch" mesh axes, everything
    else replicated."""
    spec = [None] * ndim
    spec[leading] = dict(LOGICAL_RULES)["batch"]
    return NamedSharding(mesh, PartitionSpec(*spec))


def batch_shards(mesh: jax.sharding.Mesh) -> int:
    """How many pieces the "batch" rule splits a batch's rows into on `mesh`."""
    axes = dict(LOGICAL_RULES)["batch"]
    return math.prod(mesh.shape[a] for a in ((axes,) if isinstance(axes, str) else axes))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())
