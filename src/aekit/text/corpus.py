"""Documents from a user's files.

A corpus spec is one of:

* a folder of ``.txt`` files (searched recursively; a file's id is its path inside the
  folder, and files in sub-folders are labelled with the sub-folder's name, as in the
  20 Newsgroups layout);
* a ``.txt`` file with one document per line (id = line number, from 1);
* a ``.csv``/``.tsv`` file with a text column (``text_col``, default ``text``) and an
  optional label column (``label_col``; several labels separated by ``;``);
* a ``.jsonl`` file, one JSON object per line, with the same columns (an ``id`` field, if
  present, names the document);
* Reuters-21578 (:mod:`aekit.text.reuters`): ``reuters[:train|:test|:all]`` read from
  ``$AEKIT_DATA/reuters21578``, or the path of the folder of ``reut2-*.sgm[.gz]`` files,
  optionally followed by ``:train``/``:test``/``:all`` (the ModApte split; default train).

Bytes that are not UTF-8 are decoded with replacement characters and a one-line warning.
Empty documents are skipped with a one-line warning; an empty corpus is an error.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from aekit.errors import DataError, warn

TEXT_SUFFIXES = (".txt",)
TABLE_SUFFIXES = (".csv", ".tsv")
DEFAULT_TEXT_COLS = ("text", "body", "document", "content")
DEFAULT_LABEL_SEP = ";"


@dataclass
class Corpus:
    """Documents with ids and optional labels (a list of labels per document)."""

    texts: list[str]
    ids: list[str]
    labels: list[list[str]] | None = None
    name: str = "corpus"

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx) -> Corpus:
        idx = list(idx)
        return Corpus([self.texts[i] for i in idx], [self.ids[i] for i in idx],
                      None if self.labels is None else [self.labels[i] for i in idx], self.name)


def _decode(raw: bytes) -> tuple[str, str | None]:
    """UTF-8 text (a BOM is dropped) and, when some bytes were not UTF-8 and were replaced
    (U+FFFD), where the first one was."""
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as e:  # (utf-8-sig counts from after a BOM: the file's offset)
        at = e.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        return (raw.decode("utf-8-sig", errors="replace"), f"byte 0x{raw[at]:02x} at offset {at}")


def decode_bytes(raw: bytes, where: str) -> str:
    """UTF-8 text (a BOM is dropped); other bytes are replaced (U+FFFD) with a warning."""
    text, bad = _decode(raw)
    if bad:
        warn(f"{where}: not valid UTF-8 ({bad}); undecodable bytes were replaced")
    return text


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def read_text(path: Path) -> str:
    return decode_bytes(read_bytes(path), str(path))


def is_table(spec: str) -> bool:
    """Whether a corpus spec names a .csv/.tsv/.jsonl file (the ones with columns)."""
    return Path(_split_spec(spec.strip())[0]).suffix.lower() in (*TABLE_SUFFIXES, ".jsonl")


def _split_spec(spec: str) -> tuple[str, str | None]:
    if ":" in spec and spec.rsplit(":", 1)[1] in ("train", "test", "all"):
        name, split = spec.rsplit(":", 1)
        return name, split
    return spec, None


def load_corpus(spec: str, text_col: str | None = None, label_col: str | None = None,
                *, drop_empty: bool = True) -> Corpus:
    """Read a corpus spec (see the module docstring) into a :class:`Corpus`."""
    from aekit.text import reuters

    if not isinstance(spec, str) or not spec.strip():
        raise DataError("no corpus given")
    name, split = _split_spec(spec.strip())
    path = Path(name)
    if (text_col or label_col) and not (path.is_file() and is_table(name)):
        raise DataError("--text-col/--label-col apply to .csv, .tsv and .jsonl corpora only")
    if path.is_dir() and reuters.is_reuters_folder(path):
        corpus = reuters.load_reuters(path, split or "train")
    elif not path.exists() and name == "reuters":
        corpus = reuters.load_reuters(None, split or "train")
    elif split is not None and path.exists():
        raise DataError(f"{spec}: a :{split} split exists only for Reuters-21578")
    elif path.is_dir():
        corpus = load_folder(path)
    elif path.is_file():
        suffix = path.suffix.lower()
        if suffix in TEXT_SUFFIXES:
            corpus = load_lines(path)
        elif suffix in TABLE_SUFFIXES:
            corpus = load_table(path, text_col, label_col)
        elif suffix == ".jsonl":
            corpus = load_jsonl(path, text_col, label_col)
        else:
            raise DataError(f"{path}: unsupported corpus file type {suffix or '(none)'}; use a "
                            "folder of .txt files, a .txt (one document per line), .csv or .jsonl")
    elif ":" in name and (name.rsplit(":", 1)[0] == "reuters"
                          or Path(name.rsplit(":", 1)[0]).exists()):
        raise DataError(f"{spec}: unknown split {name.rsplit(':', 1)[1]!r}; use :train, :test "
                        "or :all")
    else:
        raise DataError(f"{name}: no such file or folder (and not a known corpus: reuters)")
    corpus = unique_ids(corpus)
    return drop_empty_documents(corpus) if drop_empty else corpus


def unique_ids(corpus: Corpus) -> Corpus:
    """Ids name documents (``docsearch --doc ID``): a repeated one is made unique with a
    suffix (``7``, ``7#2``, …) and a warning, not left to shadow the later documents."""
    seen: dict[str, int] = {}
    ids, repeated = [], []
    for i in corpus.ids:
        n = seen.get(i, 0) + 1
        seen[i] = n
        if n > 1:
            repeated.append(i)
            new = f"{i}#{n}"
            while new in seen:
                n += 1
                new = f"{i}#{n}"
            seen[new] = 1
            i = new
        ids.append(i)
    if repeated:
        warn(f"{corpus.name}: {len(repeated)} document id(s) repeat an earlier one (first: "
             f"{repeated[0]!r}); the repeats are named id#2, id#3, …")
        corpus.ids = ids
    return corpus


def drop_empty_documents(corpus: Corpus) -> Corpus:
    if len(corpus) == 0:
        raise DataError(f"{corpus.name}: the corpus is empty (no documents)")
    keep = [i for i, t in enumerate(corpus.texts) if t.strip()]
    if not keep:
        raise DataError(f"{corpus.name}: all {len(corpus)} documents are empty")
    if len(keep) < len(corpus):
        empty = [corpus.ids[i] for i in range(len(corpus)) if not corpus.texts[i].strip()]
        warn(f"{corpus.name}: skipped {len(empty)} empty document(s) (first: {empty[0]})")
        corpus = corpus.subset(keep)
    return corpus


def load_folder(path: Path) -> Corpus:
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise DataError(f"{path}: the folder has no .txt files (the corpus is empty)")
    rel = [p.relative_to(path) for p in files]
    labelled = any(len(r.parts) > 1 for r in rel)  # a file at the top has no label
    texts, bad = [], []
    for p in files:
        text, problem = _decode(read_bytes(p))
        texts.append(text)
        if problem:
            bad.append((p, problem))
    if bad:  # one line for the folder, not one per file
        warn(f"{path}: {len(bad)} file(s) not valid UTF-8 (first: {bad[0][0].relative_to(path)}, "
             f"{bad[0][1]}); undecodable bytes were replaced")
    return Corpus(texts, [r.as_posix() for r in rel],
                  [[r.parts[0]] if len(r.parts) > 1 else [] for r in rel] if labelled else None,
                  path.name)


def load_lines(path: Path) -> Corpus:
    # only \n (and \r\n) end a document: str.splitlines would also split at form feeds,
    # U+2028, U+0085…, shifting every later document's id (its line number)
    lines = [ln.removesuffix("\r") for ln in read_text(path).split("\n")]
    while lines and not lines[-1].strip():  # a trailing newline is not an empty document
        lines.pop()
    return Corpus(lines, [str(i) for i in range(1, len(lines) + 1)], None, path.name)


def _labels(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(DEFAULT_LABEL_SEP) if v.strip()]


def _pick_text_col(path: Path, columns: list[str], text_col: str | None) -> str:
    if text_col:
        if text_col not in columns:
            raise DataError(f"{path}: no column named {text_col!r} (columns: "
                            f"{', '.join(columns) or 'none'})")
        return text_col
    for c in DEFAULT_TEXT_COLS:
        for have in columns:  # "Text" is a text column too
            if have.strip().lower() == c:
                return have
    raise DataError(f"{path}: no text column; name it with --text-col (columns: "
                    f"{', '.join(columns) or 'none'})")


def _check_label_col(path: Path, columns: list[str], label_col: str | None) -> None:
    if label_col and label_col not in columns:
        raise DataError(f"{path}: no column named {label_col!r} (columns: "
                        f"{', '.join(columns) or 'none'})")


def load_table(path: Path, text_col: str | None, label_col: str | None) -> Corpus:
    text = read_text(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    csv.field_size_limit(1 << 30)
    # strict: a quote left open ran to the end of the file as one document, silently
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows = []
    try:
        for row in reader:
            if any(v.strip() for v in row.get(None, [])):  # more cells than the header: the
                # extra ones were dropped, and the text cut where an unquoted comma split it
                # (a trailing delimiter, as spreadsheets write, leaves empty ones: fine)
                width = len(reader.fieldnames or [])
                raise DataError(f"{path}: line {reader.line_num} has {width + len(row[None])} cells "
                                f"but the header {width}; quote a text holding the delimiter "
                                '("a, b")')
            rows.append(row)
    except csv.Error as e:  # (line_num is still the last row read whole: this one is next)
        raise DataError(f"{path}: not a readable CSV file (the row from line "
                        f"{reader.line_num + 1}: {e}; is a quote \" left open?)") from None
    columns = [c for c in (reader.fieldnames or []) if c is not None]
    if not columns:
        raise DataError(f"{path}: the file is empty (no header, no documents)")
    col = _pick_text_col(path, columns, text_col)
    _check_label_col(path, columns, label_col)
    id_col = "id" if "id" in columns and col != "id" else None
    texts = [r.get(col) or "" for r in rows]
    ids = [r[id_col] if id_col else str(i) for i, r in enumerate(rows, 1)]
    labels = [_labels(r.get(label_col)) for r in rows] if label_col else None
    return Corpus(texts, ids, labels, path.name)


def load_jsonl(path: Path, text_col: str | None, label_col: str | None) -> Corpus:
    texts, ids, labels = [], [], []
    columns: list[str] = []
    for n, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {n} is not JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}: line {n} is not a JSON object")
        if not columns:
            columns = list(obj)
            col = _pick_text_col(path, columns, text_col)
            _check_label_col(path, columns, label_col)
        if col not in obj:
            raise DataError(f"{path}: line {n} has no {col!r} field")
        value = obj[col]
        if isinstance(value, (list, dict)):  # (its repr was taken as the text)
            raise DataError(f"{path}: line {n}: the {col!r} field is a JSON "
                            f"{'array' if isinstance(value, list) else 'object'}, not text")
        texts.append("" if value is None else str(value))
        ids.append(str(obj["id"]) if obj.get("id") is not None and col != "id"
                   else str(len(ids) + 1))
        labels.append(_labels(obj.get(label_col)) if label_col else [])
    return Corpus(texts, ids, labels if label_col else None, path.name)
