"""Pretrained models shipped inside the package, and the recipes that train them.

Weights live in ``aekit/zoo/<name>/`` as ``config.json`` + ``model.safetensors`` (the same
format as any saved model). Each is produced by a *recipe* registered in :data:`RECIPES`
by the job that uses it; ``scripts/train_zoo.py`` runs the recipes, on images shipped inside
installed packages only, and records data, budget and seed in each model's config.

A recipe is ``recipe(out_dir: Path, *, device: str, minutes: float, seed: int) -> dict``
(the summary stored as the model's training record); ``minutes`` is its wall-clock budget.
Recipes that can fine-tune also take ``init`` (a saved model to start from, see
:func:`warm_start`; ``scripts/train_zoo.py --init-from zoo``).
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


def warm_start(model, model_dir: str | Path) -> dict[str, Any]:
    """Copy a saved model's weights into ``model`` where they fit: tensors of the same shape
    whole, and a layer that gained outputs (a gate channel) in its leading slice.

    Returns the record a recipe keeps in the new model's training summary: where it started
    (``init``: ``zoo:<name>`` for a shipped model, else the path), the source's weights digest,
    ``earlier_runs`` (the source's own training record after the runs it started from, oldest
    first, so a model fine-tuned several times keeps its whole lineage; not called ``history``,
    which is ``fit()``'s per-epoch losses), ``init_fresh``: this model's tensors that the
    source could not fill (they keep their fresh initialisation) and ``init_widened``: those it
    filled only in part (the new rows are fresh)."""
    import torch
    from safetensors.torch import load_file

    from aekit.models import read_model_meta

    model_dir = Path(model_dir)
    meta = read_model_meta(model_dir)
    src = load_file(str(model_dir / "model.safetensors"))
    # empty tensors are tables a model rebuilds itself (a codec's ragged per-image tables,
    # recomputed by export_tables()): nothing to start from
    own = {k: v for k, v in model.state_dict().items() if v.numel()}
    filled: set[str] = set()
    widened: set[str] = set()
    with torch.no_grad():
        for k, v in src.items():
            if k not in own:
                continue
            t = own[k]
            if t.shape == v.shape:
                t.copy_(v.to(t.dtype))
            elif t.dim() == v.dim() and t.shape[1:] == v.shape[1:] and t.shape[0] > v.shape[0]:
                t[:v.shape[0]].copy_(v.to(t.dtype))
                widened.add(k)
            else:
                continue
            filled.add(k)
    if not filled:
        raise AekitError(f"{model_dir}: no weights fit this model")
    previous = dict(meta.get("training") or {})
    earlier = list(previous.pop("earlier_runs", []))
    shipped = model_dir.resolve().parent == ZOO_DIR.resolve()
    return {"init": f"zoo:{model_dir.name}" if shipped else str(model_dir),
            "init_weights_sha256": str(meta.get("weights_sha256", "?")),
            "init_fresh": sorted(set(own) - filled),
            "init_widened": sorted(widened),
            "earlier_runs": [*earlier, previous] if previous else earlier}


def load_recipes() -> Registry:
    import importlib

    for mod in RECIPE_MODULES:
        importlib.import_module(mod)
    return RECIPES
