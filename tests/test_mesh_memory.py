"""eval/mesh_memory.py: per-device train-state bytes from abstract arrays and the trainer's rules
(8 simulated devices, from conftest.py)."""

import jax

from eval.mesh_memory import table


def test_mesh_memory_table():
    assert jax.device_count() == 8
    rows = {r["shape"]: r for r in table(layers=2, hidden=64, heads=4, mlp=128, head_d=32)}
    full = rows["-"]
    assert full["params"] == full["n_params"] * 4  # fp32
    assert full["opt"] >= 2 * full["params"]       # AdamW mu and nu (+ counts)
    assert rows["(8, 1, 1)"]["params"] == full["params"]   # data parallel: replicated
    fsdp = rows["(1, 8, 1)"]
    # every array with a width dimension is split 8 ways; LayerNorms and biases stay whole
    assert full["params"] / 8 <= fsdp["params"] < full["params"] / 6
    assert fsdp["opt"] < full["opt"] / 6
    assert fsdp["params"] < rows["(1, 4, 2)"]["params"] < rows["(2, 4, 1)"]["params"] * 1.01
