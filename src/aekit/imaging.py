"""Image-to-image helpers shared by the jobs that map a photo to a photo (restoration, codecs).

* :class:`Picture`: a photo read with what must survive a round trip — grey/RGB, an alpha
  channel, 16-bit depth, EXIF (orientation applied and reset) and the ICC profile — and
  :func:`save_picture`, which writes it back in the same mode, atomically.
* :func:`run_image_model`: a fully convolutional model on any size (padded to the multiple
  it needs, reflected borders).
* :func:`tiled_apply`: any (B, C, h, w) → (B, C', s·h, s·w) function over a photo of any size
  in overlapping tiles, blended with linear ramps, and memory bounded by the tile (rows of
  tiles are finalised as soon as no later tile touches them). A network whose context is
  wider than the overlap sees a tile's edge differently from the whole image's interior: the
  restoration models' 512-px tiles differ from one whole-image pass by up to 7 grey levels
  (mean 0.08) on a 720×576 photo, 128-px tiles by up to 11 (mean 0.4), with PSNR unchanged;
  a wider overlap barely helps (256-px tiles: 8.6 levels at 32 px, 8.2 at 64).
* Colour spaces: BT.601 YCbCr (full range, as JPEG) and the studio-range Y that
  super-resolution papers measure PSNR on.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aekit.data.images import read_image
from aekit.errors import AekitError, DataError
from aekit.io import atomic_path

# ------------------------------------------------------------------------------- pictures


def as_chw(pixels: Any, what: str) -> np.ndarray:
    """An array as (C, H, W) with C = 1 (grey) or 3 (RGB); (H, W) is taken as grey."""
    p = np.asarray(pixels)
    if p.ndim == 2:  # (H, W): grey
        p = p[None]
    if p.ndim != 3 or p.shape[0] not in (1, 3):
        hint = (" — channels last? give pixels.transpose(2, 0, 1)"
                if p.ndim == 3 and p.shape[-1] in (1, 3) else "")
        raise DataError(f"{what} must be (C, H, W) with C = 1 (grey) or 3 (RGB), got shape "
                        f"{p.shape}{hint}")
    return p


@dataclass
class Picture:
    """Pixels as float32 (C, H, W) in [0, 1] (colour or grey, no alpha), plus what to keep."""

    pixels: np.ndarray
    alpha: np.ndarray | None = None  # (H, W) in [0, 1]
    bits: int = 8
    exif: bytes | None = None
    icc: bytes | None = None
    info: dict[str, Any] = field(default_factory=dict)

    #: a pixel beyond ±this is on another scale (0–255?): [0, 1] plus unclipped noise of any
    #: σ the denoiser takes (up to 255/255, 5σ: 6) stays below
    SCALE_LIMIT = 16.0

    def __post_init__(self) -> None:
        """Pixels built by hand (the Python API) are checked once here: a uint8 array or
        0–255 floats, taken as [0, 1], restored to a white picture without a word."""
        p = as_chw(self.pixels, "Picture pixels")
        if not np.issubdtype(p.dtype, np.floating):
            raise DataError(f"Picture pixels must be floats in [0, 1], got {p.dtype}: divide 8-bit "
                            "values by 255 and 16-bit ones by 65535 (read_picture does this)")
        p = np.ascontiguousarray(p, dtype=np.float32)
        if not p.size:
            raise DataError(f"Picture pixels are empty (shape {p.shape})")
        top = max(float(p.max()), -float(p.min()))  # (NaN propagates; no full-size copy)
        if not math.isfinite(top):
            raise DataError("Picture pixels contain NaN or infinite values")
        if top > self.SCALE_LIMIT:
            raise DataError(f"Picture pixels are on the 0–1 scale, got values up to {top:.4g}: "
                            "divide 8-bit values by 255")
        self.pixels = p
        if self.alpha is not None:
            a = np.asarray(self.alpha)
            if a.shape != p.shape[1:] or not np.issubdtype(a.dtype, np.floating):
                raise DataError(f"Picture alpha must be (H, W) = {p.shape[1:]} floats in [0, 1], "
                                f"got {a.dtype} {a.shape}")
            a = np.ascontiguousarray(a, dtype=np.float32)
            if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
                raise DataError("Picture alpha must be finite values in [0, 1]")
            self.alpha = a

    @property
    def grey(self) -> bool:
        return self.pixels.shape[0] == 1

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[2])


def read_picture(path: str | os.PathLike[str]) -> Picture:
    """Read any image Pillow knows; EXIF orientation is applied (and reset to 1 in the
    EXIF kept), 16-bit grey keeps its precision, an alpha channel is split off."""
    from PIL import Image

    arr = read_image(path)  # raises DataError with one line for missing/corrupt files
    bits, exif, icc = 8, None, None
    try:
        with Image.open(path) as im:
            bits = 16 if im.mode in ("I;16", "I;16B", "I;16L", "I", "F") else 8
            icc = im.info.get("icc_profile")
            ex = im.getexif()
            if len(ex):
                ex[0x0112] = 1  # pixels are already upright
                exif = ex.tobytes()
    except (OSError, ValueError, KeyError, TypeError, SyntaxError):
        pass  # metadata is a courtesy: never fail a read over it
    alpha = None
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        alpha, arr = arr[..., -1], arr[..., :-1]
    pixels = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    # (read_image refused non-finite float images by name; Picture checks the rest)
    return Picture(np.ascontiguousarray(pixels, dtype=np.float32), alpha, bits, exif, icc)


#: formats whose files hold an alpha channel; others (JPEG, BMP, PPM…) get the colours only
ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")


def _to_depth(a: np.ndarray, dtype: type) -> np.ndarray:
    """Pixels as uint8 or uint16: floats in [0, 1] rounded, the other integer depth rescaled
    (a 16-bit photo written as an 8-bit JPEG keeps its tones, not 0/1 clipped to white)."""
    if a.dtype == dtype:
        return a
    top = np.iinfo(dtype).max
    if a.dtype.kind == "u":
        src = np.iinfo(a.dtype).max
        return ((a.astype(np.uint64) * top + src // 2) // src).astype(dtype)
    return (np.clip(a, 0, 1) * top + 0.5).astype(dtype)


#: TIFF tags that describe how a file's pixels are laid out (size, depth, sample format,
#: strips, compression): an input TIFF's EXIF carries them, and copied onto an output of
#: another depth they made it unreadable (a float TIFF written back as 16-bit kept
#: SampleFormat = float)
_TIFF_LAYOUT_TAGS = (256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 322, 323, 324,
                     325, 338, 339)


def _without_layout(exif: bytes) -> bytes:
    from PIL import Image

    ex = Image.Exif()
    ex.load(exif)
    for tag in _TIFF_LAYOUT_TAGS:
        ex.pop(tag, None)
    return ex.tobytes()


def save_picture(path: str | os.PathLike[str], pixels: np.ndarray, like: Picture | None = None,
                 alpha: np.ndarray | None = None) -> None:
    """Write (C, H, W) floats in [0, 1] (or uint8) atomically, the suffix choosing the format;
    with ``like``, its bit depth (16-bit grey PNG), EXIF and ICC profile are kept."""
    from PIL import Image

    path = Path(path)
    pixels = as_chw(pixels, "save_picture's pixels")
    suffix = path.suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None:
        raise AekitError(f"{path}: unknown image format {suffix or '(no suffix)'}; "
                         "use .png, .jpg, .webp, .tif, …")
    c = pixels.shape[0]
    if suffix == ".pgm" and c != 1:
        raise AekitError(f"{path}: a .pgm holds a grey image and this one is in colour; use .ppm "
                         "or .png")
    hwc = pixels[0] if c == 1 else pixels.transpose(1, 2, 0)
    bits = like.bits if like is not None else 8
    if bits == 16 and c == 1 and alpha is None and fmt in ("PNG", "TIFF"):
        im = Image.fromarray(_to_depth(hwc, np.uint16))
    else:
        data = _to_depth(hwc, np.uint8)
        if alpha is not None and fmt in ALPHA_FORMATS:
            a = (np.clip(alpha, 0, 1) * 255 + 0.5).astype(np.uint8)
            data = np.dstack([data, a])
        im = Image.fromarray(data)
    kwargs: dict[str, Any] = {}
    if like is not None and like.exif and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        # an input TIFF's layout tags (size, bit depth, strips) describe that file, not this one
        kwargs["exif"] = _without_layout(like.exif)
    if like is not None and like.icc and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        kwargs["icc_profile"] = like.icc
    if fmt == "JPEG":
        kwargs["quality"] = 95
    elif fmt == "PNG":
        kwargs["compress_level"] = 4  # ~2× faster than Pillow's 6, a few % larger
    with atomic_path(path) as tmp:
        im.save(tmp, format=fmt, **kwargs)


# ----------------------------------------------------------------------------- colour space
_YCC = torch.tensor([[0.299, 0.587, 0.114],
                     [-0.168736, -0.331264, 0.5],
                     [0.5, -0.418688, -0.081312]])


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] → full-range BT.601 YCbCr, Cb/Cr centred on 0.5 (JPEG's)."""
    m = _YCC.to(x.device, x.dtype)
    y = torch.einsum("ij,bjhw->bihw", m, x)
    return y + torch.tensor([0, 0.5, 0.5], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)


