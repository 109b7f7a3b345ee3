"""Standard datasets read from their original file formats.

Files are looked for in ``$AEKIT_DATA/<name>/`` and then in the user cache directory
(``platformdirs.user_cache_dir("aekit")/<name>/``). Where a network exists they are downloaded
there and checked against the digest the dataset's authors publish; without a network a
missing file gives one line that says where to put it.

* ``mnist``, ``fashion-mnist``, ``kmnist``: IDX files (``train-images-idx3-ubyte[.gz]`` …).
* ``cifar10``: the *binary* distribution (``cifar-10-batches-bin/data_batch_{1..5}.bin``,
  ``test_batch.bin``: 1 label byte + 3,072 pixel bytes per record). The "python" batches are
  pickles, and aekit never unpickles a downloaded file.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aekit.errors import DataError
from aekit.io import file_digest

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass(frozen=True)
class Source:
    url: str
    algo: str | None  # the digest algorithm the authors publish (md5 for these sets)
    digest: str | None


_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")

SOURCES: dict[str, dict[str, Source]] = {
    "mnist": {
        f: Source(f"https://ossci-datasets.s3.amazonaws.com/mnist/{f}.gz", "md5", d)
        for f, d in zip(_MNIST_FILES, ("f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                       "d53e105ee54ea40749a09fcbcd1e9432",
                                       "9fb629c4189551a2d022fa330f9573f3",
                                       "ec29112dd5afa0611ce80d1b7f02629c"))
    },
    "fashion-mnist": {
        f: Source(f"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{f}.gz", "md5", d)
        for f, d in zip(_MNIST_FILES, ("8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                       "25c81989df183df01b3e8a0aad5dffbe",
                                       "bef4ecab320f06d8554ea6380940ec79",
                                       "bb300cfdad3c16e7a12a480ee83cd310"))
    },
    # KMNIST's authors publish no digests; a downloaded file is only checked by its IDX header.
    "kmnist": {
        f: Source(f"http://codh.rois.ac.jp/kmnist/dataset/kmnist/{f}.gz", None, None)
        for f in _MNIST_FILES
    },
    "cifar10": {
        "cifar-10-binary.tar.gz": Source("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                                         "md5", "c32a1d4ab5d03f1284b67883e8d87530"),
    },
}


def data_dirs(name: str) -> list[Path]:
    dirs = []
    if os.environ.get("AEKIT_DATA"):
        dirs.append(Path(os.environ["AEKIT_DATA"]) / name)
    try:
        from platformdirs import user_cache_dir

        dirs.append(Path(user_cache_dir("aekit")) / name)
    except ImportError:  # pragma: no cover
        dirs.append(Path.home() / ".cache" / "aekit" / name)
    return dirs


def find_file(name: str, stem: str) -> Path | None:
    for d in data_dirs(name):
        for cand in (d / stem, d / f"{stem}.gz"):
            if cand.is_file():
                return cand
    return None


def fetch(name: str, stem: str) -> Path:
    """The local path of a dataset file, downloading (with digest check) if needed."""
    found = find_file(name, stem)
    if found is not None:
        return found
    src = SOURCES[name].get(stem) or SOURCES[name].get(f"{stem}.gz")
    target_dir = data_dirs(name)[-1]
    target = target_dir / Path(src.url).name
    where = " or ".join(str(d) for d in data_dirs(name))
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        with urllib.request.urlopen(src.url, timeout=30) as r, open(tmp, "wb") as f:
            while block := r.read(1 << 20):
                f.write(block)
    except OSError:
        raise DataError(f"{name}: {stem} not found and it cannot be downloaded here; put "
                        f"{Path(src.url).name} (from {src.url}) in {where}") from None
    if src.algo and file_digest(tmp, src.algo) != src.digest:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{name}: downloaded {target.name} fails its {src.algo} check; not kept")
    os.replace(tmp, target)
    return target


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (LeCun's MNIST format), gzipped or not."""
    path = Path(path)
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) != 4 or head[0] != 0 or head[1] != 0 or head[2] not in IDX_DTYPES:
                raise DataError(f"{path}: not an IDX file (bad magic {head.hex()})")
            ndim = head[3]
            if ndim == 0:
                raise DataError(f"{path}: an IDX header with no dimensions")
            dims = struct.unpack(f">{ndim}I", f.read(4 * ndim))
            dtype = np.dtype(IDX_DTYPES[head[2]])
            count = math.prod(dims)  # (np.prod wrapped around in int64 for crafted dims)
            data = f.read()
    except (OSError, EOFError, struct.error, zlib.error) as e:  # (zlib: a damaged .gz)
        raise DataError(f"{path}: cannot read IDX file ({e})") from None
    if len(data) < count * dtype.itemsize:
        raise DataError(f"{path}: truncated IDX file ({len(data)} of {count * dtype.itemsize} bytes)")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(dims).astype(dtype.newbyteorder("="))


def load_idx_dataset(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(fetch(name, f"{prefix}-images-idx3-ubyte"))
    y = read_idx(fetch(name, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    if x.ndim != 3 or y.ndim != 1:  # (a labels file of images became (N, 28, 28) labels)
        raise DataError(f"{name}: the {prefix} images file holds a {x.ndim}-d array and the labels "
                        f"file a {y.ndim}-d one (expected 3 and 1: are the files swapped?)")
    if len(x) != len(y):
        raise DataError(f"{name}: {len(x)} images but {len(y)} labels")
    return x, y


def read_cifar_binary(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 binary batches: records of 1 label byte + 3×32×32 pixel bytes."""
    chunks = []
    for p in paths:
        raw = np.fromfile(p, dtype=np.uint8)
        if raw.size % 3073:
            raise DataError(f"{p}: not a CIFAR-10 binary batch (size {raw.size} is not a multiple of 3073)")
        chunks.append(raw.reshape(-1, 3073))
    rec = np.concatenate(chunks)
    return rec[:, 1:].reshape(-1, 3, 32, 32).copy(), rec[:, 0].astype(np.int64)


def load_cifar10(split: str) -> tuple[np.ndarray, np.ndarray]:
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    for d in data_dirs("cifar10"):
        folder = d / "cifar-10-batches-bin"
        if all((folder / n).is_file() for n in names):
            return read_cifar_binary([folder / n for n in names])
    archive = fetch("cifar10", "cifar-10-binary.tar.gz")
    with tarfile.open(archive) as tar:
        safe = [m for m in tar.getmembers() if m.isfile() and not m.name.startswith(("/", ".."))
                and ".." not in Path(m.name).parts]
        tar.extractall(archive.parent, members=safe)
    folder = archive.parent / "cifar-10-batches-bin"
    return read_cifar_binary([folder / n for n in names])


STANDARD = {"mnist": lambda s: load_idx_dataset("mnist", s),
            "fashion-mnist": lambda s: load_idx_dataset("fashion-mnist", s),
            "kmnist": lambda s: load_idx_dataset("kmnist", s),
            "cifar10": load_cifar10}
