import json

import numpy as np
import pytest
import torch

from aekit import create_model, fit
from aekit.cli import main
from aekit.clustering import dec, soft_assignment, target_distribution
from aekit.data import ArrayData
from aekit.errors import DataError
from aekit.metrics_cluster import ari, cluster_accuracy, cluster_scores, nmi

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_permuted_labels_score_perfectly():
    y = np.repeat(np.arange(5), 20)
    perm = np.array([3, 0, 4, 1, 2])
    assert cluster_scores(y, perm[y]) == {"acc": 1.0, "nmi": pytest.approx(1.0),
                                          "ari": pytest.approx(1.0)}


def test_accuracy_uses_the_best_one_to_one_matching():
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    pred = np.array([5, 5, 7, 7, 7, 7, 9, 9])  # cluster 7 mixes classes 0 and 1
    assert cluster_accuracy(y, pred) == pytest.approx(7 / 8)
    # everything in one cluster: only the biggest class can be matched
    assert cluster_accuracy(y, np.zeros(8)) == pytest.approx(3 / 8)
    assert nmi(y, np.zeros(8)) == pytest.approx(0.0) and ari(y, np.zeros(8)) == pytest.approx(0.0)
    with pytest.raises(DataError):
        cluster_accuracy(y, pred[:3])


def test_student_t_assignment_and_target_are_distributions():
    z = torch.randn(50, 3)
    c = torch.randn(4, 3)
    q = soft_assignment(z, c)
    p = target_distribution(q)
    torch.testing.assert_close(q.sum(1), torch.ones(50))
    torch.testing.assert_close(p.sum(1), torch.ones(50))
    # P sharpens Q: the most likely cluster gets more mass
    assert (p.max(1).values >= q.max(1).values - 1e-6).float().mean() > 0.8


def blobs(n=300, d=20, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = rng.normal(0, 4, (k, d))
    return (centres[y] + rng.normal(0, 1, (n, d))).astype(np.float32), y


def test_idec_refines_a_model_and_clusters_blobs():
    x, y = blobs()
    model = create_model("deep", (20,), 3, arch_options={"hidden": [32]},
                         normalization="standard")
    fit(model, x, epochs=20, progress=False, patience=None, val_fraction=0)
    before = [p.detach().clone() for p in model.encoder.parameters()]
    res = dec(model, ArrayData(x), 3, max_iter=200, device="cpu")
    assert res.labels.shape == (300,) and res.iterations > 0
    assert cluster_accuracy(y, res.labels) > 0.95
    assert any(not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters()))


