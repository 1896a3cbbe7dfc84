"""Tiny random reference GLiNER models (PyTorch `gliner==0.2.29`), built fully offline.

Every parity test builds its reference from here: a SentencePiece (DeBERTa-v3 layout) or WordPiece
(BERT) tokenizer made from a local toy corpus, a local encoder `config.json`, and
`GLiNER.from_config(..., backbone_from_pretrained=False)`, saved with `save_pretrained`. No hub id
is ever used (see /work/shared/reference/make_random_gliner.py, which this follows).

`cached_reference_gliner` / `cached_tokenizer_dir` build once per process into a temp directory.
"""

from __future__ import annotations

import functools
import json
import os
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

# Toy corpus words (make_random_gliner.py), plus some unicode and sub-word material.
WORDS = (
    "the of and to in is was for on that with as by at from his her are were which an be this "
    "have has had not it person location organization company city country date time money "
    "percent event product law language nationality group facility quantity John Smith works "
    "Google Paris London Apple Microsoft Barack Obama born Hawaii president United States Europe "
    "Berlin river mountain Alice Bob New York"
).split()
EXTRA_WORDS = "café naïve Zürich São Paulo 東京 北京 emoji 😀 U.S. state-of-the-art e-mail".split()

# WordPiece vocabulary for the BERT tokenizer: whole words, ##suffixes, and single characters (as
# word starts and as ##continuations) so that any lower-case ASCII word tokenizes, often into
# several pieces.
BERT_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BERT_WORDS = (
    "the of and to in is was for on that with as by at from his her are were person location "
    "organization company city country john smith works google paris london apple obama born "
    "president united states europe berlin new york alice bob cafe"
).split()
BERT_SUFFIXES = ["##s", "##ing", "##ed", "##er", "##tion", "##ly", "##ation", "##al", "##an"]
BERT_CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,!?;:'\"()-_/&@#$%*+=<>[]{}")


def _corpus(n_lines: int = 3000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    pool = WORDS * 4 + EXTRA_WORDS
    return [
        " ".join(rng.choice(pool) for _ in range(rng.randint(5, 20))) + rng.choice(".,!?")
        for _ in range(n_lines)
    ]


@functools.cache
def _spm_vocab() -> tuple[tuple[str, float], ...]:
    """Train the SentencePiece unigram model once per process; (piece, score) by id."""
    return _train_spm(_corpus(), 300)


def _train_spm(lines: Sequence[str], vocab_size: int) -> tuple[tuple[str, float], ...]:
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(lines), encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(Path(tmp) / "spm"),
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            model_type="unigram",
            # DeBERTa-v3 layout; [MASK] is appended after the spm vocab by transformers
            pad_id=0, bos_id=1, eos_id=2, unk_id=3,
            pad_piece="[PAD]", bos_piece="[CLS]", eos_piece="[SEP]", unk_piece="[UNK]",
            character_coverage=1.0,
            minloglevel=2,
        )
        sp = spm.SentencePieceProcessor(model_file=str(Path(tmp) / "spm.model"))
        return tuple((sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size()))


def build_deberta_tokenizer(out_dir: str | Path, corpus: Sequence[str] | None = None,
                            vocab_size: int = 8000):
    """A DebertaV2Tokenizer over a locally trained SentencePiece unigram vocab, saved to out_dir.

    Ids: [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3, then the pieces, then [MASK]. Writes tokenizer.json +
    tokenizer_config.json (no protobuf, no hub). The toy vocab (~300 pieces, the default) is
    trained once per process; `corpus` (lines of text) trains a `vocab_size` vocab on it instead,
    e.g. real sentences, so that words split into realistic numbers of pieces.
    """
    from transformers import DebertaV2Tokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = _spm_vocab() if corpus is None else _train_spm(list(corpus), vocab_size)
    tok = DebertaV2Tokenizer(vocab=list(vocab), unk_id=3)
    tok.save_pretrained(out_dir)
    return tok


def build_bert_tokenizer(out_dir: str | Path):
    """A lower-case WordPiece BertTokenizer ([PAD]=0 [UNK] [CLS] [SEP] [MASK]), saved to out_dir."""
    from transformers import BertTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = list(dict.fromkeys(
        BERT_SPECIAL + BERT_WORDS + BERT_SUFFIXES + BERT_CHARS + ["##" + c for c in BERT_CHARS]
    ))
    # transformers 5: the constructor takes the vocab itself (a path or a {piece: id} dict)
    tok = BertTokenizer(vocab={piece: i for i, piece in enumerate(vocab)}, do_lower_case=True,
                        model_max_length=512)  # like bert-base / MiniLM: truncates at 512
    tok.save_pretrained(out_dir)
    return tok


