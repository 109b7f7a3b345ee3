#!/usr/bin/env python
"""Choose a colorize model's chroma gain on a validation folder (never on a benchmark's test
set) and optionally store it in the model's config as ``chroma_gain``.

    python scripts/calibrate_colorize.py --data ../shared/data/set14              # print only
    python scripts/calibrate_colorize.py --data ../shared/data/set14 --write      # the zoo model
    python scripts/calibrate_colorize.py --model runs/my-colorizer --data photos/ --write

A colorizer trained for MSE on a few photos is sure of colours it cannot know (a warm cast
on every photo, a blue sky that is grey): scaling its chroma about grey by g < 1 trades
saturation for PSNR. Grey photos in the folder are skipped; the table is mean PSNR-RGB per
gain, with the grey photo itself (g = 0) as the baseline. Only the config's ``extra`` changes
(written atomically); the weights are untouched.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aekit.apps.restore import Restorer  # noqa: E402
from aekit.data.images import list_images, read_image  # noqa: E402
from aekit.imaging import Picture, rgb_to_ycbcr, scale_chroma, ycbcr_to_rgb  # noqa: E402
from aekit.io import write_json_atomic  # noqa: E402
from aekit.zoo import zoo_path  # noqa: E402

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
GAINS = [round(0.05 * k, 2) for k in range(0, 25)]  # 0 … 1.2


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / max(float((a - b).pow(2).mean()), 1e-12))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder (default: the zoo's colorize)")
    p.add_argument("--data", required=True, help="folder of colour photos (validation, not test)")
    p.add_argument("--write", action="store_true", help="store the best gain in the model's config")
    args = p.parse_args()
    model_dir = Path(args.model) if args.model else zoo_path("colorize")
    r = Restorer.load("colorize", str(model_dir), saturation=1.0)
    scores: dict[float, list[float]] = {g: [] for g in GAINS}
    names = []
    for f in list_images(Path(args.data)):
        rgb = read_image(f, "RGB")
        if np.abs(rgb - rgb[..., :1]).mean() < 1e-3:
            continue  # a grey photo: nothing to colour
        names.append(f.name)
        y, _ = r.apply(Picture(np.ascontiguousarray((rgb @ LUMA)[None])))
        ycc = rgb_to_ycbcr(torch.from_numpy(y)[None])
        truth = torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None]
        for g in GAINS:  # the network runs once; each gain is what Restorer applies
            scores[g].append(psnr(ycbcr_to_rgb(scale_chroma(ycc, g)).clamp(0, 1), truth))
    if not names:
        p.error(f"{args.data}: no colour photos")
    means = {g: float(np.mean(v)) for g, v in scores.items()}
    best = max(means, key=means.get)
    print(f"{model_dir}: mean PSNR-RGB on {len(names)} colour photos of {args.data}")
    for g, m in means.items():
        print(f"  gain {g:4.2f}  {m:6.3f} dB{'  (grey)' if g == 0 else ''}{'  <- best' if g == best else ''}")
    if args.write:
        path = model_dir / "config.json"
        cfg = json.loads(path.read_text())
        cfg["config"]["extra"]["chroma_gain"] = best
        cfg["config"]["extra"]["chroma_gain_chosen_on"] = (
            f"{Path(args.data).name}: {len(names)} colour photos, gains 0-1.2 by 0.05, mean "
            f"PSNR-RGB {means[best]:.3f} dB (raw model {means[1.0]:.3f}, grey {means[0.0]:.3f})")
        write_json_atomic(path, cfg)
        print(f"wrote chroma_gain {best} to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
