"""Topic quality and retrieval measures.

* NPMI coherence (Bouma 2009; as used for topic models by Lau et al. 2014 and Srivastava &
  Sutton 2017) of a topic's top words, from *document* co-occurrence in a reference corpus:
  NPMI(wi, wj) = log(p(wi, wj) / (p(wi) p(wj))) / −log p(wi, wj), and −1 for a pair that never
  co-occurs; a topic's score is the mean over its word pairs.
* Topic diversity (Dieng et al. 2020): unique words among all topics' top-25 lists divided
  by 25·K (1 = no two topics share a top word).
* Retrieval precision@k: the share of each query's k nearest documents that share a label
  with it (cosine similarity for real codes, Hamming distance for bits).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.special import log_softmax, logsumexp

from aekit.errors import ParameterError, is_integer


def check_count(n: object, what: str) -> int:
    """A count of results: an integer ≥ 1."""
    if not is_integer(n, 1):
        raise ParameterError(f"{what} is an integer ≥ 1, got {n!r}")
    return int(n)


def check_same_width(queries: object, db: object) -> None:
    """Queries and database codes: two 2-D arrays of the same code width."""
    if np.ndim(queries) != 2 or np.ndim(db) != 2 or np.shape(queries)[1] != np.shape(db)[1]:
        raise ParameterError(f"queries and db are (rows, code width) with the same width, got "
                             f"{np.shape(queries)} and {np.shape(db)}")


def top_words(topic_word: np.ndarray, n: int = 10) -> np.ndarray:
    """Indices (K, n) of each topic's ``n`` highest-weighted words, best first."""
    tw = np.asarray(topic_word)
    check_count(n, "n (top words)")
    n = min(n, tw.shape[1])
    part = np.argpartition(-tw, n - 1, axis=1)[:, :n]
    order = np.argsort(-np.take_along_axis(tw, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


def relevance(log_topic_word: np.ndarray, lam: float = 0.8) -> np.ndarray:
    """LDAvis relevance (Sievert & Shirley 2014) of every word to every topic, (K, V):
    λ·log p(w|k) + (1 − λ)·log(p(w|k) / p(w)), p(w) the mean of p(w|k) over the topics.
    ``log_topic_word`` is (K, V) log word distributions, each up to a constant (normalised
    here). λ = 1 ranks by probability alone; lower λ favours words specific to the topic."""
    if not 0.0 <= lam <= 1.0:
        raise ParameterError(f"relevance lambda must be in [0, 1], got {lam}")
    lp = log_softmax(np.asarray(log_topic_word, dtype=np.float64), axis=1)  # log p(w|k)
    log_pw = logsumexp(lp, axis=0, keepdims=True) - np.log(len(lp))  # log p(w), uniform topics
    return lp - (1.0 - lam) * log_pw


def npmi_per_topic(top_idx: np.ndarray, reference_counts) -> np.ndarray:
    """Mean NPMI over each topic's word pairs, from document co-occurrence in the reference
    (an (N, V) count or binary matrix, dense or sparse, in the same vocabulary)."""
    ref = sp.csc_matrix(reference_counts)
    n_docs = ref.shape[0]
    scores = np.zeros(len(top_idx))
    for t, words in enumerate(np.asarray(top_idx)):
        occ = (ref[:, words] > 0).astype(np.float64)  # (N, n)
        df = np.asarray(occ.sum(0)).ravel()
        co = (occ.T @ occ).toarray()
        vals = []
        for i in range(len(words)):
            for j in range(i + 1, len(words)):
                if co[i, j] == 0 or df[i] == 0 or df[j] == 0:
                    vals.append(-1.0)
                    continue
                p_ij = co[i, j] / n_docs
                p_i, p_j = df[i] / n_docs, df[j] / n_docs
                if p_ij >= 1.0:  # two words in every document: perfectly associated
                    vals.append(1.0)
                    continue
                vals.append(np.log(p_ij / (p_i * p_j)) / -np.log(p_ij))
        scores[t] = float(np.mean(vals)) if vals else 0.0
    return scores


def topic_diversity(top_idx: np.ndarray) -> float:
    """Unique words / all words in the topics' top lists (give the top-25 lists)."""
    top_idx = np.asarray(top_idx)
    return float(len(np.unique(top_idx)) / top_idx.size) if top_idx.size else 0.0


def label_matrix(labels: Sequence[Sequence[str]], classes: Sequence[str] | None = None
                 ) -> tuple[sp.csr_matrix, list[str]]:
    """Multi-label lists → a binary (N, L) matrix (and the class names)."""
    classes = sorted({c for ls in labels for c in ls}) if classes is None else list(classes)
    pos = {c: i for i, c in enumerate(classes)}
    rows, cols = [], []
    for r, ls in enumerate(labels):
        for c in set(ls):
            if c in pos:
                rows.append(r)
                cols.append(pos[c])
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                      shape=(len(labels), len(classes)))
    return m, classes


def pack_bits(codes: np.ndarray) -> np.ndarray:
    """0/1 codes (N, B) → bytes (N, ceil(B/8)) for compact storage and Hamming search."""
    return np.packbits(np.asarray(codes) > 0.5, axis=1)


_POPCOUNT = np.array([i.bit_count() for i in range(256)], dtype=np.uint8)


def hamming(q_packed: np.ndarray, db_packed: np.ndarray) -> np.ndarray:
    """Hamming distances (Q, N) between packed codes."""
    out = np.zeros((len(q_packed), len(db_packed)), dtype=np.int32)
    for b in range(q_packed.shape[1]):
        out += _POPCOUNT[np.bitwise_xor(q_packed[:, b:b + 1], db_packed[None, :, b])]
    return out


#: how codes are compared: cosine similarity, Hamming distance of bits, expected Hamming
#: distance of a query's bit probabilities to db bits (asymmetric)
METRICS = ("cosine", "hamming", "expected_hamming")


def _distance_chunks(queries: np.ndarray, db: np.ndarray, metric: str,
                     exclude: np.ndarray | None, chunk: int):
    """(start, end, distances (end − start, len(db))) for chunks of queries: Hamming
    distances, expected Hamming distances, or negated cosine similarities; an excluded db row
    is at +inf.

    ``expected_hamming`` is asymmetric (Gordo et al. 2014, "Asymmetric distances for binary
    embeddings"): the db holds bits b, a query its bits' probabilities p (before they are
    thresholded), and the distance is the Hamming distance expected if the query's bits were
    drawn from p, Σ p(1 − b) + (1 − p)b. It ranks the db documents a plain Hamming distance
    ties (10 bits have 11 distances), and for 0/1 queries it is the Hamming distance."""
    if metric == "hamming":
        qp, dp = pack_bits(queries), pack_bits(db)
    elif metric == "expected_hamming":
        qf = np.asarray(queries, dtype=np.float64)
        if qf.size and (qf.min() < 0 or qf.max() > 1):
            raise ParameterError("expected_hamming queries are bit probabilities in [0, 1]")
        bf = (np.asarray(db) > 0.5).astype(np.float64)
        b_ones = bf.sum(1)
    elif metric == "cosine":
        def unit(a: np.ndarray) -> np.ndarray:
            a = np.asarray(a, dtype=np.float32)
            return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        qn, dn = unit(queries), unit(db)
    else:
        raise ParameterError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    for s in range(0, len(queries), chunk):
        e = min(s + chunk, len(queries))
        if metric == "hamming":
            dist = hamming(qp[s:e], dp).astype(np.float64)
        elif metric == "expected_hamming":
            q = qf[s:e]
            dist = q.sum(1, keepdims=True) + b_ones[None] - 2.0 * (q @ bf.T)
        else:
            dist = -(qn[s:e] @ dn.T).astype(np.float64)
        if exclude is not None:
            rows = np.arange(e - s)
            ex = np.asarray(exclude[s:e])
            ok = ex >= 0
            dist[rows[ok], ex[ok]] = np.inf
        yield s, e, dist


def nearest(queries: np.ndarray, db: np.ndarray, k: int = 10, metric: str = "cosine",
            exclude: np.ndarray | None = None, chunk: int = 512
            ) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest db rows of each query: (indices (Q, k), scores (Q, k)); scores are cosine
    similarities or (expected) Hamming distances. ``exclude[i]`` (a db index or −1) is never returned
    for query i (a document is not its own neighbour). Ties keep db order (stable sort)."""
    check_count(k, "k")
    check_same_width(queries, db)
    k = min(k, len(db) - (0 if exclude is None else 1))
    idx_out, score_out = [], []
    for _, _, dist in _distance_chunks(queries, db, metric, exclude, chunk):
        idx = np.argsort(dist, axis=1, kind="stable")[:, :k]
        idx_out.append(idx)
        d = np.take_along_axis(dist, idx, 1)
        score_out.append(-d if metric == "cosine" else d)
    return np.concatenate(idx_out), np.concatenate(score_out)


def precision_at_k(queries: np.ndarray, q_labels: sp.csr_matrix, db: np.ndarray,
                   db_labels: sp.csr_matrix, k: int = 10, metric: str = "cosine",
                   exclude: np.ndarray | None = None, chunk: int = 512) -> float:
    """Mean share of each query's k nearest db documents that share a label with it.

    Ties at the k-th distance (common in Hamming space: 10 bits have 11 distances) are
    counted at their expectation under a random order (McSherry & Najork 2008): the tied
    documents' hit rate fills the places left, so the score does not depend on db order.

    Queries with no label are left out (nothing can share a label with them: counting them
    as 0 hits lowered the mean by their share); none labelled is a ValueError."""
    q_labels, db_labels = sp.csr_matrix(q_labels), sp.csr_matrix(db_labels)
    labelled = np.flatnonzero(q_labels.getnnz(axis=1) > 0)
    if not len(labelled):
        raise ValueError("precision@k: no query has a label")
    if len(labelled) < q_labels.shape[0]:
        queries, q_labels = np.asarray(queries)[labelled], q_labels[labelled]
        exclude = None if exclude is None else np.asarray(exclude)[labelled]
    check_count(k, "k")
    check_same_width(queries, db)
    k = min(k, len(db) - (0 if exclude is None else 1))
    total = 0.0
    for s, e, dist in _distance_chunks(queries, db, metric, exclude, chunk):
        hit = (q_labels[s:e] @ db_labels.T).toarray() > 0  # (chunk, N): shares a label
        kth = np.partition(dist, k - 1, axis=1)[:, k - 1:k]
        closer, tied = dist < kth, dist == kth
        n_closer = closer.sum(1)
        tied_rate = (hit & tied).sum(1) / tied.sum(1)
        total += float(((hit & closer).sum(1) + (k - n_closer) * tied_rate).sum())
    return total / (k * len(labelled))
