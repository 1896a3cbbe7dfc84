"""FastTokenizer (tokenizers only, no transformers import) against the transformers tokenizer
that gliner sets up: the same vocabulary size and GLiNER token ids, and the same ids, attention
masks, word masks and word ids for batches (with truncation at 512 tokens and padding), for the
BERT and DeBERTa test tokenizers and the shipped model's.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from gliner_jax.convert import read_gliner_config
from gliner_jax.fast_tokenizer import FastTokenizer
from gliner_jax.processing import Processor, load_tokenizer, split_words
from gliner_jax.shipped import default_model
from tests.reference_models import cached_reference_gliner

REPO = Path(__file__).resolve().parents[1]
TEXTS = ["John Smith works at Google in Paris.", "Zürich and São Paulo 東京 are cities 😀 .",
         "state-of-the-art e-mail café naïve U.S. [UNK] <<ENT>> ##s", "Bob",
         " ".join(["Alice", "xqzvwk"] * 150)]  # > 512 sub-word tokens within max_len words
LABELS = [["person", "company", "city"], ["location"], ["organisation", "date"], ["x"],
          ["person", "city"]]


def model_dirs():
    return {"bert": lambda: cached_reference_gliner(backbone="bert")[1],
            "deberta": lambda: cached_reference_gliner(backbone="deberta")[1],
            "shipped": default_model}


@pytest.mark.parametrize("which", ["bert", "deberta", "shipped"])
def test_same_as_transformers(which):
    d = Path(model_dirs()[which]())
    cfg = read_gliner_config(d)
    slow, slow_cls = load_tokenizer(d, cfg)
    fast, fast_cls = load_tokenizer(d, cfg, fast=True)
    assert isinstance(fast, FastTokenizer) and not isinstance(slow, FastTokenizer)
    assert (len(fast), fast_cls, fast.pad_token_id, fast.model_max_length, fast.padding_side) \
        == (len(slow), slow_cls, slow.pad_token_id, slow.model_max_length, slow.padding_side)
    for token in (cfg.ent_token, cfg.sep_token, "[FLERT]", "no-such-token-xyz"):
        assert fast.convert_tokens_to_ids(token) == slow.convert_tokens_to_ids(token)

    words = [[w for w, _, _ in split_words(t)] for t in TEXTS]
    with warnings.catch_warnings(record=True) as wa:
        warnings.simplefilter("always")
        a = Processor.from_config(slow, slow_cls, cfg).encode(words, LABELS, LABELS)
    with warnings.catch_warnings(record=True) as wb:
        warnings.simplefilter("always")
        b = Processor.from_config(fast, fast_cls, cfg).encode(words, LABELS, LABELS)
    assert [str(w.message) for w in wa] == [str(w.message) for w in wb]
    for key in ("input_ids", "attention_mask", "words_mask", "text_lengths"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    if slow.model_max_length == 512:  # BERT: the long text is cut at 512 tokens by both
        assert a.input_ids.shape[1] == 512 and len(wa) == 1
    for w in words:  # one unpadded row without special tokens (the window planner's call)
        x = slow(w, is_split_into_words=True, add_special_tokens=False, verbose=False)
        y = fast(w, is_split_into_words=True, add_special_tokens=False, verbose=False)
        assert x["input_ids"] == y["input_ids"] and x.word_ids() == y.word_ids()


def test_save_pretrained_writes_what_transformers_writes(tmp_path):
    d = Path(cached_reference_gliner(backbone="bert")[1])
    cfg = read_gliner_config(d)
    slow, _ = load_tokenizer(d, cfg)
    fast, _ = load_tokenizer(d, cfg, fast=True)
    slow.save_pretrained(tmp_path / "slow")
    fast.save_pretrained(tmp_path / "fast")
    names = sorted(p.name for p in (tmp_path / "slow").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "fast").iterdir())
    for n in names:
        assert (tmp_path / "slow" / n).read_bytes() == (tmp_path / "fast" / n).read_bytes(), n


def test_prediction_imports_no_transformers():
    code = ("import sys; from gliner_jax import GLiNER; "
            "m = GLiNER.from_pretrained(sys.argv[1]); "
            "m.predict_entities('Marie Curie was born in Warsaw.', ['person']); "
            "print(type(m.tokenizer).__name__, 'transformers' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(default_model())],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={"PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu",
                               "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["FastTokenizer", "False"]
