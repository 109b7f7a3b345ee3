#!/usr/bin/env python
"""Train the pretrained models shipped in ``aekit/zoo`` (reproducibly).

    python scripts/train_zoo.py                    # every recipe, default budgets, best device
    python scripts/train_zoo.py --only denoise-grey --device cpu --minutes 5
    python scripts/train_zoo.py --only unwatermark --device cpu --minutes 40 --init-from zoo
    python scripts/train_zoo.py --only codec --device cpu --minutes 60 --init-from zoo --lr 1.7e-4

Recipes train on images that ship inside installed packages (scikit-image, scikit-learn,
matplotlib sample photos) with flips/rotations/crops — never on the benchmark sets — and
record data, budget and seed in each model's config.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aekit.zoo import ZOO_DIR, load_recipes  # noqa: E402


def main() -> int:
    recipes = load_recipes()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", default=None, choices=recipes.names(), help="recipes to run")
    p.add_argument("--device", default="auto")
    p.add_argument("--minutes", type=float, default=None, help="budget per recipe (default: the recipe's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ZOO_DIR), help="where models go (default: the package zoo)")
    p.add_argument("--init-from", default=None, metavar="DIR|zoo",
                   help="start from a saved model's weights (where they fit) instead of scratch; "
                        "'zoo' = the shipped model of the same name")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default: the recipe's)")
    p.add_argument("--lambdas", type=lambda t: [float(v) for v in t.split(",")], default=None,
                   metavar="L1,L2,...", help="the codec's quality ladder in CompressAI units "
                                               "(default: bmshj2018's six); with --init-from, "
                                               "qualities are carried over by λ")
    p.add_argument("--objective", choices=("mse", "relative"), default=None,
                   help="restoration recipes: minimise per-pixel MSE or each crop's MSE "
                        "relative to its corrupted input's, so weaker corruptions count as much "
                        "(default: the task's; relative for denoise, mse for the others)")
    p.add_argument("--patch", type=int, default=None,
                   help="restoration recipes: training crop side (default: by task and device)")
    args = p.parse_args()
    import inspect

    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    for name in args.only or recipes.names():
        t0 = time.perf_counter()
        kwargs = {"device": device, "seed": args.seed}
        if args.minutes is not None:
            kwargs["minutes"] = args.minutes
        if args.init_from:
            kwargs["init"] = str(ZOO_DIR / name) if args.init_from == "zoo" else args.init_from
        recipe = recipes.get(name)
        if args.lr is not None:
            params = inspect.signature(recipe).parameters
            if "lr" not in params and not any(v.kind is v.VAR_KEYWORD for v in params.values()):
                p.error(f"the {name} recipe takes no --lr")
            kwargs["lr"] = args.lr
        for opt in ("lambdas", "objective", "patch"):  # each taken by the recipes that name it
            if getattr(args, opt) is not None:
                if opt not in inspect.signature(recipe).parameters:
                    p.error(f"the {name} recipe takes no --{opt}")
                kwargs[opt] = getattr(args, opt)
        summary = recipe(Path(args.out) / name, **kwargs)
        print(json.dumps({"recipe": name, "seconds": round(time.perf_counter() - t0, 1), **summary}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
