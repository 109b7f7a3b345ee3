"""Reading and writing image files (PNG/JPEG/…, grey or colour, 8/16-bit, EXIF orientation)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from aekit.errors import DataError, warn
from aekit.io import atomic_path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}


def list_images(folder: str | os.PathLike[str], *, required: bool = False) -> list[Path]:
    """The image files under ``folder`` (sub-folders too), sorted; ``required``: none is an
    error (one message for every command that reads a folder of images). Hidden files and
    folders (a name starting with ".": macOS's ``._photo.png`` resource forks, ``.thumbnails``)
    are not images of the set and are skipped."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                   and p.is_file())
    if required and not files:
        raise DataError(f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def read_image(path: str | os.PathLike[str], mode: str | None = None) -> np.ndarray:
    """An image as float32 in [0, 1], shape (H, W) for grey or (H, W, C) for colour.

    ``mode``: None keeps the file's own (grey/RGB/RGBA), 'L' grey, 'RGB' colour.
    EXIF orientation is applied; 16-bit PNGs keep their precision."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected an image file")
    try:
        with warnings.catch_warnings():
            # 89–179 megapixels: Pillow warns (two lines from inside Pillow); past that it
            # refuses, which is the one line below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                frames = getattr(im, "n_frames", 1)
                im = ImageOps.exif_transpose(im)
                im.load()
    except Image.DecompressionBombError:
        raise DataError(f"{path}: too large to read (over Pillow's limit of "
                        f"{Image.MAX_IMAGE_PIXELS * 2:,} pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: not a readable image ({e.__class__.__name__})") from None
    if frames > 1:
        warn(f"{path}: only the first of its {frames} frames is read")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        arr = arr / (65535.0 if arr.max() > 255 or im.mode.startswith("I;16") else 255.0)
        arr = arr.astype(np.float32)
        if mode == "RGB":
            arr = np.repeat(arr[..., None], 3, axis=2)
        return np.clip(arr, 0, 1)
    if im.mode == "F":  # 32-bit float grey (TIFF): [0, 1] as is, else 8- or 16-bit values
        arr = np.asarray(im, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise DataError(f"{path}: image has non-finite values")
        top = arr.max(initial=0.0)
        arr = arr / (1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 65535.0)
        arr = np.clip(arr, 0, 1).astype(np.float32)
        return np.repeat(arr[..., None], 3, axis=2) if mode == "RGB" else arr
    if mode is None:
        mode = {"L": "L", "LA": "LA", "RGBA": "RGBA", "1": "L", "P": "RGBA" if "transparency" in im.info else "RGB"}.get(im.mode, "RGB")
    if im.mode != mode:
        im = im.convert(mode)
    return np.asarray(im, dtype=np.float32) / 255.0


def write_image(path: str | os.PathLike[str], arr: np.ndarray, bits: int = 8) -> None:
    """Write (H, W) or (H, W, C) floats in [0, 1] atomically; the suffix picks the format."""
    from PIL import Image

    arr = np.clip(np.asarray(arr, dtype=np.float32), 0, 1)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    path = Path(path)
    if bits == 16 and arr.ndim == 2 and path.suffix.lower() == ".png":
        im = Image.fromarray((arr * 65535 + 0.5).astype(np.uint16))
    else:
        im = Image.fromarray((arr * 255 + 0.5).astype(np.uint8))
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower())
    if fmt == "JPEG" and im.mode == "RGBA":
        im = im.convert("RGB")
    with atomic_path(path) as tmp:
        im.save(tmp, format=fmt or Image.registered_extensions().get(path.suffix.lower(), "PNG"))


def fit_to_size(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize the short side to fit, then centre-crop to exactly (H, W)."""
    from PIL import Image

    h, w = size
    ih, iw = img.shape[:2]
    s = max(h / ih, w / iw)
    nh, nw = max(h, round(ih * s)), max(w, round(iw * s))
    mode_img = Image.fromarray(img.astype(np.float32)) if img.ndim == 2 else None
    if mode_img is not None:
        res = np.asarray(mode_img.resize((nw, nh), Image.BICUBIC), dtype=np.float32)
    else:
        chans = [np.asarray(Image.fromarray(img[..., c].astype(np.float32)).resize((nw, nh), Image.BICUBIC))
                 for c in range(img.shape[2])]
        res = np.stack(chans, axis=2)
    top, left = (nh - h) // 2, (nw - w) // 2
    return np.clip(res[top: top + h, left: left + w], 0, 1)


def class_folder_labels(folder: str | os.PathLike[str]) -> list[str] | None:
    """The first sub-folder of each image under ``folder`` (in :func:`list_images` order)
    when every image sits in one — a folder of class folders — else None."""
    folder = Path(folder)
    parts = [f.relative_to(folder).parts for f in list_images(folder)]
    return [p[0] for p in parts] if parts and all(len(p) > 1 for p in parts) else None


def load_image_folder(folder: str | os.PathLike[str], size: tuple[int, int] = (64, 64),
                      channels: int = 3) -> np.ndarray:
    """Every image under ``folder`` resized/cropped to ``size``: uint8 (N, C, H, W)."""
    files = list_images(folder, required=True)
    out = np.empty((len(files), channels, *size), dtype=np.uint8)
    for i, f in enumerate(files):
        out[i] = load_image_uint8(f, size, channels)
    return out


def load_image_uint8(path: str | os.PathLike[str], size: tuple[int, int], channels: int) -> np.ndarray:
    """One image file resized/cropped to ``size``: uint8 (C, H, W)."""
    img = fit_to_size(read_image(path, "L" if channels == 1 else "RGB"), size)
    img = img[None] if img.ndim == 2 else img.transpose(2, 0, 1)
    return (img * 255 + 0.5).astype(np.uint8)
