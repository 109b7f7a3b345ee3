#!/usr/bin/env python
"""Dead units of the k-sparse code, with and without the AuxK penalty, in one run.

A ``topk`` unit that never fires is capacity the model paid for and does not use. AuxK
(Gao et al. 2024) makes dead units reconstruct what the live ones miss. For each code size
and seed this trains ``sparse-topk`` twice on the same data and split, once without
penalties and once with ``auxk`` (the preset's own setting), and prints held-out MSE, the
share of units that never fire on the held-out split, and L0, with the medians.

    python benchmarks/sparse_dead.py [--data digits] [--dims 16 64] [--seeds 0 1 2 3] [--epochs 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch
from _args import at_least

from aekit.apps.common import format_table
from aekit.data import resolve
from aekit.evaluation import evaluate_model
from aekit.models import create_model, preset_config
from aekit.training import fit


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="digits", help="a data spec with :train/:test (default digits)")
    p.add_argument("--dims", type=at_least(2), nargs="+", default=[16, 64])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--epochs", type=at_least(1), default=30)
    args = p.parse_args()
    torch.set_num_threads(1)
    train, test = resolve(f"{args.data}:train"), resolve(f"{args.data}:test")
    rows = []
    for dim in args.dims:
        auxk = preset_config("sparse-topk", train.input_shape, dim).penalties
        for label, penalties in (("no penalty", {}), (f"auxk {auxk.get('auxk', {})}", auxk)):
            runs = []
            for seed in args.seeds:
                model = create_model("sparse-topk", train.input_shape, dim, seed=seed,
                                     penalties=penalties)
                fit(model, train, epochs=args.epochs, seed=seed, progress=False)
                m = evaluate_model(model, test)
                runs.append((m["mse"], m["dead_fraction"], m["l0"]))
            rows.append({"code": f"{dim}-d, k={model.code.k}", "training": label,
                         "held-out MSE": round(statistics.median(r[0] for r in runs), 4),
                         "MSE range": f"{min(r[0] for r in runs):.4f}–{max(r[0] for r in runs):.4f}",
                         "dead units": round(statistics.median(r[1] for r in runs), 3),
                         "dead range": f"{min(r[1] for r in runs):.3f}–{max(r[1] for r in runs):.3f}",
                         "L0": round(statistics.median(r[2] for r in runs), 2)})
            print(format_table(rows[-1:]), flush=True)
    print(f"\n{args.data}, {args.epochs} epochs, seeds {args.seeds} (medians; dead = never "
          "fires on the held-out split)")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
