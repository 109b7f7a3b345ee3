"""Code search at scale: recall@10 of the approximate index against exact search, queries/s
and build time, at 100k and 1M codes of size 32.

Two kinds of random codes: ``clustered`` (what an encoder gives: 10 classes, each an 8-d
patch embedded in 32-d) and ``gaussian`` (i.i.d. N(0, I) in 32-d: no structure at all, the
worst case for every approximate method). Exact search (a BLAS scan) is the baseline, timed in
the same run; hnswlib's HNSW is measured beside faiss IVF-Flat at the smaller sizes; 32-bit
binary codes are searched by Hamming popcount.

    python benchmarks/search.py --sizes 100000,1000000
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from functools import partial

import numpy as np
from _args import at_least, int_list, names

from aekit.index import CodeIndex, recall_at_k


def clustered(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    fixed = np.random.default_rng(12345)
    w = fixed.standard_normal((10, 8, d)).astype(np.float32) / np.sqrt(8)
    mu = fixed.standard_normal((10, d)).astype(np.float32) * 2
    c = rng.integers(0, 10, n)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, 100_000):
        u = rng.standard_normal((min(100_000, n - s), 8)).astype(np.float32)
        cc = c[s:s + len(u)]
        out[s:s + len(u)] = np.einsum("nk,nkd->nd", u, w[cc]) + mu[cc]
    return out


def gaussian(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((n, d), dtype=np.float32)


def timed_qps(fn, n_queries: int, repeats: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return n_queries / statistics.median(times), out


GENERATORS = {"clustered": clustered, "gaussian": gaussian}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000", type=int_list(1), help="comma-separated code counts")
    ap.add_argument("--dim", type=at_least(1), default=32)
    ap.add_argument("--queries", type=at_least(1), default=1000)
    ap.add_argument("--kinds", default="clustered,gaussian", type=names(GENERATORS))
    ap.add_argument("--hnsw-max", type=int, default=100_000, help="measure hnswlib up to this size")
    ap.add_argument("--threads", type=at_least(1), default=os.cpu_count() or 1)
    args = ap.parse_args()
    sizes = args.sizes
    if min(sizes) <= args.hnsw_max and importlib.util.find_spec("hnswlib") is None:
        ap.error("hnswlib is not installed (pip install -e '.[bench]'), or pass --hnsw-max 0 "
                 "to leave its rows out")
    import faiss

    faiss.omp_set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.dim}-d codes, {args.queries} queries, k = 10; {os.cpu_count()} CPUs, "
          f"{args.threads} threads, load average {load:.1f} at start")
    print(f"\n{'codes':>9} {'kind':<10} {'method':<28} {'build s':>8} {'recall@10':>9} {'queries/s':>10}")
    for n in sizes:
        for kind in args.kinds:
            rng = np.random.default_rng(0)
            data = GENERATORS[kind](n + args.queries, args.dim, rng)
            x, q = data[:n], data[n:]
            t = time.perf_counter()
            ix = CodeIndex(args.dim)
            ix.add(x)
            build = time.perf_counter() - t
            qps_exact, (_, truth) = timed_qps(partial(ix.search, q, 10, exact=True), len(q), 1)
            print(f"{n:>9} {kind:<10} {'exact scan (baseline)':<28} {'—':>8} {1.0:>9.3f} {qps_exact:>10.0f}")
            qps, (_, found) = timed_qps(partial(ix.search, q, 10), len(q))
            name = (f"faiss IVF-Flat nprobe {ix.nprobe}/{ix._ann.nlist}" if ix.approximate
                    else "exact (below --exact-below)")
            print(f"{n:>9} {kind:<10} {name:<28} {build:>8.1f} {recall_at_k(found, truth):>9.3f} {qps:>10.0f}")
            if n <= args.hnsw_max:
                import hnswlib

                h = hnswlib.Index(space="l2", dim=args.dim)
                h.init_index(max_elements=n, M=16, ef_construction=100, random_seed=0)
                t = time.perf_counter()
                h.add_items(x, num_threads=args.threads)
                hb = time.perf_counter() - t
                for ef in (64, 128):
                    h.set_ef(ef)
                    qps, (found, _) = timed_qps(partial(h.knn_query, q, k=10, num_threads=args.threads),
                                                len(q))
                    print(f"{n:>9} {kind:<10} {f'hnswlib M16 ef {ef}':<28} {hb:>8.1f} "
                          f"{recall_at_k(found, truth):>9.3f} {qps:>10.0f}")
        bits = CodeIndex(args.dim, "hamming")
        rng = np.random.default_rng(1)
        t = time.perf_counter()
        bits.add(rng.random((n, args.dim)) > 0.5)
        build = time.perf_counter() - t
        qb = rng.random((args.queries, args.dim)) > 0.5
        qps, _ = timed_qps(partial(bits.search, qb, 10), len(qb), 1)
        print(f"{n:>9} {'bits':<10} {f'Hamming scan, {args.dim}-bit':<28} {build:>8.1f} {1.0:>9.3f} {qps:>10.0f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average {load:.1f} at the end (other jobs share this machine)")


if __name__ == "__main__":
    main()
