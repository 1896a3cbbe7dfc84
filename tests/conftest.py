"""Test session setup: 8 simulated CPU devices (sharding tests) and no hub access, set before
anything touches JAX or transformers."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# an in-process `predict.main()` turns on JAX's persistent compilation cache for the rest of
# the session (GLINER_JAX_CACHE, else ~/.cache/gliner_jax/xla): a fresh folder per session, so
# that no test reads executables another process wrote into the user's cache (one such read
# segfaulted inside JAX, in a later test of the same session)
if "GLINER_JAX_CACHE" not in os.environ:
    import tempfile

    os.environ["GLINER_JAX_CACHE"] = tempfile.mkdtemp(prefix="gliner_jax_test_xla_")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
# no persistent compilation cache in the test process: an in-process `predict.main()` points it
# at a folder for the rest of the session, and a later training test then segfaulted inside
# JAX reading an executable back (test_train_faults, twice in CI). Subprocess tests (predict's
# own cache test) set their own.
jax.config.update("jax_enable_compilation_cache", False)
