"""The CLI end to end, and bad input: one clear stderr line, non-zero exit, no partial file."""

import json

import numpy as np
import pytest
import torch

from aekit.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("m") / "model"
    assert main(["train", "--preset", "sparse", "--epochs", "3", "--latent-dim", "8",
                 "--out", str(d), "--no-progress"]) == 0
    return d


def test_train_defaults_and_info(capsys, model_dir):
    code, out, _ = run(capsys, "info", model_dir, "--json")
    info = json.loads(out)
    assert code == 0 and info["preset"] == "sparse" and info["latent_dim"] == 8
    assert info["input_shape"] == [1, 8, 8] and "code" in info["layers"]
    assert info["training"]["epochs"] == 3


def test_evaluate_json(capsys, model_dir):
    code, out, _ = run(capsys, "evaluate", "--model", model_dir, "--data", "digits:test", "--json")
    m = json.loads(out)
    assert code == 0
    assert {"mse", "sse_per_image", "psnr", "l0", "dead_fraction"} <= set(m)
    assert m["sse_per_image"] == pytest.approx(m["mse"] * 64, rel=1e-6)


@pytest.mark.parametrize("layout", ["NHW", "NCHW", "NHWC", "float255"])
def test_evaluate_accepts_npy_layouts(capsys, model_dir, tmp_path, layout):
    from aekit.data import resolve

    x = (resolve("digits:test").all().numpy()[:, 0] * 255).round().astype(np.uint8)  # (N, 8, 8)
    arr = {"NHW": x, "NCHW": x[:, None], "NHWC": x[..., None], "float255": x.astype(np.float32)}[layout]
    np.save(tmp_path / "x.npy", arr)
    code, out, err = run(capsys, "evaluate", "--model", model_dir, "--data", tmp_path / "x.npy", "--json")
    assert code == 0, err
    ref = json.loads(run(capsys, "evaluate", "--model", model_dir, "--data", "digits:test", "--json")[1])
    assert json.loads(out)["mse"] == pytest.approx(ref["mse"], rel=0.05)  # same images, 8-bit rounded


def test_encode_and_reconstruct(capsys, model_dir, tmp_path):
    code, _, _ = run(capsys, "encode", "--model", model_dir, "--data", "digits", "--out", tmp_path / "z.npy")
    assert code == 0 and np.load(tmp_path / "z.npy").shape == (1797, 8)
    code, _, _ = run(capsys, "encode", "--model", model_dir, "--data", "digits", "--layer",
                     "encoder.linear1", "--out", tmp_path / "h.npy")
    assert code == 0 and np.load(tmp_path / "h.npy").shape == (1797, 256)
    code, _, _ = run(capsys, "reconstruct", "--model", model_dir, "--data", "digits:test",
                     "--out", tmp_path / "grid.png")
    from PIL import Image

    assert code == 0 and Image.open(tmp_path / "grid.png").size[0] > 16 * 8
    code, _, _ = run(capsys, "reconstruct", "--model", model_dir, "--data", "digits:test",
                     "--out", tmp_path / "r.npy")
    assert code == 0 and np.load(tmp_path / "r.npy").shape == (359, 1, 8, 8)


def test_presets_lists_every_type(capsys):
    code, out, _ = run(capsys, "presets")
    for name in ("vanilla", "deep", "conv", "sparse", "sparse-kl", "sparse-topk", "denoising",
                 "contractive", "variational"):
        assert name in out




def _assert_one_line_error(code, err, *words):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("aekit: error:"), err
    assert "Traceback" not in err
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])


