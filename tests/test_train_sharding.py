"""Sharded training on 8 simulated CPU devices (conftest): meshes (data, fsdp, tensor) = (8,1,1),
(2,4,1), (2,2,2) give the loss and updated parameters of one device (relative 1e-5, dropout on:
the keys do not depend on the layout), and parameters are laid out as LOGICAL_RULES say.

(XLA may log "Involuntary full rematerialization" for the LSTM's stacked weights on some meshes:
a performance note of the SPMD partitioner, not an error.)"""

import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P
from train_setup import synthetic_examples, tiny_config, write_jsonl

from gliner_jax.processing import Processor
from gliner_jax.sharding import logical_to_spec, make_mesh, param_axes
from train.build import build_model
from train.data import Batcher, sample_types
from train.train import device_batch, init_state, make_trainer

MESHES = [(8, 1, 1), (2, 4, 1), (2, 2, 2)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    train_file = write_jsonl(tmp_path_factory.mktemp("shard") / "train.jsonl",
                             synthetic_examples(16, seed=3))
    cfg = tiny_config(train_file)
    model, tok, _ = build_model(cfg.model, cfg.data, cfg.seed)
    examples = synthetic_examples(8, seed=4)
    types = sample_types(examples, np.random.default_rng(0), max_types=4, max_neg_type_ratio=1)
    processor = Processor.from_config(tok, model.config.class_token_index, model.config)
    arrays, _ = Batcher(processor, cfg.data, 1)(examples, types)
    return cfg, model, arrays


def _train(cfg, model, arrays, mesh, steps=2):
    tr, params = make_trainer(model, cfg, mesh)
    state = init_state(tr, params)
    with jax.set_mesh(mesh):
        for _ in range(steps):
            state, m = tr.step_fn(state, tr.rest, device_batch(arrays, tr.batch_sh))
    return float(m["loss"]), state


@pytest.fixture(scope="module")
def single(setup):
    cfg, model, arrays = setup
    loss, state = _train(cfg, model, arrays, make_mesh((1, 1, 1), jax.devices()[:1]))
    return loss, jax.device_get(state["params"])


@pytest.mark.parametrize("shape", MESHES)
def test_sharded_step_equals_single_device(setup, single, shape):
    cfg, model, arrays = setup
    assert len(jax.devices()) == 8
    mesh = make_mesh(shape)
    loss, state = _train(cfg, model, arrays, mesh)
    want_loss, want = single
    assert abs(loss - want_loss) <= 1e-5 * abs(want_loss), (loss, want_loss)
    got = jax.device_get(state["params"])
    flat_want = jax.tree_util.tree_flatten_with_path(want)[0]
    for (path, w), g in zip(flat_want, jax.tree.leaves(got), strict=True):
        # relative 1e-5, with a floor of 1e-6 per element: attention key biases have an exactly
        # zero gradient in exact arithmetic, so only rounding noise moves them (by ~1e-7)
        err = np.linalg.norm(g - w)
        assert err <= 1e-5 * np.linalg.norm(w) + 1e-6 * np.sqrt(w.size), (
            jax.tree_util.keystr(path), err, np.linalg.norm(w))

    # the layout is the rules table's, for parameters and Adam moments alike
    axes = param_axes(nnx.state(model, nnx.Param))
    specs = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state["params"])[0]:
        key = tuple(k.key for k in path)
        want_spec = logical_to_spec(axes[key], leaf.shape, mesh)
        assert leaf.sharding.spec == want_spec, (key, leaf.sharding.spec, want_spec)
        specs[key] = leaf.sharding.spec
    enc = ("token_rep_layer", "bert_layer", "model", "encoder", "layer", 0)
    q = enc + ("attention", "self", "query", "kernel")
    expect = {
        q: P("fsdp" if shape[1] > 1 else None, "tensor" if shape[2] > 1 else None),
        ("rnn", "lstm", "weight_ih_l0"): P("tensor" if shape[2] > 1 else None,
                                           "fsdp" if shape[1] > 1 else None),
        enc + ("output", "LayerNorm", "scale"): P(None),
    }
    for key, spec in expect.items():
        assert tuple(specs[key]) == tuple(spec) + (None,) * (len(specs[key]) - len(spec)), key
    if shape == (2, 2, 2):
        kernel = state["params"]["token_rep_layer"]["bert_layer"]["model"]["encoder"]["layer"][0][
            "attention"]["self"]["query"]["kernel"]
        assert kernel.addressable_shards[0].data.shape == (16, 16)  # [32, 32] over fsdp x tensor
        mu = [x for x in jax.tree.leaves(state["opt"]) if x.shape == kernel.shape]
        assert any(m.sharding.spec == kernel.sharding.spec for m in mu)


def test_logical_to_spec_rules():
    mesh = make_mesh((2, 2, 2))
    assert logical_to_spec(("embed", "heads"), (32, 32), mesh) == P("fsdp", "tensor")
    assert logical_to_spec(("embed", "embed"), (32, 32), mesh) == P("fsdp", None)  # once
    assert logical_to_spec(("vocab", "embed"), (30525, 32), mesh) == P(None, "fsdp")
    assert logical_to_spec(("mlp",), (3,), mesh) == P(None)  # 3 rows do not split in 2
    assert logical_to_spec((None, "norm"), (4, 4), mesh) == P(None, None)
    with pytest.raises(KeyError, match="no rule"):
        logical_to_spec(("experts",), (8,), mesh)
