"""The README's core Python example runs as written (README examples are tests)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_core_python_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    core = text[text.index("**Python.**"):]
    block = re.search(r"```python\n(.*?)```", core, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 — our own README
    z = scope["z"]
    assert z.shape == (1797, 32)
    assert int((z != 0).sum(1).max()) <= 4  # what the comment promises
    assert (tmp_path / "runs" / "digits-topk" / "model.safetensors").exists()
