"""DeBERTa-v3-large: the small recipe with a lower encoder learning rate and bf16 compute
(fp32 master weights).

    python -m train --config train/configs/deberta_v3_large.py --workdir runs/large \
        --config.model.path=/models/deberta-v3-large
"""

from train.configs import deberta_v3_small


def get_config():
    cfg = deberta_v3_small.get_config()
    cfg.model.compute_dtype = "bfloat16"
    cfg.optim.lr_encoder = 5e-6
    return cfg
