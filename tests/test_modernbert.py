"""ModernBERT parity with transformers' ModernBertModel, tiny random configs saved locally.

Sequences are longer than the local window, batches are padded, and the LayerNorm weights are
random so that every norm matters. float64: 1e-10 given the same rotary tables (transformers
computes cos/sin in float32 and its float32 cos is not correctly rounded, so our own tables may
differ from torch's in the last bit: checked separately, to 1 ulp). float32: relative 1e-5 with
our own tables.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from transformers import ModernBertConfig, ModernBertForMaskedLM, ModernBertModel

from gliner_jax.config import EncoderConfig
from gliner_jax.encoders import ModernBertModel as ModernBertJax
from gliner_jax.encoders import load_encoder
from gliner_jax.encoders.modernbert import GLOBAL, LOCAL, rope_table
from gliner_jax.layers import Precision
from gliner_jax.weights import WeightsError, read_safetensors, write_safetensors

BASE = dict(vocab_size=97, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
            intermediate_size=48, local_attention=16, pad_token_id=0, bos_token_id=1,
            eos_token_id=2, cls_token_id=1, sep_token_id=2, initializer_range=0.2)
CASES = {
    # global layers 0 and 3, local 1-2 (transformers' default every 3), window 16 < T=60
    "default": ({}, 60),
    # biases everywhere, other thetas, tanh GELU, global every 2 layers, an odd window
    "biases": ({"norm_bias": True, "attention_bias": True, "mlp_bias": True,
                "global_attn_every_n_layers": 2, "global_rope_theta": 5000.0,
                "local_rope_theta": 300.0, "hidden_activation": "gelu_pytorch_tanh",
                "local_attention": 10}, 45),
}


def _batch(length, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, 97, size=(3, length))
    mask = np.ones_like(ids)
    for row, n in enumerate((length, length // 2 + 3, 5)):
        mask[row, n:] = 0
        ids[row, n:] = 0
    return ids, mask


def _save(tmp, overrides, seed=0):
    torch.manual_seed(seed)
    cfg = ModernBertConfig(**{**BASE, **overrides})
    model = ModernBertModel(cfg).eval()
    with torch.no_grad():  # random norm weights / biases so those paths matter
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.2 * torch.randn_like(p))
    model.save_pretrained(tmp, safe_serialization=True)
    return model


def _torch_tables(model, length):
    x = torch.zeros(1, length, 1, dtype=torch.float32)
    pos = torch.arange(length)[None]
    out = {}
    for kind in (GLOBAL, LOCAL):
        cos, sin = model.rotary_emb(x, pos, kind)
        out[kind] = (cos[0].numpy(), sin[0].numpy())
    return out


def _torch_out(model, ids, mask, double):
    m = model.double() if double else model.float()
    with torch.no_grad():
        return m(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)) \
            .last_hidden_state.numpy()


@pytest.mark.parametrize("case", sorted(CASES))
def test_modernbert_parity(tmp_path, case):
    overrides, length = CASES[case]
    model = _save(tmp_path, overrides)
    assert model.config.local_attention < length
    ids, mask = _batch(length)
    valid = mask.astype(bool)
    tables = _torch_tables(model.float(), length)

    ref64 = _torch_out(model, ids, mask, double=True)
    with jax.enable_x64(True):
        enc = load_encoder(tmp_path, Precision(param_dtype=jnp.float64))
        assert isinstance(enc, ModernBertJax)
        same = np.asarray(enc(jnp.asarray(ids), jnp.asarray(mask), rel_tables=tables))
        own = np.asarray(enc(jnp.asarray(ids), jnp.asarray(mask)))
    assert same.dtype == np.float64
    err = np.abs(same - ref64)[valid].max()
    assert err < 1e-10, err
    # our own float32 tables: the last-bit differences of cos/sin stay at float32 rounding
    err_own = np.abs(own - ref64)[valid].max()
    assert err_own < 1e-5, err_own

    ref32 = _torch_out(model, ids, mask, double=False)
    enc32 = load_encoder(tmp_path)
    with jax.default_matmul_precision("highest"):
        out32 = np.asarray(enc32(jnp.asarray(ids), jnp.asarray(mask)))
    np.testing.assert_allclose(out32[valid], ref32[valid], rtol=1e-5, atol=1e-5)


def test_rope_tables_match_torch_to_rounding():
    """Ours round inv_freq from a float64 power and cos/sin of the float32 angle from float64;
    torch's float32 pow and cos are within 1 ulp of those. So each entry agrees to 1 ulp of the
    value plus the angle's float32 error: position x 1 ulp of inv_freq, plus 1 ulp of the
    angle (the product rounds to a neighbouring float32)."""
    cfg = ModernBertConfig(**{**BASE, "hidden_size": 128, "num_attention_heads": 2})
    model = ModernBertModel(cfg)
    length = 1024
    tables = _torch_tables(model, length)
    pos = np.arange(length, dtype=np.float64)[:, None]
    for kind, theta in ((GLOBAL, 160000.0), (LOCAL, 10000.0)):
        inv = np.tile((1.0 / theta ** (np.arange(0, 64, 2) / 64)).astype(np.float32), 2)
        angle = (pos * inv[None]).astype(np.float32)
        angle_err = pos * np.spacing(inv)[None] + np.spacing(angle)
        for ours, theirs in zip(rope_table(length, 64, theta), tables[kind], strict=True):
            assert ours.dtype == np.float32 and ours.shape == theirs.shape
            bound = np.spacing(np.abs(theirs)) + angle_err
            assert np.all(np.abs(ours.astype(np.float64) - theirs) <= bound), kind
            assert np.mean(ours == theirs) > 0.7  # most entries are bit-identical


def test_config_round_trip_and_legacy_keys(tmp_path):
    _save(tmp_path, CASES["biases"][0])
    saved = json.loads((tmp_path / "config.json").read_text())
    cfg = EncoderConfig.from_dict(saved)
    assert cfg.family == "modernbert"
    assert cfg.layer_types == ("full_attention", "sliding_attention") * 2
    assert (cfg.global_rope_theta, cfg.local_rope_theta) == (5000.0, 300.0)
    assert cfg.norm_bias and cfg.attention_bias and cfg.mlp_bias
    assert cfg.hidden_act == "gelu_pytorch_tanh" and cfg.local_attention == 10
    back = cfg.to_dict()
    assert EncoderConfig.from_dict(back) == cfg
    # transformers reads what we write
    assert ModernBertConfig(**back).layer_types == list(cfg.layer_types)
    # transformers 4.x layout (answerdotai/ModernBERT-base config.json keys)
    legacy = {k: v for k, v in saved.items() if k not in ("layer_types", "rope_parameters")}
    legacy.update(global_attn_every_n_layers=2, global_rope_theta=5000.0,
                  local_rope_theta=300.0)
    assert EncoderConfig.from_dict(legacy) == cfg


def test_masked_lm_checkpoint_loads_base_and_errors_name_keys(tmp_path):
    torch.manual_seed(0)
    mlm = ModernBertForMaskedLM(ModernBertConfig(**BASE)).eval()
    mlm.save_pretrained(tmp_path, safe_serialization=True)
    ids, mask = _batch(30)
    enc = load_encoder(tmp_path)
    with torch.no_grad():
        want = mlm.model(input_ids=torch.tensor(ids),
                         attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
    with jax.default_matmul_precision("highest"):
        got = np.asarray(enc(ids, mask))
    valid = mask.astype(bool)
    np.testing.assert_allclose(got[valid], want[valid], rtol=1e-5, atol=1e-5)

    sd = read_safetensors(tmp_path / "model.safetensors")
    del sd["model.layers.2.attn.Wo.weight"]
    sd["model.layers.0.attn_norm.weight"] = np.ones(32, np.float32)  # layer 0 has no attn_norm
    write_safetensors(tmp_path / "model.safetensors", sd)
    with pytest.raises(WeightsError) as e:
        load_encoder(tmp_path)
    assert "layers.2.attn.Wo.weight" in str(e.value)
    assert "layers.0.attn_norm.weight" in str(e.value)
