"""Several hosts: two JAX processes (2 CPU devices each, gloo collectives) train with
`python -m train ... --coordinator --num_processes --process_id`, each feeding its half of every
batch; the losses and the exported weights equal one process with 4 devices on the same mesh.

Spawns three JAX processes (about a minute on 2 cores): runs only with GLINER_JAX_MULTIPROCESS=1.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gliner_jax.weights import read_safetensors

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not os.environ.get("GLINER_JAX_MULTIPROCESS"),
    reason="spawns 3 JAX processes (~1 min): set GLINER_JAX_MULTIPROCESS=1")]

REPO = Path(__file__).resolve().parents[1]
LAUNCH = """
import sys
import jax
jax.config.update("jax_num_cpu_devices", {devices})
jax.config.update("jax_cpu_collectives_implementation", "gloo")
from train import __main__ as cli
sys.exit(cli.main(sys.argv[1:]))
"""
CONFIG = """
import sys
sys.path.insert(0, {tests!r})
from train_setup import synthetic_examples, tiny_config, write_jsonl
from pathlib import Path

def get_config():
    d = Path({data!r})
    cfg = tiny_config(d / "train.jsonl", d / "dev.jsonl", num_steps=6, checkpoint_every=3,
                      export=True)
    cfg.mesh = (2, 2, 1)
    return cfg
"""


def _spawn(devices, workdir, config, *extra):
    code = LAUNCH.format(devices=devices)
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, "-c", code, "--config", str(config), "--workdir",
                             str(workdir), "--no_progress", *extra], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_processes_equal_one(tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    from train_setup import synthetic_examples, write_jsonl

    write_jsonl(tmp_path / "train.jsonl", synthetic_examples(64, seed=1))
    write_jsonl(tmp_path / "dev.jsonl", synthetic_examples(8, seed=2))
    config = tmp_path / "cfg.py"
    config.write_text(CONFIG.format(tests=str(REPO / "tests"), data=str(tmp_path)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    multi = [_spawn(2, tmp_path / "multi", config, "--coordinator", f"127.0.0.1:{port}",
                    "--num_processes", "2", "--process_id", str(i)) for i in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in multi]
    assert [p.returncode for p in multi] == [0, 0], outs
    single = _spawn(4, tmp_path / "single", config)
    out = single.communicate(timeout=600)[0]
    assert single.returncode == 0, out

    def losses(d):
        recs = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
        return [r["loss"] for r in recs if "loss" in r]
    assert losses(tmp_path / "multi") == pytest.approx(losses(tmp_path / "single"), rel=1e-5)
    a = read_safetensors(tmp_path / "multi" / "model" / "model.safetensors")
    b = read_safetensors(tmp_path / "single" / "model" / "model.safetensors")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-5, err_msg=k)
    assert sorted(p.name for p in (tmp_path / "multi" / "checkpoints").iterdir()) == ["3", "6"]
