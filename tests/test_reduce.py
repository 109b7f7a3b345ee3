"""Dimensionality reduction: the scikit-learn estimator, `aekit compare-pca`, `aekit report`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import aekit
from aekit.cli import main
from aekit.estimators import AutoencoderTransformer
from aekit.models import create_model


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return (d.data / 16.0).astype(np.float64), d.target


# ------------------------------------------------------------------------ the estimator
@parametrize_with_checks([AutoencoderTransformer(max_epochs=2, random_state=0)],
                         expected_failed_checks=lambda est: est._xfail_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_skip_list_is_short_and_reasoned():
    xfail = AutoencoderTransformer._xfail_checks
    assert len(xfail) <= 3
    assert all(isinstance(reason, str) and len(reason) > 10 for reason in xfail.values())


def test_lazy_top_level_import():
    assert aekit.AutoencoderTransformer is AutoencoderTransformer


def test_pipeline_with_logistic_regression(digits):
    X, y = digits
    pipe = Pipeline([("ae", AutoencoderTransformer(12, preset="vanilla", max_epochs=10,
                                                  random_state=0)),
                     ("clf", LogisticRegression(max_iter=500))])
    pipe.fit(X[:1200], y[:1200])
    pred = pipe.predict(X[1200:])
    assert pred.shape == (len(X) - 1200,)
    assert (pred == y[1200:]).mean() > 0.6  # an 8-d code keeps most of what tells digits apart


def test_grid_search_over_n_components(digits):
    X, y = digits
    pipe = Pipeline([("ae", AutoencoderTransformer(preset="vanilla", max_epochs=3, random_state=0)),
                     ("clf", LogisticRegression(max_iter=200))])
    gs = GridSearchCV(pipe, {"ae__n_components": [2, 6]}, cv=2).fit(X[:400], y[:400])
    assert gs.best_params_["ae__n_components"] in (2, 6)
    assert len(gs.cv_results_["mean_test_score"]) == 2


def test_clone_is_unfitted(digits):
    X, _ = digits
    est = AutoencoderTransformer(3, preset="vanilla", max_epochs=2, random_state=0).fit(X[:200])
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "model_")
    with pytest.raises(NotFittedError):
        copy.transform(X[:5])


def test_transform_inverse_score_and_feature_names(digits):
    X, _ = digits
    est = AutoencoderTransformer(4, preset="vanilla", max_epochs=5, random_state=0).fit(X[:300])
    Z = est.transform(X[:10])
    assert Z.shape == (10, 4) and Z.dtype == np.float64
    assert est.inverse_transform(Z).shape == (10, 64)
    s = est.score_samples(X[:10])
    rec = est.inverse_transform(Z)
    np.testing.assert_allclose(-s, ((rec - X[:10]) ** 2).sum(1), rtol=1e-4)
    assert est.score(X[:10]) == pytest.approx(s.mean())
    assert list(est.get_feature_names_out()) == [f"autoencodertransformer{i}" for i in range(4)]
    assert est.transform(X[:10].astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("shape,preset", [((60, 8, 8), "conv"), ((60, 1, 8, 8), "conv"),
                                          ((60, 3, 8, 8), "deep")])
def test_image_arrays(shape, preset):
    rng = np.random.default_rng(0)
    X = rng.random(shape, dtype=np.float32)
    est = AutoencoderTransformer(3, preset=preset, max_epochs=2, random_state=0).fit(X)
    assert est.model_.config.normalization == "unit"  # images in [0, 1] keep their range
    Z = est.transform(X)
    assert Z.shape == (60, 3)
    rec = est.inverse_transform(Z)
    assert rec.shape == shape and rec.min() >= 0 and rec.max() <= 1
    with pytest.raises(ValueError, match="features|shape"):
        est.transform(rng.random((5, 9, 9)))
    with pytest.raises(ValueError, match="shape"):
        est.transform(rng.random((5, *shape[1:-1], 9)))


def test_save_and_load_round_trip(tmp_path, digits):
    X, _ = digits
    est = AutoencoderTransformer(5, preset="deep", max_epochs=3, random_state=0).fit(X[:300])
    est.save(tmp_path / "ae")
    assert sorted(p.name for p in (tmp_path / "ae").iterdir()) == ["config.json", "model.safetensors"]
    back = AutoencoderTransformer.load(tmp_path / "ae")
    assert back.get_params() == est.get_params()
    np.testing.assert_array_equal(back.transform(X[300:320]), est.transform(X[300:320]))
    assert back.n_features_in_ == 64 and back.n_iter_ == est.n_iter_
    # a plain model directory is not an estimator
    create_model("vanilla", (64,), 4).save_pretrained(tmp_path / "plain")
    with pytest.raises(aekit.AekitError, match="AutoencoderTransformer"):
        AutoencoderTransformer.load(tmp_path / "plain")


def test_numpy_parameters_save_and_a_failed_save_writes_nothing(tmp_path, digits):
    X, _ = digits
    d = tmp_path / "ae"
    # a grid built with np.arange hands out np.int64 / np.float32 parameters
    est = AutoencoderTransformer(np.int64(3), preset="vanilla", max_epochs=1,
                                 learning_rate=np.float32(1e-3)).fit(X[:100])
    est.feature_names_in_ = np.asarray([f"px{i}" for i in range(64)], dtype=object)
    est.save(d)
    back = AutoencoderTransformer.load(d)
    assert back.n_components == 3 and list(back.feature_names_in_) == [f"px{i}" for i in range(64)]
    est.model_.config.extra["bad"] = object()  # cannot be written as JSON
    with pytest.raises(aekit.AekitError, match="JSON"):
        est.model_.save_pretrained(tmp_path / "other")
    assert not (tmp_path / "other").exists()  # nothing written, not weights without a config


def test_model_options_that_build_nothing_are_one_value_error():
    with pytest.raises(ValueError, match="does not build a model"):
        AutoencoderTransformer(2, model_options={"arch_options": {"hidden": "x"}},
                               max_epochs=1).fit(np.random.rand(20, 6))


@pytest.mark.parametrize("preset", ["codec", "restore", "topic", "doc-hash"])
def test_presets_whose_code_is_not_a_feature_vector_are_refused(preset):
    with pytest.raises(ValueError, match="preset"):
        AutoencoderTransformer(4, preset=preset, max_epochs=1).fit(np.random.rand(20, 16, 16))


def test_repeatable_with_random_state(digits):
    X, _ = digits
    a = AutoencoderTransformer(2, preset="vanilla", max_epochs=2, random_state=3).fit(X[:200])
    b = AutoencoderTransformer(2, preset="vanilla", max_epochs=2, random_state=3).fit(X[:200])
    np.testing.assert_array_equal(a.transform(X[:20]), b.transform(X[:20]))


@pytest.mark.parametrize("bad,match", [
    (np.arange(10.0), "2D array"),
    (np.array([[0.0, np.nan], [1.0, 2.0]]), "NaN"),
])
def test_bad_input_gives_sklearn_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        AutoencoderTransformer(1, max_epochs=1).fit(bad)


def test_n_components_larger_than_input():
    with pytest.raises(ValueError, match="n_components=5 must be between 1 and n_features=3"):
        AutoencoderTransformer(5, max_epochs=1).fit(np.random.default_rng(0).random((20, 3)))


def test_conv_preset_needs_images():
    with pytest.raises(ValueError, match="needs image input"):
        AutoencoderTransformer(2, preset="conv", max_epochs=1).fit(np.ones((20, 16)))


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="preset"):
        AutoencoderTransformer(preset="nope").fit(np.ones((20, 4)))
    with pytest.raises(ValueError, match="n_components"):
        AutoencoderTransformer(0).fit(np.ones((20, 4)))


# ----------------------------------------------------------------------------- compare-pca
def test_compare_pca_on_digits_beats_pca_at_small_codes(capsys, tmp_path):
    out = tmp_path / "cmp"
    code, stdout, _ = run_cli(capsys, "compare-pca", "--data", "digits", "--latent-dims", "2,3",
                              "--presets", "deep", "--epochs", "10", "--device", "cpu",
                              "--out", str(out), "--json")
    assert code == 0
    obj = json.loads(stdout)
    rows = {(r["method"], r["latent_dim"]): r for r in obj["rows"]}
    assert set(rows) == {(m, k) for m in ("pca", "deep") for k in (2, 3)}
    for r in obj["rows"]:
        assert r["sse_per_image"] > 0 and 0 < r["explained_variance"] < 1
        assert r["psnr"] == pytest.approx(10 * np.log10(1 / r["mse"]))
    # the non-linear code keeps more of a digit than the best linear projection
    assert rows[("deep", 2)]["sse_per_image"] < 0.9 * rows[("pca", 2)]["sse_per_image"]
    assert rows[("deep", 2)]["ratio_to_pca"] < 0.9
    assert set(obj["figures"]) == {"error_vs_code_size", "reconstructions", "codes_2d"}
    for path in obj["figures"].values():
        with Image.open(path) as im:
            im.verify()
        assert 1_000 < (tmp_path / "cmp" / path.split("/")[-1]).stat().st_size < 1_000_000


def test_compare_pca_table_text_and_tabular_csv(capsys, tmp_path):
    rng = np.random.default_rng(0)
    t = rng.normal(size=(300, 2))
    x = np.c_[t, np.sin(t[:, :1] * 2), t[:, 1:] ** 2, t.sum(1, keepdims=True)] + 0.01 * rng.normal(size=(300, 5))
    csv = tmp_path / "table.csv"
    lines = ["a,b,c,d,e,label"] + [",".join(f"{v:.5f}" for v in row) + f",{int(row[0] > 0)}"
                                   for row in x]
    csv.write_text("\n".join(lines) + "\n")
    code, stdout, _ = run_cli(capsys, "compare-pca", "--data", str(csv), "--latent-dims", "1,2",
                              "--presets", "vanilla,conv", "--epochs", "3", "--out",
                              str(tmp_path / "o"))
    assert code == 0
    assert "sse_per_image" in stdout and "explained_variance" in stdout and "psnr" not in stdout
    assert re.search(r"^pca\s+1\s", stdout, re.MULTILINE) and re.search(r"^vanilla\s+2\s", stdout, re.MULTILINE)
    assert "conv: skipped, it needs image data" in stdout
    assert (tmp_path / "o" / "error_vs_code_size.png").is_file()
    assert (tmp_path / "o" / "codes_2d.png").is_file()
    assert not (tmp_path / "o" / "reconstructions.png").exists()  # no pictures of table rows


def test_compare_pca_scores_a_table_in_the_units_both_sides_fit(capsys, tmp_path):
    """PCA was fitted and everything scored in raw units while the autoencoders standardise
    their input: one wide column was all of the error, and the autoencoders read ~1000×
    worse than PCA (wine)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 6))
    x[:, 0] = rng.normal(size=300) * 1000  # a wide, independent column
    np.save(tmp_path / "t.npy", x.astype(np.float32))
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "reconstructions.png").write_bytes(b"an earlier run's")
    code, stdout, _ = run_cli(capsys, "compare-pca", "--data", str(tmp_path / "t.npy"),
                              "--latent-dims", "2", "--presets", "vanilla", "--epochs", "30",
                              "--json", "--out", str(tmp_path / "o"))
    rows = {r["method"]: r for r in json.loads(stdout)["rows"]}
    assert code == 0 and rows["vanilla"]["ratio_to_pca"] < 10, rows  # (raw units: ~10⁴)
    # (an earlier comparison's figures in a reused --out are not left to pass for this one's)
    assert 0 < rows["pca"]["explained_variance"] < 0.8  # of the standardised columns
    assert not (tmp_path / "o" / "reconstructions.png").exists()


