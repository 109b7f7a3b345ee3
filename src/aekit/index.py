"""Nearest-neighbour search over codes: exact below a size threshold, approximate above.

* ``metric="l2"`` (dense codes): exact search is a chunked matrix product; from
  ``exact_below`` codes on, a faiss IVF-Flat index (Jégou et al.; k-means cells, the query
  visits the ``nprobe`` nearest cells). ``nprobe`` is tuned at build time on a sample of the
  codes themselves until recall@10 against exact search reaches ``target_recall``.
* ``metric="hamming"`` (``binary`` codes): codes are packed 8 bits a byte and compared by XOR +
  popcount, exactly; a linear scan of packed bits is fast enough for millions of codes.

Why faiss IVF-Flat rather than hnswlib's HNSW: on this project's 2-core machine hnswlib
needed 25–47 s per 100k 32-d codes to build (minutes for 1M; the goal is ≤ 2 min), while IVF
built 1M codes in under 30 s, reaches the same recall at similar queries/s and appends new
codes without a rebuild. See ``benchmarks/search.py``.

On disk (a folder): ``codes.npy`` (float32, or uint8 packed bits), ``codes.json`` (metric,
sizes, tuning), and ``ann_centroids.npy`` (the IVF cells' centroids) when the approximate index
exists. Loading rebuilds the IVF index from the centroids and the codes (adding codes to cells
whose centroids are fixed is deterministic), so no faiss binary file is ever read: an index
folder from anyone is ``.npy`` + JSON (a faiss file with three header bytes changed made faiss
allocate 11 GB before failing). An index that has grown to ``RETRAIN_GROWTH`` times the codes
its cells were trained on is retrained on the next add.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from aekit.codes_binary import hamming_distances, pack_bits
from aekit.errors import AekitError, DataError, warn
from aekit.io import atomic_path, load_npy, read_json, write_json_atomic

#: below this many codes every search is exact (a brute-force scan is fast and perfect)
EXACT_BELOW = 20_000
METRICS = ("l2", "hamming")
CODES_FILE, META_FILE, CENTROIDS_FILE = "codes.npy", "codes.json", "ann_centroids.npy"
#: what older aekit wrote for the approximate index (never read: the index is rebuilt)
ANN_FILE = "ann.faiss"
#: the IVF cells are retrained when the index holds this many times the codes they were
#: trained on (cells sized for 20k codes made 120k codes search 2.6× slower than a rebuild)
RETRAIN_GROWTH = 4


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
        self._trained_on = 0  # codes the IVF cells were trained on
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
        if self._ann is not None and len(self.codes) < RETRAIN_GROWTH * self._trained_on:
            self._ann.add(new)
        elif self.metric == "l2" and len(self.codes) >= self.exact_below:
            self.build_ann()  # first built, or grown past what its cells were sized for

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
        self._ann, self._trained_on = ann, n
        self.nprobe = self._tune_nprobe(rng)
        ann.nprobe = self.nprobe

    def _ann_from_centroids(self, centroids: np.ndarray) -> None:
        """The IVF-Flat index with these cells, holding every code (what :meth:`build_ann`
        made, without its training)."""
        faiss = _faiss()
        quantizer = faiss.IndexFlatL2(self.dim)
        quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
        ann = faiss.IndexIVFFlat(quantizer, self.dim, len(centroids))
        ann.add(self.codes)
        ann.nprobe = self.nprobe
        self._ann = ann
        self._quantizer = quantizer  # the index refers to it: keep it alive

    def _tune_nprobe(self, rng: np.random.Generator, n_queries: int = 200, k: int = 10) -> int:
        """Smallest power-of-two ``nprobe`` whose recall@k reaches the target on sample codes
        moved by about one nearest-neighbour distance (a query equal to a stored code would
        be found too easily: its own cell is always visited)."""
        n = len(self.codes)
        k = min(k, n)  # (an index of fewer than k codes: --exact-below 0 on a few images)
        q = self.codes[rng.choice(n, min(n, n_queries), replace=False)]
        d_nn, _ = self._exact_l2(q, min(2, n))
        step = float(np.median(np.sqrt(d_nn[:, -1]))) / math.sqrt(self.dim)
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
        # candidates in float64: in float32 the ‖q‖² − 2q·x + ‖x‖² expansion cancels badly for
        # codes far from the origin, and the true nearest could miss the candidates (recall@10
        # 0.57 on 1-d codes near 1e3); the few chosen are recomputed directly below
        x = x.astype(np.float64)
        x_sq = np.einsum("nd,nd->n", x, x)
        out_d = np.empty((len(q), k), dtype=np.float32)
        out_i = np.empty((len(q), k), dtype=np.int64)
        step = self._chunk(len(q))
        for s in range(0, len(q), step):
            qb = q[s:s + step].astype(np.float64)
            d2 = x_sq[None] - 2 * (qb @ x.T) + np.einsum("qd,qd->q", qb, qb)[:, None]
            _, idx = _top_k(np.maximum(d2, 0), k)
            out_d[s:s + step], out_i[s:s + step] = _refine(q[s:s + step], self.codes, idx)
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
        (directory / ANN_FILE).unlink(missing_ok=True)  # an older aekit's binary index file
        if self._ann is not None:
            centroids = self._ann.quantizer.reconstruct_n(0, self._ann.nlist)
            with atomic_path(directory / CENTROIDS_FILE, suffix=".npy") as tmp:
                np.save(tmp, centroids.astype(np.float32))
        else:
            (directory / CENTROIDS_FILE).unlink(missing_ok=True)
        write_json_atomic(directory / META_FILE, {
            "dim": self.dim, "metric": self.metric, "count": len(self.codes),
            "exact_below": self.exact_below, "target_recall": self.target_recall,
            "nprobe": self.nprobe, "trained_on": self._trained_on,
            "ann": "ivf-flat-centroids" if self._ann is not None else None})

    @classmethod
    def load(cls, directory: str | Path) -> CodeIndex:
        """An index folder (from anyone: only .npy, read without pickle, and JSON)."""
        directory = Path(directory)
        meta_path = directory / META_FILE
        meta = read_json(meta_path, "code index file",
                         missing=f"{directory}: not a code index ({META_FILE} is missing)")
        if not isinstance(meta, dict):
            raise AekitError(f"{meta_path}: the code index is damaged (not a JSON object)")

        def integer(key: str, low: int, optional: bool = False) -> int | None:
            v = meta.get(key)
            if v is None and optional:
                return None
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise AekitError(f"{meta_path}: the code index is damaged ({key} must be a whole "
                                 f"number ≥ {low}, got {v!r})")
            return v

        try:
            index = cls(integer("dim", 1), meta["metric"], integer("exact_below", 0),
                        float(meta["target_recall"]))
        except (ValueError, KeyError, TypeError) as e:
            raise AekitError(f"{directory}: the code index is damaged ({e})") from None
        codes = load_npy(directory / CODES_FILE, "codes")
        if (codes.shape[1:] != index.codes.shape[1:] or len(codes) != integer("count", 0)
                or codes.dtype != index.codes.dtype):
            raise AekitError(f"{directory}: {CODES_FILE} ({codes.dtype}, {codes.shape}) does not "
                             f"match {META_FILE}")
        if index.metric == "l2" and not np.isfinite(codes).all():
            raise AekitError(f"{directory}: {CODES_FILE} holds NaN or infinite codes")
        index.codes = codes
        kind = meta.get("ann")
        if kind and index.metric != "l2":
            raise AekitError(f"{meta_path}: the code index is damaged (a {index.metric} index "
                             "has no approximate search)")
        if kind == "ivf-flat-centroids":
            centroids = load_npy(directory / CENTROIDS_FILE, "search index centroids")
            if (centroids.ndim != 2 or centroids.shape[1] != index.dim or not 1 <= len(centroids)
                    or centroids.dtype != np.float32 or not np.isfinite(centroids).all()):
                raise AekitError(f"{directory / CENTROIDS_FILE}: not the centroids of "
                                 f"{index.dim}-d codes")
            index.nprobe = integer("nprobe", 1)
            if index.nprobe > len(centroids):
                raise AekitError(f"{meta_path}: nprobe {index.nprobe} is more than the "
                                 f"{len(centroids)} cells")
            trained = integer("trained_on", 0, optional=True)
            index._trained_on = len(codes) if trained is None else trained
            index._ann_from_centroids(centroids)
        elif kind:  # an older aekit's ann.faiss: not read (see the module docstring); rebuilt
            warn(f"{directory} was written by an older aekit: its approximate index is rebuilt "
                 "from the codes (each time; `aekit index … --add` with new data saves the "
                 "new form)")
            index.build_ann()
        return index


def _refine(q: np.ndarray, x: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared distances recomputed directly for the chosen neighbours (the ‖q‖² − 2q·x + ‖x‖²
    expansion cancels badly for near ones) and re-sorted, ties by index."""
    d2 = ((q[:, None, :] - x[idx]) ** 2).sum(2)
    order = np.lexsort((idx, d2), axis=1)
    return np.take_along_axis(d2, order, 1), np.take_along_axis(idx, order, 1)


def _top_k(dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise k smallest of a (Q, N) matrix, sorted, ties broken by index — also at the k-th
    value: of many codes tied there (Hamming distances are few integers), the lowest indices,
    not whichever ``argpartition`` left (1,400 codes at distance 0 gave items 951–962). No
    sort over N: everything under the k-th value, then the first tied ones by a running count."""
    q, n = dist.shape
    if k >= n:
        part = np.broadcast_to(np.arange(n), dist.shape).copy()
    else:
        kth = np.partition(dist, k - 1, axis=1)[:, k - 1:k]
        below = dist < kth
        need = k - below.sum(1, keepdims=True)  # ≥ 1: the k-th value itself is tied
        tied = dist == kth
        chosen = below | (tied & (np.cumsum(tied, axis=1) <= need))
        part = np.nonzero(chosen)[1].reshape(q, k)  # k per row, in index order
    vals = np.take_along_axis(dist, part, 1)
    order = np.lexsort((part, vals), axis=1)
    idx = np.take_along_axis(part, order, 1)
    return np.take_along_axis(vals, order, 1), idx


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true k nearest neighbours that a search returned (rows are queries)."""
    k = truth.shape[1]
    hits = sum(len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / (k * len(truth))
