"""A run killed with SIGKILL mid-training and resumed ends with the same weights as an
uninterrupted run with the same seed."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
EPOCHS = 12


def _train(data, out, *extra, preset="denoising"):
    return [sys.executable, "-m", "aekit", "train", "--preset", preset, "--data", str(data),
            "--latent-dim", "8", "--epochs", str(EPOCHS), "--out", str(out), "--seed", "3",
            "--batch-size", "32", "--patience", "0", "--no-progress", *extra]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("d") / "x.npy"
    # enough samples that one epoch takes a noticeable time, so the kill lands mid-run
    np.save(path, (rng.random((6000, 12, 12)) * 255).astype(np.uint8))
    return path


# denoising: seeded corruption; sparse-topk: its auxk penalty (which must keep no state
# outside the checkpoint)
@pytest.mark.parametrize("preset", ["denoising", "sparse-topk"])
def test_sigkill_then_resume_matches_uninterrupted(data, tmp_path, preset):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_train(data, ref, preset=preset), check=True, env=ENV, capture_output=True)

    proc = subprocess.Popen(_train(data, killed, preset=preset), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    metrics = killed / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(metrics.read_text().splitlines())
    assert 3 <= done < EPOCHS
    assert not (killed / "model.safetensors").exists()  # nothing final was written
    assert not [p for p in killed.iterdir() if p.name.startswith(".")]  # no temp files left

    subprocess.run(_train(data, killed, "--resume", preset=preset), check=True, env=ENV,
                   capture_output=True)
    a, b = load_file(ref / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    hist_ref = [json.loads(line)["loss"] for line in (ref / "metrics.jsonl").read_text().splitlines()]
    hist_res = [json.loads(line)["loss"] for line in metrics.read_text().splitlines()]
    assert hist_ref == hist_res


def test_resume_refuses_other_data_of_the_same_size(tmp_path, capsys):
    """Only the sample count was compared: a run resumed on other data of the same size
    went on, exit 0. A size change said 'batch_size 32 (now 16)', the batch it implies."""
    from aekit.cli import main

    x = np.random.default_rng(0).random((200, 6)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x[::-1])
    np.save(tmp_path / "c.npy", x[:100])
    base = ["train", "--preset", "vanilla", "--latent-dim", "2", "--no-progress", "--out",
            str(tmp_path / "r")]
    assert main([*base, "--data", str(tmp_path / "a.npy"), "--epochs", "1"]) == 0
    capsys.readouterr()
    for other, needle in (("b.npy", "other data (200 samples; now 200, other values)"),
                          ("c.npy", "other data (200 samples; now 100)")):
        assert main([*base, "--resume", "--data", str(tmp_path / other), "--epochs", "2"]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    assert main([*base, "--resume", "--epochs", "2"]) == 0  # its own data: goes on


def test_data_kept_in_memory_is_gathered_in_chunks_exactly(tmp_path):
    """The in-memory copy of a memory-mapped split is filled chunk by chunk, releasing the
    file's pages (whole, an 0.8 GB table peaked at 2.6 GB), and equals the split's rows."""
    from aekit.data import resolve
    from aekit.training import _in_memory, split_indices

    np.save(tmp_path / "x.npy", np.random.default_rng(1).random((1000, 5, 6)).astype(np.float32))
    data = resolve(str(tmp_path / "x.npy"))
    _, held = split_indices(len(data), 0.3, 0)
    part = data.subset(held)
    np.testing.assert_array_equal(_in_memory(part, chunk=64).numpy(), part.all().numpy())


def test_a_denoiser_checkpointed_before_noisy_validation_restarts_its_best_loss(tmp_path):
    """Validation now corrupts a denoiser's inputs; a checkpoint from when it did not holds a
    clean-input best loss that no noisy validation could beat, so early stopping would end
    the resumed run at once and keep the old weights: its count starts afresh instead."""
    import json as json_

    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from aekit import create_model, fit
    from aekit.data import resolve

    data = resolve("digits")
    torch.manual_seed(0)
    model = create_model("denoising", data.input_shape, 8)
    fit(model, data, epochs=1, out_dir=tmp_path, patience=1, progress=False)
    path = tmp_path / "checkpoint.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    state = json_.loads(meta["state"])
    del state["settings"]["val_corrupted"]  # as a checkpoint of the earlier version
    state["best_val"] = 1e-9  # a clean-input loss no noisy validation reaches
    save_file(tensors, str(path), metadata={**meta, "state": json_.dumps(state)})
    torch.manual_seed(0)
    again = create_model("denoising", data.input_shape, 8)
    result = fit(again, data, epochs=3, out_dir=tmp_path, resume=True, patience=1,
                 progress=False)
    assert result.epochs == 3 and result.best_epoch >= 2, (result.epochs, result.best_epoch)
