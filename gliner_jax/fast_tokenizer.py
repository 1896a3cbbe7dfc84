"""The tokenizer for prediction, straight from the `tokenizers` library (tokenizer.json), without
importing transformers: that import (and AutoTokenizer's set-up) was the largest part of the
time to the first result.

`FastTokenizer` implements the part of the transformers tokenizer API that `Processor` and
`GLiNER` use: calling it on pre-split words (truncation to model_max_length, padding to the
longest row, word_ids), `pad_token_id`, `model_max_length`, `padding_side`, `len()`,
`convert_tokens_to_ids`, `add_tokens`. It is used only for tokenizer classes whose tokenizer.json
is the whole story (`SUPPORTED`); anything else goes through transformers. `save_pretrained`
hands over to the transformers tokenizer, so saved directories are exactly what they were.
tests/test_fast_tokenizer.py checks ids, masks and word ids against transformers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

# tokenizer_config.json "tokenizer_class" values whose transformers (v4.46+ / v5) fast tokenizer
# is tokenizer.json plus the settings read below
SUPPORTED = ("BertTokenizer", "BertTokenizerFast", "DebertaV2Tokenizer",
             "DebertaV2TokenizerFast")


class _Encoded(dict):
    """{"input_ids", "attention_mask"} (lists of rows, or one row) plus word_ids(row)."""

    def __init__(self, encodings, single: bool):
        rows_ids = [e.ids for e in encodings]
        rows_mask = [e.attention_mask for e in encodings]
        super().__init__(input_ids=rows_ids[0] if single else rows_ids,
                         attention_mask=rows_mask[0] if single else rows_mask)
        self._encodings = encodings

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        return self._encodings[batch_index].word_ids


class FastTokenizer:
    def __init__(self, backend, config: dict, source: Path):
        self._tok = backend
        self._source = source
        self._added: list[tuple[list[str], bool]] = []  # (tokens, special) per add_tokens
        self.padding_side = config.get("padding_side", "right")
        mml = config.get("model_max_length")
        self.model_max_length = int(mml) if mml is not None else int(1e30)
        self.pad_token = config.get("pad_token")
        self.unk_token = config.get("unk_token")
        self.pad_token_id = self._id(self.pad_token)
        self.unk_token_id = self._id(self.unk_token)
        self.bos_token_id = self.eos_token_id = None

    @classmethod
    def load(cls, model_dir: str | Path) -> FastTokenizer | None:
        """The tokenizer of `model_dir`, or None when it needs transformers."""
        d = Path(model_dir)
        if not (d / "tokenizer.json").is_file() or not (d / "tokenizer_config.json").is_file():
            return None
        try:
            config = json.loads((d / "tokenizer_config.json").read_text())
        except ValueError:
            return None
        if config.get("tokenizer_class") not in SUPPORTED:
            return None
        # (DeBERTa's add_prefix_space lives in tokenizer.json's Metaspace pre-tokenizer)
        if any(config.get(k) for k in ("add_bos_token", "add_eos_token")):
            return None
        for key in ("pad_token", "unk_token"):  # transformers may store {"content": ...}
            if isinstance(config.get(key), dict):
                config[key] = config[key].get("content")
        from tokenizers import Tokenizer

        try:
            backend = Tokenizer.from_file(str(d / "tokenizer.json"))
        except Exception:  # noqa: BLE001  (a file transformers may still read: let it try)
            return None
        return cls(backend, config, d)

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self._tok.token_to_id(token)

    def __len__(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def convert_tokens_to_ids(self, token: str) -> int | None:
        tid = self._tok.token_to_id(token)
        return self.unk_token_id if tid is None else tid

    def add_tokens(self, tokens: Sequence[str], special_tokens: bool = False) -> int:
        from tokenizers import AddedToken

        new = [t for t in tokens if self._tok.token_to_id(t) is None]
        added = [AddedToken(t, special=special_tokens, normalized=not special_tokens)
                 for t in new]
        n = (self._tok.add_special_tokens(added) if special_tokens
             else self._tok.add_tokens(added))
        self._added.append((new, special_tokens))
        return n

    def __call__(self, words, *, is_split_into_words: bool = False, truncation: bool = False,
                 padding: bool | str = False, add_special_tokens: bool = True,
                 verbose: bool = True) -> _Encoded:
        if not is_split_into_words:
            raise ValueError("FastTokenizer takes pre-split words (is_split_into_words=True)")
        single = not words or isinstance(words[0], str)
        rows = [list(words)] if single else [list(w) for w in words]
        tok = self._tok
        if truncation and self.model_max_length < 1e9:
            tok.enable_truncation(self.model_max_length, strategy="longest_first",
                                  direction="right")
        else:
            tok.no_truncation()
        if padding in (True, "longest"):
            tok.enable_padding(direction=self.padding_side, pad_id=self.pad_token_id or 0,
                               pad_token=self.pad_token or "[PAD]")
        else:
            tok.no_padding()
        encodings = tok.encode_batch(rows, is_pretokenized=True,
                                     add_special_tokens=add_special_tokens)
        return _Encoded(encodings, single)

    def save_pretrained(self, out_dir: str | Path):
        """Saved by transformers from the same files, with the same added tokens."""
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(self._source), local_files_only=True)
        for tokens, special in self._added:
            tok.add_tokens(tokens, special_tokens=special)
        return tok.save_pretrained(out_dir)
