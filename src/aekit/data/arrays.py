"""In-memory or memory-mapped arrays served in float batches.

The array stays in its stored dtype (uint8 images stay uint8, a ``.npy`` stays on disk
memory-mapped); each batch is gathered, cast to float32 and scaled on the fly, so a dataset
larger than RAM trains.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from aekit.errors import DataError

_CHANNEL_COUNTS = (1, 3, 4)


def infer_layout(shape: Sequence[int]) -> str:
    """'ND' (tabular rows), 'NHW' (grey images), 'NCHW' or 'NHWC' from an array's shape."""
    if len(shape) == 2:
        return "ND"
    if len(shape) == 3:
        return "NHW"
    if len(shape) == 4:
        if shape[1] in _CHANNEL_COUNTS and shape[3] not in _CHANNEL_COUNTS:
            return "NCHW"
        if shape[3] in _CHANNEL_COUNTS:
            return "NHWC"
        if shape[1] <= 16:
            return "NCHW"
        raise DataError(f"cannot tell the channel axis of an array of shape {tuple(shape)}; "
                        "save it as (N, C, H, W) with C in 1, 3, 4")
    raise DataError(f"data must be 2-D (N, D), 3-D (N, H, W) or 4-D images, got shape {tuple(shape)}")


def dtype_scale(dtype: np.dtype) -> float | None:
    """The exact factor of 8- and 16-bit images to [0, 1] (by their dtype's range); None for
    other dtypes, whose scale depends on their values."""
    return {np.dtype(np.uint8): 1 / 255, np.dtype(np.uint16): 1 / 65535}.get(np.dtype(dtype))


def infer_scale(x: np.ndarray, sample: int = 4096) -> float:
    """Factor taking stored values to the model's data space.

    Integer images go to [0, 1] by their dtype's range (uint8 → /255, uint16 → /65535);
    other images whose values lie in [0, 255] and reach above 2 are 8-bit levels (/255);
    anything else keeps its units: images in [0, 1], and images in another range ([−1, 1],
    a [0, 1] image with a few values over 1), which :meth:`ArrayData.in_unit_range` tells
    apart so that training standardises them. Tabular data keeps its units (the model
    standardises it)."""
    exact = dtype_scale(x.dtype)
    if exact is not None:
        return exact
    if x.ndim >= 3 and np.issubdtype(x.dtype, np.number):
        flat = np.asarray(x[: min(len(x), sample)], dtype=np.float64)
        finite = flat[np.isfinite(flat)]  # (all-NaN rows warned twice; they are refused later)
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 1.0
        if lo >= 0.0 and 2.0 < hi <= 255.0 + 1e-6:
            return 1 / 255
    return 1.0


#: the largest float32: every batch is cast to float32
FLOAT32_MAX = float(np.finfo(np.float32).max)


def beyond_float32(rows: np.ndarray) -> np.ndarray:
    """Per sample (first axis): whether it holds a value beyond float32's range, which would
    become inf in the model (only wider floats can)."""
    if rows.dtype.kind != "f" or rows.dtype.itemsize <= 4 or not len(rows):
        return np.zeros(len(rows), bool)
    flat = rows.reshape(len(rows), -1)
    return ((flat > FLOAT32_MAX) | (flat < -FLOAT32_MAX)).any(1)