def test_missing_data_file(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--data", tmp_path / "nope.npy", "--out", tmp_path / "o")
    _assert_one_line_error(code, err, "no such file")
    assert not (tmp_path / "o").exists()
    # named first, before advice on options (it said "--image-size … apply to a folder")
    code, _, err = run(capsys, "train", "--data", tmp_path / "nope.npy", "--image-size", "16x16")
    _assert_one_line_error(code, err, "nope.npy: no such file")


def test_model_path_missing_or_a_file(capsys, tmp_path):
    code, _, err = run(capsys, "info", tmp_path / "nope")
    _assert_one_line_error(code, err, "does not exist")
    (tmp_path / "model.png").write_bytes(b"x")
    code, _, err = run(capsys, "info", tmp_path / "model.png")
    _assert_one_line_error(code, err, "is a file, not a model folder")


@pytest.mark.parametrize("argv", [["denoise", "{d}", "{o}"], ["compress", "{d}", "{o}"],
                                  ["codec-eval", "{d}"], ["train", "--data", "{d}", "--out", "{o}"],
                                  ["train", "--preset", "restore", "--data", "{d}", "--out", "{o}"]])
def test_a_folder_without_images_is_one_error(argv, capsys, tmp_path):
    """Every command reading a folder of images says the same thing when it holds none."""
    d = tmp_path / "empty"
    (d / "sub").mkdir(parents=True)
    (d / "notes.txt").write_text("no pictures here")
    code, _, err = run(capsys, *[a.format(d=d, o=tmp_path / "out") for a in argv])
    _assert_one_line_error(code, err, "no images found")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_non_image_file(capsys, model_dir, tmp_path):
    (tmp_path / "photo.png").write_text("this is not a png")
    code, _, err = run(capsys, "evaluate", "--model", model_dir, "--data", tmp_path / "photo.png")
    _assert_one_line_error(code, err, "not a readable image")


def test_nan_and_inf_in_data(capsys, tmp_path):
    x = np.random.rand(50, 8, 8).astype(np.float32)
    x[17, 3, 3] = np.nan
    np.save(tmp_path / "nan.npy", x)
    code, _, err = run(capsys, "train", "--data", tmp_path / "nan.npy", "--out", tmp_path / "o")
    _assert_one_line_error(code, err, "sample 17", "nan")
    x[17, 3, 3] = np.inf
    np.save(tmp_path / "inf.npy", x)
    code, _, err = run(capsys, "train", "--data", tmp_path / "inf.npy", "--out", tmp_path / "o")
    _assert_one_line_error(code, err, "infinite")
    assert not (tmp_path / "o").exists()


def test_empty_dataset(capsys, tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, 8, 8), np.uint8))
    code, _, err = run(capsys, "train", "--data", tmp_path / "empty.npy", "--out", tmp_path / "o")
    _assert_one_line_error(code, err, "empty")
    (tmp_path / "empty.csv").write_text("")
    code, _, err = run(capsys, "train", "--data", tmp_path / "empty.csv", "--out", tmp_path / "o")
    _assert_one_line_error(code, err, "empty")


def test_shape_mismatch(capsys, model_dir, tmp_path):
    np.save(tmp_path / "big.npy", np.random.rand(10, 12, 12).astype(np.float32))
    code, _, err = run(capsys, "evaluate", "--model", model_dir, "--data", tmp_path / "big.npy")
    _assert_one_line_error(code, err, "(1, 12, 12)", "(1, 8, 8)")
    code, _, err = run(capsys, "encode", "--model", model_dir, "--data", tmp_path / "big.npy",
                       "--out", tmp_path / "z.npy")
    _assert_one_line_error(code, err, "expects")
    assert not (tmp_path / "z.npy").exists()


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "missing_config",
                                    "shape_not_a_list", "hidden_not_ints"])
