"""Learned image compression: ``aekit compress``, ``aekit decompress``, ``aekit codec-eval``.

Files are ``.aek`` (format in :mod:`aekit.codec` and the README); the model is the
pretrained zoo ``codec`` unless ``--model DIR`` names another saved ``codec`` model.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from aekit.apps import Handler, command
from aekit.apps.common import (
    add_json_flag,
    check_out_dir,
    each_file,
    emit,
    format_table,
    jsonable,
    plan_outputs,
)
from aekit.data.images import IMAGE_SUFFIXES
from aekit.errors import AekitError, DataError, warn
from aekit.io import atomic_path, write_bytes_atomic, write_json_atomic


def load_codec(path: str | None):
    from aekit import codec, zoo
    from aekit.models import Autoencoder

    model = zoo.load("codec") if path is None else Autoencoder.from_pretrained(path)
    codec.check_codec_model(model)
    return model


def add_model_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, metavar="DIR",
                   help="a saved codec model directory (default: the pretrained zoo codec)")


def _steps(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= 10_000:
        raise argparse.ArgumentTypeError(f"must be a whole number of steps 0–10000, got {text!r}")
    return n


def add_refine_flag(p: argparse.ArgumentParser) -> None:
    from aekit.codec import DEFAULT_REFINE_STEPS  # the CLI has torch loaded already: ~5 ms

    p.add_argument("--refine", type=_steps, default=DEFAULT_REFINE_STEPS, metavar="STEPS",
                   help="gradient steps per image spent on a better latent for this image: "
                        "smaller files at the same quality, 0.2–0.3 s more per step for a "
                        "768×512 photo; the decoder and the format are unchanged; 0 is the "
                        f"plain, fastest encoder (default {DEFAULT_REFINE_STEPS})")


def _save_png(img, path: Path) -> None:
    from PIL import Image

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(img).save(tmp, format="PNG")


@command("compress", help="compress an image (or a folder of images) to .aek files")
def compress_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("input", help="an image file, or a folder of images")
    p.add_argument("output", help="the .aek file (or the folder for a folder)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--quality", type=int, default=None,
                      help="quality level: 1 (smallest files) up to the model's level "
                           "count (best); default: the level nearest CompressAI's quality 4 "
                           "(λ = 0.013, about 0.5 bpp on photos)")
    rate.add_argument("--bpp", type=float, default=None,
                      help="target bits per pixel: the quality whose unrefined file is "
                           "nearest (then refined, a few %% smaller)")
    add_refine_flag(p)
    add_model_flag(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        from tqdm.auto import tqdm

        from aekit import codec
        from aekit.rd import list_images, read_image_alpha

        model = load_codec(args.model)
        n_q = codec.n_qualities(model)
        if args.quality is not None and not 1 <= args.quality <= n_q:
            raise AekitError(f"--quality must be 1–{n_q}, got {args.quality}")
        if args.bpp is not None and not 0 < args.bpp < math.inf:
            raise AekitError(f"--bpp must be a positive number, got {args.bpp}")
        src, dst = Path(args.input), Path(args.output)
        if not src.exists():
            raise DataError(f"{src}: no such file or folder")
        pairs = plan_outputs(src, args.output, list_images(src) if src.is_dir() else [src],
                             [".aek"], {".aek", *IMAGE_SUFFIXES}, ".aek")
        bar = tqdm(pairs, desc="compress", unit="img",
                   disable=args.no_progress or len(pairs) == 1 or None)

        def one(inp: Path, out: Path) -> dict[str, Any]:
            img, alpha = read_image_alpha(inp)
            if alpha:
                warn(f"{inp}: alpha channel dropped (an .aek file holds grey or RGB)")
            t0 = time.perf_counter()
            try:
                if args.bpp is not None:
                    data, q = codec.compress_to_bpp(model, img, args.bpp, args.refine)
                    got = codec.bpp_of(data, img.shape[1], img.shape[0])
                    if q in (0, n_q - 1) and abs(got - args.bpp) > 0.25 * args.bpp:
                        warn(f"{inp}: {args.bpp:g} bpp is out of the codec's reach for this "
                             f"image; the {'lowest' if got > args.bpp else 'highest'} quality "
                             f"gives {got:.3f} bpp")
                else:
                    q = codec.default_quality(model) if args.quality is None else args.quality - 1
                    data = codec.compress(model, img, q, args.refine)
            except AekitError as e:  # (e.g. a size .aek cannot store): say which file
                raise type(e)(f"{inp}: {e}") from None
            secs = time.perf_counter() - t0
            write_bytes_atomic(out, data)
            return {"in": str(inp), "out": str(out), "width": img.shape[1],
                    "height": img.shape[0], "mode": "L" if img.ndim == 2 else "RGB",
                    "alpha_dropped": alpha, "quality": q + 1, "refine_steps": args.refine,
                    "format": codec.parse(data)[0].version, "bytes": len(data),
                    "bpp": codec.bpp_of(data, img.shape[1], img.shape[0]),
                    "seconds": round(secs, 3)}

        rows = each_file(pairs, one, bar)
        if len(rows) == 1:
            r = rows[0]
            text = (f"{r['in']} ({r['width']}×{r['height']} {r['mode']}) → {r['out']}: "
                    f"{r['bytes']} bytes, {r['bpp']:.3f} bpp at quality {r['quality']}"
                    + (f" (refined, {args.refine} steps)" if args.refine else "")
                    + f" in {r['seconds']:.2f} s")
        else:
            total = sum(r["bytes"] for r in rows)
            bpp = sum(8 * r["bytes"] for r in rows) / sum(r["width"] * r["height"] for r in rows)
            text = f"compressed {len(rows)} images into {dst}: {total} bytes, {bpp:.3f} bpp overall"
        emit(args, {"files": rows}, text)
        return 0

    return run


@command("decompress", help="decode an .aek file (or a folder of them) to PNG")
def decompress_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("input", help="an .aek file, or a folder of them")
    p.add_argument("output", help="the PNG file (or the folder for a folder)")
    add_model_flag(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        from tqdm.auto import tqdm

        from aekit import codec

        src, dst = Path(args.input), Path(args.output)
        if not src.exists():
            raise DataError(f"{src}: no such file or folder")
        if src.is_dir():
            inputs = sorted(p for p in src.rglob("*") if p.suffix.lower() == ".aek"
                            and p.is_file())  # X.AEK too: compress writes any case
            if not inputs:
                raise DataError(f"{src} holds no .aek files")
        else:
            inputs = [src]
        pairs = plan_outputs(src, args.output, inputs, [".png"], {".aek", *IMAGE_SUFFIXES},
                             ".png")
        model = load_codec(args.model)
        bar = tqdm(pairs, desc="decompress", unit="file",
                   disable=args.no_progress or len(pairs) == 1 or None)

        def one(inp: Path, out: Path) -> dict[str, Any]:
            data = inp.read_bytes()
            t0 = time.perf_counter()
            try:
                img = codec.decompress(model, data)
            except codec.CodecFormatError as e:
                raise codec.CodecFormatError(f"{inp}: {e}") from None
            secs = time.perf_counter() - t0
            _save_png(img, out)
            return {"in": str(inp), "out": str(out), "width": img.shape[1],
                    "height": img.shape[0], "mode": "L" if img.ndim == 2 else "RGB",
                    "bpp": codec.bpp_of(data, img.shape[1], img.shape[0]),
                    "seconds": round(secs, 3)}

        rows = each_file(pairs, one, bar)
        if len(rows) == 1:
            r = rows[0]
            text = (f"{r['in']} → {r['out']} ({r['width']}×{r['height']} {r['mode']}, "
                    f"{r['bpp']:.3f} bpp) in {r['seconds']:.2f} s")
        else:
            text = f"decoded {len(rows)} files into {dst}"
        emit(args, {"files": rows}, text)
        return 0

    return run


def rd_report(result: dict[str, Any]) -> str:
    """The text table of ``aekit codec-eval`` and ``benchmarks/codec.py``."""
    from aekit.rd import ANCHOR_MAX_BPP, curve_label

    head = (f"rate–distortion on {result['images']} images (means per quality point; bpp from "
            "file bytes, PSNR on RGB 0–255)")
    lines = [head]
    for name, rows in result["curves"].items():
        lines += ["", f"{curve_label(name, result)}:", format_table(
            [{"quality": r["quality"], "bpp": round(r["bpp"], 4), "PSNR dB": round(r["psnr"], 2),
              "MS-SSIM": round(r["ms_ssim"], 4)} for r in rows])]
    if "psnr_at" in result:
        lines += ["", "PSNR (dB) interpolated at equal rates:"]
        names = list(result["curves"])
        lines.append(format_table([{"bpp": b, **{n: v.get(n) for n in names}}
                                   for b, v in result["psnr_at"].items()]))
    if "bd_rate" in result:
        lines += ["", "BD-rate of aekit (Bjøntegaard 2001, cubic fit; negative = fewer bits at "
                  f"equal PSNR; JPEG/WebP points ≤ {ANCHOR_MAX_BPP:g} bpp): "
                  + ", ".join(f"vs {k} {v:+.1f} %" if v is not None and math.isfinite(v)
                              else f"vs {k} — (the PSNR ranges do not overlap)"
                              for k, v in result["bd_rate"].items())]
    if result.get("encode_decode_seconds_median") is not None:
        lines.append(f"aekit encode + decode, median per image: "
                     f"{result['encode_decode_seconds_median']:.2f} s")
    lines += ["", "published anchors (CompressAI, Kodak24 — other images, for scale):"]
    for name, pts in result.get("anchors_kodak", {}).items():
        lines.append(f"  {name}: " + ", ".join(f"{b:.3f} bpp/{p:.2f} dB" for b, p in pts))
    return "\n".join(lines)


@command("codec-eval", help="rate–distortion of aekit vs JPEG and WebP on a folder of images")
def codec_eval_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("folder", help="a folder of images")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write rd.json and the plot rd.png here")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only the first N images (a quick look)")
    p.add_argument("--no-msssim", action="store_true", help="skip MS-SSIM (faster)")
    add_refine_flag(p)
    add_model_flag(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        from aekit import codec
        from aekit.rd import evaluate_folder, list_images, plot_rd, read_image

        if args.out:
            check_out_dir(Path(args.out), results=True)  # before the evaluation, not after
        images = list_images(args.folder)
        if args.limit is not None:
            if args.limit < 1:
                raise AekitError(f"--limit must be ≥ 1, got {args.limit}")
            images = images[: args.limit]
        for path in images:  # a bad file: one line now, not after the others' evaluation
            try:
                codec.check_image(read_image(path))
            except AekitError as e:
                raise type(e)(f"{path}: {e}" if str(path) not in str(e) else str(e)) from None
        model = load_codec(args.model)
        result = evaluate_folder(images, model, msssim=not args.no_msssim,
                                 progress=False if args.no_progress else None,
                                 refine_steps=args.refine)
        result["folder"] = str(args.folder)
        text = rd_report(result)
        if args.out:
            out = Path(args.out)
            # null where a codec has no point (as --json): NaN is not JSON
            write_json_atomic(out / "rd.json", jsonable(result))
            plot_rd(result, out / "rd.png", title=f"{Path(args.folder).name}: "
                                                  f"{result['images']} images")
            result["plot"] = str(out / "rd.png")
            text += f"\nwrote {out / 'rd.json'} and {out / 'rd.png'}"
        emit(args, result, text)
        return 0

    return run
