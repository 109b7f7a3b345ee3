"""One resolver from a data spec to an :class:`ArrayData`.

A spec is one of:

* a path: a folder of images (streamed from disk when bigger than
  :data:`aekit.data.stream.STREAM_BYTES`, or with ``folder?stream=1``; when every image sits
  in a sub-folder, the sub-folder names are the labels), ``.npy`` (memory-mapped), ``.npz`` (``x``, optional ``y``),
  ``.csv`` (numeric columns; a ``label``/``y``/``class`` column becomes the labels), or a
  single image file (its full size, or resized/cropped like a folder's when ``image_size`` is given);
* an embedded dataset (:mod:`aekit.data.embedded`): ``digits``, ``digits28``, ``faces``,
  ``patches?size=32&n=5000``;
* a standard dataset (:mod:`aekit.data.standard`): ``mnist``, ``fashion-mnist``, ``kmnist``,
  ``cifar10``.

``name:train`` / ``name:test`` selects a split (the standard sets' own; a seeded 80/20 split
for everything else).
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

from aekit.data.arrays import ArrayData, infer_layout
from aekit.data.embedded import EMBEDDED, load_embedded
from aekit.data.images import IMAGE_SUFFIXES, class_folder_labels, load_image_uint8, read_image
from aekit.data.standard import STANDARD
from aekit.data.stream import image_folder_array, parse_flag
from aekit.errors import DataError
from aekit.io import load_npy as io_load_npy

__all__ = ["ArrayData", "resolve", "list_datasets", "infer_layout"]

LABEL_COLUMNS = ("label", "labels", "y", "class", "target")
SPLIT_SEED = 0
TEST_FRACTION = 0.2


def list_datasets() -> dict[str, str]:
    out = {n: EMBEDDED.help(n) for n in EMBEDDED}
    out.update({n: "standard set, read from $AEKIT_DATA or the cache (downloaded where a network exists)"
                for n in STANDARD})
    return out


def _split_spec(spec: str) -> tuple[str, str | None, dict[str, str]]:
    options: dict[str, str] = {}
    if Path(spec).exists():  # a file whose name holds "?" or ":train" is that file
        return spec, None, options
    if "?" in spec:
        spec, query = spec.split("?", 1)
        options = dict(parse_qsl(query, keep_blank_values=True))
    split = None
    if ":" in spec and spec.rsplit(":", 1)[1] in ("train", "test", "all"):
        spec, split = spec.rsplit(":", 1)
    return spec, split, options


#: files a spec reads as a table of numbers (:func:`load_csv`)
CSV_SUFFIXES = (".csv", ".tsv", ".txt")


def spec_path(spec: str) -> Path | None:
    """The path a data spec names, without its ``:split`` and ``?options`` (it may not exist:
    ``digits`` is a dataset name); None for an empty spec."""
    if not isinstance(spec, str) or not spec.strip():
        return None
    return Path(_split_spec(spec.strip())[0])


def absolute_spec(spec: str) -> str:
    """``spec`` with a relative path made absolute (its ``:split`` and ``?options`` kept): what
    a run records, so ``--resume`` and ``aekit report`` find the data from any folder."""
    spec = spec.strip()
    name = _split_spec(spec)[0]
    path = Path(name)
    if not path.exists() or path.is_absolute():
        return spec
    return str(path.resolve()) + spec[len(name):]


def _apply_split(data: ArrayData, split: str | None) -> ArrayData:
    if split in (None, "all"):
        return data
    train, test = data.split(TEST_FRACTION, seed=SPLIT_SEED)
    return train if split == "train" else test


def load_npy(path: Path) -> np.ndarray:
    """A data set's ``.npy``: numeric, memory-mapped (:func:`aekit.io.load_npy`)."""
    return io_load_npy(path, "numbers", DataError, mmap=True)


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            if "x" not in keys:
                if len(keys) == 1:
                    return z[keys[0]], None
                raise DataError(f"{path}: .npz needs an array named 'x' (found {', '.join(keys) or 'none'})")
            return z["x"], (z["y"] if "y" in keys else None)
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None


