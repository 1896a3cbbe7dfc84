"""Starting points of a run: a pretrained encoder directory (fresh head, three added tokens, new
embedding rows mean-resized or spare rows reused) and a GLiNER directory to fine-tune."""

import numpy as np
import pytest
import torch
from reference_models import build_deberta_tokenizer, cached_reference_gliner
from transformers import DebertaV2Config, DebertaV2ForMaskedLM

from gliner_jax.weights import WeightsError, export_state, read_safetensors, write_safetensors
from train.build import ENCODER_PREFIX, build_model, resize_rows
from train.config import DataConfig, ModelConfig

TABLE = "token_rep_layer.bert_layer.model.embeddings.word_embeddings.weight"


def _deberta_dir(tmp_path, spare_rows: int) -> int:
    """A transformers DeBERTa-v3-style directory: tokenizer + a masked-LM checkpoint whose table
    has `spare_rows` rows beyond the tokenizer. Returns the tokenizer's length."""
    n_tok = len(build_deberta_tokenizer(tmp_path))
    torch.manual_seed(0)
    cfg = DebertaV2Config(vocab_size=n_tok + spare_rows, hidden_size=32,
                          num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                          relative_attention=True, position_buckets=16, pos_att_type="p2c|c2p",
                          norm_rel_ebd="layer_norm", share_att_key=True,
                          position_biased_input=False, type_vocab_size=0)
    DebertaV2ForMaskedLM(cfg).save_pretrained(tmp_path, safe_serialization=True)
    return n_tok


@pytest.mark.parametrize("spare_rows", [True, False])
def test_start_from_pretrained_encoder(tmp_path, spare_rows):
    n_tok = _deberta_dir(tmp_path, 10 if spare_rows else 0)
    model, tok, notes = build_model(ModelConfig(init="encoder", path=str(tmp_path),
                                                hidden_size=48, max_width=6),
                                    DataConfig(max_types=7), seed=0)
    assert len(tok) == n_tok + 3 and model.config.class_token_index == n_tok + 1
    assert tok.convert_ids_to_tokens([n_tok, n_tok + 1, n_tok + 2]) == \
        ["[FLERT]", "<<ENT>>", "<<SEP>>"]
    assert model.config.max_types == 7 and model.config.vocab_size == n_tok + 3
    got = export_state(model)
    ckpt = {k[len("deberta."):]: v for k, v in read_safetensors(tmp_path / "model.safetensors")
            .items() if k.startswith("deberta.")}
    for k, v in ckpt.items():
        if k.endswith("word_embeddings.weight"):
            continue
        np.testing.assert_array_equal(got[ENCODER_PREFIX + k], v, err_msg=k)
    table, old = got[TABLE], ckpt["embeddings.word_embeddings.weight"]
    assert table.shape[0] == n_tok + 3
    if spare_rows:   # DeBERTa-v3: the table is cut to the tokenizer, the spare rows are kept
        np.testing.assert_array_equal(table, old[: n_tok + 3])
    else:            # mean-resizing: the old mean plus noise of 1e-9 x the covariance
        np.testing.assert_array_equal(table[:n_tok], old)
        new = table[n_tok:]
        assert np.abs(new - old.mean(0)).max() < 1e-3 < np.abs(old - old.mean(0)).max()
        assert not np.array_equal(new[0], new[1])
    assert any("pretraining-head keys" in n for n in notes)  # lm_predictions.* left out, said


def test_encoder_checkpoint_with_unknown_keys_is_rejected(tmp_path):
    _deberta_dir(tmp_path, 0)
    sd = read_safetensors(tmp_path / "model.safetensors")
    sd["deberta.encoder.layer.0.extra.weight"] = np.zeros(3, np.float32)
    write_safetensors(tmp_path / "model.safetensors", sd)
    with pytest.raises(WeightsError, match="encoder.layer.0.extra.weight"):
        build_model(ModelConfig(init="encoder", path=str(tmp_path)), DataConfig(), seed=0)


def test_finetune_from_gliner_directory():
    ref, saved = cached_reference_gliner(backbone="deberta", hidden_size=48, enc_hidden=64)
    model, tok, _ = build_model(ModelConfig(init="gliner", path=str(saved), dropout=0.2),
                                DataConfig(max_types=9), seed=0)
    assert model.config.dropout == 0.2 and model.config.max_types == 9
    want = {k: v.numpy() for k, v in ref.model.state_dict().items()}
    got = export_state(model)
    assert sorted(got) == sorted(want)
    for k in got:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    with pytest.raises(ValueError, match="hidden_size"):
        build_model(ModelConfig(init="gliner", path=str(saved), hidden_size=64), DataConfig(), 0)


def test_resize_rows_like_transformers():
    rng = np.random.default_rng(0)
    old = rng.normal(size=(50, 8)).astype(np.float32)
    new = resize_rows(old, 53, seed=1)
    assert new.shape == (53, 8) and new.dtype == np.float32
    np.testing.assert_array_equal(new[:50], old)
    np.testing.assert_allclose(new[50:], np.broadcast_to(old.mean(0), (3, 8)), atol=1e-3)
    np.testing.assert_array_equal(resize_rows(old, 40, seed=1), old[:40])
