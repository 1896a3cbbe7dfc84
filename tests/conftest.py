"""Test session setup: 8 simulated CPU devices (sharding tests) and no hub access, set before
anything touches JAX or transformers."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# an in-process `predict.main()` points JAX's persistent compilation cache at GLINER_JAX_CACHE
# (else ~/.cache/gliner_jax/xla) for the rest of the session: a fresh folder per session, so
# that tests neither read nor fill the user's cache
if "GLINER_JAX_CACHE" not in os.environ:
    import tempfile

    os.environ["GLINER_JAX_CACHE"] = tempfile.mkdtemp(prefix="gliner_jax_test_xla_")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
# and no persistent compilation cache in the test process at all, so that every test compiles
# what it runs; subprocess tests (predict's own cache test) set their own
jax.config.update("jax_enable_compilation_cache", False)


import gc  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs after each test file. Every XLA CPU executable keeps its own
    memory mappings; over the whole session they passed the kernel's vm.max_map_count (65,530)
    and the next compilation segfaulted inside XLA (CI: test_train_faults, later test_serve).
    One file's programs freed ~5,100 of 6,900 mappings (tests/test_biencoder.py)."""
    yield
    jax.clear_caches()
    gc.collect()
