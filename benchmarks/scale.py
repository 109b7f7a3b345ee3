"""Scale benchmarks, one run, baselines measured beside each number:

1. ``fit()`` images/s against a minimal hand-written PyTorch loop on the same model and data,
   and against Keras 3 (TensorFlow backend) with the same architecture and batch;
2. channels-last against the default layout for the conv preset (why fit() uses it on CPU);
3. 2-process gloo DDP (``torchrun``) against 1 process, on the same cores;
4. encode throughput of PyTorch eager, ``torch.compile`` and onnxruntime.

Timings are medians over ``--repeats`` rounds, contenders taken in turn (the machine may be
shared: ratios within one run are the meaningful numbers).

    python benchmarks/scale.py [--n 2048] [--repeats 3] [--threads 2] [--skip keras,ddp,compile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path[:0] = [str(SRC), str(HERE)]

# aekit before torch, as the `aekit` command does: on small CPUs it sets OpenMP's
# passive waiting, which torch reads when it loads (see aekit/_runtime.py)
import aekit  # noqa: F401, I001
import torch
import train_throughput as tt
from _args import at_least, names

from aekit.export import export_onnx, onnx_session


# ------------------------------------------------------------------------------ 1. fit()
def section_fit(n: int, epochs: int, repeats: int, keras: bool) -> None:
    print("\n## 1. fit() against a hand-written PyTorch loop and Keras 3 (TensorFlow)\n")
    if keras and not tt.keras_available():
        print("(Keras 3 / TensorFlow not installed: skipping that column)\n")
    tt.print_table(tt.throughput_table(["deep", "conv"], n, epochs, repeats, keras))


# ---------------------------------------------------------------------- 2. channels_last
def section_channels_last(n: int, epochs: int, repeats: int) -> None:
    print("\n## 2. conv preset: channels-last against the default (NCHW) layout, hand loop\n")
    x = tt.make_data(n)
    tt.run_loop("conv", x[: tt.BATCH * 2], 1, True)
    r = tt.median_rates({"nchw": lambda: tt.run_loop("conv", x, epochs, False),
                         "cl": lambda: tt.run_loop("conv", x, epochs, True)}, repeats)
    print("| layout | img/s | ratio |\n|---|---|---|")
    print(f"| NCHW (default) | {r['nchw']:,.0f} | 1.00× |")
    print(f"| channels_last | {r['cl']:,.0f} | {r['cl'] / r['nchw']:.2f}× |")


# -------------------------------------------------------------------------------- 3. DDP
def _train(data: Path, out: Path, nproc: int, threads: int, epochs: int) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": str(threads)}
    cmd = ["-m", "aekit", "train", "--data", str(data), "--preset", "deep", "--epochs",
           str(epochs), "--batch-size", "128", "--val-fraction", "0", "--patience", "0",
           "--no-progress", "--json", "--out", str(out)]
    if nproc > 1:
        cmd = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *cmd]
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, *cmd], env=env, capture_output=True, text=True,
                       check=False)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"training failed:\n{p.stderr[-3000:]}")
    obj = json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1])
    return obj["training"]["samples_per_second"], wall


def section_ddp(n: int, epochs: int, repeats: int, cores: int) -> None:
    print(f"\n## 3. torchrun: 2 gloo processes × {max(cores // 2, 1)} thread against "
          f"1 process × {cores} threads (deep preset, global batch 128)\n")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        np.save(d / "x.npy", (tt.make_data(n) * 255).astype(np.uint8))
        runs: dict[str, list[tuple[float, float]]] = {"one": [], "two": []}
        for i in range(repeats):
            runs["one"].append(_train(d / "x.npy", d / f"one{i}", 1, cores, epochs))
            runs["two"].append(_train(d / "x.npy", d / f"two{i}", 2, max(cores // 2, 1), epochs))
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
           for k, v in runs.items()}
    print("| run | training img/s | command wall time | ratio |\n|---|---|---|---|")
    print(f"| 1 process | {med['one'][0]:,.0f} | {med['one'][1]:.1f} s | 1.00× |")
    print(f"| 2 processes (DDP, gloo) | {med['two'][0]:,.0f} | {med['two'][1]:.1f} s | "
          f"{med['two'][0] / med['one'][0]:.2f}× |")


# ----------------------------------------------------------------------------- 4. encode
def _encode_rate(fn, x: torch.Tensor, batch: int) -> float:
    t0 = time.perf_counter()
    for s in range(0, len(x), batch):
        fn(x[s: s + batch])
    return len(x) / (time.perf_counter() - t0)


def section_encode(n: int, repeats: int, compile_too: bool, threads: int) -> None:
    print("\n## 4. encode throughput: PyTorch eager, torch.compile, onnxruntime (batch 256)\n")
    batch = 256
    n = max(batch, n // batch * batch)  # whole batches: one compiled shape
    x = torch.from_numpy(tt.make_data(n))
    print("| preset | eager img/s | torch.compile img/s | onnxruntime img/s | compile time |")
    print("|---|---|---|---|---|")
    for preset in ("deep", "conv"):
        model = tt.model_for(preset).eval()
        with tempfile.TemporaryDirectory() as d:
            path = export_onnx(model, Path(d) / "enc.onnx", "encoder")
            sess = onnx_session(path, threads=threads)
        name = sess.get_inputs()[0].name

        @torch.inference_mode()
        def eager(xb: torch.Tensor, m: torch.nn.Module = model) -> torch.Tensor:
            return m.encode(xb)

        def ort(xb: torch.Tensor, sess=sess, name=name) -> list:
            return sess.run(None, {name: xb.numpy()})

        contenders = {"eager": lambda: _encode_rate(eager, x, batch),
                      "ort": lambda: _encode_rate(ort, x, batch)}
        compile_s = float("nan")
        if compile_too:
            compiled = torch.compile(model.encode, dynamic=False)

            @torch.inference_mode()
            def comp(xb: torch.Tensor, compiled=compiled) -> torch.Tensor:
                return compiled(xb)

            t0 = time.perf_counter()
            comp(x[:batch])
            compile_s = time.perf_counter() - t0
            contenders["compile"] = lambda: _encode_rate(comp, x, batch)
        eager(x[:batch])
        r = tt.median_rates(contenders, repeats)
        c = f"{r['compile']:,.0f} ({r['compile'] / r['eager']:.2f}×)" if "compile" in r else "—"
        print(f"| {preset} | {r['eager']:,.0f} | {c} | {r['ort']:,.0f} "
              f"({r['ort'] / r['eager']:.2f}×) | {compile_s:.0f} s |")


#: the sections --skip can leave out (keras and compile are columns of fit and encode)
SECTIONS = ("fit", "layout", "keras", "ddp", "encode", "compile")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=at_least(2 * tt.BATCH), default=2048,
                    help=f"training images per run (at least {2 * tt.BATCH}: two batches)")
    ap.add_argument("--epochs", type=at_least(1), default=1)
    ap.add_argument("--repeats", type=at_least(1), default=3)
    ap.add_argument("--threads", type=at_least(1), default=None,
                    help="threads for every contender (default: torch's default)")
    ap.add_argument("--skip", default="", type=names(SECTIONS, allow_empty=True),
                    help=f"comma list of: {', '.join(SECTIONS)}")
    args = ap.parse_args()
    skip = set(args.skip)
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(args.threads))
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    threads = torch.get_num_threads()
    print(f"conditions: {tt.conditions()}; {args.n} images 1×28×28, batch {tt.BATCH}, "
          f"{args.epochs} epoch(s) per run, median of {args.repeats}")
    if "fit" not in skip:
        section_fit(args.n, args.epochs, args.repeats, "keras" not in skip)
    if "layout" not in skip:
        section_channels_last(args.n // 2, args.epochs, args.repeats)
    if "ddp" not in skip:
        section_ddp(args.n * 4, args.epochs, args.repeats, threads)
    if "encode" not in skip:
        section_encode(args.n * 4, args.repeats, "compile" not in skip, threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average at the end: {load:.1f}")


if __name__ == "__main__":
    main()