def test_damaged_model_file(capsys, model_dir, tmp_path, damage):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    w = d / "model.safetensors"
    raw = bytearray(w.read_bytes())
    if damage == "truncate":
        w.write_bytes(bytes(raw[: len(raw) // 2]))
    elif damage == "flip":
        raw[-10] ^= 0x40
        w.write_bytes(bytes(raw))
    elif damage == "garbage":
        w.write_bytes(b"\x00" * 64)
    elif damage == "missing_config":
        (d / "config.json").unlink()
    else:  # a hand-edited config.json
        meta = json.loads((d / "config.json").read_text())
        if damage == "shape_not_a_list":
            meta["config"]["input_shape"] = "abc"
        else:
            meta["config"]["arch_options"]["hidden"] = "abc"
        (d / "config.json").write_text(json.dumps(meta))
    code, _, err = run(capsys, "evaluate", "--model", d, "--data", "digits")
    _assert_one_line_error(code, err)
    assert "model" in err or "config" in err


def test_tampered_weights_without_checksum_still_refused(capsys, model_dir, tmp_path):
    """Even if someone also edits the checksum, a weights file that is not valid safetensors
    or does not fit the config is refused with one line."""
    import shutil

    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    meta = json.loads((d / "config.json").read_text())
    meta.pop("weights_sha256")
    (d / "config.json").write_text(json.dumps(meta))
    (d / "model.safetensors").write_bytes(b"{not safetensors")
    code, _, err = run(capsys, "info", d)
    _assert_one_line_error(code, err, "safetensors")


@pytest.mark.parametrize("damage", ["garbage", "not_object", "no_model"])
def test_resume_with_damaged_run_file(capsys, tmp_path, damage):
    out = tmp_path / "run"
    out.mkdir()
    text = {"garbage": "{\"model\": ", "not_object": "[1, 2]", "no_model": "{}"}[damage]
    (out / "run.json").write_text(text)
    code, _, err = run(capsys, "train", "--out", out, "--resume")
    _assert_one_line_error(code, err, "run.json")
    assert (out / "run.json").read_text() == text  # left as it was


def test_resuming_a_finished_run_trains_nothing_more(capsys, tmp_path):
    """A run stopped early (or by its time budget) went on one epoch per --resume and
    replaced its saved model each time."""
    from safetensors.numpy import load_file

    out = tmp_path / "es"
    base = ["train", "--data", "digits", "--latent-dim", "4", "--out", out, "--no-progress",
            "--json"]
    code, text, err = run(capsys, *base, "--epochs", "50", "--patience", "1", "--lr", "0.05")
    assert code == 0, err
    first, weights = json.loads(text)["training"], load_file(out / "model.safetensors")
    assert first["stopped"] == "early_stopping"
    code, text, err = run(capsys, *base, "--resume")
    assert code == 0, err
    again = json.loads(text)["training"]
    assert (again["epochs"], again["stopped"]) == (first["epochs"], "early_stopping")
    after = load_file(out / "model.safetensors")
    assert all(np.array_equal(weights[k], after[k]) for k in weights)


@pytest.mark.parametrize("edit, needle", [
    (lambda s: s.update(epoch="2"), "loop state is damaged"),
    (lambda s: s.pop("history"), "loop state is damaged"),
])
def test_a_damaged_checkpoint_is_one_line(capsys, tmp_path, edit, needle):
    from safetensors import safe_open
    from safetensors.torch import save_file

    out = tmp_path / "r"
    assert run(capsys, "train", "--data", "digits", "--latent-dim", "4", "--epochs", "2",
               "--out", out, "--no-progress")[0] == 0
    ckpt = out / "checkpoint.safetensors"
    with safe_open(str(ckpt), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    state = json.loads(meta["state"])
    edit(state)
    save_file(tensors, str(ckpt), metadata={**meta, "state": json.dumps(state)})
    (out / "model.safetensors").unlink()  # an interrupted run
    code, _, err = run(capsys, "train", "--out", out, "--resume", "--epochs", "3")
    _assert_one_line_error(code, err, needle)


def test_a_resume_in_another_precision_says_it_is_not_exact(capsys, tmp_path, monkeypatch):
    out = tmp_path / "r"
    base = ["train", "--data", "digits", "--latent-dim", "4", "--out", out, "--no-progress"]
    monkeypatch.setenv("AEKIT_CPU_AMP", "0")
    assert run(capsys, *base, "--epochs", "1")[0] == 0
    monkeypatch.setenv("AEKIT_CPU_AMP", "1")
    code, _, err = run(capsys, *base, "--epochs", "2", "--resume")
    assert code == 0 and "bf16 autocast off and resumes with it on" in err, err


def test_a_folder_run_resumes_at_its_own_image_size(capsys, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(
            tmp_path / "imgs" / f"{i}.png")
    out = tmp_path / "r"
    assert run(capsys, "train", "--preset", "vanilla", "--data", tmp_path / "imgs",
               "--image-size", "16x16", "--latent-dim", "4", "--epochs", "1", "--out", out,
               "--no-progress")[0] == 0
    code, _, err = run(capsys, "train", "--out", out, "--resume", "--epochs", "2", "--no-progress")
    assert code == 0, err  # (read the folder at 64x64 and refused it)


def test_weights_that_are_not_floats_or_not_finite_are_refused(capsys, model_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from aekit.models import sha256_file

    for name, change in (("int", lambda t: t.to(torch.int32)),
                         ("nan", lambda t: torch.full_like(t, float("nan")))):
        d = tmp_path / name
        shutil.copytree(model_dir, d)
        state = load_file(d / "model.safetensors")
        save_file({k: change(v) if v.is_floating_point() else v for k, v in state.items()},
                  str(d / "model.safetensors"))
        meta = json.loads((d / "config.json").read_text())
        meta["weights_sha256"] = sha256_file(d / "model.safetensors")  # a consistent forgery
        (d / "config.json").write_text(json.dumps(meta))
        code, _, err = run(capsys, "info", d)
        _assert_one_line_error(code, err, "not floating point" if name == "int" else "not finite")


def test_unknown_preset_and_dataset(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--preset", "nope", "--out", tmp_path / "o")
    _assert_one_line_error(code, err, "unknown preset 'nope'")
    code, _, err = run(capsys, "train", "--data", "mnistt", "--out", tmp_path / "o")
    _assert_one_line_error(code, err, "unknown dataset")


def test_bad_flag_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--epochs", "many"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1


def test_resume_continues_on_the_recorded_data_and_seed(capsys, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    table = tmp_path / "table.csv"
    table.write_text("a,b,c,d\n" + "\n".join(",".join(f"{v:.3f}" for v in row)
                                            for row in rng.random((60, 4))))
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "--data", table, "--seed", 3, "--epochs", 2,
                       "--latent-dim", 2, "--out", out, "--no-progress")
    assert code == 0, err
    # no --data, no --seed: the run's own, not the defaults (digits, which has another shape)
    code, _, err = run(capsys, "train", "--out", out, "--resume", "--epochs", 3, "--no-progress",
                       "--json")
    assert code == 0, err
    summary = json.loads((out / "config.json").read_text())["training"]
    assert summary["data"] == str(table) and summary["seed"] == 3 and summary["epochs"] == 3


@pytest.mark.parametrize("argv, words", [
    (["train", "--seed", "-1"], ["seed", "from 0 to 4294967295"]),
    (["train", "--lr", "-1"], ["--lr", "> 0"]),
    (["topics", "x.txt", "--topics", "3", "--seed", "-2"], ["seed"]),
    (["train", "--epochs", "1", "--option", "code_options={bad"], ["json object"]),
])
def test_bad_values_are_one_line(capsys, argv, words):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own check (through aekit's one-line error)
        code = e.code
    _assert_one_line_error(code, capsys.readouterr().err, *words)


def test_val_fraction_and_out_that_is_a_file_fail_before_training(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--val-fraction", "1.5", "--out", tmp_path / "o")
    _assert_one_line_error(code, err, "--val-fraction")
    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    for argv in (["train", "--epochs", "1"], ["compare-pca", "--latent-dims", "2"],
                 ["cluster", "--data", "digits", "--k", "3"]):
        code, _, err = run(capsys, *argv, "--out", precious)
        _assert_one_line_error(code, err, "is a file")
    assert precious.read_text() == "keep"


def test_default_run_folders_never_collide(tmp_path, monkeypatch):
    from aekit.apps.common import unique_run_dir

    monkeypatch.chdir(tmp_path)
    made = {unique_run_dir("deep-digits") for _ in range(3)}  # within one second
    assert len(made) == 3 and all(p.is_dir() and p.parent.name == "runs" for p in made)


def test_a_full_disk_is_one_line(capsys, tmp_path, monkeypatch):
    import errno

    from aekit.models import Autoencoder

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o"))

    monkeypatch.setattr(Autoencoder, "save_pretrained", full)
    code, _, err = run(capsys, "train", "--epochs", "1", "--out", tmp_path / "o", "--no-progress")
    assert code == 1 and err.strip().splitlines() == [
        f"aekit: error: No space left on device: {tmp_path / 'o'}"]


def test_a_command_module_that_fails_to_import_is_one_line(capsys, monkeypatch):
    # a broken install (a dependency that no longer imports) must not print a traceback
    import aekit.cli as cli

    monkeypatch.delenv("AEKIT_DEBUG", raising=False)
    monkeypatch.setattr(cli, "APP_MODULES", ("aekit.apps.no_such_module",))
    code, out, err = run(capsys, "--help")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "cannot load the commands: ModuleNotFoundError" in err


def test_resume_takes_the_runs_training_settings_and_refuses_others(capsys, tmp_path):
    out = tmp_path / "r"
    base = ["train", "--preset", "vanilla", "--latent-dim", "4", "--no-progress", "--out", out]
    code, text, _ = run(capsys, *base, "--epochs", "1", "--val-fraction", "0", "--batch-size", "64")
    assert code == 0 and "training-set (nothing held out)" in text  # not called held-out
    recorded = json.loads((out / "run.json").read_text())
    assert recorded["val_fraction"] == 0 and recorded["batch_size"] == 64
    # no flags repeated: the run's split and batches (a 10 % hold-out would change the run)
    code, _, err = run(capsys, *base, "--epochs", "2", "--resume")
    assert code == 0, err
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2  # it went on to epoch 2
    code, _, err = run(capsys, *base, "--epochs", "3", "--resume", "--val-fraction", "0.2")
    assert code == 2 and "val_fraction 0.0 (now 0.2)" in err and err.count("\n") == 1


def test_a_model_is_never_saved_into_a_folder_that_holds_files(capsys, model_dir, tmp_path):
    """Saving over a model left its checkpoint and logs beside weights they did not belong to;
    saving into a user's folder mixed the model in with their files: both refused up front."""
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(["apples and pears", "pears and plums"] * 10))
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("keep")
    for out, what in ((model_dir, "a saved model"), (precious, "other files")):
        before = {f.name: f.read_bytes() for f in out.iterdir()}
        for argv in (["train", "--epochs", "1"], ["cluster", "--data", "digits", "--k", "3"],
                     ["anomaly", "fit", "--data", "digits"], ["topics", docs, "--topics", "2"],
                     ["docindex", docs], ["train", "--preset", "restore", "--task", "denoise"]):
            code, _, err = run(capsys, *argv, "--out", out)
            _assert_one_line_error(code, err, f"already holds {what}")
        assert {f.name: f.read_bytes() for f in out.iterdir()} == before


def test_outputs_never_replace_the_data_they_come_from(capsys, model_dir, tmp_path):
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).random((40, 8, 8)).astype(np.float32))
    before = data.read_bytes()
    assert main(["encode", "--model", str(model_dir), "--data", str(data), "--out", str(data)]) == 2
    assert main(["cluster", "--data", str(data), "--k", "2", "--assignments", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("OUT is the input file" in e for e in err)
    assert data.read_bytes() == before


@pytest.mark.parametrize("argv,needle", [
    (["--option", "latent_dim=4"], "--latent-dim"),
    (["--option", 'penalties={"l1": 0.1}'], "penalties map each name"),
    (["--option", 'arch_options={"hidden": [0]}'], "≥ 1"),
    (["--option", 'arch_options={"hidden": "abc"}'], "hidden is a list of layer widths"),
    (["--task", "upscale"], "--task is for --preset restore"),
    (["--freeze"], "go with --init-encoder-from"),
    (["--val-fraction", "0.9999"], "no samples left to train on"),
    (["--option", 'corruption_options={"sigma": 0.5}'], "without a corruption"),
    (["--option", 'penalties={"kl_sparsity": {"rho": 0.05}}'], "needs a code in (0, 1)"),
    (["--image-size", "28x28"], "apply to a folder of images"),  # digits: nothing to resize
    (["--label-col", "y"], "names a column of a .csv"),
    (["--preset", "restore", "--task", "denoise", "--patience", "5"], "do not apply to --preset"),
])
def test_train_option_mistakes_are_one_line_and_leave_no_files(capsys, tmp_path, argv, needle):
    out = tmp_path / "never"
    code, _, err = run(capsys, "train", "--epochs", "1", "--no-progress", "--out", out, *argv)
    assert code == 2 and err.count("\n") == 1 and needle in err, err
    assert not out.exists()  # not even a run.json to "resume"


def test_sigterm_before_the_first_checkpoint_leaves_no_half_made_run(capsys, tmp_path, monkeypatch):
    import os
    import signal
    import time

    import aekit.apps.basic

    def killed_while_training(*args, **kwargs):  # a scheduler's SIGTERM, mid-epoch
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler raises before this returns

    monkeypatch.setattr(aekit.apps.basic, "fit", killed_while_training)
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "--epochs", "1", "--no-progress", "--out", out)
    assert code == 128 + signal.SIGTERM and err == "aekit: terminated\n", err
    assert not out.exists()  # not a run.json that can neither resume nor be reused
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back


def test_a_stray_rank_variable_outside_torchrun_is_one_process(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "3")  # left by a scheduler; no WORLD_SIZE: not distributed
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    out = tmp_path / "m"
    code, _, err = run(capsys, "train", "--epochs", "1", "--no-progress", "--out", out)
    assert code == 0, err
    assert (out / "config.json").exists()
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = run(capsys, "train", "--epochs", "1", "--no-progress", "--out", tmp_path / "n")
    assert code == 2 and "RANK=3 is outside 0..1" in err and err.count("\n") == 1, err
    monkeypatch.setenv("RANK", "1")  # torchrun's rank 1 fails as rank 0 does: rank 0 says it
    code, _, err = run(capsys, "train", "--data", tmp_path / "missing.npy", "--no-progress")
    assert code == 2 and err == ""


def test_resume_keeps_the_budget_and_the_frozen_layers(capsys, model_dir, tmp_path):
    import torch

    from aekit.models import Autoencoder

    out = tmp_path / "t"
    base = ["train", "--preset", "sparse", "--latent-dim", "8", "--no-progress", "--out", out]
    assert run(capsys, *base, "--epochs", "2", "--init-encoder-from", model_dir,
               "--transfer-layers", "1", "--freeze")[0] == 0
    # no --epochs: the run's own budget (it went on to 30), and the transferred layer stays
    # frozen (a resume crashed on the optimiser's parameter groups)
    code, _, err = run(capsys, *base, "--resume")
    assert code == 0, err
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    code, _, err = run(capsys, *base, "--resume", "--epochs", "3", "--init-encoder-from", model_dir,
                       "--transfer-layers", "1", "--freeze")  # the run's own flags: accepted
    assert code == 0, err
    code, _, err = run(capsys, *base, "--resume", "--epochs", "4", "--init-encoder-from", model_dir,
                       "--transfer-layers", "2")
    assert code == 2 and "--transfer-layers differ" in err
    src, got = Autoencoder.from_pretrained(model_dir), Autoencoder.from_pretrained(out)
    first = got.parametrised_encoder_layers()[0]
    for k, v in getattr(src.encoder, first).state_dict().items():
        assert torch.equal(v, getattr(got.encoder, first).state_dict()[k]), k


def test_version_answers_without_loading_torch():
    import subprocess
    import sys

    code = ("import sys; from aekit.cli import main; rc = main(['--version']); "
            "assert rc == 0 and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:3]")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("aekit ")


def test_registries_are_complete_whichever_module_is_imported_first():
    import subprocess
    import sys

    code = ("from aekit.codes import CODES; from aekit.corruptions import CORRUPTIONS; "
            "assert {'quantized', 'doc_binary', 'binary', 'logistic_normal'} <= set(CODES.names()); "
            "assert {'watermark', 'downsample', 'grayscale'} <= set(CORRUPTIONS.names())")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_requests_that_cannot_work_are_one_line(capsys, model_dir, tmp_path):
    """Each was an internal error, a 100-line dump, a killed process or a silent exit 0."""
    assert main(["train", "--preset", "conv", "--epochs", "1", "--out", str(tmp_path / "conv"),
                 "--no-progress"]) == 0
    capsys.readouterr()
    for argv, needle in (
            (["compare-pca", "--latent-dims", "2", "--presets", "codec"], "not a dimensionality"),
            (["compare-pca", "--data", "digits", "--latent-dims", "100", "--epochs", "1"],
             "nothing to compare"),
            (["reconstruct", "--model", model_dir, "--data", "digits", "--out",
              tmp_path / "g.png", "--zoom", "1000"], "--zoom 1000"),
            (["export", tmp_path / "conv", tmp_path / "o.onnx", "--opset", "9", "--no-check"],
             "opset version 9")):
        if argv[0] == "compare-pca":
            argv = [*argv, "--out", tmp_path / "cmp"]
        code, out, err = run(capsys, *argv)
        _assert_one_line_error(code, err, needle)
        assert out == "", out[:200]
    assert not (tmp_path / "g.png").exists() and not (tmp_path / "o.onnx").exists()


def test_a_run_resumes_from_any_folder(capsys, tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((60, 6)).astype(np.float32))
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "train", "--preset", "vanilla", "--data", "x.npy", "--epochs", "1",
                       "--latent-dim", "2", "--out", "r", "--no-progress")
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "run.json").read_text())["data"] == str(tmp_path / "x.npy")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = run(capsys, "train", "--out", tmp_path / "r", "--resume", "--epochs", "2",
                       "--no-progress")
    assert code == 0, err


def test_resume_refuses_a_model_flag_that_would_change_the_run(capsys, tmp_path):
    """--preset, --latent-dim and --option were silently ignored by --resume (the run went on
    with its own model); they are now refused when they differ, and taken when they agree
    or are left out."""
    out = tmp_path / "r"
    code, _, err = run(capsys, "train", "--preset", "vanilla", "--latent-dim", "4", "--epochs", "1",
                       "--no-progress", "--out", out)
    assert code == 0, err
    for argv, needle in ((["--preset", "deep"], "--preset deep differs from the run's vanilla"),
                         (["--latent-dim", "8"], "--latent-dim 8 differs from the run's 4"),
                         (["--option", 'arch_options={"hidden": [8]}'],
                          "--option arch_options= differ from what the run being resumed started with")):
        code, _, err = run(capsys, "train", "--resume", "--out", out, "--epochs", "2", *argv)
        _assert_one_line_error(code, err, needle)
    code, _, err = run(capsys, "train", "--resume", "--out", out, "--epochs", "2",
                       "--preset", "vanilla", "--no-progress")
    assert code == 0, err
    code, _, err = run(capsys, "train", "--resume", "--out", out, "--epochs", "3", "--no-progress")
    assert code == 0, err
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    # the same command as the run started with, plus --resume, goes on (options included)
    opt = ["train", "--preset", "vanilla", "--latent-dim", "4", "--no-progress", "--out",
           tmp_path / "o", "--option", 'code_options={"activation": "sigmoid"}']
    assert run(capsys, *opt, "--epochs", "1")[0] == 0
    code, _, err = run(capsys, *opt, "--epochs", "2", "--resume")
    assert code == 0, err


def test_help_does_not_load_scikit_learn():
    """Every `aekit … --help` built the whole parser, and `anomaly` imported the detector and
    with it scikit-learn (~1.4 s of a 4.3 s --help); a bad --threshold-on is still one line."""
    import subprocess
    import sys

    code = ("import sys; from aekit.cli import build_parser; build_parser(); "
            "assert 'sklearn' not in sys.modules, 'sklearn loaded'")
    run_ = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run_.returncode == 0, run_.stderr


def test_option_spellings_and_unknown_arguments(capsys, model_dir):
    # an unknown argument names the command whose --help lists what it takes
    def usage_error(*argv):
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert e.value.code == 2 and len(err.strip().splitlines()) == 1
        return err

    err = usage_error("evaluate", "--model", model_dir, "--data", "digits", "--bogus")
    assert "unrecognized arguments: --bogus" in err and "aekit evaluate --help" in err
    assert "`aekit --help`" in usage_error("--bogus", "evaluate", "--model", model_dir, "--data", "x")
    assert "aekit anomaly fit --help" in usage_error("anomaly", "fit", "--data", "x", "--out", "y",
                                                    "--bogus")
    # compare-pca's counts are checked by argparse: one usage line, not an internal error
    assert "--batch-size" in usage_error("compare-pca", "--batch-size", "0")
    assert "invalid choice" in usage_error("anomaly", "fit", "--data", "digits", "--out", "x",
                                           "--threshold-on", "foo")
    # -k and --k mean the same in cluster, search and docsearch
    from aekit.cli import build_parser

    parser = build_parser()
    for argv in (["cluster", "--data", "digits", "-k", "3"], ["cluster", "--data", "digits", "--k", "3"],
                 ["search", "idx", "q.png", "--k", "4"], ["docsearch", "idx", "q", "--k", "4"]):
        assert parser.parse_args(argv).k == int(argv[-1])
    # every command that can show a progress bar takes --no-progress
    for argv in (["cluster", "--data", "d", "-k", "3"], ["encode", "--model", "m", "--data", "d",
                 "--out", "z.npy"], ["anomaly", "fit", "--data", "d", "--out", "o"],
                 ["train"], ["topics", "c", "--topics", "3"], ["compress", "a.png", "a.aek"],
                 ["codec-eval", "dir"], ["compare-pca"]):
        assert parser.parse_args([*argv, "--no-progress"]).no_progress is True, argv


def test_results_are_not_written_into_a_model_folder(capsys, model_dir, tmp_path):
    # compare-pca and codec-eval write figures over files of the same name: never a model's
    from PIL import Image

    before = sorted(p.name for p in model_dir.iterdir())
    code, _, err = run(capsys, "compare-pca", "--out", model_dir, "--epochs", "1")
    assert code == 2 and "holds a saved model" in err
    src = tmp_path / "imgs"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(
        src / "a.png")
    code, _, err = run(capsys, "codec-eval", src, "--out", model_dir, "--limit", "1")
    assert code == 2 and "holds a saved model" in err
    assert sorted(p.name for p in model_dir.iterdir()) == before
