"""Corruptions for the restoration jobs, registered beside the core's in :data:`CORRUPTIONS`.

Each undoes to one job: ``grayscale`` → colorize, ``watermark`` → unwatermark, ``downsample``
→ upscale, ``blur`` → deblur, ``holes`` → object removal (fill a user's mask). Blind
denoising reuses the core ``gaussian`` with a σ range. All work on batches (B, C, H, W) in
[0, 1] on any device, in float32 even under autocast (resampling kernels are not all
defined for bf16), with randomness from torch's global generator (seeded by the trainer).

Watermarks are rendered with Pillow from random texts in the fonts every install has
(Pillow's built-in scalable font and the DejaVu/STIX TrueType files matplotlib ships), in
varied sizes, angles, colours and opacities, single or tiled, outlined or solid, plus simple
logo shapes. Texts and fonts are split into a *train* and a held-out *test* set, so a
benchmark can show the model removing marks it never saw.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aekit.corruptions import CORRUPTIONS, Corruption
from aekit.errors import AekitError

#: BT.601 luma weights (what JPEG and most "convert to grey" tools use)
LUMA = (0.299, 0.587, 0.114)


@contextlib.contextmanager
def _float32(x: Tensor) -> Iterator[Tensor]:
    with torch.autocast(x.device.type, enabled=False):
        yield x.float()


def luminance(x: Tensor) -> Tensor:
    """(B, 3, H, W) RGB → (B, 1, H, W) BT.601 luma; grey input is returned as is."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x[:, :3] * w).sum(1, keepdim=True)


@CORRUPTIONS.register("grayscale", help="drop the colour: RGB → BT.601 luma, repeated on 3 channels")
class Grayscale(Corruption):
    clip = True

    def __call__(self, x: Tensor) -> Tensor:
        with _float32(x) as xf:
            return luminance(xf).expand_as(xf).contiguous()


def resize(x: Tensor, size: tuple[int, int], antialias: bool = True) -> Tensor:
    """Bicubic resize (antialiased when shrinking, as PIL and MATLAB's imresize do)."""
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False,
                         antialias=antialias and shrink)


