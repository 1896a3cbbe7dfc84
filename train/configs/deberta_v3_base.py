"""DeBERTa-v3-base: the small recipe (deberta_v3_small.py) with the base encoder.

    python -m train --config train/configs/deberta_v3_base.py --workdir runs/base \
        --config.model.path=/models/deberta-v3-base
"""

from train.configs import deberta_v3_small


def get_config():
    return deberta_v3_small.get_config()
