"""The shipped model's recipe (issue 12): the released gliner_jax-minilm-l6 trained further on
data from `python -m train.prepare_data` (passages, WordNet fine types, paraphrases, negatives
from a pool of ~1,000 types), with the mixture weights of train/configs/common.py.

    python -m train.prepare_data --out ../data/prepared
    python -m train --config train/configs/minilm_wordnet.py --workdir runs/minilm_wn \
        [--config.model.path=checkpoints/gliner_jax-minilm-l6]

GLINER_PREPARED points at the prepared folder (default ../data/prepared, beside the project).
The optimizer starts fresh: the released weights carry no optimizer state.
"""

import os

from train.config import (
    DataConfig,
    DatasetConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)
from train.configs.common import MIXTURE, dev_set

PREPARED = os.environ.get("GLINER_PREPARED", "../data/prepared")


def get_config() -> TrainConfig:
    train = [DatasetConfig(f"{PREPARED}/{name}.jsonl", weight=w) for name, w in MIXTURE]
    return TrainConfig(
        model=ModelConfig(init="gliner", path="checkpoints/gliner_jax-minilm-l6", dropout=0.3,
                          max_len=384),
        data=DataConfig(train=train, dev=dev_set(), batch_size=16, max_types=25),
        loss=LossConfig(alpha=0.75, gamma=0.0, reduction="sum"),
        optim=OptimConfig(lr_encoder=3e-5, lr_others=1e-4, wd_encoder=0.1, wd_others=0.01,
                          schedule="cosine", warmup_ratio=0.03, max_grad_norm=10.0),
        num_steps=3000, log_every=25, eval_every=500, checkpoint_every=100,
        keep_checkpoints=2,
    )