@CORRUPTIONS.register("downsample", help="bicubic ×s down then back up (super-resolution input)")
class Downsample(Corruption):
    """Super-resolution's degradation (Dong et al. 2014, SRCNN): bicubic downsampling by
    ``scale`` (one of them per batch when a list), then bicubic upsampling back to the
    original size, which is what the network refines."""

    clip = True

    def __init__(self, scale: int | Sequence[int] = (2, 3, 4)) -> None:
        scales = [scale] if isinstance(scale, (int, float)) else list(scale)
        if not scales or any(int(s) != s or s < 2 for s in scales):
            raise AekitError(f"downsample scale must be integers ≥ 2, got {scale}")
        self.scales = [int(s) for s in scales]

    def __call__(self, x: Tensor) -> Tensor:
        s = self.scales[int(torch.randint(len(self.scales), ()))]
        h, w = x.shape[-2:]
        with _float32(x) as xf:
            small = resize(xf, (max(1, h // s), max(1, w // s)))
            return resize(small, (h, w)).clamp(0, 1)


def gaussian_kernel(sigma: float, device: torch.device) -> Tensor:
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, device=device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / max(sigma, 1e-6)) ** 2)
    return k / k.sum()


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with reflected borders, (B, C, H, W)."""
    if sigma <= 0:
        return x
    k = gaussian_kernel(sigma, x.device)
    r = len(k) // 2
    c = x.shape[1]
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    y = F.pad(x, (r, r, 0, 0), mode=mode)
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.pad(y, (0, 0, r, r), mode=mode)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


@CORRUPTIONS.register("blur", help="Gaussian blur, σ (pixels) fixed or ~ U[lo, hi] per batch")
class Blur(Corruption):
    clip = True

    def __init__(self, sigma: float | Sequence[float] = (0.5, 2.0)) -> None:
        lo, hi = (sigma, sigma) if isinstance(sigma, (int, float)) else tuple(sigma)
        if lo < 0 or hi < lo:
            raise AekitError(f"blur needs 0 ≤ sigma (or a range lo ≤ hi), got {sigma}")
        self.lo, self.hi = float(lo), float(hi)

    def __call__(self, x: Tensor) -> Tensor:
        s = self.lo + (self.hi - self.lo) * float(torch.rand(()))
        with _float32(x) as xf:
            return gaussian_blur(xf, s)


# ---------------------------------------------------------------------------- hole filling
def fill_holes(x: Tensor, mask: Tensor) -> Tensor:
    """Fill masked pixels (``mask`` (B, 1, H, W), 1 = missing) smoothly from their
    surroundings by push–pull over an image pyramid (normalised convolution): a fast first
    guess that a restoration network then refines. Known pixels are returned unchanged."""
    known = 1.0 - mask.clamp(0, 1)
    vals, weights = [x * known], [known]
    while min(vals[-1].shape[-2:]) > 1:
        v, k = vals[-1], weights[-1]
        vals.append(F.avg_pool2d(v, 2, ceil_mode=True))
        weights.append(F.avg_pool2d(k, 2, ceil_mode=True))
    filled = vals[-1] / weights[-1].clamp_min(1e-6)
    for v, k in zip(reversed(vals[:-1]), reversed(weights[:-1])):
        up = F.interpolate(filled, size=v.shape[-2:], mode="bilinear", align_corners=False)
        here = v / k.clamp_min(1e-6)
        a = (k * 4).clamp(0, 1)  # trust a level where at least a quarter of it is known
        filled = a * here + (1 - a) * up
    return x * known + filled * (1 - known)


#: connected holes up to this many pixels are filled by biharmonic inpainting (a sparse solve
#: per hole: 0.05 s for the text of a watermark on a 481×321 photo, ~7 s for a tiled one on
#: 4000×3000); larger ones by push–pull, whose cost does not grow with the hole
BIHARMONIC_MAX_HOLE = 1 << 16


def inpaint_holes(x: np.ndarray, mask: np.ndarray, *, max_hole: int = BIHARMONIC_MAX_HOLE) -> np.ndarray:
    """Fill a user's mask (``x`` (C, H, W) float in [0, 1], ``mask`` (H, W) bool, True =
    missing): holes of up to ``max_hole`` pixels by scikit-image's biharmonic inpainting (a
    smooth continuation of the surroundings and their gradients; on CBSD68 with held-out
    watermark masks it beats push–pull by 1.7 dB, ``benchmarks/restore.py``), larger holes by
    :func:`fill_holes`. Known pixels are returned unchanged."""
    from scipy import ndimage
    from skimage.restoration import inpaint_biharmonic

    mask = np.asarray(mask, bool)
    out = np.array(x, dtype=np.float32, copy=True)
    if not mask.any():
        return out
    labels, _ = ndimage.label(mask)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    big = (sizes > max_hole)[labels]
    if big.any():
        m = torch.from_numpy(big.astype(np.float32))[None, None]
        out = fill_holes(torch.from_numpy(out)[None], m)[0].numpy()
    small = mask & ~big
    if small.any():
        img = out[0] if out.shape[0] == 1 else out.transpose(1, 2, 0)
        filled = inpaint_biharmonic(img, small, split_into_regions=True,
                                    channel_axis=None if out.shape[0] == 1 else -1)
        filled = filled[None] if out.shape[0] == 1 else filled.transpose(2, 0, 1)
        out = np.where(small[None], np.clip(filled, 0, 1), out).astype(np.float32)
    return out


def _random_strokes(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(1, 4))):
        if rng.random() < 0.5:
            pts = [(float(rng.uniform(0, w)), float(rng.uniform(0, h)))]
            for _ in range(int(rng.integers(2, 6))):
                pts.append((pts[-1][0] + float(rng.normal(0, w / 4)),
                            pts[-1][1] + float(rng.normal(0, h / 4))))
            d.line(pts, fill=255, width=int(rng.integers(3, max(4, min(h, w) // 8))), joint="curve")
        else:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            rx, ry = rng.uniform(3, w / 5), rng.uniform(3, h / 5)
            d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    return np.asarray(im, dtype=np.float32) / 255.0


@CORRUPTIONS.register("holes", help="object removal: random strokes/blobs, filled smoothly")
class Holes(Corruption):
    """Cuts random brush strokes and blobs (the shapes people paint over objects) out of each
    image and fills them with :func:`fill_holes`; the model learns to restore texture there.
    At inference the user's mask takes the place of the random one."""

    clip = True

    def __init__(self, p: float = 1.0, seed: int = 0, bank: int = 128, size: int = 256) -> None:
        self.p, self.seed, self.bank_n, self.size = float(p), int(seed), int(bank), int(size)
        self._bank: Tensor | None = None

    def masks(self, n: int, h: int, w: int, device: torch.device) -> Tensor:
        if self._bank is None:
            rng = np.random.default_rng(self.seed)
            self._bank = torch.from_numpy(np.stack(
                [_random_strokes(self.size, self.size, rng) for _ in range(self.bank_n)]))[:, None]
        if self._bank.device != device:  # keep the bank where the batches are (GPU)
            self._bank = self._bank.to(device)
        return _crop_from_bank(self._bank, n, h, w, device)

    def __call__(self, x: Tensor) -> Tensor:
        with _float32(x) as xf:
            m = self.masks(len(xf), xf.shape[-2], xf.shape[-1], xf.device)
            m = m * (torch.rand(len(xf), 1, 1, 1, device=xf.device) < self.p)
            return fill_holes(xf, (m > 0.5).float())


