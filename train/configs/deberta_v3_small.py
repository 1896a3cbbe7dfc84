"""GLiNER on DeBERTa-v3-small, the recipe of the released gliner_small-v2.1 models with the 0.2.29
loss: a fresh head (D = 768) over a pretrained encoder whose directory is given on the command
line (no hub access here):

    python -m train --config train/configs/deberta_v3_small.py --workdir runs/small \
        --config.model.path=/models/deberta-v3-small
"""

from train.config import DataConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig
from train.configs.common import dev_set, train_mixture


def get_config() -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(init="encoder", path="", hidden_size=768, max_width=12, dropout=0.4,
                          max_len=384),
        data=DataConfig(train=train_mixture(), dev=dev_set(), batch_size=8, max_types=25,
                        max_tokens=512),
        loss=LossConfig(alpha=0.75, gamma=0.0, reduction="sum"),      # 0.2.29 config.yaml
        optim=OptimConfig(lr_encoder=1e-5, lr_others=5e-5, wd_encoder=0.01, wd_others=0.01,
                          schedule="cosine", warmup_ratio=0.1, max_grad_norm=10.0),  # v2.1
        num_steps=30000, log_every=100, eval_every=5000, checkpoint_every=5000,
        keep_checkpoints=3,
    )
