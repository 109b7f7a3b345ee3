#!/usr/bin/env python
"""One prepared run of every zoo recipe on a GPU, each with its share of a fixed budget.

    python scripts/gpu_zoo.py OUT_DIR [--scale 1.0]

Runs the recipes in one process (no per-recipe start-up cost), most valuable first, and
after each one packs OUT_DIR/zoo.tgz, so whatever finished survives a time limit. A recipe
that fails is reported and skipped. Unpack with ``tar xzf zoo.tgz -C src/aekit/zoo``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aekit.zoo import load_recipes  # noqa: E402

#: (recipe, minutes on one H100): about 8 minutes of training in all
DEVICE = "cuda"
PLAN = [("denoise-grey", 2.3), ("codec", 2.6), ("upscale-x2", 0.5), ("upscale-x4", 0.5),
        ("upscale-x3", 0.4), ("unwatermark", 1.0), ("colorize", 0.7)]


def main() -> int:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return 0
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):  # ("--help" was taken as OUT and
        # started every recipe)
        print("usage: python scripts/gpu_zoo.py OUT [--scale S] [--cpu]", file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    global DEVICE
    scale = float(sys.argv[sys.argv.index("--scale") + 1]) if "--scale" in sys.argv else 1.0
    if "--cpu" in sys.argv:  # a smoke test of the same path
        DEVICE = "cpu"
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    recipes = load_recipes()
    for name, minutes in PLAN:
        t0 = time.perf_counter()
        try:
            summary = recipes.get(name)(models / name, device=DEVICE, minutes=minutes * scale, seed=0)
            print(json.dumps({"recipe": name, "ok": True, "seconds": round(time.perf_counter() - t0, 1),
                              **{k: v for k, v in summary.items() if isinstance(v, (int, float, str))}}),
                  flush=True)
        except Exception:  # keep going: one broken recipe must not cost the others
            traceback.print_exc()
            print(json.dumps({"recipe": name, "ok": False}), flush=True)
        subprocess.run(["tar", "czf", str(out / "zoo.tgz"), "-C", str(models), "."], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
