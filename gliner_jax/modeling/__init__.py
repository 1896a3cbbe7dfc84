"""The GLiNER models: encoder -> words and prompts -> BiLSTM -> the family's head.

`build_model(cfg)` picks the family (and span mode) from the config through the tables of
`families.py`.
"""

from gliner_jax.modeling.families import FAMILIES, SPAN_MODES, build_model, family_of
from gliner_jax.modeling.gliner import GlinerModel, SpanModel, TokenModel

__all__ = ["FAMILIES", "SPAN_MODES", "GlinerModel", "SpanModel", "TokenModel", "build_model",
           "family_of"]
