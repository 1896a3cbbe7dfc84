"""Build hook: the wheel carries the shipped model(s) as package data.

`checkpoints/` stays the source of truth (models are retrained and rewritten there in place);
building a wheel copies its model directories into `gliner_jax/checkpoints/` inside the wheel,
where `gliner_jax.shipped` finds them after a non-editable install. An editable install
(`pip install -e .`) reads `checkpoints/` of the checkout directly. Everything else is in
pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CHECKPOINTS = ROOT / "checkpoints"


class BuildPyWithModels(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return  # the package resolves checkpoints/ of the checkout itself
        models = sorted(p.parent for p in CHECKPOINTS.glob("*/gliner_config.json"))
        if not models:
            raise SystemExit(f"no model directory in {CHECKPOINTS}: the wheel would ship none")
        dest = Path(self.build_lib) / "gliner_jax" / "checkpoints"
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        shutil.copy2(CHECKPOINTS / "README.md", dest / "README.md")
        for model in models:
            shutil.copytree(model, dest / model.name)


setup(cmdclass={"build_py": BuildPyWithModels})
