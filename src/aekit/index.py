"""Nearest-neighbour search over codes: exact below a size threshold, approximate above.

* ``metric="l2"`` (dense codes): exact search is a chunked matrix product; from
  ``exact_below`` codes on, a faiss IVF-Flat index (Jégou et al.; k-means cells, the query
  visits the ``nprobe`` nearest cells). ``nprobe`` is tuned at build time on a sample of the
  codes themselves until recall@10 against exact search reaches ``target_recall``.
* ``metric="hamming"`` (``binary`` codes): codes are packed 8 bits a byte and compared by XOR +
  popcount, exactly; a linear scan of packed bits is fast enough for millions of codes.

Why faiss IVF-Flat rather than hnswlib's HNSW: on this project's 2-core machine hnswlib
needed 25–47 s per 100k 32-d codes to build (minutes for 1M; the goal is ≤ 2 min), while IVF
built 1M codes in under 30 s, reaches the same recall at similar queries/s, appends new codes
without a rebuild, and saves in its own binary format (no pickle). See ``benchmarks/search.py``.

On disk (a folder): ``codes.npy`` (float32, or uint8 packed bits), ``codes.json`` (metric,
sizes, tuning), and ``ann.faiss`` when the approximate index exists.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from aekit.codes_binary import hamming_distances, pack_bits
from aekit.errors import AekitError, DataError
from aekit.io import atomic_path, load_npy, read_json, write_json_atomic

#: below this many codes every search is exact (a brute-force scan is fast and perfect)
EXACT_BELOW = 20_000
METRICS = ("l2", "hamming")
CODES_FILE, META_FILE, ANN_FILE = "codes.npy", "codes.json", "ann.faiss"


def _faiss():
    try:
        import faiss
    except ImportError:
        raise AekitError("searching this many codes needs faiss: pip install faiss-cpu") from None
    return faiss


class CodeIndex:
    """k-nearest-neighbour search over a growing set of codes (see the module docstring)."""

    def __init__(self, dim: int, metric: str = "l2", exact_below: int = EXACT_BELOW,
                 target_recall: float = 0.97) -> None:
        if metric not in METRICS:
            raise AekitError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if dim < 1:
            raise AekitError(f"code size must be ≥ 1, got {dim}")
        self.dim = int(dim)
        self.metric = metric
        self.target_recall = float(target_recall)
        width = math.ceil(dim / 8) if metric == "hamming" else dim
        self.codes = np.zeros((0, width), dtype=np.uint8 if metric == "hamming" else np.float32)
        self.nprobe: int | None = None
        self._ann = None
        self.set_exact_below(exact_below)

    # -- building ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.codes)

    @property
    def approximate(self) -> bool:
        return self._ann is not None

    def _prepare(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.dim:
            got = codes.shape[1] if codes.ndim == 2 else codes.shape
            raise DataError(f"codes have size {got} but this index holds {self.dim}-d codes")
        if self.metric == "hamming":
            return pack_bits(codes)
        codes = np.ascontiguousarray(codes, dtype=np.float32)
        if not np.isfinite(codes).all():
            raise DataError("codes contain NaN or infinite values")
        return codes

    def add(self, codes: np.ndarray) -> None:
        """Append codes (N, dim); for ``hamming``, 0/1 bits (packed here)."""
        new = self._prepare(codes)
        self.codes = np.concatenate([self.codes, new]) if len(self.codes) else new
        if self._ann is not None:
            self._ann.add(new)
        elif self.metric == "l2" and len(self.codes) >= self.exact_below:
            self.build_ann()

    def set_exact_below(self, exact_below: int, total: int | None = None) -> None:
        """A new threshold; an approximate index that will hold fewer than it (``total``,
        default its size) goes back to exact search (the next :meth:`add` builds the
        approximate one when the threshold is reached)."""
        if exact_below < 0:
            raise AekitError(f"exact_below must be ≥ 0, got {exact_below}")
        self.exact_below = int(exact_below)
        if self._ann is not None and (len(self) if total is None else total) < exact_below:
            self._ann, self.nprobe = None, None

    def build_ann(self, nlist: int | None = None, seed: int = 0) -> None:
        """(Re)build the IVF-Flat index over every code held, then tune ``nprobe``."""
        faiss = _faiss()
        n = len(self.codes)
        nlist = nlist or int(np.clip(4 * math.sqrt(n), 16, 65536))
        nlist = max(1, min(nlist, n // 39))  # faiss wants ≥ 39 training points per cell
        rng = np.random.default_rng(seed)
        train = self.codes[rng.choice(n, min(n, 64 * nlist), replace=False)]
        ann = faiss.IndexIVFFlat(faiss.IndexFlatL2(self.dim), self.dim, nlist)
        ann.cp.seed = seed
        ann.cp.min_points_per_centroid = 1  # (small indexes: no "please provide …" warning)
        ann.train(train)
        ann.add(self.codes)
        self._ann = ann
        self.nprobe = self._tune_nprobe(rng)
        ann.nprobe = self.nprobe

    def _tune_nprobe(self, rng: np.random.Generator, n_queries: int = 200, k: int = 10) -> int:
        """Smallest power-of-two ``nprobe`` whose recall@k reaches the target on sample codes
        moved by about one nearest-neighbour distance (a query equal to a stored code would
        be found too easily: its own cell is always visited)."""
        n = len(self.codes)
        q = self.codes[rng.choice(n, min(n, n_queries), replace=False)]
        d_nn, _ = self._exact_l2(q, 2)
        step = float(np.median(np.sqrt(d_nn[:, 1]))) / math.sqrt(self.dim)
        q = (q + rng.normal(0, step, q.shape)).astype(np.float32)
        _, exact = self._exact_l2(q, k)
        nlist = self._ann.nlist

        def good(nprobe: int) -> bool:
            self._ann.nprobe = nprobe
            return recall_at_k(self._ann.search(q, k)[1], exact) >= self.target_recall

        hi = 1
        while hi < nlist and not good(hi):
            hi *= 2
        hi = min(hi, nlist)
        lo = hi // 2  # fails (or is 0); bisect (lo, hi] to the smallest that reaches the target
        while hi - lo > max(1, hi // 8):
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if good(mid) else (mid, hi)
        return hi

    # -- searching -----------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int = 10, exact: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indices), each (Q, k'), k' = min(k, len): nearest first. Distances are
        Euclidean for ``l2`` and bit counts for ``hamming``."""
        if len(self.codes) == 0:
            raise AekitError("the index is empty")
        if k < 1:
            raise AekitError(f"k must be ≥ 1, got {k}")
        q = self._prepare(queries)
        k = min(k, len(self.codes))
        if self.metric == "hamming":
            return self._exact_hamming(q, k)
        if self._ann is not None and not exact:
            d2, idx = self._ann.search(q, k)
            short = (idx < 0).any(1)  # the probed cells held fewer than k codes: faiss pads
            if short.any():           # with −1; those queries are answered exactly
                d2[short], idx[short] = self._exact_l2(q[short], k)
            return np.sqrt(np.maximum(d2, 0)), idx.astype(np.int64)
        d2, idx = self._exact_l2(q, k)
        return np.sqrt(d2), idx

    def _chunk(self, n_queries: int) -> int:
        # ~1M distances a chunk: stays in cache, and argpartition dominates beyond that
        return max(1, min(n_queries, 1_000_000 // max(len(self.codes), 1)))

    def _exact_l2(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        x = self.codes
        try:
            import faiss
        except ImportError:
            faiss = None
        if faiss is not None and len(x) >= 4096:  # its BLAS scan + heap beats numpy's sort
            _, idx = faiss.knn(q, x, k)
            return _refine(q, x, idx.astype(np.int64))
        x_sq = np.einsum("nd,nd->n", x, x)
        out_d = np.empty((len(q), k), dtype=np.float32)
        out_i = np.empty((len(q), k), dtype=np.int64)
        step = self._chunk(len(q))
        for s in range(0, len(q), step):
            qb = q[s:s + step]
            d2 = x_sq[None] - 2 * (qb @ x.T) + np.einsum("qd,qd->q", qb, qb)[:, None]
            _, idx = _top_k(np.maximum(d2, 0), k)
            out_d[s:s + step], out_i[s:s + step] = _refine(qb, x, idx)
        return out_d, out_i

    def _exact_hamming(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        out_d = np.empty((len(q), k), dtype=np.int32)
        out_i = np.empty((len(q), k), dtype=np.int64)
        step = self._chunk(len(q))
        for s in range(0, len(q), step):
            out_d[s:s + step], out_i[s:s + step] = _top_k(hamming_distances(q[s:s + step],
                                                                            self.codes), k)
        return out_d, out_i

    # -- files ---------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / CODES_FILE, suffix=".npy") as tmp:
            np.save(tmp, self.codes)
        if self._ann is not None:
            with atomic_path(directory / ANN_FILE) as tmp:
                _faiss().write_index(self._ann, str(tmp))
        else:
            (directory / ANN_FILE).unlink(missing_ok=True)
        write_json_atomic(directory / META_FILE, {
            "dim": self.dim, "metric": self.metric, "count": len(self.codes),
            "exact_below": self.exact_below, "target_recall": self.target_recall,
            "nprobe": self.nprobe, "ann": "faiss-ivf-flat" if self._ann is not None else None})

    @classmethod
    def load(cls, directory: str | Path) -> CodeIndex:
        directory = Path(directory)
        meta_path = directory / META_FILE
        meta = read_json(meta_path, "code index file",
                         missing=f"{directory}: not a code index ({META_FILE} is missing)")
        try:
            index = cls(meta["dim"], meta["metric"], meta["exact_below"], meta["target_recall"])
        except (ValueError, KeyError, TypeError) as e:
            raise AekitError(f"{directory}: the code index is damaged ({e})") from None
        codes = load_npy(directory / CODES_FILE, "codes")
        if codes.shape[1:] != index.codes.shape[1:] or len(codes) != meta.get("count"):
            raise AekitError(f"{directory}: {CODES_FILE} does not match {META_FILE}")
        index.codes = codes.astype(index.codes.dtype, copy=False)
        if meta.get("ann"):
            ann_path = directory / ANN_FILE
            try:
                index._ann = _faiss().read_index(str(ann_path))
            except RuntimeError as e:
                raise AekitError(f"{ann_path}: cannot read the search index ({e})") from None
            if index._ann.ntotal != len(codes):
                raise AekitError(f"{ann_path} holds {index._ann.ntotal} codes, "
                                 f"{CODES_FILE} {len(codes)}")
            index.nprobe = meta["nprobe"]
            index._ann.nprobe = index.nprobe
        return index


def _refine(q: np.ndarray, x: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared distances recomputed directly for the chosen neighbours (the ‖q‖² − 2q·x + ‖x‖²
    expansion cancels badly for near ones) and re-sorted, ties by index."""
    d2 = ((q[:, None, :] - x[idx]) ** 2).sum(2)
    order = np.lexsort((idx, d2), axis=1)
    return np.take_along_axis(d2, order, 1), np.take_along_axis(idx, order, 1)


def _top_k(dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise k smallest of a (Q, N) matrix, sorted (ties broken by index)."""
    if k < dist.shape[1]:
        part = np.argpartition(dist, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(dist.shape[1]), dist.shape).copy()
    vals = np.take_along_axis(dist, part, 1)
    order = np.lexsort((part, vals), axis=1)
    idx = np.take_along_axis(part, order, 1)
    return np.take_along_axis(vals, order, 1), idx


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true k nearest neighbours that a search returned (rows are queries)."""
    k = truth.shape[1]
    hits = sum(len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / (k * len(truth))
