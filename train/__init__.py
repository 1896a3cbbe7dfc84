"""Training gliner_jax models: `python -m train --config train/configs/tiny.py --workdir DIR`."""
