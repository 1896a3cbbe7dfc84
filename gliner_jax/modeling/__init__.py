"""The GLiNER span model: encoder -> words and prompts -> BiLSTM -> markerV0 span scores."""

from gliner_jax.modeling.gliner import GlinerModel

__all__ = ["GlinerModel"]
