"""docs/img/scale-ddp.png: loss curves of one process and of 2 gloo processes under torchrun
(same command, same global batch, same seed) — they lie on top of each other.

    python scripts/scale_docs_figure.py [--epochs 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train(out: Path, nproc: int, epochs: int) -> list[dict]:
    # float32 (AEKIT_CPU_AMP=0): with bf16 autocast, which a CPU with native bf16 gets by
    # default, one process and two agree only to ~4e-5 (the README says so)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1",
           "AEKIT_CPU_AMP": "0"}
    cmd = ["-m", "aekit", "train", "--data", "digits", "--preset", "deep", "--epochs",
           str(epochs), "--batch-size", "64", "--patience", "0", "--no-progress", "--out", str(out)]
    if nproc > 1:
        cmd = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *cmd]
    subprocess.run([sys.executable, *cmd], env=env, check=True, capture_output=True)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "docs" / "img" / "scale-ddp.png"))
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with tempfile.TemporaryDirectory() as d:
        one = train(Path(d) / "one", 1, args.epochs)
        two = train(Path(d) / "two", 2, args.epochs)
    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=100)
    for hist, label, style in ((one, "1 process", "-"), (two, "torchrun, 2 gloo processes", "--")):
        ep = [r["epoch"] for r in hist]
        ax.plot(ep, [r["loss"] for r in hist], style, lw=2, label=f"train loss, {label}")
        ax.plot(ep, [r["val_loss"] for r in hist], style, lw=1, label=f"val loss, {label}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per image (binary cross-entropy)")
    ax.set_title("aekit train --preset deep --data digits (global batch 64)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    diff = max(abs(a["loss"] - b["loss"]) / a["loss"] for a, b in zip(one, two))
    print(f"wrote {args.out}; largest relative loss difference {diff:.1e}")


if __name__ == "__main__":
    main()