def _encoder_config(backbone: str, enc_hidden: int, num_layers: int, heads: int, vocab_size: int,
                    overrides: dict | None):
    from transformers import BertConfig, DebertaV2Config, ModernBertConfig

    if backbone == "modernbert":  # with build_bert_tokenizer's ids: [PAD] 0, [CLS] 2, [SEP] 3
        kw = dict(vocab_size=vocab_size, hidden_size=enc_hidden, num_hidden_layers=num_layers,
                  num_attention_heads=heads, intermediate_size=2 * enc_hidden, local_attention=8,
                  global_attn_every_n_layers=2, pad_token_id=0, bos_token_id=2, eos_token_id=3,
                  cls_token_id=2, sep_token_id=3)
        kw.update(overrides or {})
        return ModernBertConfig(**kw)

    common = dict(
        vocab_size=vocab_size,
        hidden_size=enc_hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        intermediate_size=4 * enc_hidden,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=512,
        pad_token_id=0,
    )
    if backbone == "deberta":
        kw = dict(common, type_vocab_size=0, layer_norm_eps=1e-7, relative_attention=True,
                  max_relative_positions=-1, position_buckets=256, norm_rel_ebd="layer_norm",
                  share_att_key=True, pos_att_type="p2c|c2p", position_biased_input=False)
        kw.update(overrides or {})
        return DebertaV2Config(**kw)
    if backbone == "bert":
        kw = dict(common, type_vocab_size=2, layer_norm_eps=1e-12)
        kw.update(overrides or {})
        return BertConfig(**kw)
    raise ValueError(f"backbone must be 'deberta', 'bert' or 'modernbert', got {backbone!r}")


def build_reference_gliner(
    out_dir: str | Path,
    backbone: str = "deberta",
    hidden_size: int = 48,
    enc_hidden: int = 64,
    max_width: int = 12,
    max_len: int = 384,
    num_layers: int = 2,
    heads: int = 4,
    seed: int = 0,
    encoder_overrides: dict | None = None,
    weight_scale: float | None = None,
    tokenizer_corpus: Sequence[str] | None = None,
    gliner_overrides: dict | None = None,
):
    """Build a random reference GLiNER (eval mode) and save it to `out_dir / "saved"`.

    `weight_scale` multiplies every weight by (1 + weight_scale * N(0, 1)) noise and adds
    weight_scale * N(0, 0.02) so that logits spread out instead of all sitting near 0.
    `gliner_overrides`: gliner_config entries to set (e.g. {"span_mode": "token_level"}); the
    reference picks the model family from them as `GLiNER.from_pretrained` does.
    `tokenizer_corpus` (DeBERTa only): lines to train the SentencePiece vocab on instead of the
    toy corpus (see `build_deberta_tokenizer`).
    Returns (model, saved_dir). `out_dir / "encoder"` holds the encoder config + base tokenizer.
    """
    import torch
    from gliner import GLiNER

    out_dir = Path(out_dir)
    enc_dir = out_dir / "encoder"
    if backbone == "deberta":
        tok = build_deberta_tokenizer(enc_dir, tokenizer_corpus)
    elif tokenizer_corpus is not None:
        raise ValueError("tokenizer_corpus is only supported for the DeBERTa tokenizer")
    else:
        tok = build_bert_tokenizer(enc_dir)
    _encoder_config(backbone, enc_hidden, num_layers, heads, len(tok),
                    encoder_overrides).save_pretrained(enc_dir)

    torch.manual_seed(seed)
    gliner_cfg = {
        "model_name": str(enc_dir),  # local dir: AutoConfig / AutoTokenizer never touch the hub
        "name": f"random-gliner-{backbone}",
        "max_width": max_width,
        "hidden_size": hidden_size,
        "dropout": 0.4,
        "fine_tune": True,
        "subtoken_pooling": "first",
        "span_mode": "markerV0",
        "max_types": 25,
        "max_len": max_len,
        "max_neg_type_ratio": 1,
        "words_splitter_type": "whitespace",
        "num_rnn_layers": 1,
        "vocab_size": -1,         # -1: add [FLERT], <<ENT>>, <<SEP>> and resize the embeddings
        "class_token_index": -1,  # -1: len(tokenizer) - 2
        "ent_token": "<<ENT>>",
        "sep_token": "<<SEP>>",
    }
    gliner_cfg.update(gliner_overrides or {})
    model = GLiNER.from_config(gliner_cfg, backbone_from_pretrained=False, load_tokenizer=True,
                               local_files_only=True)
    if weight_scale:
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for p in model.model.parameters():
                noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
                shift = torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.02
                p.mul_(1.0 + weight_scale * noise).add_(weight_scale * shift)
    model.eval()
    saved = out_dir / "saved"
    model.save_pretrained(saved, safe_serialization=True)
    (out_dir / "build_args.json").write_text(json.dumps({
        "backbone": backbone, "hidden_size": hidden_size, "enc_hidden": enc_hidden,
        "max_width": max_width, "max_len": max_len, "num_layers": num_layers, "heads": heads,
        "seed": seed, "encoder_overrides": encoder_overrides, "weight_scale": weight_scale,
        "gliner_overrides": gliner_overrides,
        "tokenizer_corpus_lines": None if tokenizer_corpus is None else len(tokenizer_corpus),
    }, indent=2))
    return model, saved


@functools.cache
def _cache_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="gliner_jax_ref_"))


