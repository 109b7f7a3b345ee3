#!/usr/bin/env python
"""Regenerate tests/expected/codec_golden.json from the shipped zoo codec.

Run it after the zoo codec is retrained (``python scripts/train_zoo.py --only codec``): the
golden test pins the byte length, CRC and decoded PSNR of one fixed generated image at one
fixed quality, so any silent change of the model or the .aek format fails that test.

    python scripts/codec_golden.py
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aekit import codec, zoo
from aekit.io import write_json_atomic
from aekit.rd import psnr255, synthetic_photo

SPEC = {"height": 96, "width": 128, "seed": 7, "quality": 3}


def main() -> int:
    model = zoo.load("codec")
    img = synthetic_photo(SPEC["height"], SPEC["width"], seed=SPEC["seed"])
    # the plain encoder: refinement's float steps (bf16 where the CPU has it) are not
    # bit-exact across machines, the format and the model are what this pins
    data = codec.compress(model, img, SPEC["quality"] - 1, refine_steps=0)
    out = codec.decompress(model, data)
    golden = {**SPEC, "model_id": codec.model_id(model).hex(), "bytes": len(data),
              "crc32": zlib.crc32(data), "psnr": round(psnr255(out, img), 4),
              "bpp": round(8 * len(data) / (SPEC["height"] * SPEC["width"]), 4)}
    path = ROOT / "tests" / "expected" / "codec_golden.json"
    write_json_atomic(path, golden)
    print(json.dumps(golden))
    return 0


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):  # (it ran the whole job and rewrote its files)
        print(__doc__)
        sys.exit(0)
    sys.exit(main())