def _crop_from_bank(bank: Tensor, n: int, h: int, w: int, device: torch.device) -> Tensor:
    """n random (h, w) crops of a (K, 1, S, S) bank (resized up when the bank is smaller)."""
    if bank.device != device:
        bank = bank.to(device)
    k, _, s, _ = bank.shape
    idx = torch.randint(k, (n,))
    if h > s or w > s:
        big = F.interpolate(bank[idx], size=(max(h, s), max(w, s)), mode="bilinear",
                            align_corners=False)
        return big[..., :h, :w]
    tops = torch.randint(s - h + 1, (n,))
    lefts = torch.randint(s - w + 1, (n,))
    return torch.stack([bank[i, :, t:t + h, le:le + w] for i, t, le in
                        zip(idx.tolist(), tops.tolist(), lefts.tolist())])


# ------------------------------------------------------------------------------ watermarks
TRAIN_TEXTS = ("SAMPLE", "PREVIEW", "© PHOTOSTOCK", "DRAFT", "COPYRIGHT", "CONFIDENTIAL",
               "stock photo", "www.example.com", "@photographer", "NOT FOR SALE", "Licensed",
               "Studio 24", "© 2019 Lens & Light", "picture agency", "UNPAID", "review only")
TEST_TEXTS = ("WATERMARK", "© Imagebank 2026", "PROOF COPY", "shutterfoto", "do not copy",
              "Demo Image", "www.pixvault.net", "@mara.photo")
#: TrueType files shipped with matplotlib (present on every install aekit supports)
TRAIN_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
               "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "STIXGeneral.ttf",
               "STIXGeneralBol.ttf", "<pillow>")
TEST_FONTS = ("DejaVuSans-BoldOblique.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSansMono-Oblique.ttf",
              "STIXGeneralBolIta.ttf", "DejaVuSerif-BoldItalic.ttf")


@functools.lru_cache(maxsize=1)
def _font_dir() -> str:
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


@functools.lru_cache(maxsize=256)
def _font(name: str, size: int):
    from PIL import ImageFont

    if name != "<pillow>":
        path = os.path.join(_font_dir(), name)
        if os.path.exists(path):
            return ImageFont.truetype(path, size)
    try:
        return ImageFont.load_default(size=size)  # Pillow ≥ 10.1: a scalable built-in font
    except TypeError:  # pragma: no cover - older Pillow
        return ImageFont.load_default()


def _random_text(rng: np.random.Generator, split: str) -> str:
    texts = TEST_TEXTS if split == "test" else TRAIN_TEXTS
    if split == "train" and rng.random() < 0.4:  # random words: the model must not learn a list
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        word = "".join(rng.choice(list(letters), int(rng.integers(3, 11))))
        return rng.choice(["{}", "© {}", "{} {}", "www.{}.com", "@{}"]).format(
            word, int(rng.integers(1990, 2030)))
    return str(rng.choice(texts))


def _text_layer(text: str, font, stroke: int, outline_only: bool):
    from PIL import Image, ImageDraw

    box = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font,
                                                           stroke_width=stroke)
    w, h = box[2] - box[0] + 4, box[3] - box[1] + 4
    im = Image.new("L", (max(w, 1), max(h, 1)), 0)
    d = ImageDraw.Draw(im)
    d.text((2 - box[0], 2 - box[1]), text, font=font, fill=0 if outline_only else 255,
           stroke_width=stroke, stroke_fill=255)
    return im


