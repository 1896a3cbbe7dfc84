"""gliner_jax: GLiNER (generalist named entity recognition) in JAX / Flax NNX.

    from gliner_jax import GLiNER
    model = GLiNER.from_pretrained("urchade/gliner_small-v2.1")   # or a local directory
    model.predict_entities("Marie Curie was born in Warsaw.", ["person", "city"])
"""

__version__ = "0.1.0"


def __getattr__(name):  # lazy: `python -m gliner_jax.corpora` should not import JAX
    if name == "GLiNER":
        from gliner_jax.model import GLiNER
        return GLiNER
    raise AttributeError(name)


__all__ = ["GLiNER"]
