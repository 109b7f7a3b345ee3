import numpy as np
import pytest

from aekit.errors import AekitError, DataError
from aekit.index import CodeIndex, recall_at_k
from aekit.metrics_cluster import precision_at_k


def brute(x, q, k):
    d = ((q[:, None] - x[None]) ** 2).sum(2)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def clustered(n, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (20, d))
    return (centres[rng.integers(0, 20, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)


def test_exact_search_matches_brute_force():
    x = clustered(500)
    ix = CodeIndex(8)
    ix.add(x)
    dist, idx = ix.search(x[:20], 5)
    np.testing.assert_array_equal(idx, brute(x, x[:20], 5))
    assert not ix.approximate
    np.testing.assert_allclose(dist[:, 0], 0, atol=1e-3)


def test_ann_above_threshold_reaches_recall_and_survives_save_load(tmp_path):
    x, q = np.split(clustered(3100, seed=1), [3000])
    ix = CodeIndex(8, exact_below=1000)
    ix.add(x[:800])
    assert not ix.approximate
    ix.add(x[800:])  # crosses the threshold: the IVF index is built and nprobe tuned
    assert ix.approximate and ix.nprobe >= 1
    _, approx = ix.search(q, 10)
    assert recall_at_k(approx, brute(x, q, 10)) >= 0.9
    ix.save(tmp_path / "ix")
    back = CodeIndex.load(tmp_path / "ix")
    np.testing.assert_array_equal(back.search(q, 10)[1], approx)
    back.add(q)  # appending to a loaded approximate index
    assert len(back) == 3100 and back.search(q[:3], 1)[1][:, 0].tolist() == [3000, 3001, 3002]


def test_ann_search_for_more_than_the_probed_cells_hold_is_never_padded():
    x = clustered(2000, seed=2)
    ix = CodeIndex(8, exact_below=1000)
    ix.add(x)
    d, i = ix.search(x[:3], k=1500)  # faiss pads with −1 (index) and 1.8e19 (distance)
    assert (i >= 0).all() and np.isfinite(d).all() and (np.diff(d, axis=1) >= -1e-5).all()
    np.testing.assert_array_equal(i, ix.search(x[:3], k=1500, exact=True)[1])


def test_hamming_index_finds_nearest_bits(tmp_path):
    rng = np.random.default_rng(0)
    bits = rng.random((300, 24)) > 0.5
    ix = CodeIndex(24, "hamming")
    ix.add(bits)
    q = bits[:5].copy()
    q[:, 0] ^= True  # one bit off
    dist, idx = ix.search(q, 1)
    assert idx[:, 0].tolist() == [0, 1, 2, 3, 4] and (dist[:, 0] == 1).all()
    ix.save(tmp_path / "h")
    assert CodeIndex.load(tmp_path / "h").search(q, 1)[1][:, 0].tolist() == [0, 1, 2, 3, 4]


def test_wrong_code_size_and_empty_index_refused():
    ix = CodeIndex(4)
    with pytest.raises(AekitError, match="empty"):
        ix.search(np.zeros((1, 4)), 1)
    with pytest.raises(DataError, match="size 5"):
        ix.add(np.zeros((2, 5)))


def test_precision_at_k_skips_self():
    nbrs = np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1]])
    assert precision_at_k(nbrs, np.array([0, 0, 1])) == pytest.approx((0.5 + 0.5 + 0) / 3)
