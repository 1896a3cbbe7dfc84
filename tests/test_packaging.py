"""The package as a user gets it: `python -m build` makes an sdist and a wheel that `twine check`
accepts; the wheel carries the shipped model (byte for byte the checkout's `checkpoints/`), the
console scripts and the spaCy entry point; installed into a fresh venv and run from outside the
checkout, the README's predict command prints what it prints in the checkout.

The fresh venv gets no downloads: the wheel is installed with --no-deps, and the dependencies are
this interpreter's own site-packages, added behind the venv's through a .pth file.
"""

from __future__ import annotations

import hashlib
import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README_PREDICT = ["--format", "text", "--labels",
                  "person,organization,location,award",
                  "Marie Curie received the Nobel Prize in Physics in 1903 together with "
                  "Pierre Curie."]
SCRIPTS = {"gliner-jax-predict": "gliner_jax.predict:main",
           "gliner-jax-convert": "gliner_jax.convert:main",
           "gliner-jax-train": "train.__main__:main",
           "gliner-jax-serve": "gliner_jax.serve.__main__:main"}


def _env(**extra) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("GLINER_JAX_", "PYTHON", "VIRTUAL_ENV"))}
    e.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", JAX_PLATFORMS="cpu", **extra)
    return e


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                           str(REPO)], capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _only(d: Path, pattern: str) -> Path:
    [f] = d.glob(pattern)
    return f


def test_twine_accepts_sdist_and_wheel(dist):
    files = [_only(dist, "*.whl"), _only(dist, "*.tar.gz")]
    proc = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, files)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def test_wheel_contents(dist):
    with zipfile.ZipFile(_only(dist, "*.whl")) as whl:
        names = set(whl.namelist())
        models = sorted(p.parent for p in (REPO / "checkpoints").glob("*/gliner_config.json"))
        assert models
        for model in models:
            for f in model.iterdir():
                arc = f"gliner_jax/checkpoints/{model.name}/{f.name}"
                assert arc in names, arc
                got = hashlib.sha256(whl.read(arc)).hexdigest()
                assert got == hashlib.sha256(f.read_bytes()).hexdigest(), arc
        [info] = {n.split("/")[0] for n in names if n.endswith(".dist-info/entry_points.txt")}
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
        meta = whl.read(f"{info}/METADATA").decode()
    assert "gliner_jax/predict.py" in names and "train/__main__.py" in names
    assert not any(n.startswith(("tests/", "eval/")) for n in names)
    for script, target in SCRIPTS.items():
        assert f"{script} = {target}" in entry_points
    assert "[spacy_factories]\ngliner_jax = gliner_jax.spacy_component:make_gliner_jax" in \
        entry_points
    for extra in ("pod", "serve", "spacy", "test"):
        assert f"Provides-Extra: {extra}" in meta
    assert "Requires-Dist: jax>=0.10" in meta


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    v = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(v)], check=True, timeout=300)
    purelib = Path(subprocess.check_output(
        [str(v / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # this interpreter's packages (jax, transformers, ...) behind the venv's own
    ours = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (purelib / "zz_test_deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    proc = subprocess.run([str(v / "bin" / "python"), "-m", "pip", "install", "--quiet",
                           "--no-deps", "--no-index", str(_only(dist, "*.whl"))],
                          capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr
    return v


def test_installed_wheel_runs_readme_predict_outside_checkout(venv, tmp_path):
    env = _env(GLINER_JAX_CACHE=str(tmp_path / "xla"))
    python = str(venv / "bin" / "python")
    where = subprocess.run(
        [python, "-c", "import gliner_jax, gliner_jax.shipped as s; "
                       "print(gliner_jax.__file__); print(s.default_model())"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert where.returncode == 0, where.stderr
    package, model = where.stdout.splitlines()
    assert Path(package).is_relative_to(venv) and Path(model).is_relative_to(venv)
    assert (Path(model) / "model.safetensors").is_file()

    installed = subprocess.run([python, "-m", "gliner_jax.predict", *README_PREDICT],
                               capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert installed.returncode == 0, installed.stderr
    assert installed.stderr == ""
    checkout = subprocess.run([sys.executable, "-m", "gliner_jax.predict", *README_PREDICT],
                              capture_output=True, text=True, env=_env(PYTHONPATH=str(REPO),
                              GLINER_JAX_CACHE=str(tmp_path / "xla")), cwd=REPO, timeout=600)
    assert checkout.returncode == 0, checkout.stderr
    assert installed.stdout == checkout.stdout
    assert installed.stdout.startswith("0: ") and "](person " in installed.stdout


@pytest.mark.parametrize("script", ["gliner-jax-predict", "gliner-jax-convert",
                                    "gliner-jax-train", "gliner-jax-serve"])
def test_console_scripts(venv, tmp_path, script):
    proc = subprocess.run([str(venv / "bin" / script), "--help"], capture_output=True, text=True,
                          env=_env(), cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: ")


def test_spacy_entry_point_and_shipped_model(venv, tmp_path):
    """spaCy finds "gliner_jax" through the installed entry point (nothing imports gliner_jax
    by hand), and the component's model defaults to the shipped one."""
    code = ("import sys, spacy\n"
            "nlp = spacy.blank('en')\n"
            "nlp.add_pipe('gliner_jax', config={'labels': ['person', 'award'], 'threshold': 0.4})\n"
            "doc = nlp('Marie Curie received the Nobel Prize in Physics in 1903.')\n"
            "print([(e.text, e.label_) for e in doc.ents])\n"
            "print(sys.modules['gliner_jax'].__file__)\n")
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True,
                          text=True, env=_env(GLINER_JAX_CACHE=str(tmp_path / "xla")),
                          cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    ents, package = proc.stdout.splitlines()
    assert ("Marie Curie", "person") in eval(ents)
    assert Path(package).is_relative_to(venv)
