"""Per-device memory of the train state (parameters + AdamW state) of a deberta-v3-large-sized
GLiNER under several 8-device meshes: the table a pod user reads to choose `--config.mesh`.

    python -m eval.mesh_memory [--devices 8] [--layers 24] [--hidden 1024]

Nothing of the model is allocated: the model and the optimizer state are built with
`nnx.eval_shape` / `jax.eval_shape`, the shardings come from the trainer's own rules
(`gliner_jax.sharding.state_shardings`, `train.step.opt_shardings`), and each leaf's per-device
bytes are its `sharding.shard_shape` times its item size. Activations are not counted: they scale
with the per-device batch and sequence length, not with the mesh's model axes.
"""

from __future__ import annotations

import argparse
import math

import jax

MESHES = (  # (data, fsdp, tensor) for 8 devices, and what a pod user calls it
    ((8, 1, 1), "data only (replicated)"),
    ((2, 4, 1), "data 2 x fsdp 4"),
    ((1, 8, 1), "fsdp 8"),
    ((1, 4, 2), "fsdp 4 x tensor 2"),
    ((1, 2, 4), "fsdp 2 x tensor 4"),
)


def _abstract_model(layers: int, hidden: int, heads: int, mlp: int, head_d: int):
    from flax import nnx

    from gliner_jax.config import EncoderConfig, GlinerConfig
    from gliner_jax.modeling import build_model

    # microsoft/deberta-v3-large config.json; 128003 rows = tokenizer + [FLERT] <<ENT>> <<SEP>>
    rows = 128003
    enc = EncoderConfig(model_type="deberta-v2", vocab_size=rows, hidden_size=hidden,
                        num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=mlp)
    cfg = GlinerConfig(encoder=enc, hidden_size=head_d, class_token_index=rows - 2,
                       vocab_size=rows)
    return nnx.eval_shape(lambda: build_model(cfg, rngs=nnx.Rngs(0)))


def _bytes(tree, shardings=None) -> int:
    leaves = jax.tree.leaves(tree)
    if shardings is None:
        return sum(math.prod(x.shape) * x.dtype.itemsize for x in leaves)
    sh = jax.tree.leaves(shardings, is_leaf=lambda s: isinstance(s, jax.sharding.Sharding))
    return sum(math.prod(s.shard_shape(x.shape)) * x.dtype.itemsize
               for x, s in zip(leaves, sh, strict=True))


def table(layers: int = 24, hidden: int = 1024, heads: int = 16, mlp: int = 4096,
          head_d: int = 512) -> list[dict]:
    from flax import nnx

    from gliner_jax.sharding import make_mesh, state_shardings
    from train.config import OptimConfig
    from train.step import make_optimizer, opt_shardings

    model = _abstract_model(layers, hidden, heads, mlp, head_d)
    tx, _ = make_optimizer(OptimConfig(), model, 1000)
    params = nnx.state(model, nnx.Param)
    abs_params = jax.eval_shape(lambda: nnx.to_pure_dict(params))
    abs_opt = jax.eval_shape(tx.init, abs_params)
    n_params = sum(math.prod(x.shape) for x in jax.tree.leaves(abs_params))
    rows = [{"mesh": "unsharded (1 device)", "shape": "-", "params": _bytes(abs_params),
             "opt": _bytes(abs_opt), "n_params": n_params}]
    for shape, name in MESHES:
        if math.prod(shape) != jax.device_count():
            continue
        mesh = make_mesh(shape)
        p_sh = state_shardings(params, mesh)
        o_sh = opt_shardings(abs_opt, abs_params, p_sh, mesh)
        rows.append({"mesh": name, "shape": str(shape), "params": _bytes(abs_params, p_sh),
                     "opt": _bytes(abs_opt, o_sh), "n_params": n_params})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=8, help="simulated CPU devices")
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--mlp", type=int, default=4096)
    ap.add_argument("--head-d", type=int, default=512, help="GLiNER hidden size D")
    args = ap.parse_args(argv)
    jax.config.update("jax_num_cpu_devices", args.devices)
    rows = table(args.layers, args.hidden, args.heads, args.mlp, args.head_d)
    mib = 2 ** 20
    print(f"GLiNER, DeBERTa-v3 {args.layers} x {args.hidden} ({args.heads} heads, MLP {args.mlp}), "
          f"D = {args.head_d}: {rows[0]['n_params'] / 1e6:.1f} M fp32 parameters; "
          f"AdamW state (mu, nu) fp32; {args.devices} devices\n")
    print("| mesh | (data, fsdp, tensor) | params / device | AdamW state / device "
          "| total / device | vs unsharded |")
    print("|---|---|---:|---:|---:|---:|")
    full = rows[0]["params"] + rows[0]["opt"]
    for r in rows:
        tot = r["params"] + r["opt"]
        print(f"| {r['mesh']} | {r['shape']} | {r['params'] / mib:,.0f} MiB "
              f"| {r['opt'] / mib:,.0f} MiB | {tot / mib:,.0f} MiB | {tot / full:.3f} |")


if __name__ == "__main__":
    main()
