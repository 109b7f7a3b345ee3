"""AutoencoderTransformer's default epoch budget against a 30-epoch one and PCA, on digits.

    python benchmarks/estimator_budget.py [--seeds 0 1 2] [--components 8]

Digits (8×8, 1,797 images) split 1,400 train / 397 held out (seeded); the held-out summed
squared error per image after ``inverse_transform(transform(x))``, PCA (the baseline) fitted
on the same split in the same run. aekit rows: the median over seeds (weights, validation
split, batch order) with the range, epochs run and fit seconds (wall clock, 1 thread).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aekit.apps.common import format_table  # noqa: E402
from aekit.estimators import DEFAULT_MAX_EPOCHS, AutoencoderTransformer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--components", type=int, default=8)
    args = ap.parse_args()
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    torch.set_num_threads(1)
    x = load_digits().data
    perm = np.random.default_rng(0).permutation(len(x))
    train, test = x[perm[:1400]], x[perm[1400:]]

    def sse(est) -> float:
        return float(((est.inverse_transform(est.transform(test)) - test) ** 2).sum(1).mean())

    pca = sse(PCA(args.components).fit(train))
    rows = [{"method": "PCA", "budget": "—", "SSE/image": round(pca, 1), "range": "—",
             "× PCA": 1.0, "epochs run": "—", "fit s": "—"}]
    for preset in ("vanilla", "deep"):
        for budget in (30, None):
            runs = []
            for seed in args.seeds:
                t0 = time.perf_counter()
                est = AutoencoderTransformer(args.components, preset=preset, max_epochs=budget,
                                             random_state=seed).fit(train)
                runs.append((sse(est), est.n_iter_, time.perf_counter() - t0))
            errs = [r[0] for r in runs]
            med = statistics.median(errs)
            rows.append({"method": f"aekit {preset}",
                         "budget": budget or f"default ({DEFAULT_MAX_EPOCHS}, early stop)",
                         "SSE/image": round(med, 1), "range": f"{min(errs):.0f}–{max(errs):.0f}",
                         "× PCA": round(med / pca, 2),
                         "epochs run": statistics.median(r[1] for r in runs),
                         "fit s": round(statistics.median(r[2] for r in runs), 1)})
    print(f"digits, {args.components} components, held-out squared error per image "
          f"(median of seeds {' '.join(map(str, args.seeds))})")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