def _delimiter(path: Path, sample: str) -> str | None:
    """``,`` for .csv, a tab for .tsv; a .txt table is sniffed among comma, tab, semicolon and
    space (a .tsv split on commas read every row as one text cell); None for runs of spaces
    (the UCR archive's .txt files, ECG5000's among them, align their columns with them)."""
    suffix = path.suffix.lower()
    if suffix != ".txt":
        return "\t" if suffix == ".tsv" else ","
    try:
        return csv.Sniffer().sniff(sample, delimiters=",\t; ").delimiter
    except csv.Error:
        widths = {len(line.split()) for line in sample.splitlines()[:-1] if line.strip()}
        return None if len(widths) == 1 and widths.pop() > 1 else ","


def load_csv(path: Path, label_col: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") would hide the first column's name
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    delim = _delimiter(path, text[:65536])
    # (a StringIO, not splitlines: a quoted cell may hold a line break)
    if delim is None:  # columns aligned by runs of spaces
        rows = [line.split() for line in text.splitlines()]
    else:
        rows = list(csv.reader(io.StringIO(text), delimiter=delim, skipinitialspace=delim == " "))
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: the CSV file is empty")

    def numeric_or_blank(row: list[str]) -> bool:
        try:
            [float(c) for c in row if c.strip()]
            return True
        except ValueError:
            return False

    # a first row of numbers (a blank cell among them is a missing value, reported below,
    # not a sign of a header) is data
    header = None if numeric_or_blank(rows[0]) else [c.strip() for c in rows[0]]
    if label_col and header is None:
        raise DataError(f"{path}: --label-col {label_col} names a column, but the file has no "
                        "header row (its first line is numbers)")
    body = rows[1:] if header else rows
    if not body:
        raise DataError(f"{path}: one line (read as a header) and no rows of numbers below it; is it a table?")
    width = len(body[0])
    if any(len(r) != width for r in body):
        raise DataError(f"{path}: rows have different numbers of columns")
    # a delimiter ending every line (as spreadsheets export) makes an empty last column
    if width > 1 and all(not r[-1].strip() for r in body) and (
            header is None or len(header) == width - 1 or (len(header) == width and not header[-1])):
        body, width = [r[:-1] for r in body], width - 1
        header = header[:width] if header is not None else None
    if header is not None and len(header) != width:  # (an IndexError further down)
        raise DataError(f"{path}: the header has {len(header)} columns but the rows {width}; is "
                        "the delimiter the same on every line?")
    y_idx = None
    if header:
        if label_col:
            y_idx = header.index(label_col) if label_col in header else None
        else:  # "Class" or "Label" is the label too (a Kaggle file's "Class" was a feature)
            lower = [h.lower() for h in header]
            y_idx = next((lower.index(n) for n in LABEL_COLUMNS if n in lower), None)
        if label_col and y_idx is None:
            raise DataError(f"{path}: no column named {label_col!r}")
    y = None
    if y_idx is not None:
        y = np.array([r[y_idx] for r in body])
        body = [r[:y_idx] + r[y_idx + 1:] for r in body]
        try:
            y = y.astype(np.int64)
        except ValueError:
            pass
    try:
        with np.errstate(over="ignore"):  # (a value beyond float32 becomes inf: refused later)
            x = np.array(body, dtype=np.float32)
    except ValueError:
        names = [c for i, c in enumerate(header) if i != y_idx] if header else None
        for r, row in enumerate(body):  # name the first cell that is not a number
            for c, cell in enumerate(row):
                try:
                    float(cell)
                except ValueError:
                    col = f"column {names[c]!r}" if names else f"column {c + 1}"
                    line = r + (2 if header else 1)
                    if not cell.strip():
                        raise DataError(f"{path}: line {line}, {col} is empty (a missing value; "
                                        "fill it in or drop the row)") from None
                    sep = next((d for d in (";", "\t", "|") if d in cell), None)
                    hint = (f" (the file looks separated by {sep!r}, not commas: make it "
                            "comma-separated, or a .tsv if tabs)" if sep and len(row) == 1 else
                            f" (if it holds labels, name it with --label-col {names[c]})"
                            if names and not label_col else "")
                    raise DataError(f"{path}: every feature column must be numeric; line {line}, "
                                    f"{col} holds {cell!r}{hint}") from None
        raise DataError(f"{path}: every feature column must be numeric") from None
    return x, y


def resolve(spec: str, *, image_size: tuple[int, int] | None = None, channels: int | None = None,
            label_col: str | None = None, validate: bool = True) -> ArrayData:
    """Turn a data spec into an :class:`ArrayData` (see the module docstring)."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError("no data given")
    name, split, options = _split_spec(spec.strip())
    path = Path(name)
    y = None
    if path.exists():
        unknown = set(options) - ({"stream"} if path.is_dir() else set())
        if unknown:  # (a misspelt option was ignored without a word)
            raise DataError(f"{spec}: unknown option{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(sorted(unknown))}"
                            f"{' (a folder of images takes ?stream=1)' if path.is_dir() else ''}")
        if path.is_dir():
            size = image_size or (64, 64)
            x = image_folder_array(path, size, channels or 3, parse_flag(options.get("stream")))
            # a folder of class folders (cats/…, dogs/…): the sub-folder names are the labels
            # (cluster scores against them, explore and the report colour by them, anomaly
            # --normal-label names the normal one), as torchvision's ImageFolder reads them
            folders = class_folder_labels(path)
            y = None if folders is None else np.asarray(folders)
        else:
            suffix = path.suffix.lower()
            if suffix == ".npy":
                x = load_npy(path)
            elif suffix == ".npz":
                x, y = load_npz(path)
            elif suffix in CSV_SUFFIXES:
                x, y = load_csv(path, label_col)
            elif suffix in IMAGE_SUFFIXES and image_size is not None:
                # resized/cropped exactly as the same file inside a folder would be
                x = load_image_uint8(path, image_size, channels or 3)[None]
            elif suffix in IMAGE_SUFFIXES:
                img = read_image(path, "L" if channels == 1 else ("RGB" if channels == 3 else None))
                if img.ndim == 3 and img.shape[2] in (2, 4):
                    # the alpha plane is not image content (a folder's images drop it too): a
                    # model trained on it expected 4 channels that no later read gave it
                    img = img[..., 0] if img.shape[2] == 2 else img[..., :3]
                x = (img[None] if img.ndim == 2 else img.transpose(2, 0, 1)[None]).astype(np.float32)
                x = x[:, None] if x.ndim == 3 else x
            else:
                raise DataError(f"{path}: unsupported data file type {suffix or '(none)'}; "
                                "use a folder of images, .npy, .npz, .csv or an image")
        data = ArrayData(x, y, name=path.name)
    elif name in EMBEDDED:
        x, y = load_embedded(name, **options)
        data = ArrayData(x, y, name=name)
    elif name in STANDARD:
        s = split or "train"
        if s == "all":  # (it read the test set alone: 10,000 MNIST images, not 70,000)
            parts = [STANDARD[name](part) for part in ("train", "test")]
            x = np.concatenate([p[0] for p in parts])
            y = None if any(p[1] is None for p in parts) else np.concatenate([p[1] for p in parts])
        else:
            x, y = STANDARD[name](s)
        data = ArrayData(x, y, name=f"{name}:{s}")
        split = None
    else:
        if any(ch in name for ch in "/\\.") :
            raise DataError(f"{name}: no such file or folder")
        known = ", ".join(sorted(list_datasets()))
        raise DataError(f"unknown dataset {name!r}: not a file, folder, or one of {known}")
    data = _apply_split(data, split)
    if data.layout == "ND" and data.x.ndim == 2 and data.input_shape[0] == 0:
        raise DataError(f"{data.name}: samples have no features")
    return data.validate() if validate else data
