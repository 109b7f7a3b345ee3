"""Pieces every command shares: loading a model or data from arguments, JSON output."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.data import CSV_SUFFIXES, ArrayData, resolve, spec_path
from aekit.data.images import IMAGE_SUFFIXES
from aekit.errors import AekitError, DataError
from aekit.models import Autoencoder

#: preset name -> a trainer that replaces the core loop for `aekit train --preset <name>`
#: (filled by job modules, e.g. ``restore``; apps never import each other)
TRAIN_HOOKS: dict[str, Callable[[argparse.Namespace], int]] = {}


def add_json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def add_progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none anyway when stderr is not a terminal)")


def add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image-size", type=parse_size, default=None, metavar="HxW",
                   help="size images of a folder are resized/cropped to (default 64x64, or the model's)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=None,
                   help="1 = grey, 3 = colour, for image folders (default: colour, or the model's)")
    p.add_argument("--label-col", default=None, help="CSV column holding labels")


def parse_size(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.lower().replace("×", "x").split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 28x28, got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"size must look like 28x28, got {text!r}")
    return parts[0], parts[1]


def int_at_least(low: int, what: str = "an integer", most: int | None = None):  # noqa: ANN201
    """An argparse type: an integer ≥ ``low`` (and ≤ ``most``), one line naming ``what``
    otherwise."""
    span = f"≥ {low}" if most is None else f"from {low} to {most}"

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer {span}, got {text!r}") \
                from None
        if v < low or (most is not None and v > most):
            raise argparse.ArgumentTypeError(f"{what} must be an integer {span}, got {v}")
        return v

    return parse


#: ``--seed``: what NumPy's and torch's generators take (scikit-learn's random_state stops
#: at 2³² − 1; a larger seed failed after training)
seed_arg = int_at_least(0, "the seed", 2**32 - 1)
#: a count that may be 0 (``--patience``, ``--exact-below``)
count_arg = int_at_least(0, "the value")
#: a batch size, a number of samples, a zoom
positive_int = int_at_least(1, "the value")


def positive_float(text: str) -> float:
    """argparse type of a learning rate or other strictly positive real."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not v > 0 or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def data_stem(spec: str) -> str:
    """A data spec's short name for a default run folder: a file's or folder's stem, else the
    spec with ``:`` made ``-`` (``mnist:test`` → ``mnist-test``)."""
    return Path(spec).stem if Path(spec).exists() else spec.split("?")[0].replace(":", "-")


def unique_run_dir(stem: str) -> Path:
    """``runs/<stem>-<date>-<time>``, made here, with ``-2``, ``-3``… when a run started in
    the same second (two runs at once would otherwise write into one folder)."""
    base = Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise AekitError(f"cannot make a new run folder next to {base}")


def each_file(pairs: list[tuple[Path, Path]], one: Callable[[Path, Path], dict[str, Any]],
              items: Iterable[tuple[Path, Path]] | None = None) -> list[dict[str, Any]]:
    """Run ``one(input, output)`` over the pairs of a file command; its rows, in order. With
    one file an error is raised as it is; with several, each failing file gets its own
    ``aekit: error:`` line and the others are still processed, then one error says how many
    failed. ``items``: the pairs wrapped in a progress bar, if any."""
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for src, dst in pairs if items is None else items:
        try:
            rows.append(one(src, dst))
        except AekitError as e:
            if len(pairs) == 1:
                raise
            failed.append({"in": str(src), "error": str(e)})
            sys.stderr.write(f"aekit: error: {e}\n")
    if failed:
        raise FilesFailed(f"{len(failed)} of {len(pairs)} files failed (see above); "
                          f"{len(rows)} written", rows, failed)
    return rows


