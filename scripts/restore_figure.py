#!/usr/bin/env python
"""Before/after pictures of the four restoration commands for the README.

    python scripts/restore_figure.py                          # writes docs/img/restore-<task>.png
    python scripts/restore_figure.py --data ../shared/data    # held-out test photos (the README's)

Each picture is [corrupted input | aekit's output | original], made with the shipped zoo
models (colorize also shows the raw colours, ``--saturation 1``; unwatermark also the
output given the true mask, ``--mask``). Without ``--data`` the crops come from photos that ship with scikit-image — which are
also the zoo's *training* photos, so they flatter it; with ``--data`` (a folder holding
``bsd68/CBSD68``, as ``benchmarks/restore.py`` takes) they come from CBSD68 test photos the
models never saw.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aekit.apps.restore import Restorer
from aekit.corruptions_restore import resize, watermark_image
from aekit.imaging import Picture

SIDE = 192
#: the CBSD68 photos used with --data: denoise, colorize, unwatermark, upscale (centre crops)
HELD_OUT = ("108005.png", "102061.png", "108070.png", "101085.png")


def hwc(a: np.ndarray) -> np.ndarray:
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def centre(img: np.ndarray) -> np.ndarray:
    top, left = (img.shape[0] - SIDE) // 2, (img.shape[1] - SIDE) // 2
    return img[top:top + SIDE, left:left + SIDE]


def run(r: Restorer, img: np.ndarray, **kw) -> np.ndarray:
    x = img[None] if img.ndim == 2 else img.transpose(2, 0, 1)
    return hwc(r.apply(Picture(np.ascontiguousarray(x, dtype=np.float32)), **kw)[0])


def panel(images: list[np.ndarray], labels: list[str], out: Path) -> None:
    tiles = []
    font = ImageFont.load_default(size=14)
    for img, label in zip(images, labels):
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, 2)
        im = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).resize(
            (SIDE, SIDE), Image.NEAREST)
        d = ImageDraw.Draw(im)
        d.rectangle([0, 0, SIDE, 20], fill=(0, 0, 0))
        d.text((4, 2), label, fill=(255, 255, 255), font=font)
        tiles.append(np.asarray(im))
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, 1)).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


def main() -> int:
    import argparse

    import skimage.data as skd

    from aekit.data.images import read_image

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="folder with bsd68/CBSD68: use held-out test photos")
    args = p.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if args.data:
        held = Path(args.data) / "bsd68" / "CBSD68"
        crops = [centre(read_image(held / n, "RGB")) for n in HELD_OUT]
    else:
        astro = skd.astronaut().astype(np.float32) / 255
        crops = [astro[30:222, 150:342], (skd.coffee().astype(np.float32) / 255)[100:292, 200:392],
                 (skd.chelsea().astype(np.float32) / 255)[60:252, 100:292], astro[40:232, 140:332]]
    crops = [np.ascontiguousarray(c, dtype=np.float32) for c in crops]
    img_dir = ROOT / "docs" / "img"

    clean = crops[0]
    noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    panel([noisy, run(Restorer.load("denoise"), noisy), clean],
          ["noisy sigma=25", "aekit denoise", "original"], img_dir / "restore-denoise.png")

    clean = crops[1]
    grey = clean @ np.array([0.299, 0.587, 0.114], np.float32)
    calibrated = Restorer.load("colorize")
    panel([grey, run(calibrated, grey), run(Restorer.load("colorize", saturation=1.0), grey), clean],
          ["grey", f"aekit colorize (gain {calibrated.saturation:g})", "--saturation 1", "original"],
          img_dir / "restore-colorize.png")

    clean = crops[2]
    marked, alpha = watermark_image(clean, np.random.default_rng(5), split="test")
    r = Restorer.load("unwatermark")
    panel([marked, run(r, marked), run(r, marked, mask=alpha > 0.01), clean],
          ["watermarked (unseen font)", "aekit unwatermark", "... --mask (true mask)", "original"],
          img_dir / "restore-unwatermark.png")

    clean = crops[3]
    small = resize(torch.from_numpy(clean.transpose(2, 0, 1))[None], (48, 48))[0].clamp(0, 1)
    bic = resize(small[None], (SIDE, SIDE))[0].clamp(0, 1).numpy().transpose(1, 2, 0)
    up = run(Restorer.load("upscale", scale=4), small.numpy().transpose(1, 2, 0))
    panel([bic, up, clean], ["bicubic x4", "aekit upscale x4", "original"],
          img_dir / "restore-upscale.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
