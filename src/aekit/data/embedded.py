"""Datasets that ship inside installed packages: no download, ever.

* ``digits``: scikit-learn's 1,797 handwritten digits, 8×8, labels 0–9.
* ``digits28``: the same digits resized to 28×28 (bicubic) — MNIST-shaped, for trying the
  28×28 presets offline. It is *not* MNIST: strokes are smoother, so errors are lower.
* ``faces``: scikit-image's LFW subset, 200 grey 25×25 crops (100 faces = 1, 100 not = 0).
* ``patches``: random crops from the photos shipped with scikit-image, scikit-learn and
  matplotlib; options ``size`` (default 16), ``n`` (default 10000), ``channels`` (1 or 3),
  ``seed``. Example: ``patches?size=32&n=20000&channels=3``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from aekit.errors import DataError
from aekit.registry import Registry

EMBEDDED: Registry = Registry("embedded dataset")

#: scikit-image photos bundled with the wheel (others need a download and are skipped)
SKIMAGE_PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "coins", "moon", "page", "text",
                  "rocket", "hubble_deep_field", "immunohistochemistry", "brick", "grass",
                  "gravel", "clock", "microaneurysms", "colorwheel", "retina")


def _digits(**_: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def _digits28(**_: str) -> tuple[np.ndarray, np.ndarray]:
    import torch
    import torch.nn.functional as F

    x, y = _digits()
    t = F.interpolate(torch.from_numpy(x)[:, None], size=(28, 28), mode="bicubic", align_corners=False)
    return t[:, 0].clamp(0, 1).numpy(), y


def _faces(**_: str) -> tuple[np.ndarray, np.ndarray]:
    from skimage.data import lfw_subset

    x = lfw_subset().astype(np.float32)
    y = np.r_[np.ones(100, np.int64), np.zeros(len(x) - 100, np.int64)]
    return x, y


def photo_collection(channels: int = 3) -> list[np.ndarray]:
    """Every photo shipped inside installed packages, as uint8 (H, W[, 3]) arrays."""
    import os

    import matplotlib
    import skimage.data as skd
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos: list[np.ndarray] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in SKIMAGE_PHOTOS:
            try:
                photos.append(np.asarray(getattr(skd, name)()))
            except Exception:  # a photo that needs a download on this install: skip it
                continue
        photos.extend(np.asarray(im) for im in load_sample_images().images)
        hopper = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
        if os.path.exists(hopper):
            photos.append(np.asarray(Image.open(hopper).convert("RGB")))
    out = []
    for p in photos:
        if p.dtype != np.uint8:
            p = (np.clip(p, 0, 1) * 255).astype(np.uint8) if p.dtype.kind == "f" else p.astype(np.uint8)
        if p.ndim == 3 and p.shape[2] == 4:
            p = p[..., :3]
        if channels == 1 and p.ndim == 3:
            p = (p @ np.array([0.299, 0.587, 0.114])).round().astype(np.uint8)
        elif channels == 3 and p.ndim == 2:
            p = np.repeat(p[..., None], 3, axis=2)
        out.append(p)
    return out


#: the largest ``patches`` array built (uint8 bytes): a crafted n × size² asked for 244 GiB
PATCHES_MAX_BYTES = 4 << 30


def _patches(size: str = "16", n: str = "10000", channels: str = "1", seed: str = "0",
             **unknown: str) -> tuple[np.ndarray, None]:
    if unknown:
        raise DataError(f"patches: unknown option(s) {', '.join(unknown)}; use size, n, channels, seed")
    try:
        s, count, c, sd = int(size), int(n), int(channels), int(seed)
    except ValueError:
        raise DataError("patches: size, n, channels and seed must be integers") from None
    if c not in (1, 3) or s < 2 or count < 1 or sd < 0:
        raise DataError("patches: need channels 1 or 3, size ≥ 2, n ≥ 1, seed ≥ 0")
    if count * s * s * c > PATCHES_MAX_BYTES:
        raise DataError(f"patches: {count:,} crops of {s}×{s}×{c} are "
                        f"{count * s * s * c / 2**30:.1f} GiB; the limit is "
                        f"{PATCHES_MAX_BYTES / 2**30:.0f} GiB (fewer or smaller crops)")
    photos = [p for p in photo_collection(c) if min(p.shape[:2]) >= s]
    if not photos:
        largest = max(min(p.shape[:2]) for p in photo_collection(c))
        raise DataError(f"patches: size {s} is larger than every shipped photo (the largest "
                        f"crop is {largest})")
    rng = np.random.default_rng(sd)
    which = rng.integers(0, len(photos), count)
    out = np.empty((count, s, s, c) if c == 3 else (count, s, s), dtype=np.uint8)
    for i, k in enumerate(which):
        p = photos[k]
        top = rng.integers(0, p.shape[0] - s + 1)
        left = rng.integers(0, p.shape[1] - s + 1)
        crop = p[top: top + s, left: left + s]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[i] = crop
    return out, None


EMBEDDED.add("digits", _digits, help="scikit-learn handwritten digits, 1,797 × 8×8, labels 0–9")
EMBEDDED.add("digits28", _digits28, help="the same digits resized to 28×28 (MNIST-shaped, not MNIST)")
EMBEDDED.add("faces", _faces, help="scikit-image LFW subset: 200 × 25×25 grey, face = 1")
EMBEDDED.add("patches", _patches,
             help="crops of the photos shipped in scikit-image/-learn/matplotlib (size, n, channels, seed)")


def load_embedded(name: str, **options: str) -> tuple[np.ndarray, np.ndarray | None]:
    loader: Callable[..., tuple[np.ndarray, np.ndarray | None]] = EMBEDDED.get(name)
    if name != "patches" and options:
        raise DataError(f"{name} takes no options (got {', '.join(options)})")
    return loader(**options)
