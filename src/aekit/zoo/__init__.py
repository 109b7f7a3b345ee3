"""Pretrained models shipped inside the package, and the recipes that train them.

Weights live in ``aekit/zoo/<name>/`` as ``config.json`` + ``model.safetensors`` (the same
format as any saved model). Each is produced by a *recipe* registered in :data:`RECIPES`
by the job that uses it; ``scripts/train_zoo.py`` runs the recipes, on images shipped inside
installed packages only, and records data, budget and seed in each model's config.

A recipe is ``recipe(out_dir: Path, *, device: str, minutes: float, seed: int) -> dict``
(the summary stored as the model's training record); ``minutes`` is its wall-clock budget.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aekit.errors import AekitError
from aekit.registry import Registry

Recipe = Callable[..., dict[str, Any]]
#: name -> recipe; registered by the job modules (importing them fills it)
RECIPES: Registry = Registry("zoo recipe")
#: the job modules that register recipes
RECIPE_MODULES: tuple[str, ...] = (
    "aekit.codec_train",
    "aekit.apps.restore",
)

ZOO_DIR = Path(__file__).resolve().parent


def zoo_path(name: str) -> Path:
    return ZOO_DIR / name


def available() -> list[str]:
    """Names of the models whose weights ship in this install."""
    return sorted(p.name for p in ZOO_DIR.iterdir()
                  if p.is_dir() and (p / "config.json").is_file() and (p / "model.safetensors").is_file())


def load(name: str):
    """A shipped pretrained model by name (see ``aekit zoo``)."""
    from aekit.models import Autoencoder

    if name not in available():
        raise AekitError(f"no pretrained model {name!r} in this install; available: "
                         f"{', '.join(available()) or 'none'}")
    return Autoencoder.from_pretrained(zoo_path(name))


def load_recipes() -> Registry:
    import importlib

    for mod in RECIPE_MODULES:
        importlib.import_module(mod)
    return RECIPES