def scale_chroma(ycc: Tensor, gain: float) -> Tensor:
    """Multiply the chroma of a (B, 3, H, W) YCbCr batch (``rgb_to_ycbcr``'s, Cb/Cr centred on
    0.5) by ``gain`` about grey, luma kept: 0 = grey, 1 = unchanged."""
    return torch.cat([ycc[:, :1], 0.5 + gain * (ycc[:, 1:] - 0.5)], 1)


#: an orthonormal luminance/opponent-colour basis (rows): R+G+B, R−B, R−2G+B, each normalised
_OPP = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, -1.0], [1.0, -2.0, 1.0]])
_OPP = _OPP / _OPP.norm(dim=1, keepdim=True)
_OPP_SHIFT = (0.0, 0.5, 0.5)


def rgb_to_opponent(x: Tensor) -> Tensor:
    """(B, 3, H, W) RGB → three decorrelated planes in [0, 1] (luminance = the RGB mean, and
    two opponent-colour planes centred on 0.5). The basis is orthonormal (then scaled by
    1/√3), so i.i.d. noise of σ in RGB is i.i.d. noise of σ/√3 in every plane: a grey
    denoiser can clean each plane on its own, as CBM3D does (Dabov et al. 2007)."""
    m = _OPP.to(x.device, x.dtype) / 3 ** 0.5
    shift = torch.tensor(_OPP_SHIFT, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", m, x) + shift


def opponent_to_rgb(y: Tensor) -> Tensor:
    m = _OPP.to(y.device, y.dtype) * 3 ** 0.5  # the inverse of an orthonormal basis: its transpose
    shift = torch.tensor(_OPP_SHIFT, device=y.device, dtype=y.dtype).view(1, 3, 1, 1)
    return torch.einsum("ji,bjhw->bihw", m, y - shift)


def ycbcr_to_rgb(y: Tensor) -> Tensor:
    m = torch.linalg.inv(_YCC.double()).to(y.device, y.dtype)
    y = y - torch.tensor([0, 0.5, 0.5], device=y.device, dtype=y.dtype).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", m, y)


def ycbcr_to_rgb_in_gamut(y: Tensor) -> Tensor:
    """:func:`ycbcr_to_rgb`, with each pixel's chroma shrunk towards grey just enough for its
    RGB to fit [0, 1], so the luma is kept exactly. (Clipping each channel instead changes the
    luma: a strongly saturated colour lost up to 60 grey levels of brightness.)"""
    grey = y[:, :1]  # the grey of the same luma: R = G = B = Y
    d = ycbcr_to_rgb(y) - grey  # each channel's offset from grey, linear in the chroma
    room = torch.where(d > 0, (1 - grey) / d.clamp_min(1e-12), grey / (-d).clamp_min(1e-12))
    f = room.amin(1, keepdim=True).clamp(0, 1)
    return grey + f * d


def y_channel(rgb: np.ndarray) -> np.ndarray:
    """Studio-range BT.601 luma in [16/255, 235/255] of (H, W, 3) RGB in [0, 1]: what
    super-resolution papers compute PSNR on (MATLAB's ``rgb2ycbcr``)."""
    return (16 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255


# ------------------------------------------------------------------------------ inference
def size_multiple(model: torch.nn.Module) -> int:
    """The side multiple a model's input needs: the arch's ``size_multiple`` if it states
    one, else 2^(number of stride-2 convolutions in the encoder)."""
    enc = getattr(model, "encoder", None)
    if hasattr(enc, "size_multiple"):
        return int(enc.size_multiple)
    strided = sum(1 for m in enc.modules()
                  if isinstance(m, torch.nn.Conv2d) and m.stride[0] > 1) if enc is not None else 0
    return 2**strided


def _pad_to(x: Tensor, m: int) -> tuple[Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        mode = "reflect" if (ph < h and pw < w) else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


@torch.no_grad()
def run_image_model(model: Any, x: Tensor) -> Tensor:
    """A fully convolutional image-to-image :class:`~aekit.models.Autoencoder` on a batch of
    any size (B, C, H, W) in [0, 1]; the input is padded (reflected) to the multiple the
    architecture needs and the output cropped back."""
    if model.config.normalization != "unit":
        raise AekitError("image-to-image models must use normalization 'unit'")
    if tuple(x.shape[1:2]) != tuple(model.input_shape[:1]):
        raise AekitError(f"the model takes {model.input_shape[0]}-channel images, "
                         f"got {x.shape[1]} channels")
    xp, h, w = _pad_to(x, size_multiple(model))
    z, _ = model.code(model.encoder(xp), sample=False)
    return model._output(model.decoder(z))[..., :h, :w]


def _ramp(n: int, overlap: int, lead: bool, trail: bool) -> np.ndarray:
    """Blending weights along one tile side: linear ramps over the overlaps it shares."""
    w = np.ones(n, np.float32)
    if overlap > 0:
        r = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        k = min(overlap, n)
        if lead:
            w[:k] = np.minimum(w[:k], r[:k])
        if trail:
            w[n - k:] = np.minimum(w[n - k:], r[:k][::-1])
    return w


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Where tiles start along one side (the last one flush with the end)."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step)) + [length - tile]
    return sorted(set(starts))


def tiled_apply(fn: Callable[[Tensor], Tensor], image: np.ndarray, *, scale: int = 1,
                tile: int = 512, overlap: int = 32, out_channels: int | None = None,
                out_dtype: Any = np.float32, batch: int = 1,
                progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Apply ``fn`` to a (C, H, W) float image in overlapping tiles; returns (C', s·H, s·W).

    Tiles are ``tile``² input pixels overlapping by ``overlap``; each output pixel is the
    ramp-weighted mean of the tiles that cover it, so tiles leave no seam. Only one row of
    tiles is held in floating point at a time; finished rows go straight into the output
    array of ``out_dtype`` (uint8/uint16 output is rounded from [0, 1])."""
    if tile <= 2 * overlap:
        raise AekitError(f"tile ({tile}) must be larger than twice the overlap ({overlap})")
    _, h, w = image.shape
    s = int(scale)
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    out: np.ndarray | None = None

    def to_out(a: np.ndarray) -> np.ndarray:
        if np.issubdtype(np.dtype(out_dtype), np.integer):
            top = np.iinfo(out_dtype).max
            return (np.clip(a, 0, 1) * top + 0.5).astype(out_dtype)
        return a.astype(out_dtype)

    acc = wsum = None
    acc_top = 0  # output row where the accumulators start
    done_to = 0  # output rows finalised so far
    for iy, y0 in enumerate(ys):
        th = min(tile, h - y0)
        wy = _ramp(th * s, overlap * s, iy > 0, iy < len(ys) - 1)
        jobs = []
        for ix, x0 in enumerate(xs):
            tw = min(tile, w - x0)
            jobs.append((x0, tw, _ramp(tw * s, overlap * s, ix > 0, ix < len(xs) - 1)))
        results = []
        for b in range(0, len(jobs), batch):
            chunk = jobs[b:b + batch]
            same = len({tw for _, tw, _ in chunk}) == 1
            groups = [chunk] if same else [[j] for j in chunk]
            for g in groups:
                xt = torch.from_numpy(np.stack([image[:, y0:y0 + th, x0:x0 + tw] for x0, tw, _ in g]))
                yt = fn(xt).float().cpu().numpy()
                results.extend(zip(g, yt))
            if progress is not None:
                progress(len(chunk))
        if out is None:
            c_out = out_channels or results[0][1].shape[0]
            out = np.empty((c_out, h * s, w * s), dtype=out_dtype)
            acc = np.zeros((c_out, min(tile, h) * s, w * s), np.float32)
            wsum = np.zeros((min(tile, h) * s, w * s), np.float32)
        # shift the accumulators so they start at this tile row
        shift = y0 * s - acc_top
        if shift:
            acc = np.roll(acc, -shift, axis=1)
            wsum = np.roll(wsum, -shift, axis=0)
            acc[:, -shift:] = 0
            wsum[-shift:] = 0
            acc_top = y0 * s
        for (x0, tw, wx), yt in results:
            if yt.shape[1:] != (th * s, tw * s):
                raise AekitError(f"the model returned {tuple(yt.shape[1:])} for a "
                                 f"{th}×{tw} tile, expected {(th * s, tw * s)}")
            wt = wy[:, None] * wx[None, :]
            acc[:, :th * s, x0 * s:(x0 + tw) * s] += yt * wt
            wsum[:th * s, x0 * s:(x0 + tw) * s] += wt
        # rows above the next tile row's start are final
        final_to = ys[iy + 1] * s if iy + 1 < len(ys) else h * s
        n = final_to - done_to
        if n > 0:
            lo = done_to - acc_top
            out[:, done_to:final_to] = to_out(acc[:, lo:lo + n] / np.maximum(wsum[lo:lo + n], 1e-8))
            done_to = final_to
    assert out is not None
    return out
