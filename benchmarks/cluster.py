"""Clustering digits: IDEC (and k-means on the pretrained codes) against k-means on raw pixels
and on PCA codes of the same size, all in the same run, scored by Hungarian accuracy, NMI, ARI.

    python benchmarks/cluster.py --datasets digits,digits28
"""

from __future__ import annotations

import argparse
import time

import torch

from aekit.apps.cluster import DEC_HIDDEN, baselines, codes_of, flat_pixels, pretrain
from aekit.clustering import dec, kmeans
from aekit.data import resolve
from aekit.metrics_cluster import cluster_scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="digits,digits28")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--latent-dim", type=int, default=10)
    ap.add_argument("--hidden", default="256,256,1024",
                    help=f"encoder widths (DEC used {DEC_HIDDEN}: 3× slower on this CPU)")
    ap.add_argument("--epochs", type=int, default=300, help="pretraining epochs")
    ap.add_argument("--max-iter", type=int, default=1000, help="IDEC steps at most")
    ap.add_argument("--gamma", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    hidden = [int(v) for v in args.hidden.split(",")]
    print(f"encoder d-{args.hidden}-{args.latent_dim}, {args.epochs} pretraining epochs, "
          f"IDEC γ={args.gamma}, {args.threads} torch threads")
    print(f"\n{'data':<9} {'method':<30} {'acc':>6} {'NMI':>6} {'ARI':>6} {'seconds':>8}")
    for name in args.datasets.split(","):
        data = resolve(name)
        y = data.labels()
        rows = [(r["method"], r["labels"], r["seconds"])
                for r in baselines(flat_pixels(data), args.k, args.latent_dim, args.seed)]
        torch.manual_seed(args.seed)
        t = time.perf_counter()
        model, _ = pretrain(data, args.latent_dim, hidden, args.epochs, None, args.seed, "cpu", False)
        t_pre = time.perf_counter() - t
        t = time.perf_counter()
        rows.append(("k-means on AE codes", kmeans(codes_of(model, data), args.k, args.seed)[0],
                     t_pre + time.perf_counter() - t))
        res = dec(model, data, args.k, gamma=args.gamma, max_iter=args.max_iter, seed=args.seed,
                  device="cpu")
        rows.append((f"IDEC ({res.iterations} steps, {res.stopped})", res.labels,
                     t_pre + res.seconds))
        for method, labels, secs in rows:
            s = cluster_scores(y, labels)
            print(f"{name:<9} {method:<30} {s['acc']:>6.3f} {s['nmi']:>6.3f} {s['ari']:>6.3f} "
                  f"{secs:>8.1f}")
    print("\npublished, MNIST 70k: k-means on pixels acc 0.53 / NMI 0.50; AE + k-means 0.82–0.88; "
          "DEC 0.84–0.91; IDEC 0.88")


if __name__ == "__main__":
    main()
