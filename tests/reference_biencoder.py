"""Tiny random reference bi-encoder GLiNERs (gliner 0.2.29 `BiEncoderSpanGLiNER`, and
`BiEncoderTokenGLiNER` with span_mode "token_level"), built offline.

Text encoder: ModernBERT (with the toy WordPiece tokenizer: any fast tokenizer serves a random
model) or DeBERTa-v3 (SentencePiece); labels encoder: BERT. Both encoder directories are local, so
`GLiNER.from_config` never touches the hub. Saved with `save_pretrained(safe_serialization=True)`.
"""

from __future__ import annotations

import json
from pathlib import Path

from reference_models import _encoder_config, build_bert_tokenizer, build_deberta_tokenizer


def _text_encoder(enc_dir: Path, backbone: str, hidden: int, layers: int, local_attention: int):
    if backbone == "modernbert":
        tok = build_bert_tokenizer(enc_dir)
        overrides = {"local_attention": local_attention}
    elif backbone == "deberta":
        tok, overrides = build_deberta_tokenizer(enc_dir), None
    else:
        raise ValueError(f"text backbone must be 'modernbert' or 'deberta', got {backbone!r}")
    _encoder_config(backbone, hidden, layers, 4, len(tok), overrides).save_pretrained(enc_dir)


def build_reference_biencoder(out_dir: str | Path, backbone: str = "modernbert",
                              hidden_size: int = 40, enc_hidden: int = 48,
                              labels_hidden: int = 32, num_layers: int = 3,
                              local_attention: int = 8, max_width: int = 12,
                              num_rnn_layers: int = 1, seed: int = 0,
                              weight_scale: float | None = 2.0, span_mode: str = "markerV0"):
    """Build a random reference bi-encoder (eval mode), saved to `out_dir / "saved"`.

    `weight_scale`: as `build_reference_gliner`, spreads the logits away from 0.
    Returns (model, saved_dir).
    """
    import torch
    from gliner import GLiNER

    out_dir = Path(out_dir)
    text_dir, labels_dir = out_dir / "text_encoder", out_dir / "labels_encoder"
    _text_encoder(text_dir, backbone, enc_hidden, num_layers, local_attention)
    ltok = build_bert_tokenizer(labels_dir)
    _encoder_config("bert", labels_hidden, 2, 4, len(ltok), None).save_pretrained(labels_dir)

    torch.manual_seed(seed)
    cfg = {
        "model_name": str(text_dir), "labels_encoder": str(labels_dir),
        "name": f"random-biencoder-{backbone}", "max_width": max_width,
        "hidden_size": hidden_size, "dropout": 0.4, "span_mode": span_mode,
        "subtoken_pooling": "first", "max_types": 25, "max_len": 384,
        "words_splitter_type": "whitespace", "num_rnn_layers": num_rnn_layers,
        "vocab_size": -1, "class_token_index": -1,
    }
    model = GLiNER.from_config(cfg, backbone_from_pretrained=False, load_tokenizer=True,
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
    (out_dir / "build_args.json").write_text(json.dumps(
        {"backbone": backbone, "hidden_size": hidden_size, "enc_hidden": enc_hidden,
         "labels_hidden": labels_hidden, "seed": seed, "weight_scale": weight_scale,
         "span_mode": span_mode}, indent=2))
    return model, saved
