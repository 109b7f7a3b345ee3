#!/usr/bin/env python
"""Before/after pictures of the four restoration commands for the README.

    python scripts/restore_figure.py            # writes docs/img/restore-<task>.png

Each picture is [corrupted input | aekit's output | original], made with the shipped zoo
models on a crop of a photo that ships with scikit-image (so anyone can remake it).
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


def hwc(a: np.ndarray) -> np.ndarray:
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def run(r: Restorer, img: np.ndarray) -> np.ndarray:
    x = img[None] if img.ndim == 2 else img.transpose(2, 0, 1)
    return hwc(r.apply(Picture(np.ascontiguousarray(x, dtype=np.float32)))[0])


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
    import skimage.data as skd

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    astro = skd.astronaut().astype(np.float32) / 255
    coffee = skd.coffee().astype(np.float32) / 255
    chelsea = skd.chelsea().astype(np.float32) / 255
    img_dir = ROOT / "docs" / "img"

    clean = astro[30:222, 150:342]
    noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    panel([noisy, run(Restorer.load("denoise"), noisy), clean],
          ["noisy sigma=25", "aekit denoise", "original"], img_dir / "restore-denoise.png")

    clean = coffee[100:292, 200:392]
    grey = clean @ np.array([0.299, 0.587, 0.114], np.float32)
    panel([grey, run(Restorer.load("colorize"), grey), clean],
          ["grey", "aekit colorize", "original"], img_dir / "restore-colorize.png")

    clean = chelsea[60:252, 100:292]
    marked, _ = watermark_image(clean, np.random.default_rng(5), split="test")
    panel([marked, run(Restorer.load("unwatermark"), marked), clean],
          ["watermarked (unseen font)", "aekit unwatermark", "original"],
          img_dir / "restore-unwatermark.png")

    clean = astro[40:232, 140:332]
    small = resize(torch.from_numpy(clean.transpose(2, 0, 1))[None], (48, 48))[0].clamp(0, 1)
    bic = resize(small[None], (SIDE, SIDE))[0].clamp(0, 1).numpy().transpose(1, 2, 0)
    up = run(Restorer.load("upscale", scale=4), small.numpy().transpose(1, 2, 0))
    panel([bic, up, clean], ["bicubic ×4", "aekit upscale ×4", "original"],
          img_dir / "restore-upscale.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
