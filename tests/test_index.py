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


def test_a_saved_index_is_npy_and_json_only_and_reloads_the_same(tmp_path):
    """No faiss binary is read back: the cells' centroids are an .npy, and loading rebuilds
    the IVF index from them (a mutated faiss file made faiss allocate 11 GB)."""
    x, q = np.split(clustered(2100, seed=3), [2000])
    ix = CodeIndex(8, exact_below=1000)
    ix.add(x)
    ix.save(tmp_path / "ix")
    assert sorted(p.name for p in (tmp_path / "ix").iterdir()) == [
        "ann_centroids.npy", "codes.json", "codes.npy"]
    back = CodeIndex.load(tmp_path / "ix")
    for k in (1, 10):
        np.testing.assert_array_equal(back.search(q, k)[1], ix.search(q, k)[1])
    # damaged centroids or tuning: one line, not faiss's
    (tmp_path / "ix" / "ann_centroids.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(AekitError):
        CodeIndex.load(tmp_path / "ix")
    ix.save(tmp_path / "ix")
    meta = (tmp_path / "ix" / "codes.json").read_text()
    (tmp_path / "ix" / "codes.json").write_text(meta.replace(f'"nprobe": {ix.nprobe}', '"nprobe": 100000'))
    with pytest.raises(AekitError, match="nprobe"):
        CodeIndex.load(tmp_path / "ix")
    # an older aekit's folder (ann.faiss): the binary file is not read; the index is rebuilt
    ix.save(tmp_path / "old")
    meta = (tmp_path / "old" / "codes.json").read_text().replace('"ivf-flat-centroids"', '"faiss-ivf-flat"')
    (tmp_path / "old" / "codes.json").write_text(meta)
    (tmp_path / "old" / "ann_centroids.npy").unlink()
    (tmp_path / "old" / "ann.faiss").write_bytes(b"IwFl" + b"\xff" * 64)  # would be a bomb
    old = CodeIndex.load(tmp_path / "old")
    assert old.approximate and recall_at_k(old.search(q, 10)[1], brute(x, q, 10)) >= 0.9


def test_tiny_approximate_index_far_codes_and_ties_are_exact():
    # --exact-below 0 on a handful of codes: tuning asked faiss for 10 neighbours of 5
    ix = CodeIndex(4, exact_below=0)
    ix.add(clustered(5, d=4))
    assert ix.approximate and ix.search(ix.codes[:2], 3)[1][:, 0].tolist() == [0, 1]
    # 1-d codes far from the origin: the float32 ‖q‖² − 2q·x + ‖x‖² lost the true nearest
    rng = np.random.default_rng(0)
    x = (1000 + rng.normal(0, 0.01, (3000, 1))).astype(np.float32)
    q = (1000 + rng.normal(0, 0.01, (50, 1))).astype(np.float32)
    ix = CodeIndex(1)
    ix.add(x)
    d_true = np.sort(np.abs(q - x.T), axis=1)[:, :10]
    np.testing.assert_allclose(ix.search(q, 10)[0], d_true, atol=1e-6)
    # many Hamming codes tied at the k-th distance: the lowest indices, as documented
    bits = np.zeros((1400, 16), bool)
    hx = CodeIndex(16, "hamming")
    hx.add(bits)
    assert hx.search(bits[:1], 12)[1][0].tolist() == list(range(12))


def test_the_cells_are_retrained_when_the_index_outgrows_them():
    from aekit.index import RETRAIN_GROWTH

    x = clustered(1000 * (RETRAIN_GROWTH + 1), seed=4)
    ix = CodeIndex(8, exact_below=1000)
    ix.add(x[:1000])
    cells = ix._ann.nlist
    ix.add(x[1000:2000])
    assert ix._ann.nlist == cells  # appended
    ix.add(x[2000:])  # past RETRAIN_GROWTH × the 1,000 it was trained on
    assert ix._ann.nlist > cells and ix._trained_on == len(x)


def test_top_k_equals_a_stable_sort_whatever_the_ties():
    from aekit.index import _top_k

    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(2, 40))
        dist = rng.integers(0, 4, (5, n)).astype(np.float32)  # few values: many ties
        k = int(rng.integers(1, n + 1))
        want = np.argsort(dist, axis=1, kind="stable")[:, :k]
        vals, idx = _top_k(dist, k)
        np.testing.assert_array_equal(idx, want, err_msg=f"trial {trial}, n {n}, k {k}")
        np.testing.assert_array_equal(vals, np.take_along_axis(dist, want, 1))
