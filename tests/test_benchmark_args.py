"""Benchmark scripts refuse bad options with one usage line before measuring anything (a
too-small --n divided by zero part-way through a table; --limit 0 ran every image)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("argv, says", [
    (["scale.py", "--n", "10"], "--n: must be at least 256"),
    (["scale.py", "--skip", "fit,foo"], "--skip: unknown foo"),
    (["train_throughput.py", "--n", "5"], "--n: must be at least 128"),
    (["codec.py", "--limit", "0"], "--limit: must be at least 1"),
    (["search.py", "--kinds", "blah"], "--kinds: unknown blah"),
    (["search.py", "--sizes", "100,0"], "--sizes: must be at least 1"),
    (["encode_memory.py", "--batch-size", "x"], "'x' is not a whole number"),
    (["pca_vs_ae.py", "--minutes", "nan"], "--minutes: must be a finite number"),
    (["pca_vs_ae.py", "--datasets", "nope"], "unknown dataset 'nope'"),
    (["features.py", "--latent-dims", "8,0"], "--latent-dims: must be at least 1"),
])
def test_a_bad_option_is_one_usage_error(argv, says):
    proc = subprocess.run([sys.executable, str(BENCH / argv[0]), *argv[1:]],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert says in proc.stderr and "Traceback" not in proc.stderr