def _logo_layer(size: int, rng: np.random.Generator):
    from PIL import Image, ImageDraw

    im = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(im)
    kind = int(rng.integers(5))
    lw = max(2, size // int(rng.integers(8, 20)))
    m = lw
    if kind == 0:  # ring, optionally with a letter: a "©"-style seal
        d.ellipse([m, m, size - m, size - m], outline=255, width=lw)
        if rng.random() < 0.7:
            f = _font(str(rng.choice(TRAIN_FONTS)), max(8, size // 2))
            d.text((size / 2, size / 2), str(rng.choice(list("CRPSW©"))), font=f, fill=255,
                   anchor="mm")
    elif kind == 1:  # star
        pts = []
        for i in range(10):
            r = (size / 2 - m) * (1.0 if i % 2 == 0 else 0.45)
            a = math.pi * i / 5 - math.pi / 2
            pts.append((size / 2 + r * math.cos(a), size / 2 + r * math.sin(a)))
        d.polygon(pts, fill=255 if rng.random() < 0.5 else None, outline=255, width=lw)
    elif kind == 2:  # rounded frame
        d.rounded_rectangle([m, size * 0.2, size - m, size * 0.8], radius=size // 8,
                            outline=255, width=lw)
    elif kind == 3:  # triangle / play mark
        d.polygon([(m, m), (size - m, size / 2), (m, size - m)],
                  fill=255 if rng.random() < 0.5 else None, outline=255, width=lw)
    else:  # camera-ish: body and lens
        d.rounded_rectangle([m, size * 0.25, size - m, size - m], radius=size // 10,
                            outline=255, width=lw)
        d.ellipse([size * 0.3, size * 0.4, size * 0.7, size * 0.8], outline=255, width=lw)
    return im


def render_watermark(h: int, w: int, rng: np.random.Generator, split: str = "train") -> np.ndarray:
    """One watermark's coverage mask (h, w) float32 in [0, 1]: text (single or tiled,
    rotated, solid or outlined) and/or a logo shape, as stock-photo sites stamp them."""
    from PIL import Image

    if split not in ("train", "test"):
        raise AekitError(f"watermark split must be 'train' or 'test', got {split!r}")
    fonts = TEST_FONTS if split == "test" else TRAIN_FONTS
    canvas = Image.new("L", (w, h), 0)
    short = min(h, w)
    tiled = rng.random() < 0.35
    if rng.random() < 0.85:  # text
        size = int(max(8, short * rng.uniform(0.05, 0.10 if tiled else 0.22)))
        font = _font(str(rng.choice(fonts)), size)
        outline = rng.random() < 0.2
        stroke = max(1, size // 14) if (outline or rng.random() < 0.2) else 0
        layer = _text_layer(_random_text(rng, split), font, stroke, outline)
        angle = float(rng.choice([0.0, rng.uniform(-45, 45)]))
        if tiled:
            big = Image.new("L", (2 * max(h, w), 2 * max(h, w)), 0)
            gx = layer.width + int(size * rng.uniform(1, 3))
            gy = layer.height + int(size * rng.uniform(1, 3))
            for row, y in enumerate(range(0, big.height, gy)):
                for x in range(-(row % 2) * gx // 2, big.width, gx):
                    big.paste(layer, (x, y), layer)
            big = big.rotate(angle, resample=Image.BILINEAR)
            left, top = (big.width - w) // 2, (big.height - h) // 2
            canvas.paste(big.crop((left, top, left + w, top + h)), (0, 0))
        else:
            layer = layer.rotate(angle, resample=Image.BICUBIC, expand=True)
            x = int(rng.integers(-layer.width // 4, max(1, w - layer.width * 3 // 4)))
            y = int(rng.integers(-layer.height // 4, max(1, h - layer.height * 3 // 4)))
            canvas.paste(layer, (x, y), layer)
    if rng.random() < 0.35 or np.asarray(canvas).max() == 0:  # a logo
        size = int(max(12, short * rng.uniform(0.1, 0.35)))
        logo = _logo_layer(size, rng)
        x = int(rng.integers(0, max(1, w - size)))
        y = int(rng.integers(0, max(1, h - size)))
        canvas.paste(logo, (x, y), logo)
    return np.asarray(canvas, dtype=np.float32) / 255.0


def watermark_colour(rng: np.random.Generator) -> tuple[tuple[float, float, float], float]:
    """(RGB colour, opacity) of a watermark: mostly white, sometimes black, grey or a hue."""
    u = rng.random()
    if u < 0.55:
        c = (1.0, 1.0, 1.0)
    elif u < 0.75:
        c = (0.0, 0.0, 0.0)
    elif u < 0.85:
        g = float(rng.uniform(0.3, 0.8))
        c = (g, g, g)
    else:
        c = tuple(float(v) for v in rng.uniform(0, 1, 3))  # type: ignore[assignment]
    return c, float(rng.uniform(0.3, 0.9))  # type: ignore[return-value]


def composite(x: Tensor, coverage: Tensor, colour: Tensor, opacity: Tensor) -> Tensor:
    """x (B, C, H, W) under a mark: x·(1 − a·m) + c·a·m, m the coverage (B, 1, H, W)."""
    a = opacity.view(-1, 1, 1, 1) * coverage
    c = colour.view(len(x), -1, 1, 1)
    if x.shape[1] == 1 and c.shape[1] == 3:
        c = luminance(c)
    return x * (1 - a) + c * a


@CORRUPTIONS.register("watermark", help="stock-photo watermarks: random text/logos; .apply gives the mask")
class Watermark(Corruption):
    """Watermarks in varied fonts, sizes, angles, colours and opacities, tiled or single,
    plus logo shapes. ``apply(x)`` returns ``(x̃, mask)`` with the mark's effective opacity
    per pixel (B, 1, H, W); calling the corruption returns x̃ only. A bank of ``bank`` masks
    of ``size``² is rendered once (seeded) and cropped at random per sample; ``p_clean`` of
    the samples are left clean, so a model learns to leave unmarked images alone."""

    clip = True

    def __init__(self, split: str = "train", bank: int = 256, size: int = 320, seed: int = 0,
                 p_clean: float = 0.1) -> None:
        if split not in ("train", "test"):
            raise AekitError(f"watermark split must be 'train' or 'test', got {split!r}")
        self.split, self.bank_n, self.size, self.seed = split, int(bank), int(size), int(seed)
        self.p_clean = float(p_clean)
        self._bank: Tensor | None = None

    def _masks(self, n: int, h: int, w: int, device: torch.device) -> Tensor:
        if self._bank is None:
            rng = np.random.default_rng(self.seed)
            self._bank = torch.from_numpy(np.stack(
                [render_watermark(self.size, self.size, rng, self.split)
                 for _ in range(self.bank_n)]))[:, None]
        if self._bank.device != device:  # keep the bank where the batches are (GPU)
            self._bank = self._bank.to(device)
        return _crop_from_bank(self._bank, n, h, w, device)

    def apply(self, x: Tensor) -> tuple[Tensor, Tensor]:
        with _float32(x) as xf:
            b, dev = len(xf), xf.device
            m = self._masks(b, xf.shape[-2], xf.shape[-1], dev)
            u = torch.rand(b, device=dev)
            colour = torch.rand(b, 3, device=dev)
            colour = torch.where((u < 0.55)[:, None], torch.ones_like(colour), colour)
            colour = torch.where(((u >= 0.55) & (u < 0.75))[:, None], torch.zeros_like(colour),
                                 colour)
            opacity = 0.3 + 0.6 * torch.rand(b, device=dev)
            opacity = opacity * (torch.rand(b, device=dev) >= self.p_clean)
            y = composite(xf, m, colour, opacity).clamp(0, 1)
            return y, m * opacity.view(-1, 1, 1, 1)

    def __call__(self, x: Tensor) -> Tensor:
        return self.apply(x)[0]


def watermark_image(img: np.ndarray, rng: np.random.Generator, split: str = "test"
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Stamp one seeded watermark on an (H, W[, C]) float image in [0, 1]: (marked, alpha)."""
    h, w = img.shape[:2]
    m = render_watermark(h, w, rng, split)
    colour, opacity = watermark_colour(rng)
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    x = x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]
    y = composite(x, torch.from_numpy(m)[None, None], torch.tensor([colour]),
                  torch.tensor([opacity])).clamp(0, 1)[0]
    y = y[0] if img.ndim == 2 else y.permute(1, 2, 0)
    return y.numpy(), m * opacity