@functools.cache
def _cached(key: str, kwargs_json: str):
    kwargs = json.loads(kwargs_json)
    return build_reference_gliner(_cache_root() / key, **kwargs)


def cached_reference_gliner(**kwargs):
    """`build_reference_gliner` into a per-process temp dir, memoised on the arguments."""
    kwargs_json = json.dumps(kwargs, sort_keys=True)
    key = f"model_{abs(hash(kwargs_json)) % 10**10}"
    return _cached(key, kwargs_json)


@functools.cache
def cached_tokenizer_dir(backbone: str = "deberta") -> Path:
    """A saved base tokenizer (no GLiNER tokens), built once per process."""
    out = _cache_root() / f"tokenizer_{backbone}"
    (build_deberta_tokenizer if backbone == "deberta" else build_bert_tokenizer)(out)
    return out


def torch_rope(ref, length: int):
    """A reference model's ModernBERT text encoder: transformers' rotary tables (cos, sin) for
    `length` positions, {kind: (cos, sin)} as our encoder's `rel_tables` takes them, which
    transformers computes in float32 even in a float64 model (see test_modernbert.py); None for
    the other encoders."""
    import torch

    enc = ref.model.token_rep_layer.bert_layer.model
    if not hasattr(enc, "rotary_emb"):
        return None
    x, pos = torch.zeros(1, length, 1), torch.arange(length)[None]
    rot = enc.rotary_emb.float()
    return {kind: tuple(t[0].numpy() for t in rot(x, pos, kind))
            for kind in ("full_attention", "sliding_attention")}


# ---------------------------------------------------------------------------------------------
# Helpers shared by the parity tests (test_gliner, test_families, test_families_train,
# test_relex): the reference's batch, decoded entities, the round trip, loss and gradients.

def reference_batch(ref, texts, labels, relations=None) -> dict:
    """The reference's collated inference batch (tensors only) of the non-empty texts."""
    import torch

    tokens, _, _ = ref.prepare_inputs([t for t in texts if t.strip()])
    kw = {} if relations is None else {"relation_types": relations}
    batch = ref.create_collator()([{"tokenized_text": t, "ner": None} for t in tokens],
                                  entity_types=labels, **kw)
    return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}


def entity_tuples(rows) -> list[list[tuple]]:
    """Decoded entities per text as (start, end, text, label) (scores compared apart)."""
    return [[(e["start"], e["end"], e["text"], e["label"]) for e in r] for r in rows]


def edited_copy(saved: str | Path, out: str | Path, **config) -> Path:
    """A copy of the model directory `saved` at `out` with gliner_config.json entries set."""
    import shutil

    out = Path(out)
    shutil.copytree(saved, out)
    cfg = json.loads((out / "gliner_config.json").read_text())
    (out / "gliner_config.json").write_text(json.dumps({**cfg, **config}))
    return out


def load_error(model_dir: str | Path) -> str:
    """The message of the ModelLoadError that loading `model_dir` must raise, checked to be
    one line."""
    import pytest

    from gliner_jax import GLiNER
    from gliner_jax.convert import ModelLoadError

    with pytest.raises(ModelLoadError) as e:
        GLiNER.from_pretrained(model_dir)
    assert "\n" not in str(e.value), str(e.value)
    return str(e.value)


def assert_same_safetensors(dir_a: str | Path, dir_b: str | Path) -> None:
    """The two directories' model.safetensors hold the same keys, dtypes and bits."""
    import numpy as np

    from gliner_jax.weights import read_safetensors

    a = read_safetensors(Path(dir_a) / "model.safetensors")
    b = read_safetensors(Path(dir_b) / "model.safetensors")
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def reference_loss_and_grads(ref, batch: dict, cfg) -> tuple[float, dict]:
    """The reference model's float64 training loss of `batch` (targets already float64) with
    the loss settings of `cfg` (train.config.LossConfig), and every parameter's gradient (zero
    for parameters the loss does not reach); the model is left in float32."""
    import numpy as np

    model = ref.model.double().eval()
    model.zero_grad()
    loss = model(**batch, alpha=cfg.alpha, gamma=cfg.gamma, label_smoothing=cfg.label_smoothing,
                 reduction=cfg.reduction, prob_margin=cfg.prob_margin).loss
    loss.backward()
    grads = {k: (np.zeros(p.shape) if p.grad is None else p.grad.numpy().copy())
             for k, p in model.named_parameters()}
    model.float()
    return loss.item(), grads


def jax_loss_and_grads(model, batch: dict, cfg) -> tuple[float, dict]:
    """Our loss of `batch` through the one train step's `batch_loss`, and its gradients as a
    torch-named dict (call inside jax.enable_x64 for a float64 model)."""
    import jax
    from flax import nnx

    from gliner_jax.weights import export_state
    from train.step import batch_loss

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest = nnx.to_pure_dict(params), nnx.to_pure_dict(rest)
    fn = jax.jit(jax.value_and_grad(lambda p, b: batch_loss(p, graphdef, rest, b, cfg)))
    loss, grads = fn(params, batch)
    return float(loss), export_state(nnx.merge(graphdef, grads, rest))
