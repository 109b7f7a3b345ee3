"""Peak memory of ``aekit encode`` over a large memory-mapped ``.npy``.

Generates N random 28×28 images as a ``.npy`` on disk (uint8 by default, float32 with
``--dtype float32``), saves an untrained model, runs ``aekit encode`` in a child process and
reports its peak resident set size (``ru_maxrss``, which counts the pages of the input
memory map the process touched) beside the input's size. The promise checked: encoding
1M 28×28 images stays under 2 GB.

    python benchmarks/encode_memory.py --n 1000000 [--dtype float32] [--preset vanilla]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _args import at_least

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))


def make_data(path: Path, n: int, dtype: str, chunk: int = 65536) -> None:
    rng = np.random.default_rng(0)
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n, 28, 28))
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        block = rng.integers(0, 256, (e - s, 28, 28), dtype=np.uint8)
        mm[s:e] = block if dtype == "uint8" else block.astype(np.float32) / 255
    mm.flush()
    del mm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=at_least(1), default=1_000_000)
    ap.add_argument("--dtype", choices=("uint8", "float32"), default="uint8")
    ap.add_argument("--preset", default="vanilla")
    ap.add_argument("--batch-size", type=at_least(1), default=1024)
    ap.add_argument("--dir", default=None, help="scratch folder, made if missing (default: a temp dir)")
    ap.add_argument("--generate", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        make_data(Path(args.generate), args.n, args.dtype)
        return

    from aekit.models import create_model

    if args.dir:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        d = Path(d)
        t0 = time.perf_counter()
        # generated in a child process: a parent that had touched the data would pass its
        # own high-water RSS on to the measured child (Linux carries maxrss across fork+exec)
        subprocess.run([sys.executable, __file__, "--generate", str(d / "x.npy"), "--n",
                        str(args.n), "--dtype", args.dtype], check=True)
        gen_s = time.perf_counter() - t0
        create_model(args.preset, (1, 28, 28), 16).save_pretrained(d / "model")
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "aekit", "encode", "--model",
                                 str(d / "model"), "--data", str(d / "x.npy"), "--out",
                                 str(d / "z.npy"), "--batch-size", str(args.batch_size)],
                                env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        enc_s = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(proc.stderr.read().decode())
        peak = usage.ru_maxrss * 1024  # KiB on Linux
        z = np.load(d / "z.npy", mmap_mode="r")
        in_bytes = (d / "x.npy").stat().st_size
        print("| images | input .npy | codes | peak RSS of `aekit encode` | encode time | images/s |")
        print("|---|---|---|---|---|---|")
        print(f"| {args.n:,} {args.dtype} 28×28 | {in_bytes / 2**30:.2f} GiB | {z.shape} | "
              f"{peak / 2**30:.2f} GiB | {enc_s:.1f} s | {args.n / enc_s:,.0f} |")
        print(f"(data generation {gen_s:.1f} s; preset {args.preset}; batch {args.batch_size}; "
              f"limit checked: 2 GB → {'OK' if peak < 2e9 else 'OVER'})")


if __name__ == "__main__":
    main()
