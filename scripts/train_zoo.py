#!/usr/bin/env python
"""Train the pretrained models shipped in ``aekit/zoo`` (reproducibly).

    python scripts/train_zoo.py --out runs/zoo     # every recipe, default budgets, best device
    python scripts/train_zoo.py --out runs/zoo --only denoise-grey --device cpu --minutes 5
    python scripts/train_zoo.py --out runs/zoo --only upscale-x2 --steps 2000   # repeats exactly
    python scripts/train_zoo.py --out src/aekit/zoo --only unwatermark --device cpu --minutes 40 --init-from zoo
    python scripts/train_zoo.py --out src/aekit/zoo --only codec --device cpu --minutes 60 --init-from zoo --lr 1.7e-4

``--out`` has no default: writing into ``src/aekit/zoo`` replaces the shipped models, so it
is named on purpose. A ``--minutes`` budget trains as many steps as the machine manages in
that time (the learning-rate schedule follows the clock); ``--steps`` (restoration recipes)
repeats bit for bit on one machine with the same seed.

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
    p.add_argument("--out", required=True,
                   help=f"where models go (one folder per recipe); {ZOO_DIR} replaces the "
                        "shipped ones")
    p.add_argument("--steps", type=int, default=None,
                   help="restoration recipes: a budget in optimizer steps instead of minutes")
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

    from aekit.errors import AekitError
    from aekit.training import pick_device

    if args.only == []:
        p.error("--only needs recipe names (leave it out for every recipe)")
    for opt, ok, rule in (("minutes", lambda v: v > 0, "more than 0"),
                          ("lr", lambda v: v > 0, "more than 0"),
                          ("patch", lambda v: v >= 16, "at least 16"),
                          ("steps", lambda v: v >= 1, "at least 1"),
                          ("lambdas", lambda v: all(x > 0 for x in v), "positive")):
        if getattr(args, opt) is not None and not ok(getattr(args, opt)):
            p.error(f"--{opt} must be {rule}, got {getattr(args, opt)}")
    if args.steps is not None and args.minutes is not None:
        p.error("give --minutes or --steps, not both")
    try:
        device = str(pick_device(args.device))
    except AekitError as e:
        p.error(str(e))
    if args.init_from and args.init_from != "zoo" and not Path(args.init_from).is_dir():
        p.error(f"--init-from {args.init_from}: no such model folder")
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
        for opt in ("lambdas", "objective", "patch", "steps"):  # taken by recipes naming it
            if getattr(args, opt) is not None:
                if opt not in inspect.signature(recipe).parameters:
                    p.error(f"the {name} recipe takes no --{opt}")
                kwargs[opt] = getattr(args, opt)
        try:
            summary = recipe(Path(args.out) / name, **kwargs)
        except (AekitError, ValueError, RuntimeError, OSError, AttributeError, KeyError) as e:
            # (an --init-from model of another kind, a crop larger than every photo, an
            # unwritable --out): one line, as the CLI gives
            sys.stderr.write(f"train_zoo.py: error: {name}: {e.__class__.__name__}: "
                             f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}\n")
            return 2
        print(json.dumps({"recipe": name, "seconds": round(time.perf_counter() - t0, 1), **summary}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
