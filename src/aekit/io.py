"""Atomic file writing (a user's file is either the old one or the complete new one) and
JSON reading that fails with one clear line."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aekit.errors import AekitError


def make_dir(folder: Path, what: Path | None = None) -> None:
    """Make ``folder`` (and its parents); one clear error, naming ``what`` is being written
    (default the folder), when a file stands in the way or the place is not writable."""
    what = folder if what is None else what
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise AekitError(f"cannot write {what}: a file stands where its folder would go") from None
    except PermissionError:
        raise AekitError(f"cannot write {what}: permission denied") from None


def make_parent(path: Path) -> None:
    """Make the folder ``path`` goes in; one clear error when a file stands in the way."""
    make_dir(path.parent, path)


def _file_mode() -> int:
    """The permissions a new file gets under the process's umask (rw for whom it allows)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    The suffix keeps tools that infer a format from the extension (Pillow, numpy) happy.
    """
    path = Path(path)
    if path.is_dir():
        raise AekitError(f"{path} is a folder; give a file name to write")
    make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix + ".tmp",
                                   dir=path.parent)
    except PermissionError:
        raise AekitError(f"cannot write {path}: permission denied") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600 files, and so do some writers that replace the file they are
        # given (safetensors 0.8's save_file): a saved model or picture gets the usual
        # permissions, set once the writer is done
        os.chmod(tmp_path, _file_mode())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block (delivered when it ends), where the
    platform can (POSIX): a few renames that belong together finish together."""
    import signal

    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


@contextlib.contextmanager
def staged_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary folder *inside* ``path`` (made if missing) to write a set of
    files in (a model, its vocabulary, its codes); only when the block succeeds are they
    renamed into ``path``, one rename each. A failure while writing (a full disk, a crash)
    leaves what ``path`` held untouched, and a ``path`` this call made is removed again.
    Staging inside the target keeps the renames on one file system (a mount point, a Docker
    volume) and needs no write access to its parent. Other files in ``path`` are kept."""
    path = Path(path)
    made = not path.exists()
    make_dir(path)  # a file standing there: one clear error
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".staging-", dir=path))
    except PermissionError:
        raise AekitError(f"cannot write {path}: permission denied") from None
    ok = False
    try:
        yield tmp
        mode = _file_mode()
        with _signals_held():  # Ctrl-C or SIGTERM between two renames: a new config.json
            for f in sorted(tmp.iterdir()):  # beside the old weights no longer loaded
                if f.is_file():  # some writers (safetensors 0.8) make 0600 files, as mkstemp does
                    os.chmod(f, mode)
                os.replace(f, path / f.name)
        ok = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if made and not ok:
            with contextlib.suppress(OSError):
                path.rmdir()  # only if empty: nothing else was put there meanwhile


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def _plain(obj: Any) -> Any:
    """JSON for NumPy numbers and arrays (a grid search hands out np.int64 parameters)."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} cannot be written as JSON")


def json_text(obj: Any) -> str:
    """The JSON aekit writes: indented, sorted keys, NumPy numbers as plain numbers; a value
    JSON cannot hold is an AekitError (before anything is written)."""
    try:
        return json.dumps(obj, indent=2, sort_keys=True, default=_plain) + "\n"
    except (TypeError, ValueError) as e:
        raise AekitError(f"cannot write as JSON: {e}") from None


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    write_bytes_atomic(path, json_text(obj).encode())


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(path, text.encode())


def file_digest(path: str | os.PathLike[str], algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_npy(path: str | os.PathLike[str], what: str = "array",
             error: type[Exception] = AekitError, *, mmap: bool = False) -> Any:
    """A numeric ``.npy`` array (bool, int or float), never unpickled; a missing, damaged or
    non-numeric file is one ``error`` line (NumPy's own message about pickled data would point
    a user at unpickling it). ``mmap``: memory-mapped, read as it is used (a data set)."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise error(f"{path} is missing")
    try:
        if not mmap and _npy_claims_more_than_it_holds(path):  # (a crafted header made
            raise ValueError  # NumPy allocate what it claimed: 279 GiB from 200 bytes)
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError, MemoryError):
        raise error(f"{path} is not a valid .npy file of {what}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf" or arr.ndim == 0:
        raise error(f"{path} is not a valid .npy file of {what}")
    return arr


def _npy_claims_more_than_it_holds(path: Path) -> bool:
    """Whether a .npy header declares more data than the file has after it."""
    import math

    import numpy as np

    fmt = np.lib.format
    with open(path, "rb") as f:
        version = fmt.read_magic(f)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read_header(f, max_header_size=10_000)
        if dtype.hasobject:
            return False  # refused below, unpickled never
        return math.prod(shape) * dtype.itemsize > path.stat().st_size - f.tell()


def read_json(path: str | os.PathLike[str], what: str, *, missing: str | None = None,
              error: type[AekitError] = AekitError) -> Any:
    """Parse a JSON file; a missing, unreadable or damaged one raises ``error`` with one line:
    ``missing`` (default "PATH is missing") or "PATH is not a valid WHAT (reason)"."""
    path = Path(path)
    if not path.is_file():
        raise error(missing or f"{path} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise error(f"{path} is not a valid {what} ({e})") from None
    except RecursionError:  # a crafted file of deeply nested brackets
        raise error(f"{path} is not a valid {what} (nested too deeply)") from None
