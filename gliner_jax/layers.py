"""Small NNX building blocks shared by the encoders and the GLiNER head.

Every parameter carries logical axis names (`out_sharding` metadata); `gliner_jax.sharding` maps
them to mesh axes. Names of the torch modules are kept by the callers, so a converter table is
almost the identity.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx


@dataclasses.dataclass(frozen=True)
class Precision:
    """Compute and parameter dtypes (bf16 compute with fp32 params is `Precision(jnp.bfloat16)`)."""

    dtype: jnp.dtype | None = None       # compute dtype; None = the parameters' dtype
    param_dtype: jnp.dtype = jnp.float32


def axes_meta(axes: tuple[str | None, ...]) -> dict:
    """Variable metadata: logical axes for sharding. Placement happens where a mesh is chosen
    (`gliner_jax.sharding`), never implicitly at construction."""
    return {"out_sharding": axes, "eager_sharding": False}


def normal(std: float):
    return nnx.initializers.normal(std)


def dense(in_features: int, out_features: int, axes: tuple[str | None, str | None],
          prec: Precision, rngs: nnx.Rngs, *, init=None, use_bias: bool = True) -> nnx.Linear:
    """A Linear with kernel [in, out] tagged with logical axes (bias: the output axis)."""
    kw = {}
    if init is not None:
        kw["kernel_init"] = init
    return nnx.Linear(
        in_features, out_features, use_bias=use_bias, dtype=prec.dtype,
        param_dtype=prec.param_dtype, rngs=rngs,
        kernel_metadata=axes_meta(axes), bias_metadata=axes_meta((axes[1],)), **kw)


def layer_norm(features: int, eps: float, prec: Precision, rngs: nnx.Rngs) -> nnx.LayerNorm:
    """torch.nn.LayerNorm semantics: biased two-pass variance, eps inside the sqrt."""
    return nnx.LayerNorm(
        features, epsilon=eps, use_fast_variance=False, dtype=prec.dtype,
        param_dtype=prec.param_dtype, rngs=rngs,
        scale_metadata=axes_meta(("norm",)), bias_metadata=axes_meta(("norm",)))


def embed(num: int, features: int, axes: tuple[str | None, str | None], prec: Precision,
          rngs: nnx.Rngs, std: float = 0.02) -> nnx.Embed:
    return nnx.Embed(num, features, dtype=prec.dtype, param_dtype=prec.param_dtype,
                     embedding_init=normal(std), rngs=rngs,
                     embedding_metadata=axes_meta(axes))


def activation(name: str):
    """transformers' ACT2FN for the activations encoder configs use."""
    table = {
        "gelu": lambda x: jax.nn.gelu(x, approximate=False),
        "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
        "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
        "relu": jax.nn.relu,
        "silu": jax.nn.silu,
        "swish": jax.nn.silu,
        "tanh": jnp.tanh,
    }
    if name not in table:
        raise ValueError(f"activation {name!r} is not supported; supported: {sorted(table)}")
    return table[name]


def torch_uniform(fan_in: int):
    """torch's default nn.Linear / nn.LSTM init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / fan_in ** 0.5
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
        key, shape, dtype, -bound, bound)


def torch_dense(in_features: int, out_features: int, axes, prec: Precision,
                rngs: nnx.Rngs) -> nnx.Linear:
    """A Linear initialised like torch's nn.Linear (GLiNER's heads train from this init)."""
    init = torch_uniform(in_features)
    layer = dense(in_features, out_features, axes, prec, rngs, init=init)
    layer.bias.set_value(init(rngs.params(), (out_features,), prec.param_dtype))
    return layer