def test_cluster_command_reports_baselines_beside_the_method(tmp_path, capsys):
    x, y = blobs(200)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    code = main(["cluster", "--data", str(tmp_path / "d.npz"), "--k", "3", "--method", "dec",
                 "--hidden", "32", "--latent-dim", "3", "--epochs", "10", "--max-iter", "50",
                 "--assignments", str(tmp_path / "a.npy"), "--json", "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0, out.err
    obj = json.loads(out.out)
    methods = [r["method"] for r in obj["results"]]
    # (a table's columns are features, not pixels; standardised, as the autoencoder sees them)
    assert methods[:2] == ["k-means on standardised features", "k-means on PCA-3"]
    assert methods[-1] == "IDEC on AE codes"
    assert all({"acc", "nmi", "ari"} <= set(r) for r in obj["results"])
    assert np.load(tmp_path / "a.npy").shape == (200,)
    assert sum(obj["cluster_sizes"]) == 200


def test_cluster_command_errors_are_one_line(capsys):
    assert main(["cluster", "--data", "digits", "--k", "1"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_dec_takes_a_plain_array():
    from aekit.clustering import predict_dec

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (40, 6)), rng.normal(3, 0.1, (40, 6))]).astype(np.float32)
    model = create_model("deep", (6,), 2, arch_options={"hidden": [16]},
                         normalization="standard")
    fit(model, x, epochs=5, progress=False)
    res = dec(model, x, 2, max_iter=50)
    assert sorted(np.bincount(predict_dec(model, x, res.centers))) == [40, 40]


def test_class_folders_give_the_labels_the_scores_need(tmp_path, capsys):
    # the README's promise: a folder of class folders is labelled data
    from aekit.data.images import write_image

    rng = np.random.default_rng(0)
    for cls, level in (("dark", 0.2), ("light", 0.8)):
        for i in range(12):
            write_image(tmp_path / "photos" / cls / f"{i}.png",
                        np.clip(level + rng.normal(0, 0.05, (8, 8)), 0, 1))
    assert main(["cluster", "--data", str(tmp_path / "photos"), "--k", "2", "--channels", "1",
                 "--image-size", "8x8", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["results"][0]["acc"] == 1.0  # dark and light: k-means on pixels splits them


def test_table_baselines_see_standardised_columns_and_bad_settings_are_one_line(tmp_path, capsys):
    """k-means on a table's raw columns, whose scales differ by 1000×, was a straw man beside
    an autoencoder that standardises them; --max-iter 0 printed an 'IDEC' row that refined
    nothing; --hidden , built a linear model; k above the distinct codes left empty clusters."""
    from aekit.apps.cluster import flat_pixels

    x, y = blobs(150)
    x = x * np.array([1000.0, 1.0, 0.01][: x.shape[1]] + [1.0] * max(0, x.shape[1] - 3))
    data = ArrayData(x.astype(np.float32), y, name="t")
    z = flat_pixels(data, standardize=True)
    np.testing.assert_allclose(z.std(0), 1, rtol=1e-4)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
    np.save(tmp_path / "same.npy", np.ones((20, 4), np.float32))
    for argv, needle in ((["--data", "digits", "--k", "3", "--method", "dec", "--max-iter", "0"],
                          "--max-iter must be ≥ 1"),
                         (["--data", "digits", "--k", "3", "--hidden", ","], "at least one width"),
                         (["--data", str(tmp_path / "same.npy"), "--k", "3", "--epochs", "1",
                           "--hidden", "8", "--latent-dim", "2"], "distinct codes")):
        try:
            code = main(["cluster", *argv])
        except SystemExit as e:  # argparse's own refusal (a bad --hidden)
            code = e.code
        err = capsys.readouterr().err
        assert code == 2 and needle in err and err.count("\n") == 1, err


def test_a_dec_model_keeps_its_centroids_and_assigns_new_data_to_them(tmp_path, capsys):
    """--out after --method dec saved the refined encoder but not the centroids: reloaded,
    the clustering could not be applied again (k-means on its codes permuted the ids)."""
    x, y = blobs(200)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    common = ["--data", str(tmp_path / "d.npz"), "--k", "3", "--method", "dec", "--json",
              "--device", "cpu"]
    assert main(["cluster", *common, "--hidden", "32", "--latent-dim", "3", "--epochs", "10",
                 "--max-iter", "50", "--out", str(tmp_path / "m"),
                 "--assignments", str(tmp_path / "a.npy")]) == 0
    capsys.readouterr()
    assert main(["cluster", *common, "--model", str(tmp_path / "m"),
                 "--assignments", str(tmp_path / "b.npy")]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["results"][-1]["method"] == "IDEC (saved centroids) on AE codes"
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    assert main(["cluster", *common[:2], "--k", "4", "--method", "dec",
                 "--model", str(tmp_path / "m")]) == 2
    assert "holds 3 clusters, not --k 4" in capsys.readouterr().err
    # a few new samples (fewer than k, or fewer distinct) are assigned as well: no clustering
    # runs, so the k-means limits do not apply (they refused it)
    np.save(tmp_path / "few.npy", np.concatenate([x[:2], x[:2]]))
    assert main(["cluster", "--data", str(tmp_path / "few.npy"), *common[2:], "--model",
                 str(tmp_path / "m"), "--epochs", "3"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["cluster_sizes"] and "ignored with --model" in out.err
    assert "no baselines" in out.err


def test_dec_refines_small_data_before_the_tolerance_may_stop_it():
    """On data of one batch or less the target is updated every step: DEC stopped after 1–2
    steps with the k-means start unchanged."""
    from aekit.clustering import MIN_STEPS

    x, _ = blobs(150)
    model = create_model("deep", (20,), 3, arch_options={"hidden": [32]},
                         normalization="standard")
    fit(model, x, epochs=5, progress=False, patience=None, val_fraction=0)
    res = dec(model, x, 3, device="cpu")
    assert res.iterations >= MIN_STEPS


def test_labels_and_paths_are_checked_before_training(tmp_path, capsys):
    x, y = blobs(60)
    quick = ["--k", "3", "--hidden", "8", "--latent-dim", "2", "--epochs", "1", "--no-baselines",
             "--device", "cpu"]
    (tmp_path / "afile").write_text("")
    np.savez(tmp_path / "d.npz", x=x, y=y)
    cases = [(["--assignments", str(tmp_path / "afile" / "a.npy"), "--out", str(tmp_path / "m")],
              "is a file, not a folder")]
    for name, labels, needle in (("nan", np.where(np.arange(60) == 3, np.nan, y), "sample 3"),
                                 ("onehot", np.eye(3)[y], "one-hot")):
        np.savez(tmp_path / f"{name}.npz", x=x, y=labels)
        cases.append((["--data", str(tmp_path / f"{name}.npz")], needle))
    for argv, needle in cases:
        data = [] if "--data" in argv else ["--data", str(tmp_path / "d.npz")]
        assert main(["cluster", *data, *quick, *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "m").exists()  # refused before the model was trained and saved
    with pytest.raises(SystemExit):  # (scikit-learn's random_state refused it after training)
        main(["cluster", "--data", str(tmp_path / "d.npz"), *quick, "--seed", str(2**32)])
    assert "from 0 to 4294967295" in capsys.readouterr().err
