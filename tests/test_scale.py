"""Scale and deployment: torchrun DDP, streamed data, bounded-memory encode, ONNX export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import aekit
from aekit import training
from aekit.cli import main
from aekit.data import resolve
from aekit.data.stream import LazyImageArray
from aekit.evaluation import encode_to_npy
from aekit.export import check_onnx, export_onnx, onnx_session, part_module
from aekit.models import create_model
from aekit.training import fit

SRC = str(Path(aekit.__file__).resolve().parents[1])


# ------------------------------------------------------------------------------------ DDP
TRAIN = ["train", "--data", "digits", "--preset", "deep", "--epochs", "3", "--batch-size", "64",
         "--latent-dim", "8", "--patience", "0", "--no-progress"]


def _torchrun(out: Path, nproc: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "AEKIT_CPU_AMP": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "aekit", *TRAIN, "--out", str(out)]
    # one retry: the c10d rendezvous of --standalone has failed to start once on this busy
    # 2-core machine (not reproduced in 4 later runs); a real mismatch fails both times
    for _ in range(2):
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
        if run.returncode == 0:
            return run
        shutil.rmtree(out, ignore_errors=True)
    return run


def _history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_gloo_processes_match_one_process(tmp_path, monkeypatch):
    # float32 on both sides: the point is that sharding + all-reduce is the same maths (bf16
    # autocast, on by default on CPUs with native bf16, rounds the two sums differently)
    monkeypatch.setenv("AEKIT_CPU_AMP", "0")
    two = _torchrun(tmp_path / "two", 2)
    assert two.returncode == 0, two.stderr[-2000:]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as torchrun's workers
    try:
        assert main([*TRAIN, "--out", str(tmp_path / "one")]) == 0
    finally:
        torch.set_num_threads(threads)
    # only rank 0 reports and writes
    assert two.stdout.count("trained deep") == 1
    h1, h2 = _history(tmp_path / "one"), _history(tmp_path / "two")
    assert [r["step"] for r in h1] == [r["step"] for r in h2]
    for r1, r2 in zip(h1, h2):
        assert r2["loss"] == pytest.approx(r1["loss"], rel=1e-5)
        assert r2["val_loss"] == pytest.approx(r1["val_loss"], rel=1e-5)
    w1 = load_file(str(tmp_path / "one" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "two" / "model.safetensors"))
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)
    # the checkpoint carries rank 1's RNG stream for an exact --resume
    ckpt = load_file(str(tmp_path / "two" / training.CHECKPOINT_NAME))
    assert "rng.torch.rank1" in ckpt


def test_shard_bounds_cover_the_batch():
    from aekit.distributed import shard_bounds

    for n, w in [(64, 2), (65, 2), (7, 3), (3, 3)]:
        b = shard_bounds(n, w)
        assert b[0] == 0 and b[-1] == n and all(b[i] <= b[i + 1] for i in range(w))
        assert max(np.diff(b)) - min(np.diff(b)) <= 1


# ----------------------------------------------------------------------------- large data
def _image_folder(root: Path, n: int = 40) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8)).save(root / f"{i:03d}.png")
    return root


def test_streamed_folder_equals_loaded_folder(tmp_path):
    folder = _image_folder(tmp_path / "imgs")
    loaded = resolve(str(folder), image_size=(8, 8), channels=1)
    streamed = resolve(f"{folder}?stream=1", image_size=(8, 8), channels=1)
    assert isinstance(streamed.x, LazyImageArray) and not isinstance(loaded.x, LazyImageArray)
    assert streamed.input_shape == loaded.input_shape == (1, 8, 8)
    idx = np.array([5, 0, 33, 7])
    torch.testing.assert_close(streamed.batch(idx), loaded.batch(idx))


def test_streamed_training_uses_workers_and_matches_in_memory(tmp_path, monkeypatch):
    folder = _image_folder(tmp_path / "imgs", n=48)
    data = resolve(f"{folder}?stream=1", image_size=(8, 8), channels=1)
    kw = {"epochs": 2, "batch_size": 16, "progress": False, "patience": None, "seed": 3}
    torch.manual_seed(0)
    ref = create_model("deep", (1, 8, 8), 4)
    fit(ref, data, **kw)  # small: cached in memory
    monkeypatch.setattr(training, "IN_MEMORY_BYTES", 0)  # now "bigger than RAM"
    src = training.BatchSource(data, torch.device("cpu"))
    assert src.streamed and src.cache is None
    torch.manual_seed(0)
    m = create_model("deep", (1, 8, 8), 4)
    fit(m, data, workers=1, **kw)
    for (k, a), b in zip(ref.state_dict().items(), m.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=k)


def test_unreadable_image_in_a_worker_is_one_line(tmp_path, monkeypatch):
    folder = _image_folder(tmp_path / "imgs", n=24)
    (folder / "010.png").write_bytes(b"not a png")
    data = resolve(f"{folder}?stream=1", image_size=(8, 8), channels=1)
    monkeypatch.setattr(training, "IN_MEMORY_BYTES", 0)
    with pytest.raises(aekit.errors.DataError) as e:
        fit(create_model("deep", (1, 8, 8), 4), data, epochs=1, batch_size=8, workers=1,
            progress=False, val_fraction=0)
    assert "010.png" in str(e.value) and "\n" not in str(e.value)


def test_encode_streams_with_bounded_memory(tmp_path):
    n = 200_000  # 12.8 MB of uint8 input, 6.4 MB of codes: neither may be held whole
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=(n, 64))
    x[:] = 7
    x.flush()
    del x
    data = resolve(str(tmp_path / "x.npy"))
    model = create_model("vanilla", (64,), 8)
    tracemalloc.start()
    encode_to_npy(model, data, tmp_path / "z.npy", batch_size=2048)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 << 20, f"peak Python/numpy allocation {peak / 2**20:.1f} MiB"
    z = np.load(tmp_path / "z.npy", mmap_mode="r")
    assert z.shape == (n, 8)


# ---------------------------------------------------------------------------------- export
PRESETS = [("deep", (1, 28, 28), {}), ("conv", (3, 16, 16), {}),
           ("variational", (1, 28, 28), {}), ("deep", (12,), {"normalization": "standard"})]


@pytest.mark.parametrize(("preset", "shape", "over"), PRESETS, ids=lambda v: str(v))
def test_onnx_matches_pytorch(tmp_path, preset, shape, over):
    model = create_model(preset, shape, 6, **over)
    if over.get("normalization") == "standard":
        model.set_normalization(torch.full(shape, 3.0), torch.full(shape, 2.0))
    for part in ("encoder", "decoder", "full"):
        path = export_onnx(model, tmp_path / f"{part}.onnx", part)
        assert check_onnx(model, path, part) < 1e-4
    # a variational encoder exports its mean (deterministic), a batch of any size works
    sess = onnx_session(tmp_path / "encoder.onnx")
    x = torch.rand(5, *shape)
    got = sess.run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, model.encode(x).detach().numpy(), atol=1e-4)
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_export_cli(tmp_path, capsys):
    import onnx

    model = create_model("conv", (1, 16, 16), 5)
    model.save_pretrained(tmp_path / "m")
    out = tmp_path / "dec.onnx"
    assert main(["export", str(tmp_path / "m"), str(out), "--part", "decoder", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["part"] == "decoder" and obj["max_abs_diff"] < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["aekit_part"] == "decoder"
    assert json.loads(meta["aekit_config"])["preset"] == "conv"
    assert main(["export", str(tmp_path / "m"), str(tmp_path / "x.txt")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope"), str(out)]) == 2
    capsys.readouterr()
    # an opset torch cannot write, and OUT that is a folder: one line each, no graph dump
    assert main(["export", str(tmp_path / "m"), str(tmp_path / "o.onnx"), "--opset", "5"]) == 2
    (tmp_path / "d.onnx").mkdir()
    assert main(["export", str(tmp_path / "m"), str(tmp_path / "d.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "opset 5" in err[0] and "is a folder" in err[1]


def test_export_refuses_a_unet_decoder_and_keeps_no_file_that_disagrees(tmp_path, capsys,
                                                                         monkeypatch):
    import onnx

    import aekit.export as ex

    unet = create_model("conv", (1, 16, 16), 4, arch="unet")  # skips + residual input
    unet.save_pretrained(tmp_path / "u")
    out = tmp_path / "dec.onnx"
    assert main(["export", str(tmp_path / "u"), str(out), "--part", "decoder"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "skip features" in err[0] and not out.exists()
    assert main(["export", str(tmp_path / "u"), str(tmp_path / "full.onnx"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["max_abs_diff"] < 1e-4  # the whole model is fine
    # a file that onnxruntime runs but that disagrees with PyTorch is not kept
    monkeypatch.setattr(ex, "check_onnx", lambda *a, **k: 0.5)
    assert main(["export", str(tmp_path / "u"), str(tmp_path / "bad.onnx")]) == 2
    assert "disagrees with PyTorch" in capsys.readouterr().err
    assert not (tmp_path / "bad.onnx").exists() and not list(tmp_path.glob(".*"))
    monkeypatch.undo()
    # a VAE's code: its size is written into the output's type, not an unnamed axis
    vae = create_model("variational", (1, 8, 8), 6)
    path = export_onnx(vae, tmp_path / "vae.onnx", "encoder")
    dims = onnx.load(str(path)).graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 6]


def test_part_module_refuses_unknown_part():
    with pytest.raises(aekit.errors.AekitError):
        part_module(create_model("vanilla", (4,), 2), "middle")


# ---------------------------------------------------------------------------------- compile
@pytest.mark.slow
def test_compile_opt_in_trains_like_eager():
    x = np.random.default_rng(0).random((256, 1, 8, 8)).astype(np.float32)
    kw = {"epochs": 2, "batch_size": 32, "progress": False, "patience": None}
    torch.manual_seed(0)
    a = create_model("deep", (1, 8, 8), 4)
    ra = fit(a, x, **kw)
    torch.manual_seed(0)
    b = create_model("deep", (1, 8, 8), 4)
    rb = fit(b, x, compile=True, **kw)
    assert rb.history[-1]["loss"] == pytest.approx(ra.history[-1]["loss"], rel=1e-3)