class ArrayData:
    """A dataset: samples ``x`` (any layout above), optional labels ``y``.

    ``batch(idx)`` returns a float32 tensor (B, *input_shape) in data space (images in
    [0, 1], channels first)."""

    def __init__(self, x: np.ndarray, y: np.ndarray | None = None, *, name: str = "data",
                 layout: str | None = None, scale: float | None = None,
                 index: np.ndarray | None = None) -> None:
        if x.ndim < 2:
            raise DataError(f"{name}: data must have a sample axis and features, got shape {x.shape}; "
                            "reshape 1-D data to (N, 1) or (1, D)")
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) \
                or np.issubdtype(x.dtype, np.complexfloating):  # (the imaginary part was dropped)
            raise DataError(f"{name}: data must be real numbers, got dtype {x.dtype}")
        self.x = x
        self.y = None if y is None else np.asarray(y)
        if self.y is not None and self.y.ndim == 2 and self.y.shape[1] == 1:
            self.y = self.y[:, 0]
        if self.y is not None and self.y.ndim != 1:
            raise DataError(f"{name}: labels are one per sample (1-D), got shape {self.y.shape}"
                            + ("; for one-hot labels give y.argmax(1)" if self.y.ndim == 2 else ""))
        self.name = name
        self.layout = layout or infer_layout(x.shape)
        self.scale = infer_scale(x) if scale is None else scale
        self.index = index
        if self.y is not None and len(self.y) != len(x):
            raise DataError(f"{name}: {len(x)} samples but {len(self.y)} labels")

    # -- shape -----------------------------------------------------------------------------
    @property
    def is_image(self) -> bool:
        return self.layout != "ND"

    @property
    def input_shape(self) -> tuple[int, ...]:
        s = self.x.shape
        if self.layout == "ND":
            return (s[1],)
        if self.layout == "NHW":
            return (1, s[1], s[2])
        if self.layout == "NHWC":
            return (s[3], s[1], s[2])
        return tuple(s[1:])

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else len(self.x)

    # -- access ----------------------------------------------------------------------------
    def _rows(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        if self.index is not None:
            idx = self.index[idx]
        if len(idx) > 1 and np.all(np.diff(idx) == 1):
            return np.asarray(self.x[idx[0]: idx[-1] + 1])  # contiguous: one slice read
        order = np.argsort(idx, kind="stable")
        rows = np.asarray(self.x[idx[order]])  # sorted reads are kinder to a memory map
        out = np.empty_like(rows)
        out[order] = rows
        return out

    def batch(self, idx: np.ndarray | Sequence[int]) -> torch.Tensor:
        rows = self._rows(np.asarray(idx))
        # np.array copies: rows may be a read-only view into a memory map, never written to
        t = torch.from_numpy(np.array(rows, dtype=np.float32))
        if self.scale != 1.0:
            t.mul_(self.scale)
        if self.layout == "NHW":
            t = t.unsqueeze(1)
        elif self.layout == "NHWC":
            t = t.permute(0, 3, 1, 2).contiguous()
        return t

    def labels(self, idx: np.ndarray | Sequence[int] | None = None) -> np.ndarray | None:
        if self.y is None:
            return None
        y = self.y if self.index is None else self.y[self.index]
        return y if idx is None else y[np.asarray(idx)]

    def all(self) -> torch.Tensor:
        return self.batch(np.arange(len(self)))

    def iter_batches(self, batch_size: int = 256):
        for start in range(0, len(self), batch_size):
            yield self.batch(np.arange(start, min(start + batch_size, len(self))))

    def subset(self, idx: np.ndarray) -> ArrayData:
        idx = np.asarray(idx)
        base = idx if self.index is None else self.index[idx]
        return ArrayData(self.x, self.y, name=self.name, layout=self.layout, scale=self.scale,
                         index=base)

    def split(self, fraction: float, seed: int = 0) -> tuple[ArrayData, ArrayData]:
        """Seeded random split: (first 1 - fraction, last fraction)."""
        n = len(self)
        perm = np.random.default_rng(seed).permutation(n)
        n_second = int(round(n * fraction))
        return self.subset(np.sort(perm[n_second:])), self.subset(np.sort(perm[:n_second]))

    # -- checks ----------------------------------------------------------------------------
    def in_unit_range(self, chunk: int = 65536) -> bool:
        """Whether every value, scaled, lies in [0, 1] (what a sigmoid output can reproduce);
        one pass in chunks over data that is not 8/16-bit."""
        if dtype_scale(self.x.dtype) is not None or self.x.dtype == np.bool_:
            return True
        from aekit.data.stream import PageReleaser

        release = PageReleaser(self.x)
        for start in range(0, len(self), chunk):
            rows = self._rows(np.arange(start, min(start + chunk, len(self))))
            release(rows.nbytes)
            if rows.size and (float(rows.min()) * self.scale < 0
                              or float(rows.max()) * self.scale > 1 + 1e-6):
                return False
        return True

    def validate(self, chunk: int = 65536) -> ArrayData:
        """Refuse empty data and NaN/inf values (checked in chunks: works on memory maps)."""
        if len(self) == 0:
            raise DataError(f"{self.name}: the dataset is empty")
        if 0 in self.input_shape:
            raise DataError(f"{self.name}: samples have no features (shape {self.input_shape})")
        if np.issubdtype(self.x.dtype, np.floating):
            from aekit.data.stream import PageReleaser

            release = PageReleaser(self.x)  # a pass over a big memory map: keep RSS bounded
            for start in range(0, len(self), chunk):
                rows = self._rows(np.arange(start, min(start + chunk, len(self))))
                flat = rows.reshape(len(rows), -1)
                bad = ~np.isfinite(flat).all(1)
                big = beyond_float32(flat)
                release(rows.nbytes)
                if bad.any() or big.any():
                    i = start + int(np.argmax(bad | big))
                    what = ("NaN or infinite values" if bad[i - start] else
                            f"a value beyond float32's range (±{FLOAT32_MAX:.3g})")
                    raise DataError(f"{self.name}: sample {i} (counting from 0) contains {what}")
        return self


#: labels with more distinct values than this are not drawn as classes (one colour each)
MAX_CLASSES = 20


def label_range(labels: Sequence[Any]) -> tuple[float, float] | None:
    """(lo, hi) when labels are a measurement to colour on a scale: all finite numbers with
    more than :data:`MAX_CLASSES` distinct values (ages, prices, a regression target); None
    when they are classes, one colour each. The report's scatter and the explorer share it."""
    try:
        values = np.asarray([float(v) for v in labels], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if not len(values) or not np.isfinite(values).all() or len(np.unique(values)) <= MAX_CLASSES:
        return None
    return float(values.min()), float(values.max())
