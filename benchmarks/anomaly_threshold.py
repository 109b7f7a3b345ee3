"""Does ``contamination`` hold on new data? The detector's threshold set on the training
samples' scores (PyOD's way, ``threshold_on="train"``) against one set on the held-out share
training kept aside (``threshold_on="held-out"``).

Digits (scikit-learn's 1,797 8×8 images, all normal): a seeded 1,000 to fit, the other 797 as
new data from the same distribution. A threshold that means what ``contamination`` says
flags that share of the new digits. Both rows train the same model (same seed, same split);
only the scores the quantile is taken over differ. Median over seeds, range beside.

    python benchmarks/anomaly_threshold.py            # seeds 0-2, 200 epochs
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from sklearn.datasets import load_digits

from aekit.detectors import THRESHOLD_ON, AutoencoderOutlierDetector


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--contamination", type=float, default=0.1)
    args = p.parse_args()
    torch.set_num_threads(1)
    X = load_digits().data / 16.0
    rows: dict[str, list[tuple[float, float]]] = {on: [] for on in THRESHOLD_ON}
    for seed in range(args.seeds):
        perm = np.random.default_rng(seed).permutation(len(X))
        fit_x, new_x = X[perm[:1000]], X[perm[1000:]]
        for on in THRESHOLD_ON:
            det = AutoencoderOutlierDetector(latent_dim=4, contamination=args.contamination,
                                             epochs=args.epochs, seed=seed, threshold_on=on)
            det.fit(fit_x)
            rows[on].append((float(det.labels_.mean()), float(det.predict(new_x).mean())))
    print(f"digits: fit on 1000, new data 797 (same distribution); contamination "
          f"{args.contamination:g}, latent 4, {args.epochs} epochs; median over seeds "
          f"0-{args.seeds - 1} [range]\n")
    print(f"{'threshold_on':<14}{'flagged, training samples':>30}{'flagged, new digits':>26}")
    for on, vals in rows.items():
        cells = []
        for k in (0, 1):
            v = [r[k] for r in vals]
            cells.append(f"{statistics.median(v):.3f} [{min(v):.3f}-{max(v):.3f}]")
        print(f"{on:<14}{cells[0]:>30}{cells[1]:>26}")
    print(f"\ngoal: new digits flagged at the contamination, {args.contamination:g}")


if __name__ == "__main__":
    main()
