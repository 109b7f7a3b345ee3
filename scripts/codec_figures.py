#!/usr/bin/env python
"""Make the codec pictures of the README.

* ``docs/img/codec-rd.png``: bpp–PSNR curves of aekit, JPEG and WebP on a folder (default
  the first 12 images of CBSD68 — benchmark images, never training data).
* ``docs/img/codec-context.png``: format 3 on that image — where the channels decoded before
  one latent channel are active, and the table width each of its positions is coded with.
* ``docs/img/codec-crop.png``: the same crop of one image as JPEG and as aekit at about the
  same rate (JPEG's quality chosen so its file is the nearest to, and not smaller than,
  aekit's), with the original beside them.

  aekit is its default encoder (``aekit compress``: ``codec.DEFAULT_REFINE_STEPS`` steps of
  encoder-side latent refinement); the RD plot also shows it with ``--refine STEPS``
  (default 0, the plain encoder; the default count again leaves that curve out).

    python scripts/codec_figures.py [--data DIR] [--limit 12] [--image 3] [--refine 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np

from aekit import codec
from aekit.apps.codec import load_codec
from aekit.rd import evaluate_folder, list_images, pillow_codec, plot_rd, psnr255, read_image


def crop_figure(model, img: np.ndarray, quality: int, out: Path, box: int = 160) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aekit.io import atomic_path

    pixels = img.shape[0] * img.shape[1]
    data = codec.compress(model, img, quality)
    ours = codec.decompress(model, data)
    bpp = 8 * len(data) / pixels
    jpeg = pillow_codec("JPEG")
    best = None
    for q in range(2, 96):
        jd, jo = jpeg(img, q)
        if 8 * len(jd) / pixels >= bpp:
            best = (q, jd, jo)
            break
    q, jd, jo = best or (95, *jpeg(img, 95))
    # the crop with the most detail (largest local variance) of a coarse grid
    grey = img.mean(2) if img.ndim == 3 else img.astype(float)
    cands = [(grey[y:y + box, x:x + box].std(), y, x)
             for y in range(0, img.shape[0] - box + 1, box // 4)
             for x in range(0, img.shape[1] - box + 1, box // 4)]
    _, y, x = max(cands)
    jpeg_title = f"JPEG q{q}: {8 * len(jd) / pixels:.3f} bpp, {psnr255(jo, img):.2f} dB"
    panels = [("original", img), (jpeg_title, jo),
              (f"aekit q{quality + 1}: {bpp:.3f} bpp, {psnr255(ours, img):.2f} dB", ours)]
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.5), dpi=100)
    for ax, (title, im) in zip(axes, panels):
        ax.imshow(im[y:y + box, x:x + box], interpolation="nearest",
                  cmap="gray" if im.ndim == 2 else None)
        ax.set_title(title, fontsize=8.5)
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return {"aekit_bpp": bpp, "jpeg_quality": q, "jpeg_bpp": 8 * len(jd) / pixels,
            "aekit_psnr": psnr255(ours, img), "jpeg_psnr": psnr255(jo, img)}


def context_figure(model, img: np.ndarray, quality: int, out: Path) -> dict:
    """Format 3 on one photo: the activity of the channels decoded before one latent channel,
    the table stretch each position of that channel is coded with, and the channel itself."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aekit.codes_quantized import ADAPT_UNIT
    from aekit.io import atomic_path

    code = model.code
    h = codec.analyse(model, img)
    y = codec.integer_latents(code, h, quality)
    m, lh, lw = y.shape
    flat = y.reshape(m, -1)
    base, use, shift = codec.plan_context(code, quality, flat)
    act = codec._activity(flat)
    # a flagged channel late in the order (much context) with the most non-zero values
    late = [c for c in range(m // 2, m) if use[c]] or [c for c in range(m) if use[c]] or [m - 1]
    c = max(late, key=lambda k: int((flat[k] != 0).sum()))
    bins = codec._context_bins(act[c])
    j = codec._shifted(base[c], shift[bins]) if use[c] else np.full(bins.shape, base[c])
    stretch = 2.0 ** ((j - ADAPT_UNIT) / 4.0)
    sizes = {v: len(codec.encode_symbols(code, quality, y, v)) for v in (2, 3)}
    panels = [("photo", img, None),
              (f"activity of the {c} channels before channel {c}", act[c].reshape(lh, lw), "magma"),
              (f"table width used for channel {c} (×, log scale)", np.log2(stretch).reshape(lh, lw), "viridis"),
              (f"|ŷ| of channel {c}", np.abs(y[c]), "magma")]
    fig, axes = plt.subplots(1, 4, figsize=(13, 2.9), dpi=100)
    for ax, (title, im, cmap) in zip(axes, panels):
        ax.imshow(im, cmap=cmap, interpolation="nearest")
        ax.set_title(title, fontsize=8.5)
        ax.axis("off")
    fig.suptitle(f"quality {quality + 1}: format 2 {sizes[2]} bytes, format 3 {sizes[3]} bytes "
                 f"({100 * (1 - sizes[3] / sizes[2]):.1f} % smaller, same pixels); shifts of the "
                 f"8 groups {shift.tolist()}, {int(use.sum())} of {m} channels use them", fontsize=9)
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return {"channel": c, "format2_bytes": sizes[2], "format3_bytes": sizes[3]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "bsd68" / "CBSD68"))
    p.add_argument("--limit", type=int, default=12)
    p.add_argument("--image", type=int, default=3, help="index of the image for the crop figure")
    p.add_argument("--quality", type=int, default=3, help="aekit quality (1-based) of the crop "
                   "(default 3: λ = 0.0035 on the zoo codec's ladder)")
    p.add_argument("--refine", type=int, default=0,
                   help="refinement steps of the second aekit curve (default 0: the plain encoder)")
    p.add_argument("--model", default=None)
    args = p.parse_args()
    model = load_codec(args.model)
    images = list_images(args.data)
    out = ROOT / "docs" / "img"
    result = evaluate_folder(images[: args.limit], model, msssim=False, progress=False)
    if args.refine != codec.DEFAULT_REFINE_STEPS:
        refined = evaluate_folder(images[: args.limit], model, msssim=False, progress=False,
                                  refine_steps=args.refine)
        result["curves"][f"aekit --refine {args.refine}"] = refined["curves"]["aekit"]
    plot_rd(result, out / "codec-rd.png",
            title=f"{Path(args.data).name}: first {min(args.limit, len(images))} images")
    info = crop_figure(model, read_image(images[args.image]), args.quality - 1, out / "codec-crop.png")
    ctx = context_figure(model, read_image(images[args.image]), codec.default_quality(model),
                         out / "codec-context.png")
    print(f"wrote {out / 'codec-rd.png'}, {out / 'codec-crop.png'}: {info} and "
          f"{out / 'codec-context.png'}: {ctx}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
