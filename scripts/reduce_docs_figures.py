"""Regenerate the pictures of the README: compare-pca's figures and a report screenshot.

    PYTHONPATH=src python scripts/reduce_docs_figures.py      # ~5 min on one CPU core
    PYTHONPATH=src python scripts/reduce_docs_figures.py --report-only

Writes docs/img/reduce-{error,reconstructions,codes,report}.png and prints the compare-pca
table that the README quotes.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import torch

from aekit.cli import main

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"


def report_screenshot(html: Path, png: Path) -> None:
    from aekit._browser import save_screenshot

    save_screenshot(html, png, 1000, 1400, scale=0.6)


def run(argv: list[str]) -> int:
    torch.set_num_threads(1)
    IMG.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cmp"
        if "--report-only" not in argv:
            if main(["compare-pca", "--data", "digits", "--out", str(out), "--device", "cpu"]):
                return 1
            for src, dst in (("error_vs_code_size", "error"),
                             ("reconstructions", "reconstructions"), ("codes_2d", "codes")):
                shutil.copyfile(out / f"{src}.png", IMG / f"reduce-{dst}.png")
        run_dir = Path(tmp) / "run"
        if main(["train", "--data", "digits", "--preset", "deep", "--latent-dim", "2",
                 "--epochs", "60", "--batch-size", "32", "--out", str(run_dir), "--no-progress",
                 "--device", "cpu"]):
            return 1
        if main(["report", str(run_dir)]):
            return 1
        report_screenshot(run_dir / "report.html", IMG / "reduce-report.png")
    return 0


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):  # (it ran the whole job and rewrote its files)
        print(__doc__)
        sys.exit(0)
    sys.exit(run(sys.argv[1:]))
