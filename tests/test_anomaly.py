import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import aekit
from aekit.cli import main
from aekit.detectors import (
    AutoencoderOutlierDetector,
    sliding_windows,
    tie_aware_threshold,
    window_scores_to_points,
    window_starts,
)
from aekit.errors import AekitError, DataError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def low_rank(n, seed=0, d=16, r=3):
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).normal(size=(r, d))
    return (rng.normal(size=(n, r)) @ basis + 0.05 * rng.normal(size=(n, d))).astype(np.float32)


def small(**kw):
    kw = {"latent_dim": 3, "epochs": 40, "model_options": {"arch_options": {"hidden": [32]}},
          **kw}
    return AutoencoderOutlierDetector(**kw)


def test_pyod_api_and_injected_outliers_rank_above_inliers(tmp_path):
    x = low_rank(400)
    rng = np.random.default_rng(1)
    outliers = rng.normal(0, 3, (20, 16)).astype(np.float32)  # off the inliers' subspace
    train = np.concatenate([x, outliers])
    det = small(contamination=0.05).fit(train)
    assert aekit.AutoencoderOutlierDetector is AutoencoderOutlierDetector
    assert det.decision_scores_.shape == (420,) and det.labels_.shape == (420,)
    assert set(np.unique(det.labels_)) <= {0, 1}
    assert det.labels_.mean() == pytest.approx(0.05, abs=0.01)
    truth = np.r_[np.zeros(400), np.ones(20)]
    assert roc_auc_score(truth, det.decision_scores_) > 0.95
    assert det.labels_[400:].mean() > 0.8  # the threshold catches the injected ones
    # new data: same ranking through decision_function / predict / predict_proba
    test = np.concatenate([low_rank(50, seed=2), rng.normal(0, 3, (5, 16)).astype(np.float32)])
    s = det.decision_function(test)
    assert roc_auc_score(np.r_[np.zeros(50), np.ones(5)], s) > 0.95
    np.testing.assert_array_equal(det.predict(test), (s > det.threshold_).astype(int))
    proba = det.predict_proba(test)
    assert proba.shape == (55, 2) and np.allclose(proba.sum(1), 1)
    assert np.all((0 <= det.predict_proba(test, "unify")) & (det.predict_proba(test, "unify") <= 1))
    np.testing.assert_allclose(det.score_samples(test), -s)
    # save / load keeps the threshold and the scores
    det.save(tmp_path / "det")
    back = AutoencoderOutlierDetector.load(tmp_path / "det")
    assert back.threshold_ == det.threshold_
    np.testing.assert_allclose(back.decision_function(test), s, rtol=1e-5)


def test_get_params_and_bad_params():
    det = AutoencoderOutlierDetector(contamination=0.2, window=5)
    assert det.get_params()["contamination"] == 0.2 and det.get_params()["window"] == 5
    with pytest.raises(AekitError, match="contamination"):
        AutoencoderOutlierDetector(contamination=0.9).fit(low_rank(20))
    with pytest.raises(DataError, match="1-D"):
        AutoencoderOutlierDetector().fit(np.zeros(30))


def test_sliding_windows_and_point_scores():
    s = np.arange(10, dtype=np.float32)
    w = sliding_windows(s, 4, stride=2)
    np.testing.assert_array_equal(w, [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]])
    multi = sliding_windows(np.stack([s, -s], 1), 3)
    assert multi.shape == (8, 6) and multi[0].tolist() == [0, -0, 1, -1, 2, -2]
    pts = window_scores_to_points(np.array([1.0, 5.0, 2.0, 0.0]), 10, 4, 2)
    assert pts.tolist() == [1, 1, 5, 5, 5, 5, 2, 2, 0, 0]
    with pytest.raises(DataError):
        sliding_windows(s, 20)


def test_time_series_windows_flag_an_injected_glitch():
    t = np.arange(3000)
    series = np.sin(2 * np.pi * t / 50).astype(np.float32)
    series[2000:2010] += 2.0  # a glitch
    det = small(window=50, stride=5, latent_dim=4, epochs=30).fit(series)
    pts = window_scores_to_points(det.decision_scores_, len(series), 50, 5)
    assert 1960 <= int(np.nanargmax(pts)) <= 2060


