"""Clustering and retrieval metrics: accuracy under the best cluster↔class matching
(Hungarian algorithm), NMI, ARI, and precision@k of nearest-neighbour lists."""

from __future__ import annotations

import numpy as np

from aekit.errors import DataError


def _labels(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if len(y_true) != len(y_pred):
        raise DataError(f"{len(y_true)} labels but {len(y_pred)} cluster assignments")
    if len(y_true) == 0:
        raise DataError("no samples to score")
    return y_true, y_pred


def cluster_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of samples whose cluster maps to their class, under the one-to-one cluster→class
    mapping that maximises it (Hungarian matching; as in DEC, Xie et al. 2016). Clusters
    beyond the number of classes map to nothing and count as errors."""
    from scipy.optimize import linear_sum_assignment

    y_true, y_pred = _labels(y_true, y_pred)
    classes, t = np.unique(y_true, return_inverse=True)
    clusters, p = np.unique(y_pred, return_inverse=True)
    counts = np.zeros((len(clusters), len(classes)), dtype=np.int64)
    np.add.at(counts, (p, t), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(y_true))


def nmi(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Normalised mutual information (arithmetic normalisation, scikit-learn's default)."""
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(*_labels(y_true, y_pred)))


def ari(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Adjusted Rand index: 0 for chance, 1 for identical partitions."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(*_labels(y_true, y_pred)))


def cluster_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {"acc": cluster_accuracy(y_true, y_pred), "nmi": nmi(y_true, y_pred),
            "ari": ari(y_true, y_pred)}


def precision_at_k(neighbours: np.ndarray, labels: np.ndarray,
                   query_labels: np.ndarray | None = None) -> float:
    """Mean share of the returned neighbours (Q, k) whose label equals the query's label.
    Without ``query_labels`` the queries are the indexed items themselves, row i = item i,
    and an item returned as its own neighbour is skipped."""
    labels = np.asarray(labels)
    neighbours = np.asarray(neighbours)
    if query_labels is None:
        own = np.arange(len(neighbours))[:, None]
        keep = neighbours != own
        same = (labels[neighbours] == labels[own]) & keep
        return float((same.sum(1) / np.maximum(keep.sum(1), 1)).mean())
    return float((labels[neighbours] == np.asarray(query_labels)[:, None]).mean())
