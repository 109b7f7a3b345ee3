#!/usr/bin/env python
"""Rate–distortion and speed of the aekit codec against JPEG and WebP, measured in one run.

    python benchmarks/codec.py --data ../shared/data/bsd68/CBSD68          # all 68 images
    python benchmarks/codec.py --quick                                      # 8 images, no MS-SSIM
    python benchmarks/codec.py --data ../shared/data/bsd68/CBSD68 --refine 0   # plain encoder

Prints the rate–distortion table (mean bpp from file bytes, PSNR on RGB, MS-SSIM) for aekit
(every quality of the shipped model; ``--refine`` steps of encoder-side refinement, by
default as many as ``aekit compress`` takes), JPEG and WebP (Pillow) on the same images, BD-rates of
aekit against both, PSNR at equal rates, CompressAI's published Kodak numbers for scale, and
the encode + decode time of a 768×512 photo (median of 3) beside JPEG's and WebP's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np
from _args import at_least, bench_data

from aekit import codec
from aekit.apps.codec import load_codec, rd_report
from aekit.apps.common import format_table, jsonable
from aekit.rd import evaluate_folder, list_images, pillow_codec, read_image

DEFAULT_DATA = bench_data("bsd68", "CBSD68")


def speed(model, img: np.ndarray, repeats: int = 3, refine_steps: int = 0) -> list[dict]:
    """Median encode + decode seconds of one image for aekit (at ``aekit compress``'s default
    quality, the plain encoder and with ``refine_steps`` of latent refinement when > 0), JPEG
    and WebP."""
    rows = []
    pixels = img.shape[0] * img.shape[1]
    q = codec.default_quality(model)

    def timed(fn) -> float:
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    for steps in sorted({0, refine_steps}):
        aek = codec.compress(model, img, q, steps)
        rows.append({"codec": f"aekit q{q + 1} --refine {steps}",
                     "bpp": round(8 * len(aek) / pixels, 3),
                     "encode+decode s": round(timed(lambda steps=steps: codec.decompress(
                         model, codec.compress(model, img, q, steps))), 3)})
    for name, fmt, level in (("JPEG q75", "JPEG", 75), ("WebP q75", "WEBP", 75)):
        run = pillow_codec(fmt)
        data, _ = run(img, level)
        rows.append({"codec": name, "bpp": round(8 * len(data) / pixels, 3),
                     "encode+decode s": round(timed(lambda run=run, level=level: run(img, level)), 4)})
    return rows


def anchor_convention_jpeg(images: list[Path], result: dict) -> dict:
    """JPEG as CompressAI's published anchors write it (Pillow's default: unoptimised Huffman
    tables), on the same images: aekit's BD-rate against it and both curves' PSNR at the
    Kodak anchor rates, for the bridge to ANCHORS.md. The table's JPEG is optimised."""
    from aekit.rd import ANCHOR_MAX_BPP, JPEG_QUALITIES, bd_rate, psnr255, psnr_at

    run = pillow_codec("JPEG", optimize=False)
    pts: dict[int, list[tuple[float, float]]] = {}
    for path in images:
        img = read_image(path)
        for q in JPEG_QUALITIES:
            data, out = run(img, q)
            pts.setdefault(q, []).append((8 * len(data) / (img.shape[0] * img.shape[1]),
                                          psnr255(out, img)))
    curve = [tuple(np.mean(pts[q], axis=0)) for q in JPEG_QUALITIES]
    ours = [(r["bpp"], r["psnr"]) for r in result["curves"]["aekit"]]
    return {"bd_rate": bd_rate([c for c in curve if c[0] <= ANCHOR_MAX_BPP], ours),
            "psnr_at": {b: (psnr_at(curve, b), psnr_at(ours, b)) for b in (0.288, 0.440)}}


def photo_768x512(images: list[Path]) -> np.ndarray:
    """A 768×512 photo: the first image of the set tiled (reflected) to Kodak's size."""
    img = read_image(images[0])
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    reps = (-(-512 // img.shape[0]) + 1, -(-768 // img.shape[1]) + 1, 1)
    return np.ascontiguousarray(np.pad(img, [(0, img.shape[0] * (reps[0] - 1)),
                                              (0, img.shape[1] * (reps[1] - 1)), (0, 0)],
                                       mode="reflect")[:512, :768])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help=f"a folder of images (default {DEFAULT_DATA})")
    p.add_argument("--limit", type=at_least(1), default=None, help="only the first N images")
    p.add_argument("--quick", action="store_true", help="8 images, no MS-SSIM")
    p.add_argument("--no-msssim", action="store_true")
    p.add_argument("--model", default=None, help="a codec model directory (default: the zoo codec)")
    p.add_argument("--refine", type=int, default=None, metavar="STEPS",
                   help="per-image latent refinement steps (aekit compress --refine; default "
                        "the codec's DEFAULT_REFINE_STEPS, 0 = the plain encoder)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    data = Path(args.data) if args.data else DEFAULT_DATA
    if not data.is_dir():
        print(f"benchmarks/codec.py: {data} is not a folder (pass --data)", file=sys.stderr)
        return 2
    import torch

    images = list_images(data)
    limit = args.limit or (8 if args.quick else None)
    images = images[:limit] if limit else images
    model = load_codec(args.model)
    t0 = time.perf_counter()
    result = evaluate_folder(images, model, msssim=not (args.quick or args.no_msssim), progress=False,
                            refine_steps=args.refine)
    result["folder"] = str(data)
    result["jpeg_pillow_default"] = anchor_convention_jpeg(images, result)
    result["speed_768x512"] = speed(model, photo_768x512(images), refine_steps=result["refine_steps"])
    result["machine"] = {"torch_threads": torch.get_num_threads(),
                         "load_average": [round(v, 2) for v in __import__("os").getloadavg()],
                         "seconds": round(time.perf_counter() - t0, 1)}
    if args.json:
        print(json.dumps(jsonable(result)))
        return 0
    print(rd_report(result))
    conv = result["jpeg_pillow_default"]
    print("\nJPEG as CompressAI's anchors write it (Pillow default, unoptimised Huffman tables; "
          f"the table's JPEG is optimised): aekit BD-rate {conv['bd_rate']:+.1f} %; PSNR at "
          + ", ".join(f"{b:g} bpp JPEG {j:.2f} / aekit {a:.2f} dB"
                      for b, (j, a) in conv["psnr_at"].items()))
    print("\nencode + decode of a 768×512 photo (median of 3):")
    print(format_table(result["speed_768x512"]))
    print(f"\nmachine: {result['machine']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