def test_images_unseen_kind_scores_higher():
    from aekit.data import resolve

    digits = resolve("digits")
    x = digits.all().numpy()
    zeros = x[digits.labels() == 0]
    others = x[digits.labels() == 1]
    det = small(latent_dim=4, epochs=60).fit(zeros[:150])
    s = det.decision_function(np.concatenate([zeros[150:], others]))
    assert roc_auc_score(np.r_[np.zeros(len(zeros) - 150), np.ones(len(others))], s) > 0.9


def test_anomaly_cli_fit_and_score(tmp_path, capsys):
    x = low_rank(300)
    test = np.concatenate([low_rank(60, seed=3), np.random.default_rng(4).normal(0, 3, (6, 16))])
    header = ",".join([f"f{i}" for i in range(16)] + ["label"])
    rows = [",".join(f"{v:.5f}" for v in r) + f",{int(i >= 60)}" for i, r in enumerate(test)]
    (tmp_path / "test.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    np.save(tmp_path / "train.npy", x)
    assert main(["anomaly", "fit", "--data", str(tmp_path / "train.npy"), "--out",
                 str(tmp_path / "det"), "--latent-dim", "3", "--epochs", "30", "--json"]) == 0
    fitted = json.loads(capsys.readouterr().out)
    assert fitted["samples"] == 300 and fitted["threshold"] > 0
    assert main(["anomaly", "score", "--model", str(tmp_path / "det"), "--data",
                 str(tmp_path / "test.csv"), "--normal-label", "0", "--scores",
                 str(tmp_path / "s.csv"), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["roc_auc"] > 0.95 and scored["samples"] == 66
    assert (tmp_path / "s.csv").read_text().startswith("index,score,outlier\n")
    assert main(["anomaly", "score", "--model", str(tmp_path / "det"), "--data",  # labels as numbers
                 str(tmp_path / "test.csv"), "--normal-label", "0.0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["roc_auc"] == scored["roc_auc"]
    assert main(["anomaly", "score", "--model", str(tmp_path / "train.npy"), "--data", "x"]) == 2
    capsys.readouterr()
    for argv, needle in ((["--normal-label", "7"], "--normal-label 7 is not among the labels (0, 1)"),
                         (["--top", "-2"], "--top must be 0 or more")):
        assert main(["anomaly", "score", "--model", str(tmp_path / "det"), "--data",
                     str(tmp_path / "test.csv"), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err



def test_cli_score_uses_the_scale_fixed_at_fit(tmp_path, capsys):
    # image-shaped data outside [0, 1]: `anomaly score` took the scored file's own scale guess
    x = np.random.default_rng(0).normal(0, 1, (400, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["anomaly", "fit", "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "d"),
                 "--epochs", "3", "--json"]) == 0
    fitted = json.loads(capsys.readouterr().out)
    assert main(["anomaly", "score", "--model", str(tmp_path / "d"), "--data",
                 str(tmp_path / "x.npy"), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["flagged"] == fitted["flagged"]  # its own training data, the same flags
    det = AutoencoderOutlierDetector.load(tmp_path / "d")
    assert int((det.decision_function(x) > det.threshold_).sum()) == scored["flagged"]


def test_seed_fixes_the_fit_and_leaves_the_global_generator_alone():
    import torch

    X = low_rank(80)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = small(epochs=3, seed=np.int64(5)).fit(X)
    after = torch.rand(1)
    b = small(epochs=3, seed=5).fit(X)
    np.testing.assert_array_equal(a.decision_scores_, b.decision_scores_)
    assert a.threshold_ == b.threshold_ and torch.equal(before, after)


def test_image_scale_is_fixed_at_fit_and_kept_by_save(tmp_path):
    rng = np.random.default_rng(0)
    J = (rng.random((60, 8, 8)) * 255).astype(np.float32)  # float images in [0, 255]
    det = small(epochs=3).fit(J)
    dark = J[:1] / 300  # max < 1: guessed alone, it would not be divided by 255
    alone = det.decision_function(dark)[0]
    assert det.decision_function(np.concatenate([dark, J[:1]]))[0] == pytest.approx(alone)
    det.save(tmp_path / "d")
    back = AutoencoderOutlierDetector.load(tmp_path / "d")
    assert back.decision_function(dark)[0] == pytest.approx(alone)
    # image-shaped data outside [0, 1] is standardised: a sigmoid output could not fit it
    S = rng.normal(size=(60, 8, 8)).astype(np.float32) * 3
    d2 = small(epochs=3).fit(S)
    assert d2.model_.config.normalization == "standard"
    assert d2.decision_scores_.std() > 0.1 * d2.decision_scores_.mean()


@pytest.mark.parametrize("bad", [{"contamination": "auto"}, {"latent_dim": "2"},
                                 {"epochs": 2.5}])
def test_parameters_of_the_wrong_type_are_one_clear_error(bad):
    with pytest.raises(AekitError, match=next(iter(bad))):
        AutoencoderOutlierDetector(**bad).fit(low_rank(20))


class _Frame:
    """The two things a pandas DataFrame offers the detector (pandas is not a dependency)."""

    def __init__(self, x, columns):
        self.x, self.columns = x, columns

    def to_numpy(self, dtype=None, na_value=None):
        return np.asarray(self.x, dtype=dtype)


def test_frames_sparse_and_column_order(tmp_path):
    import scipy.sparse as sp

    X = low_rank(60, d=4)
    det = small(epochs=2).fit(_Frame(X, list("abcd")))
    assert list(det.feature_names_in_) == list("abcd")
    with pytest.raises(DataError, match="columns"):
        det.decision_function(_Frame(X[:, ::-1], list("dcba")))
    det.save(tmp_path / "d")
    with pytest.raises(DataError, match="columns"):
        AutoencoderOutlierDetector.load(tmp_path / "d").decision_function(_Frame(X, list("badc")))
    np.testing.assert_allclose(det.decision_function(sp.csr_matrix(X)), det.decision_function(X))
    with_na = X.copy()
    with_na[3, 1] = np.nan  # a nullable Float64 column with NA comes out as NaN
    with pytest.raises(DataError, match="NaN"):
        small(epochs=1).fit(_Frame(with_na, list("abcd")))


def test_cli_score_of_an_image_folder_names_the_files(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(tmp_path / f"p{i:02d}.png")
    assert main(["anomaly", "fit", "--data", str(tmp_path), "--image-size", "8x8", "--channels",
                 "1", "--epochs", "2", "--out", str(tmp_path / "det")]) == 0
    capsys.readouterr()
    assert main(["anomaly", "score", "--model", str(tmp_path / "det"), "--data", str(tmp_path),
                 "--top", "3", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["top"]
    assert [r["file"] for r in top] == [str(tmp_path / f"p{r['index']:02d}.png") for r in top]


def test_image_dtype_is_honoured_when_scoring():
    # 8-bit images are exact by their dtype; floats given to a detector fitted on 8-bit
    # images are ambiguous ([0, 1] or [0, 255]?) and were scored /255 again, silently
    x8 = (np.random.default_rng(0).random((120, 8, 8)) * 255).astype(np.uint8)
    xf = x8.astype(np.float32) / 255
    on_floats = AutoencoderOutlierDetector(epochs=2, seed=0).fit(xf)
    np.testing.assert_allclose(on_floats.decision_function(x8), on_floats.decision_function(xf),
                               rtol=1e-5, atol=1e-7)
    on_bytes = AutoencoderOutlierDetector(epochs=2, seed=0).fit(x8)
    with pytest.raises(DataError, match="integer"):
        on_bytes.decision_function(xf)


def test_parameter_errors_are_value_errors_and_empty_x_is_named():
    with pytest.raises(ValueError, match="contamination"):  # as scikit-learn's would be
        AutoencoderOutlierDetector(contamination=0.7).fit(low_rank(20))
    det = small(epochs=2).fit(low_rank(60))
    with pytest.raises(DataError, match="0 samples"):
        det.decision_function(np.zeros((0, 16), np.float32))
    with pytest.raises(DataError, match="X has 1 sample; a detector needs at least 2"):
        small(epochs=2).fit(low_rank(1))  # (a threshold from one score: it fitted, exit 0)
    with pytest.raises(ValueError, match="latent_dim=16 must be smaller than the 16 features"):
        AutoencoderOutlierDetector(latent_dim=16, epochs=1).fit(low_rank(30))


def test_a_damaged_saved_detector_is_one_model_file_error(tmp_path):
    from aekit.errors import ModelFileError

    small(epochs=2).fit(low_rank(60)).save(tmp_path / "d")
    meta = json.loads((tmp_path / "d" / "config.json").read_text())
    meta["config"]["extra"]["detector"]["threshold"] = "x"
    (tmp_path / "d" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="state is damaged"):
        AutoencoderOutlierDetector.load(tmp_path / "d")


def test_presets_that_cannot_score_values_beyond_float32_and_damaged_state(tmp_path):
    """A bag-of-words or codec preset is refused (ValueError, as the transformer does);
    float64 values beyond float32's range are named as such, not as 'NaN or infinite';
    a saved NaN threshold or short score statistics are a damaged file, not silent zeros."""
    from aekit.errors import ModelFileError, ParameterError

    for preset in ("topic", "doc-hash", "codec", "restore", "nope"):
        with pytest.raises(ParameterError, match="preset must be one of"):
            AutoencoderOutlierDetector(preset=preset, epochs=1).fit(low_rank(20))
    big = low_rank(20).astype(np.float64)
    big[4, 2] = 1e300
    with pytest.raises(DataError, match="sample 4 .* beyond float32's range"):
        small(epochs=1).fit(big)
    small(epochs=2).fit(low_rank(60)).save(tmp_path / "d")
    meta = json.loads((tmp_path / "d" / "config.json").read_text())
    for key, value in (("threshold", float("nan")), ("score_stats", [1.0])):
        bad = json.loads(json.dumps(meta))
        bad["config"]["extra"]["detector"][key] = value
        (tmp_path / "d" / "config.json").write_text(json.dumps(bad))
        with pytest.raises(ModelFileError, match="state is damaged"):
            AutoencoderOutlierDetector.load(tmp_path / "d")
    # a file where the folder would go: one clear error, not FileExistsError
    (tmp_path / "f").write_text("x")
    with pytest.raises(AekitError, match="a file stands where its folder would go"):
        small(epochs=1).fit(low_rank(20)).save(tmp_path / "f")
    assert AutoencoderOutlierDetector().__sklearn_tags__().input_tags.sparse


def test_a_threshold_set_on_the_held_out_share(tmp_path, capsys):
    """threshold_on="held-out": the quantile of the scores of the samples training kept
    aside (fit()'s own split), which new data resembles more than the fitted samples. It
    needs 20 held-out samples, and the choice is saved."""
    from aekit.errors import ParameterError
    from aekit.training import split_indices

    X = low_rank(200)
    det = small(epochs=30, threshold_on="held-out").fit(X)
    held = split_indices(200, det.val_fraction, det.seed)[1]
    assert len(held) == 20
    assert det.threshold_ == pytest.approx(np.quantile(det.decision_scores_[held], 0.9))
    plain = small(epochs=30).fit(X)  # the same training: only the threshold's samples differ
    np.testing.assert_array_equal(det.decision_scores_, plain.decision_scores_)
    assert plain.threshold_ == pytest.approx(np.quantile(plain.decision_scores_, 0.9))
    np.testing.assert_array_equal(det.labels_, det.decision_scores_ > det.threshold_)
    det.save(tmp_path / "d")
    assert AutoencoderOutlierDetector.load(tmp_path / "d").threshold_on == "held-out"
    with pytest.raises(ParameterError, match="at least 20 held-out samples .* 150 samples "
                                             "with a held-out share of 0.1 give 15"):
        small(threshold_on="held-out").fit(low_rank(150))
    with pytest.raises(ParameterError, match="threshold_on must be one of train, held-out"):
        small(threshold_on="test").fit(X)
    np.save(tmp_path / "x.npy", X)
    assert main(["anomaly", "fit", "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "c"),
                 "--epochs", "3", "--threshold-on", "held-out"]) == 0
    assert "(set on the held-out share)" in capsys.readouterr().out


def test_a_bad_threshold_on_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "x.npy", low_rank(60))
    with pytest.raises(SystemExit) as e:  # refused by the parser, before any training
        main(["anomaly", "fit", "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "d"),
              "--epochs", "1", "--threshold-on", "test"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "invalid choice: 'test'" in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()


def test_strided_windows_cover_the_last_steps_and_scores_must_match_them():
    s = np.arange(10, dtype=np.float32)
    assert window_starts(10, 4, 4).tolist() == [0, 4, 6]  # one more window ends on step 9
    np.testing.assert_array_equal(sliding_windows(s, 4, stride=4)[-1], [6, 7, 8, 9])
    pts = window_scores_to_points(np.array([1.0, 3.0, 2.0]), 10, 4, 4)
    assert pts.tolist() == [1, 1, 1, 1, 3, 3, 3, 3, 2, 2]  # every step scored, none NaN
    gaps = window_scores_to_points(np.array([1.0, 2.0, 3.0]), 10, 3, 4)  # stride > window
    assert np.isnan(gaps[3]) and gaps[[0, 4, 9]].tolist() == [1, 2, 3]
    for bad in ((np.ones(2), 10, 4, 4), (np.ones(3), 10, 0, 1), (np.ones(3), 10, 4, 2.5)):
        with pytest.raises(DataError):
            window_scores_to_points(*bad)


def test_a_series_names_its_bad_time_step_and_counts_its_channels_as_features():
    series = np.stack([np.sin(np.arange(400) / 5), np.cos(np.arange(400) / 5)], 1).astype(np.float32)
    det = small(window=20, stride=7, latent_dim=4, epochs=2).fit(series)
    assert det.n_features_in_ == 2  # the columns given to fit, not the window's 40 values
    assert len(det.decision_scores_) == len(window_starts(400, 20, 7))
    bad = series.copy()
    bad[123, 1] = np.nan
    with pytest.raises(DataError, match="123"):
        det.decision_function(bad)
    with pytest.raises(DataError, match="complex"):
        det.decision_function(series.astype(np.complex64))
    as_objects = det.decision_function(series.astype(object))  # numbers held as objects
    np.testing.assert_allclose(as_objects, det.decision_function(series), rtol=1e-6)


def test_tied_top_scores_are_flagged_together_and_probabilities_agree_with_predict():
    tied_top = np.r_[np.linspace(0, 1, 80), np.full(20, 5.0)]  # 20 % share one top score
    t = tie_aware_threshold(tied_top, 0.1)
    assert int((tied_top > t).sum()) == 20  # not 0: a threshold equal to them flagged none
    zeros = np.r_[np.zeros(95), np.linspace(1, 2, 5)]  # a tied bulk below the quantile
    assert int((zeros > tie_aware_threshold(zeros, 0.1)).sum()) == 5  # not all 100
    assert int((np.ones(50) > tie_aware_threshold(np.ones(50), 0.1)).sum()) == 0
    x = low_rank(300)
    det = small(epochs=20).fit(x)
    new = np.concatenate([low_rank(100, seed=5), np.random.default_rng(6).normal(0, 3, (10, 16))])
    proba = det.predict_proba(new)
    np.testing.assert_array_equal(proba.argmax(1), det.predict(new))
    tiny = small(epochs=2).fit(x * 1e-7)  # scores ~1e-14: the scale is relative, not floored
    top = tiny.predict_proba(x * 1e-7)[tiny.decision_scores_.argmax(), 1]
    assert top == pytest.approx(1.0)
    assert np.all(np.diff(proba[np.argsort(det.decision_function(new)), 1]) >= 0)  # monotone


def test_cli_names_a_windows_steps(tmp_path, capsys):
    t = np.arange(1000)
    series = np.sin(2 * np.pi * t / 40).astype(np.float32)
    series[997:] += 3.0  # a glitch in the last steps, which stride 25 alone never reached
    np.save(tmp_path / "s.npy", series)
    assert main(["anomaly", "fit", "--data", str(tmp_path / "s.npy"), "--out", str(tmp_path / "d"),
                 "--window", "40", "--stride", "25", "--latent-dim", "4", "--epochs", "40",
                 "--no-progress", "--json"]) == 0
    capsys.readouterr()
    assert main(["anomaly", "score", "--model", str(tmp_path / "d"), "--data",
                 str(tmp_path / "s.npy"), "--top", "1", "--scores", str(tmp_path / "w.csv"),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["top"] == [{"first_step": 960, "last_step": 999, "score": out["top"][0]["score"]}]
    assert not np.isnan(out["point_scores"]).any()
    assert (tmp_path / "w.csv").read_text().splitlines()[-1].startswith("960,")


def test_normal_label_compares_numbers_as_numbers_and_nan_as_nan():
    from aekit.apps.anomaly import ranking_scores

    scores = np.r_[np.zeros(5), np.ones(5)]
    for labels, normal in ((np.r_[np.ones(5), np.full(5, 2.0)], "1"),  # a CSV's 1.0
                           (np.array(["nan"] * 5 + ["x"] * 5, dtype=object), "nan"),
                           (np.r_[np.full(5, np.nan), np.ones(5)], "nan")):
        assert ranking_scores(scores, labels, normal)["roc_auc"] == 1.0
