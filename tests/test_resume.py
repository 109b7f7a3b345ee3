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


def _train(data, out, *extra):
    return [sys.executable, "-m", "aekit", "train", "--preset", "denoising", "--data", str(data),
            "--latent-dim", "8", "--epochs", str(EPOCHS), "--out", str(out), "--seed", "3",
            "--batch-size", "32", "--patience", "0", "--no-progress", *extra]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("d") / "x.npy"
    # enough samples that one epoch takes a noticeable time, so the kill lands mid-run
    np.save(path, (rng.random((6000, 12, 12)) * 255).astype(np.uint8))
    return path


def test_sigkill_then_resume_matches_uninterrupted(data, tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_train(data, ref), check=True, env=ENV, capture_output=True)

    proc = subprocess.Popen(_train(data, killed), env=ENV, stdout=subprocess.DEVNULL,
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

    subprocess.run(_train(data, killed, "--resume"), check=True, env=ENV, capture_output=True)
    a, b = load_file(ref / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    hist_ref = [json.loads(line)["loss"] for line in (ref / "metrics.jsonl").read_text().splitlines()]
    hist_res = [json.loads(line)["loss"] for line in metrics.read_text().splitlines()]
    assert hist_ref == hist_res
