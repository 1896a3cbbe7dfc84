"""Text -> model inputs, exactly as the reference (gliner 0.2.29) builds them. Numpy only.

Pipeline (GLINER_SPEC.md section 2): split each text into words with the reference regex, build
the prompt `<<ENT>> label ... <<SEP>>` in front of the words, tokenize the word list with
`is_split_into_words=True`, and mark each text word's first sub-token in `words_mask`.
`Processor.encode` gives the reference collator's shapes exactly; `pad_batch` / `BucketPolicy`
then pad B, T, W and C up to a few bucket sizes so that jitted code compiles a bounded number of
times. Training targets (`gliner_jax.targets`, per model head) follow the 0.2.29
`create_labels` rules.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gliner_jax.targets import TARGETS, make_span_labels

# gliner/data_processing/tokenizer.py::WhitespaceTokenSplitter (Unicode-aware `\w`)
WORD_PATTERN = re.compile(r"\w+(?:[-_]\w+)*|\S")
# reference: preprocess_example replaces an empty word list by this single word
EMPTY_TEXT_WORD = "[PAD]"


class TruncationWarning(UserWarning):
    """Words of a text were dropped (max_len words, or the tokenizer's model_max_length)."""


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Words of `text` as (word, start_char, end_char_exclusive), like the reference splitter."""
    return [(m.group(), m.start(), m.end()) for m in WORD_PATTERN.finditer(text)]


# ------------------------------------------------------------------------------------------------
# labels


def _check_label(label: Any, where: str) -> str:
    if not isinstance(label, str):
        raise TypeError(f"entity label {where} must be a str, got {type(label).__name__}")
    if not label.strip():
        raise ValueError(f"entity label {where} is empty or blank ({label!r})")
    return label


def normalize_labels(
    labels: str | Sequence[str] | Mapping[str, str],
) -> tuple[list[str], list[str]]:
    """One label set -> (prompt_texts, output_names), as the reference's `_normalize_label_set`.

    A str is one label; a list is de-duplicated keeping its order; a dict {name: description}
    puts the description in the prompt and reports `name`. Unlike the reference, an empty set or
    an empty/blank label raises ValueError instead of producing a meaningless prompt.
    """
    if isinstance(labels, Mapping):
        names, prompts = [], []
        for name, description in labels.items():
            names.append(_check_label(name, f"name {name!r}"))
            prompts.append(_check_label(description, f"description for {name!r}"))
        if len(set(prompts)) != len(prompts):  # the reference raises too
            raise ValueError("label descriptions must be unique within a label set")
    else:
        if isinstance(labels, str):
            labels = [labels]
        prompts = list(dict.fromkeys(_check_label(x, f"#{i}") for i, x in enumerate(labels)))
        names = prompts
    if not prompts:
        raise ValueError("no entity labels given: pass at least one label")
    return prompts, names


def _is_per_text(labels: Any) -> bool:
    """The reference's rule: a non-empty list holding at least one list or dict is per text."""
    return (isinstance(labels, list) and bool(labels)
            and any(isinstance(x, list | Mapping) for x in labels))


# ------------------------------------------------------------------------------------------------
# tokenizer


def _set_tokenizer_spec_tokens(tokenizer):
    # gliner BaseGLiNER._set_tokenizer_spec_tokens: opt in to bos/eos only when defined (spm
    # tokenizers such as DeBERTa keep [CLS] ... [SEP]); never assign False.
    if hasattr(tokenizer, "add_bos_token") and tokenizer.bos_token_id is not None:
        tokenizer.add_bos_token = True
    if hasattr(tokenizer, "add_eos_token") and tokenizer.eos_token_id is not None:
        tokenizer.add_eos_token = True
    # gliner BaseProcessor._check_and_set_special_tokens: pad falls back to eos
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _token_missing(tokenizer, token: str) -> bool:
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None:
        return True
    unk = getattr(tokenizer, "unk_token_id", None)
    return unk is not None and tid == unk and token != tokenizer.unk_token


def load_tokenizer(model_dir: str | Path, gliner_config, *, local_files_only: bool = True,
                   fast: bool = False):
    """The tokenizer as gliner 0.2.29 `from_pretrained` sets it up; returns (tokenizer, cls_index).

    Files come from `model_dir` when it has `tokenizer_config.json`, else from
    `gliner_config.model_name` (legacy v2.1 folders ship no tokenizer). When `class_token_index`
    or `vocab_size` is -1, `[FLERT]`, `<<ENT>>`, `<<SEP>>` are added in that order (as special
    tokens) and the class token index is `len(tokenizer) - 2`; otherwise the configured index is
    validated against the tokenizer as the reference does. `fast`: read tokenizer.json with the
    `tokenizers` library when the tokenizer class allows it (`gliner_jax.fast_tokenizer`), so
    that transformers is not imported.
    """
    model_dir = Path(model_dir)
    if (model_dir / "tokenizer_config.json").is_file():
        source = str(model_dir)
    else:
        source = gliner_config.model_name
    tokenizer = None
    if fast and source == str(model_dir):
        from gliner_jax.fast_tokenizer import FastTokenizer

        tokenizer = FastTokenizer.load(model_dir)
    try:
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(
            f"no tokenizer found: {model_dir} has no tokenizer_config.json and the config's "
            f"model_name {source!r} could not be loaded"
            + (" from local files (local_files_only=True)" if local_files_only else "")
            + f": {e}") from e
    _set_tokenizer_spec_tokens(tokenizer)

    cfg = gliner_config
    if cfg.class_token_index == -1 or cfg.vocab_size == -1:
        # BaseGLiNER._resize_token_embeddings + BaseEncoderGLiNER.set_class_indices; relex
        # models (UniEncoderSpanRelexGLiNER._get_special_tokens) add <<REL>> instead of [FLERT]
        if cfg.family.relations:
            tokenizer.add_tokens([cfg.ent_token, cfg.sep_token, relation_token(cfg)],
                                 special_tokens=True)
            return tokenizer, len(tokenizer) - 3
        tokenizer.add_tokens(["[FLERT]", cfg.ent_token, cfg.sep_token], special_tokens=True)
        return tokenizer, len(tokenizer) - 2

    # BaseGLiNER.validate_special_token_config
    n = len(tokenizer)
    if not 0 <= cfg.class_token_index < n:
        raise ValueError(f"class_token_index={cfg.class_token_index} is out of range for the "
                         f"tokenizer (len={n}); set class_token_index and vocab_size to -1")
    if _token_missing(tokenizer, cfg.ent_token):
        raise ValueError(f"the entity marker {cfg.ent_token!r} is not in the tokenizer vocabulary "
                         f"but class_token_index={cfg.class_token_index} is set explicitly")
    if _token_missing(tokenizer, cfg.sep_token):
        warnings.warn(f"the separator {cfg.sep_token!r} is not in the tokenizer vocabulary; the "
                      "prompt uses its sub-word pieces", UserWarning, stacklevel=2)
    ent_id = tokenizer.convert_tokens_to_ids(cfg.ent_token)
    if ent_id != cfg.class_token_index:
        warnings.warn(f"class_token_index={cfg.class_token_index} differs from the id of "
                      f"{cfg.ent_token!r} ({ent_id})", UserWarning, stacklevel=2)
    if cfg.vocab_size != n:
        warnings.warn(f"config vocab_size={cfg.vocab_size} differs from the tokenizer size ({n})",
                      UserWarning, stacklevel=2)
    return tokenizer, cfg.class_token_index


def relation_token(cfg) -> str:
    return cfg.raw.get("rel_token") or "<<REL>>"


def relation_token_index(tokenizer, cfg) -> int:
    """The id of the relation marker (<<REL>>) of a relex model, as the reference resolves it:
    the configured `rel_token_index` when the config's indices are set, else the id of the
    token `load_tokenizer` added."""
    tok = relation_token(cfg)
    configured = int(cfg.raw.get("rel_token_index", -1) or -1)
    if configured >= 0 and cfg.class_token_index != -1 and cfg.vocab_size != -1:
        if not configured < len(tokenizer):
            raise ValueError(f"rel_token_index={configured} is out of range for the tokenizer "
                             f"(len={len(tokenizer)})")
        return configured
    if _token_missing(tokenizer, tok):
        raise ValueError(f"the relation marker {tok!r} is not in the tokenizer vocabulary")
    return int(tokenizer.convert_tokens_to_ids(tok))


# ------------------------------------------------------------------------------------------------
# spans


def make_span_mask(n_words: int, max_width: int, num_words: int) -> np.ndarray:
    """[W, K] bool: span (s, s+k) lies inside the text, i.e. s + k < n (reference span_mask)."""
    s = np.arange(num_words)[:, None]
    k = np.arange(max_width)[None, :]
    return (s + k) < n_words


# ------------------------------------------------------------------------------------------------
# batches


@dataclasses.dataclass
class Batch:
    """Model inputs (numpy) plus per-row python metadata. Rows past `num_rows` are padding."""

    input_ids: np.ndarray        # [B, T] int32
    attention_mask: np.ndarray   # [B, T] int32
    words_mask: np.ndarray       # [B, T] int32: 1-based text-word index at first sub-tokens
    text_lengths: np.ndarray     # [B] int32: words after max_len truncation (0 in padded rows)
    span_mask: np.ndarray        # [B, W, K] bool: s + k < text_length
    prompt_mask: np.ndarray      # [B, C] bool: row has a c-th class token (reference P_mask)
    labels: np.ndarray | None    # [B, W, K|3, C] float32 training targets (targets.py), or None
    words: list[list[str]]       # per row: the words the tokenizer saw (truncated; ["[PAD]"])
    prompts: list[list[str]]     # per row: prompt text of class channel c
    label_names: list[list[str]]  # per row: output name of class channel c
    offsets: list[list[tuple[int, int]]] | None = None  # per row: word char spans (texts only)
    texts: list[str] | None = None  # per row: the original text
    text_index: list[int] | None = None  # per row: index of the text in the caller's list
    relations: list[list[str]] | None = None  # per row: relation labels (relex models)

    @property
    def num_rows(self) -> int:
        return len(self.words)

    @property
    def shape(self) -> dict[str, int]:
        b, t = self.input_ids.shape
        _, w, k = self.span_mask.shape
        return {"B": b, "T": t, "W": w, "K": k, "C": self.prompt_mask.shape[1]}

    def arrays(self) -> dict[str, np.ndarray]:
        """The array fields (what a jitted function takes)."""
        names = ("input_ids", "attention_mask", "words_mask", "text_lengths", "span_mask",
                 "prompt_mask", "labels")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


def bucket(n: int, minimum: int = 1, half_steps: bool = True) -> int:
    """Smallest bucket >= n among minimum * 2**i and, with half_steps, 1.5 * minimum * 2**i,
    plus 1.25x and 1.75x from 128 up (32, 48, 64, 96, 128, 160, 192, 224, 256, 320, ...).

    Half steps bound the padding waste to 1/3 while keeping the number of shapes logarithmic;
    quarter steps from 128 bound it to 1/5 where padding costs most (attention grows as T^2:
    a 580-token document pads to 640, not 768) and inputs are rarer, so the extra shapes are
    seldom compiled.
    """
    n = max(int(n), 1)
    size = max(int(minimum), 1)
    while True:
        if size >= n:
            return size
        if half_steps and size >= 2:
            for quarters in (5, 6, 7) if size >= 128 else (6,):
                if size * quarters // 4 >= n:
                    return size * quarters // 4
        size *= 2


@dataclasses.dataclass(frozen=True)
class BucketPolicy:
    """Bucket sizes for B (rows), T (tokens), W (words) and C (classes)."""

    min_batch: int = 1
    min_tokens: int = 32
    min_words: int = 16
    min_classes: int = 4
    half_steps: bool = True
    max_tokens: int | None = None  # cap T (e.g. BERT's 512 absolute positions)

    def sizes(self, batch: Batch) -> dict[str, int]:
        s = batch.shape
        t = bucket(s["T"], self.min_tokens, self.half_steps)
        if self.max_tokens is not None:
            t = max(min(t, self.max_tokens), s["T"])
        return {
            "B": bucket(s["B"], self.min_batch, half_steps=False),
            "T": t,
            "W": bucket(s["W"], self.min_words, self.half_steps),
            "C": bucket(s["C"], self.min_classes, self.half_steps),
        }


def _pad_axis(x: np.ndarray, axis: int, size: int, value, left: bool = False) -> np.ndarray:
    extra = size - x.shape[axis]
    if extra < 0:
        raise ValueError(f"cannot pad axis {axis} of shape {x.shape} down to {size}")
    if extra == 0:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (extra, 0) if left else (0, extra)
    return np.pad(x, widths, constant_values=value)


def pad_batch(batch: Batch, *, B: int, T: int, W: int, C: int, pad_token_id: int,
              padding_side: str = "right") -> Batch:
    """Pad every array of `batch` to [B, T], [B, W, K], [B, C] (padding is inert).

    Padded tokens: id = pad id, attention 0, words_mask 0; padded rows: text_length 0 and all
    masks False. Tokens are padded on the tokenizer's padding side.
    """
    left = padding_side == "left"
    ids = _pad_axis(_pad_axis(batch.input_ids, 1, T, pad_token_id, left), 0, B, pad_token_id)
    att = _pad_axis(_pad_axis(batch.attention_mask, 1, T, 0, left), 0, B, 0)
    wm = _pad_axis(_pad_axis(batch.words_mask, 1, T, 0, left), 0, B, 0)
    span = _pad_axis(_pad_axis(batch.span_mask, 1, W, False), 0, B, False)
    prompt = _pad_axis(_pad_axis(batch.prompt_mask, 1, C, False), 0, B, False)
    labels = batch.labels
    if labels is not None:
        labels = _pad_axis(_pad_axis(_pad_axis(labels, 3, C, 0.0), 1, W, 0.0), 0, B, 0.0)
    return dataclasses.replace(
        batch, input_ids=ids, attention_mask=att, words_mask=wm,
        text_lengths=_pad_axis(batch.text_lengths, 0, B, 0), span_mask=span,
        prompt_mask=prompt, labels=labels)


def words_mask_from_word_ids(word_ids: Sequence[int | None], prompt_len: int) -> np.ndarray:
    """0.2.29 `prepare_word_mask` ("first" pooling) for one row.

    The index counts *distinct word ids seen*, not the true word index: a word with no sub-token
    shifts every later word left by one (GLINER_SPEC 2.4); kept for parity.
    """
    wid = np.array([-1 if w is None else w for w in word_ids], dtype=np.int64)
    if wid.size == 0:
        return np.zeros(0, np.int32)
    prev = np.concatenate([[-1], wid[:-1]])
    first = (wid >= 0) & (wid != prev)
    seen = np.cumsum(first)
    return np.where(first & (seen > prompt_len), seen - prompt_len, 0).astype(np.int32)


class Processor:
    """Builds `Batch`es: prompt + words -> sub-word ids, words_mask, lengths, span mask."""

    def __init__(self, tokenizer, class_token_index: int, *, max_width: int = 12,
                 max_len: int = 384, ent_token: str = "<<ENT>>", sep_token: str = "<<SEP>>",
                 buckets: BucketPolicy | None = None, head: str = "span",
                 rel_token: str | None = None):
        self.tokenizer = tokenizer
        self.class_token_index = int(class_token_index)
        self.max_width = int(max_width)
        self.max_len = int(max_len)
        self.ent_token = ent_token
        self.sep_token = sep_token
        self.buckets = buckets
        self.head = head  # the model family's head: which training targets encode builds
        self.rel_token = rel_token  # relex models: the prompt gets a relation part
        self.pad_token_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                                else 0)
        mml = getattr(tokenizer, "model_max_length", None)
        self.model_max_length = int(mml) if mml is not None and mml < 1e9 else None

    @classmethod
    def from_config(cls, tokenizer, class_token_index: int, gliner_config,
                    buckets: BucketPolicy | None = None) -> Processor:
        cfg = gliner_config
        return cls(tokenizer, class_token_index, max_width=cfg.max_width, max_len=cfg.max_len,
                   ent_token=cfg.ent_token, sep_token=cfg.sep_token, buckets=buckets,
                   head=cfg.family.head,
                   rel_token=relation_token(cfg) if cfg.family.relations else None)

    @property
    def tokenizers(self) -> tuple:
        """The tokenizers a model directory of this family holds (`Family.save` takes them)."""
        return (self.tokenizer,)

    shared_label_arrays: tuple[str, ...] = ()  # label arrays not split over the batch axis

    def label_arrays(self, batch: Batch, labels: Sequence[str] | None = None) -> dict:
        """Training arrays beyond `Batch.arrays()` that carry the labels (a bi-encoder's labels
        encoder inputs); none here: the labels are in the prompt."""
        return {}

    def default_buckets(self) -> BucketPolicy:
        return BucketPolicy(max_tokens=self.model_max_length)

    # -- rows ------------------------------------------------------------------------------

    def _truncate(self, words: Sequence[str], row: int) -> list[str]:  # row: for messages
        words = list(words)
        if not words:
            return [EMPTY_TEXT_WORD]
        if len(words) > self.max_len:
            warnings.warn(
                f"text {row} has {len(words)} words, more than max_len={self.max_len}: the last "
                f"{len(words) - self.max_len} words are cut and get no prediction",
                TruncationWarning, stacklevel=3)
            words = words[: self.max_len]
        return words

    def _prompt(self, prompts: Sequence[str], relations: Sequence[str] = ()) -> list[str]:
        out = []
        for p in prompts:
            # an empty label (training: an example without entities) adds only the marker
            out += [self.ent_token, p] if p else [self.ent_token]
        out.append(self.sep_token)
        if self.rel_token is not None:
            # RelationExtractionSpanProcessor.prepare_inputs: <<REL>> r ... <<SEP>>, always
            for r in relations:
                out += [self.rel_token, str(r)]
            out.append(self.sep_token)
        return out

    # -- batches ---------------------------------------------------------------------------

    def encode(self, words: Sequence[Sequence[str]], prompts: Sequence[Sequence[str]],
               label_names: Sequence[Sequence[str]] | None = None,
               ner: Sequence[Sequence[Sequence[Any]]] | None = None, *,
               pad: bool | None = None, relations: Sequence[Sequence[str]] | None = None,
               **metadata) -> Batch:
        """Rows of (words, prompt labels) -> Batch. `prompts` may be one list shared by all rows.

        `ner` (optional, training): gold spans [start, end_inclusive, label] per row, with
        `label` a prompt text; builds `labels`. `pad` (default: when a bucket policy is set)
        pads to buckets. `metadata`: offsets / texts / text_index.
        """
        n_rows = len(words)
        if n_rows == 0:
            raise ValueError("encode needs at least one row")
        if prompts and isinstance(prompts[0], str):
            prompts = [prompts] * n_rows
        if label_names is None:
            label_names = prompts
        elif label_names and isinstance(label_names[0], str):
            label_names = [label_names] * n_rows
        if len(prompts) != n_rows or len(label_names) != n_rows:
            raise ValueError(f"{n_rows} rows but {len(prompts)} prompt sets and "
                             f"{len(label_names)} label-name sets")
        rows_prompts, rows_names = [], []
        for p, names in zip(prompts, label_names, strict=True):
            if len(p) != len(names):
                raise ValueError(f"{len(p)} prompts but {len(names)} label names")
            # make_mapping de-duplicates the prompt list (first occurrence wins)
            first = dict(reversed(list(zip(p, names, strict=True))))
            uniq = list(dict.fromkeys(p))
            rows_prompts.append(uniq)
            rows_names.append([first[x] for x in uniq])

        text_ids = metadata.get("text_index") or list(range(n_rows))  # names rows in warnings
        rows_words = [self._truncate(w, text_ids[i]) for i, w in enumerate(words)]
        if relations is not None and self.rel_token is None:
            raise ValueError("relation labels need a relex model (relations_layer in its config)")
        rows_rel = [list(dict.fromkeys(r)) for r in relations] if relations is not None else None
        prompt_words = [self._prompt(p) if rows_rel is None else self._prompt(p, rows_rel[i])
                        for i, p in enumerate(rows_prompts)]
        enc = self.tokenizer(
            [pw + w for pw, w in zip(prompt_words, rows_words, strict=True)],
            is_split_into_words=True, truncation=True, padding="longest")
        input_ids = np.asarray(enc["input_ids"], np.int32)
        attention_mask = np.asarray(enc["attention_mask"], np.int32)
        words_mask = np.zeros_like(input_ids)
        for i in range(n_rows):
            words_mask[i] = words_mask_from_word_ids(enc.word_ids(i), len(prompt_words[i]))
            self._check_token_truncation(text_ids[i], enc.word_ids(i), prompt_words[i],
                                         rows_words[i])

        text_lengths = np.array([len(w) for w in rows_words], np.int32)
        num_words = int(text_lengths.max())
        counts = ((input_ids == self.class_token_index) & (attention_mask > 0)).sum(1)
        num_classes = int(max(counts.max(), max(len(p) for p in rows_prompts)))
        span_mask = np.stack([make_span_mask(n, self.max_width, num_words) for n in text_lengths])
        prompt_mask = np.arange(num_classes)[None, :] < counts[:, None]
        labels = None
        if ner is not None:
            labels = np.stack([
                TARGETS[self.head](ner[i] or [], int(text_lengths[i]), self.max_width,
                                   {p: j + 1 for j, p in enumerate(rows_prompts[i])},
                                   num_words, num_classes)
                for i in range(n_rows)])
        batch = Batch(input_ids=input_ids, attention_mask=attention_mask, words_mask=words_mask,
                      text_lengths=text_lengths, span_mask=span_mask, prompt_mask=prompt_mask,
                      labels=labels, words=rows_words, prompts=rows_prompts,
                      label_names=rows_names, relations=rows_rel, **metadata)
        if pad if pad is not None else self.buckets is not None:
            batch = self.pad(batch)
        return batch

    def _check_token_truncation(self, row, word_ids, prompt_words, words) -> None:
        if self.model_max_length is None or len(word_ids) < self.model_max_length:
            return
        last = max((w for w in word_ids if w is not None), default=-1)
        missing = len(prompt_words) + len(words) - 1 - last
        if missing > 0:
            warnings.warn(
                f"text {row} is longer than the tokenizer's model_max_length="
                f"{self.model_max_length} tokens: its last {missing} words get no sub-token "
                "(zero embedding), as in the reference", TruncationWarning, stacklevel=3)

    def pad(self, batch: Batch, policy: BucketPolicy | None = None) -> Batch:
        """Pad `batch` up to the bucket sizes of `policy` (default: self.buckets or defaults)."""
        policy = policy or self.buckets or self.default_buckets()
        if policy.max_tokens is None and self.model_max_length is not None:
            policy = dataclasses.replace(policy, max_tokens=self.model_max_length)
        return pad_batch(batch, **policy.sizes(batch), pad_token_id=self.pad_token_id,
                         padding_side=getattr(self.tokenizer, "padding_side", "right"))

    def encode_texts(self, texts: str | Sequence[str], labels, *,
                     pad: bool | None = None) -> Batch | None:
        """Raw texts + labels -> Batch, as `GLiNER.inference` prepares them.

        `labels`: one label set (str, list, or {name: description}) shared by all texts, or one
        set per text. Empty / whitespace-only texts are left out (their predictions are `[]`;
        `batch.text_index` maps rows back); returns None when no text is left.
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if _is_per_text(labels):
            if len(labels) != len(texts):
                raise ValueError(f"per-text labels must have length {len(texts)}, "
                                 f"got {len(labels)}")
            sets = [normalize_labels(x) for x in labels]
        else:
            sets = [normalize_labels(labels)] * len(texts)
        keep = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
        if not keep:
            return None
        split = [split_words(texts[i]) for i in keep]
        return self.encode(
            [[w for w, _, _ in s] for s in split],
            [sets[i][0] for i in keep],
            [sets[i][1] for i in keep],
            pad=pad,
            offsets=[[(a, b) for _, a, b in s] for s in split],
            texts=[texts[i] for i in keep],
            text_index=keep,
        )


__all__ = [
    "Batch", "BucketPolicy", "Processor", "TruncationWarning", "bucket", "load_tokenizer",
    "make_span_labels", "make_span_mask", "normalize_labels", "pad_batch", "split_words",
    "words_mask_from_word_ids",
]