def test_report_reads_a_run_with_a_label_column(capsys, tmp_path):
    rng = np.random.default_rng(0)
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,c,kind\n" + "\n".join(f"{a:.3f},{b:.3f},{a + b:.3f},{int(a > 0)}"
                                               for a, b in rng.normal(size=(80, 2))))
    run = tmp_path / "run"
    assert main(["train", "--data", str(csv), "--label-col", "kind", "--latent-dim", "2",
                 "--epochs", "2", "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["report", str(run)]) == 0, capsys.readouterr().err  # (read 'kind' as a feature)
    assert (run / "report.html").is_file()


@pytest.mark.parametrize("argv,match", [
    (["--latent-dims", "2,x"], "integers"),
    (["--latent-dims", "0"], "positive"),
    (["--presets", "deep,nope"], "preset"),
    (["--data", "no/such/file.npy"], "no such file"),
])
def test_compare_pca_bad_arguments(capsys, tmp_path, argv, match):
    code, _, err = run_cli(capsys, "compare-pca", "--out", str(tmp_path), *argv)
    assert code == 2
    assert err.startswith("aekit: error:") and match in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------- report
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "deep-digits"
    assert main(["train", "--data", "digits", "--preset", "deep", "--latent-dim", "6",
                 "--epochs", "4", "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    return out


SECTION_IDS = ["loss", "reconstructions", "codes", "activations", "metrics", "config"]


def test_report_is_one_self_contained_file(capsys, run_dir):
    code, stdout, _ = run_cli(capsys, "report", str(run_dir), "--json")
    assert code == 0
    path = json.loads(stdout)["out"]
    with open(path, encoding="utf-8") as f:
        page = f.read()
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in page
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(imgs) == 4 and all(s.startswith("data:image/png;base64,") for s in imgs)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from anywhere
    assert "never positive" in page and '"preset": "deep"' in page and "held-out sse_per_image" in page


def test_activation_statistics_find_dead_units():
    from aekit.report.run_report import activation_statistics

    model = create_model("deep", (16,), 2, arch_options={"hidden": [8], "act": "relu"})
    with torch.no_grad():
        model.encoder.linear1.bias[:4] = -1e3  # half of the first layer can never fire
    stats = {r["layer"]: r for r in activation_statistics(model, torch.rand(64, 16))}
    assert stats["encoder.act1"]["dead_fraction"] == pytest.approx(0.5)
    assert stats["encoder.act1"]["dead_rule"] == "never positive"
    assert stats["code"]["dead_fraction"] == 0.0 and stats["code"]["units"] == 2


def test_report_of_tabular_run(capsys, tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(200, 6)).astype(np.float32))
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--preset", "vanilla",
                 "--latent-dim", "2", "--epochs", "2", "--out", str(run), "--no-progress"]) == 0
    code, stdout, _ = run_cli(capsys, "report", str(run), "--out", str(tmp_path / "r.html"))
    assert code == 0 and "r.html" in stdout
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == 4


def test_report_of_a_run_whose_data_is_not_here(capsys, tmp_path):
    """A shipped zoo model records a description of its generated training crops, not a path:
    the report is still written (config, metrics), says how to get the rest, and a --data the
    user names that does not exist is still an error."""
    zoo = Path(aekit.__file__).parent / "zoo" / "denoise-grey"
    code, stdout, _ = run_cli(capsys, "report", str(zoo), "--out", str(tmp_path / "r.html"))
    assert code == 0 and "r.html" in stdout
    page = (tmp_path / "r.html").read_text()
    assert "cannot be read here; pass --data" in page and "denoise" in page
    code, _, err = run_cli(capsys, "report", str(zoo), "--data", str(tmp_path / "nothing"),
                           "--out", str(tmp_path / "r2.html"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "r2.html").exists()


def test_report_errors_are_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", str(tmp_path / "missing"))
    assert code == 2 and err.startswith("aekit: error:") and len(err.strip().splitlines()) == 1


@pytest.mark.browser
def test_report_renders_in_headless_chromium(capsys, run_dir, tmp_path):
    pytest.importorskip("selenium")
    from selenium.webdriver.common.by import By

    from aekit._browser import find_browser, headless_chromium, screenshot_png

    if find_browser() is None:
        pytest.skip("chromium and chromedriver are not installed")
    out = tmp_path / "report.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    capsys.readouterr()
    with headless_chromium(1200, 900) as driver:
        driver.get(out.as_uri())  # returns once the page has loaded
        for sid in SECTION_IDS:
            assert len(driver.find_elements(By.CSS_SELECTOR, f"section#{sid} h2")) == 1, sid
        figs = driver.execute_script(
            "return [...document.querySelectorAll('figure img')].map(e => "
            "[e.closest('section').id, e.complete, e.naturalWidth, e.naturalHeight])")
        assert {f[0] for f in figs} == {"loss", "reconstructions", "codes", "activations"}
        assert all(complete and w > 100 and h > 100 for _, complete, w, h in figs)
        assert len(driver.find_elements(By.CSS_SELECTOR, "section#activations table tbody tr")) >= 5
        assert driver.find_element(By.CSS_SELECTOR, "section#config pre").text.lstrip().startswith("{")
        shot = screenshot_png(driver, full_page=True)
    import io

    img = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=np.float32)
    assert img.shape[0] > 900  # the whole page, longer than one screen
    assert img.std() > 20 and len(np.unique(img)) > 50  # not blank: text, plots and pictures


def test_channels_last_images_are_read_as_aekit_data_reads_them():
    rng = np.random.default_rng(0)
    x = rng.random((40, 8, 8, 3))  # (N, H, W, C)
    kw = {"preset": "conv", "max_epochs": 2, "random_state": 0}
    last = AutoencoderTransformer(4, **kw).fit(x)
    assert last.model_.input_shape == (3, 8, 8)  # not 8 channels of 8×3 images
    first = AutoencoderTransformer(4, **kw).fit(x.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(last.transform(x), first.transform(x.transpose(0, 3, 1, 2)),
                               rtol=1e-4, atol=1e-5)
    back = last.inverse_transform(last.transform(x))
    assert back.shape == x.shape
    np.testing.assert_allclose(back, first.inverse_transform(first.transform(
        x.transpose(0, 3, 1, 2))).transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)


def test_set_params_without_refit_keeps_the_fitted_code_size(digits):
    x, _ = digits
    est = AutoencoderTransformer(4, max_epochs=1, random_state=0).fit(x[:200])
    est.set_params(n_components=6)  # takes effect at the next fit
    z = est.transform(x[:5])
    assert z.shape == (5, 4) and len(est.get_feature_names_out()) == 4
    assert est.inverse_transform(z).shape == (5, 64)


def test_a_damaged_saved_estimator_is_one_model_file_error(tmp_path, digits):
    from aekit.errors import ModelFileError

    x, _ = digits
    AutoencoderTransformer(4, max_epochs=1, random_state=0).fit(x[:100]).save(tmp_path / "e")
    meta = json.loads((tmp_path / "e" / "config.json").read_text())
    del meta["config"]["extra"]["sklearn"]["fitted"]["input_shape"]
    (tmp_path / "e" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="state is damaged"):
        AutoencoderTransformer.load(tmp_path / "e")


def test_a_tampered_config_is_one_model_file_error(tmp_path, digits):
    from aekit.errors import ModelFileError

    x, _ = digits
    est = AutoencoderTransformer(4, max_epochs=1, random_state=np.int64(7)).fit(x[:100])
    est.save(tmp_path / "e")
    assert AutoencoderTransformer.load(tmp_path / "e").random_state == 7  # a NumPy seed kept
    good = (tmp_path / "e" / "config.json").read_text()
    for edit in (lambda m: m["config"].update(extra=[]),
                 lambda m: m["config"]["extra"].update(sklearn="x"),
                 lambda m: m["config"]["extra"]["sklearn"]["fitted"].update(input_shape=[32])):
        meta = json.loads(good)
        edit(meta)
        (tmp_path / "e" / "config.json").write_text(json.dumps(meta))
        with pytest.raises(ModelFileError):
            AutoencoderTransformer.load(tmp_path / "e")


def test_a_failed_fit_leaves_the_estimator_unfitted(digits):
    from sklearn.exceptions import NotFittedError

    x, _ = digits
    est = AutoencoderTransformer(6, max_epochs=1, random_state=0).fit(x[:100])
    with pytest.raises(ValueError):
        est.set_params(n_components=9).fit(np.random.rand(30, 8))  # 9 > 8 features
    with pytest.raises(NotFittedError):  # not "expecting 8 features" beside a 64-feature model
        est.transform(x[:3])
    with pytest.raises(NotFittedError):
        AutoencoderTransformer(2).get_feature_names_out()


@pytest.mark.parametrize("kwargs, match", [
    ({"model_options": {"latent_dim": 5}}, "cannot set latent_dim: it is n_components"),
    ({"loss": "bce"}, "loss='bce' needs data kept in \\[0, 1\\]"),
])
def test_estimator_options_name_what_is_wrong(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AutoencoderTransformer(2, max_epochs=1, **kwargs).fit(np.random.rand(20, 6))


def test_images_take_the_presets_own_loss():
    """loss="mse" was forced on every preset; "auto" keeps cross-entropy where the output is
    a sigmoid (images in [0, 1]) and squared error on standardised tables."""
    images = AutoencoderTransformer(2, preset="variational", max_epochs=1).fit(
        np.random.rand(20, 8, 8))
    table = AutoencoderTransformer(2, preset="variational", max_epochs=1).fit(
        np.random.rand(20, 6) * 5)
    assert images.model_.loss_kind == "bce" and table.model_.loss_kind == "mse"


def test_values_beyond_float32_are_a_value_error_not_nan_codes():
    """float64 values beyond float32's range became inf in the model: fit said 'training
    diverged … try a smaller --lr' and transform returned all-NaN codes."""
    X = load_digits().data[:60] / 16
    est = AutoencoderTransformer(n_components=2, max_epochs=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="beyond float32's range"):
        est.transform(X * 1e300)
    with pytest.raises(ValueError, match="beyond float32's range"):
        AutoencoderTransformer(n_components=2, max_epochs=1).fit(X * 1e300)


def test_report_figures_take_any_labels_and_show_one_epoch(capsys, run_dir, tmp_path):
    """Labels holding "$…$" were parsed as TeX and stopped the report; more than 20 named
    classes crashed the scatter; a 1-epoch loss curve drew nothing; a typo'd --out replaced
    the run's own files; -n had no bound; metrics.jsonl lines that are not epoch records, or
    an unfinished run, were internal errors or 'not a model'; metrics on data the user gives
    were called held-out."""
    from aekit.report import figures
    from aekit.report.run_report import read_history

    z = np.random.default_rng(0).normal(size=(60, 2))
    for labels in (np.array(["$\\foo$", "$a^$", "plain"] * 20),  # few classes, mathtext
                   np.array([f"c{i % 25}" for i in range(60)])):  # many named classes
        assert figures.png_bytes(figures.code_scatter([("codes", z)], labels)).startswith(b"\x89PNG")
    # a measurement (many numbers) gets a colour bar, as in explore (aekit.data.label_range)
    assert len(figures.code_scatter([("codes", z)], np.arange(60) * 0.37).axes) == 2
    fig = figures.loss_curves([{"epoch": 1, "loss": 0.5, "val_loss": 0.6}])
    assert all(line.get_marker() == "o" for line in fig.axes[0].get_lines())
    figures.png_bytes(fig)
    # a log axis writes its tick labels in mathtext ($10^{1}$): those keep it, a title not
    fig = figures.loss_curves([{"epoch": i, "loss": 100 * 0.5 ** i} for i in range(1, 12)], "$x$")
    figures.png_bytes(fig)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and not ax.title.get_parse_math()
    assert all(t.get_parse_math() for t in ax.yaxis.get_ticklabels())
    code, _, err = run_cli(capsys, "report", str(run_dir), "--out", str(run_dir / "config.json"))
    assert code == 2 and "must end in .html" in err
    assert json.loads((run_dir / "config.json").read_text())["config"]["preset"] == "deep"
    code, _, err = run_cli(capsys, "report", str(run_dir), "-n", "65")
    assert code == 2 and "-n is 1–64" in err
    (tmp_path / "metrics.jsonl").write_text('[1, 2]\n"x"\n{"step": 1}\n{"epoch": 1, "loss": 2}\n')
    assert read_history(tmp_path) == [{"epoch": 1, "loss": 2}]
    (tmp_path / "checkpoint.safetensors").write_bytes(b"")
    code, _, err = run_cli(capsys, "report", str(tmp_path))
    assert code == 2 and "unfinished training run" in err and "--resume" in err
    code, stdout, _ = run_cli(capsys, "report", str(run_dir), "--data", "digits:test",
                              "--out", str(tmp_path / "R.HTML"))
    page = (tmp_path / "R.HTML").read_text()
    assert code == 0 and "evaluation sse_per_image" in page and "held-out sse" not in page


def test_aekit_debug_0_keeps_the_one_line(monkeypatch):
    from aekit.cli import debugging

    for value, on in (("", False), ("0", False), ("false", False), ("off", False), ("1", True),
                      ("yes", True)):
        monkeypatch.setenv("AEKIT_DEBUG", value)
        assert debugging() is on
