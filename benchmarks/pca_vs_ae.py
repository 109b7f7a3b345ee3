"""PCA against autoencoder presets at several code sizes, on the embedded image sets.

    python benchmarks/pca_vs_ae.py                                   # digits, digits28, faces, patches
    python benchmarks/pca_vs_ae.py --datasets digits28 --dims 2,30 --minutes 2 --device cuda

One run (seed 0) per cell; PCA, the baseline, is fitted in the same run on the same split.
Errors are on the held-out 20 %: summed squared error per image (pixels in [0, 1]), MSE, PSNR,
explained variance (1 − SSE / total variance) and the ratio of each preset's SSE to PCA's at
the same code size. Fit time is wall clock (one run, not a median: each cell is one fit).
The issue's goal (on held-out 28×28 MNIST digits): best preset ≤ 0.25 × PCA at 30-d and
≤ 0.7 × PCA at 2-d; ``digits28`` is the offline stand-in (bicubic-upsampled 8×8 digits).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

import torch
from _args import at_least, at_least_real

from aekit.apps.common import format_table, jsonable
from aekit.apps.reduce import compare_pca, parse_int_list, parse_presets
from aekit.data import resolve
from aekit.errors import AekitError
from aekit.io import write_json_atomic

DATASETS = ("digits", "digits28", "faces", "patches?size=16&n=5000")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated data specs")
    p.add_argument("--dims", default="2,8,30", help="code sizes (default 2,8,30)")
    p.add_argument("--presets", default="vanilla,deep,conv")
    p.add_argument("--epochs", type=at_least(1), default=100, help="epoch cap per fit (default 100)")
    p.add_argument("--minutes", type=at_least_real(0), default=1.0,
                   help="wall-clock cap per fit in minutes (default 1; 0 = none)")
    p.add_argument("--batch-size", type=at_least(1), default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=at_least(1), default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", default=None, help="also write all rows to this JSON file")
    p.add_argument("--data", default=None, help="unused (the sets are embedded); accepted for "
                   "symmetry with the other benchmarks")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:  # a bad value is one usage line, not a traceback part-way through the tables
        dims = parse_int_list(args.dims)
        presets = parse_presets(args.presets)
        sets = {spec: resolve(spec) for spec in args.datasets.split(",") if spec}
    except AekitError as e:
        p.error(str(e))
    print(f"# machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} thread(s), device {args.device}, load "
          f"{os.getloadavg()[0]:.1f}; caps {args.epochs} epochs / {args.minutes} min per fit, "
          f"batch {args.batch_size}, lr {args.lr}", flush=True)
    all_rows = []
    for spec, data in sets.items():
        train, test = data.split(0.2, seed=0)
        t0 = time.perf_counter()
        cmp = compare_pca(train, test, dims, presets, epochs=args.epochs,
                          minutes=args.minutes or None, batch_size=args.batch_size, lr=args.lr,
                          seed=0, device=args.device,
                          on_row=lambda r: print(f"  {r['method']:>8} {r['latent_dim']:>3}-d "
                                                 f"SSE {r['sse_per_image']:.4g} "
                                                 f"({r['fit_seconds']:.1f} s)", file=sys.stderr,
                                                 flush=True))
        print(f"\n## {spec}: {len(train)} train / {len(test)} held-out, samples "
              f"{tuple(data.input_shape)} ({time.perf_counter() - t0:.0f} s)")
        print(format_table(cmp.rows, ["method", "latent_dim", "sse_per_image", "mse", "psnr",
                                      "explained_variance", "ratio_to_pca", "fit_seconds",
                                      "epochs"]))
        for k in dims:
            ae = [r for r in cmp.rows if r["latent_dim"] == k and r["method"] != "pca"]
            if ae and math.isfinite(min(r["ratio_to_pca"] for r in ae)):
                best = min(ae, key=lambda r: r["sse_per_image"])
                print(f"best at {k}-d: {best['method']}, {best['ratio_to_pca']:.3f} × PCA's SSE")
        for n in cmp.notes:
            print(f"note: {n}")
        all_rows += [{"data": spec, **r} for r in cmp.rows]
        sys.stdout.flush()
    if args.json:
        write_json_atomic(args.json, jsonable(all_rows))  # (NaN ratios: null, valid JSON)
    return 0


if __name__ == "__main__":
    sys.exit(main())
