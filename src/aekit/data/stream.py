"""Image folders bigger than RAM: decoded and cropped on the fly, batch by batch.

:class:`LazyImageArray` looks like a uint8 array of shape (N, C, H, W) to
:class:`~aekit.data.arrays.ArrayData`, but holds only the file list; indexing it decodes
just the files asked for. ``fit()`` sees that such data is too big to keep in memory and
reads its batches in DataLoader worker processes, so decoding overlaps training.

A folder streams when its decoded size passes :data:`STREAM_BYTES` (or when the data spec
says ``folder?stream=1``); smaller folders are decoded once into memory, which is faster.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aekit.data.images import list_images, load_image_folder, load_image_uint8
from aekit.errors import DataError

#: folders whose decoded uint8 pixels pass this stream instead of being loaded whole
STREAM_BYTES = int(os.environ.get("AEKIT_STREAM_BYTES", str(2 << 30)))


class LazyImageArray:
    """A read-only (N, C, H, W) uint8 "array" over image files, decoded when indexed."""

    ndim = 4
    dtype = np.dtype(np.uint8)

    def __init__(self, files: Sequence[str | os.PathLike[str]], size: tuple[int, int],
                 channels: int) -> None:
        self.files = [str(f) for f in files]
        self.size = (int(size[0]), int(size[1]))
        self.channels = int(channels)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.files), self.channels, *self.size)

    @property
    def size_bytes(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        return len(self.files)

    def _decode(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.channels, *self.size), dtype=np.uint8)
        for j, i in enumerate(rows):
            out[j] = load_image_uint8(self.files[int(i)], self.size, self.channels)
        return out

    def __getitem__(self, key: int | slice | np.ndarray | Sequence[int]) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self._decode(np.array([key]))[0]
        if isinstance(key, slice):
            return self._decode(np.arange(len(self))[key])
        idx = np.asarray(key)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise IndexError("a LazyImageArray is indexed by an int, a slice or 1-D integers")
        idx = np.where(idx < 0, idx + len(self), idx)
        return self._decode(idx)

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        arr = self._decode(np.arange(len(self)))  # everything: only when asked for explicitly
        return arr if dtype is None else arr.astype(dtype)


def image_folder_array(folder: str | os.PathLike[str], size: tuple[int, int], channels: int,
                       stream: bool | None = None) -> np.ndarray | LazyImageArray:
    """The images under ``folder`` as uint8 (N, C, H, W): in memory, or streamed when
    ``stream`` is True, or (None) when the decoded pixels pass :data:`STREAM_BYTES`."""
    files = list_images(folder, required=True)
    lazy = LazyImageArray(files, size, channels)
    if stream is None:
        stream = lazy.size_bytes > STREAM_BYTES
    if stream:
        # decode one file now, so an unreadable first image fails here with its name
        lazy[0]
        return lazy
    return load_image_folder(Path(folder), size=size, channels=channels)


def parse_flag(value: str | None) -> bool | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on", ""):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise DataError(f"stream= must be 1 or 0, got {value!r}")


class PageReleaser:
    """Keeps a sequential pass over a memory-mapped array from growing the process's resident
    memory to the file's size: every ``every`` bytes read, the map's resident pages are
    dropped (``madvise(MADV_DONTNEED)``; they stay in the kernel's page cache, so re-reading
    is cheap). A no-op for arrays that are not memory maps."""

    def __init__(self, x: object, every: int = 128 << 20) -> None:
        base = x
        while base is not None and not isinstance(base, np.memmap):
            base = getattr(base, "base", None)
        self._mmap = getattr(base, "_mmap", None) if base is not None else None
        self.every = every
        self._read = 0

    def __call__(self, nbytes: int) -> None:
        if self._mmap is None:
            return
        self._read += nbytes
        if self._read >= self.every:
            self._read = 0
            release_pages(self._mmap)


def release_pages(mm: object) -> None:
    import mmap

    if hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        try:
            mm.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # closed map or a platform without it: keep the pages
            pass