class FilesFailed(AekitError):
    """Some files of a folder failed: ``done`` the rows of those written, ``failed`` each
    failure's input and message (``--json`` prints both, so a script learns what was written)."""

    def __init__(self, message: str, done: list[dict[str, Any]],
                 failed: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.done, self.failed = done, failed


def check_not_input(src: Path, dst: Path) -> None:
    """OUT must not be the file IN: the original would be replaced by the result."""
    if dst.exists() and dst.resolve() == src.resolve():
        raise AekitError(f"{dst}: OUT is the input file; write the result to another path "
                         "(the original would be replaced)")


def check_not_data(spec: str, out: str | Path) -> None:
    """An output file must not be the data file it is computed from (``encode --out``,
    ``cluster --assignments``, ``anomaly score --scores``): the data would be replaced."""
    path = spec_path(spec)
    if path is not None and path.is_file():
        check_not_input(path, Path(out))


def check_html_name(path: str, option: str) -> None:
    """A page is written only to a name ending in .html/.htm (any case): a typo such as
    ``--out RUN/config.json`` replaced the run's own files with a page."""
    if not str(path).lower().endswith((".html", ".htm")):
        raise AekitError(f"{option} {path}: the page's name must end in .html")


def check_out_file(path: Path, option: str) -> None:
    """An output file's path can be written: not a folder, and no file where a folder of
    its path must be (checked before a run, not found after all its training)."""
    if path.is_dir():
        raise AekitError(f"{option} {path} is a folder; give a file name")
    parent = next((q for q in path.parents if q.exists()), None)
    if parent is not None and not parent.is_dir():
        raise AekitError(f"{option} {path}: {parent} is a file, not a folder")


def check_out_dir(path: Path, *, fresh: bool = False, results: bool = False) -> None:
    """Fail early (before any training or evaluation) when a folder OUT is an existing file
    or cannot be made because a file stands where one of its parent folders would go.

    ``fresh``: OUT is where a model is saved, so it must be new or empty: saving into a folder
    with files would replace a model saved there (and leave its checkpoint and logs beside
    weights they do not belong to) or mix the model in with a user's own files. Only the main
    process checks (under torchrun, rank 0 may already have made the folder).

    ``results``: OUT receives figures and tables (``codec-eval``, ``compare-pca``), written
    over files of the same name; a saved model's folder is refused."""
    if path.exists() and not path.is_dir():
        raise AekitError(f"{path} is a file; --out names a folder")
    if results and (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        raise AekitError(f"{path} holds a saved model; give another folder for --out")
    if fresh and path.is_dir() and any(path.iterdir()):
        from aekit.distributed import is_main_process

        if is_main_process():
            what = ("a saved model" if (path / "config.json").exists() else "other files")
            raise AekitError(f"{path} already holds {what}; give a new or empty folder for "
                             "--out (nothing there is replaced)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise AekitError(f"{path}: {parent} is a file, so the folder cannot be made")
            break


def load_data_for(args: argparse.Namespace, spec: str, model: Autoencoder | None = None) -> ArrayData:
    """Resolve a data spec; with a model, images of a folder are fitted to its input size."""
    size = getattr(args, "image_size", None)
    channels = getattr(args, "channels", None)
    path = spec_path(spec)
    is_images = path is not None and (path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES)
    is_table = path is not None and path.suffix.lower() in CSV_SUFFIXES
    if path is not None and path.suffix and not path.exists():  # before any option advice
        raise DataError(f"{path}: no such file or folder")
    if model is not None and model.config.arch == "bow" and path is not None and (
            path.is_dir() or path.suffix.lower() not in (".npy", ".npz")):
        # (a corpus read as a numeric table failed on its first word column)
        raise AekitError(f"{spec}: this is a text model; it reads documents through `aekit "
                         "topics` and `aekit docsearch`, or word counts as .npy/.npz (N × the "
                         "words of its vocab.json)")
    if (size or channels) and not is_images:  # (a model's own size is applied below)
        raise AekitError("--image-size and --channels apply to a folder of images or an image "
                         f"file, not {spec}")
    if getattr(args, "label_col", None) and not is_table:
        raise AekitError(f"--label-col names a column of a .csv file, not of {spec}")
    if model is not None and len(model.input_shape) == 3:
        size = size or tuple(model.input_shape[1:])
        channels = channels or model.input_shape[0]
    data = resolve(spec, image_size=size, channels=channels,
                   label_col=getattr(args, "label_col", None))
    if model is not None and tuple(data.input_shape) != model.input_shape:
        raise DataError(f"{data.name}: samples have shape {tuple(data.input_shape)} but the model "
                        f"expects {model.input_shape}")
    return data


def check_folder_output(src: Path, dst: Path, file_suffixes: Iterable[str]) -> None:
    """A folder IN takes a folder OUT: an existing file there, or a new path named like one of
    ``file_suffixes`` (which would otherwise become a folder called ``out.png``), is an error."""
    named_like_a_file = dst.suffix.lower() in set(file_suffixes)
    if (dst.exists() and not dst.is_dir()) or (not dst.exists() and named_like_a_file):
        raise AekitError(f"{dst}: IN ({src}) is a folder, so OUT must be a folder too")


def plan_outputs(src: Path, dst_text: str, inputs: list[Path], out_suffixes: Iterable[str],
                 file_like: Iterable[str], suffix: str | None = None) -> list[tuple[Path, Path]]:
    """(input, output) pairs of a file command (restore, compress, decompress): a file → a
    file, or into a folder (an existing one, or OUT ending in /); a folder → a folder, sub-
    folders kept (OUT named like one of ``file_like`` is refused, see check_folder_output).
    Outputs take ``suffix`` or keep the input's name; a file OUT must end in one of
    ``out_suffixes``. No output is written over its input, and no two inputs share one
    (``a.png`` and ``a.jpg`` would both become ``a.aek``)."""
    dst = Path(dst_text)
    if src.is_dir():
        check_folder_output(src, dst, file_like)
        if suffix is None and dst.exists() and dst.resolve() == src.resolve():
            raise AekitError(f"{dst}: OUT is the folder IN; write the results to another folder "
                             "(the originals would be replaced)")
        pairs = [(p, dst / p.relative_to(src)) for p in inputs]
        if suffix is not None:
            pairs = [(p, out.with_suffix(suffix)) for p, out in pairs]
        seen: dict[Path, Path] = {}
        originals = {p.resolve() for p in inputs}
        beside = dst.resolve() == src.resolve()  # results next to the inputs
        for p, out in pairs:
            if out.resolve() in originals:  # OUT inside IN: an input's result onto another input
                raise AekitError(f"{out} is one of the inputs ({p} would be written over it); "
                                 "write the results to a folder outside IN")
            if beside and out.exists():  # decompress IN IN: photo.aek's result → photo.png
                raise AekitError(f"{out} is already in the folder IN and {p}'s result would "
                                 "replace it; write the results to a folder outside IN")
            if out in seen:
                raise AekitError(f"{seen[out]} and {p} would both be written to {out}; rename "
                                 "one of them")
            seen[out] = p
        return pairs
    if dst.is_dir() or dst_text.endswith(("/", "\\")):
        dst = dst / (src.with_suffix(suffix) if suffix else src).name
    elif dst.suffix.lower() not in set(out_suffixes):
        allowed = sorted(set(out_suffixes))
        raise AekitError(f"{dst}: OUT must end in {allowed[0]}" if len(allowed) == 1 else
                         f"{dst}: OUT needs one of these suffixes: {', '.join(allowed)}")
    check_not_input(src, dst)
    return [(src, dst)]


def load_model(path: str) -> Autoencoder:
    return Autoencoder.from_pretrained(path)


def emit(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    """Print ``text`` for people, or the JSON object with ``--json``."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(jsonable(obj)) + "\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.tolist())
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    return obj


def plural(n: int, word: str) -> str:
    """``1 document``, ``2 documents``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def format_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A plain aligned text table."""
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            if not math.isfinite(v):
                return "—"
            return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
        return "—" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)
