"""Recompute a saved codec's integer coding tables (with the per-image tables of format 2).

A codec saved before the per-image tables existed keeps writing format-1 files; this gives it
the tables. Its weights are unchanged but its model id changes (the id covers the tables), so
keep the old model to decode the files it made.

    python scripts/codec_export_tables.py MODEL_DIR OUT_DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aekit import codec  # noqa: E402
from aekit.codes_quantized import QuantizedCode  # noqa: E402
from aekit.errors import AekitError  # noqa: E402
from aekit.models import Autoencoder  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a saved codec model directory")
    p.add_argument("out", help="the directory to write (may be MODEL_DIR itself)")
    args = p.parse_args(argv)
    try:
        model = Autoencoder.from_pretrained(args.model)
        if not isinstance(getattr(model, "code", None), QuantizedCode):
            raise AekitError(f"{args.model} is not a codec model (needs the quantized code)")
        before = codec.model_id(model).hex()
        t0 = time.perf_counter()
        model.code.export_tables()
        summary = dict(model.training_summary)
        summary["tables"] = (f"exported again by scripts/codec_export_tables.py (per-image "
                             f"tables; model id was {before})")
        model.save_pretrained(args.out, summary=summary)
    except AekitError as e:
        sys.stderr.write(f"codec_export_tables: error: {e}\n")
        return 2
    print(f"{args.out}: model id {before} → {codec.model_id(model).hex()}, "
          f"{model.code.adapt_counts.numel()} table entries, {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
