"""Reuters-21578 (Lewis 1997), read from its SGML distribution (``reut2-000.sgm`` …
``reut2-021.sgm``, each gzipped or not), with the ModApte split and topic labels.

ModApte: training = ``LEWISSPLIT="TRAIN"`` and ``TOPICS="YES"`` (9,603 stories), test =
``LEWISSPLIT="TEST"`` and ``TOPICS="YES"`` (3,299). A story's text is its title and body (or
the whole ``<TEXT>`` where there is no body);
its labels are its ``<TOPICS>`` entries (some ModApte stories have none). The files are
found in ``$AEKIT_DATA/reuters21578/`` or the aekit cache folder, or at a path given.
"""

from __future__ import annotations

import gzip
import html
import re
from pathlib import Path

from aekit.errors import DataError
from aekit.text.corpus import Corpus

NAME = "reuters21578"
N_FILES = 22
_DOC = re.compile(r"<REUTERS([^>]*)>(.*?)</REUTERS>", re.DOTALL)
_ATTR = re.compile(r'(\w+)="([^"]*)"')
_TOPICS = re.compile(r"<TOPICS>(.*?)</TOPICS>", re.DOTALL)
_D = re.compile(r"<D>(.*?)</D>", re.DOTALL)
_TITLE = re.compile(r"<TITLE>(.*?)</TITLE>", re.DOTALL)
_BODY = re.compile(r"<BODY>(.*?)</BODY>", re.DOTALL)
_TEXT = re.compile(r"<TEXT[^>]*>(.*?)</TEXT>", re.DOTALL)
_TAG = re.compile(r"<(DATELINE|AUTHOR)>.*?</\1>|<[^>]+>", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")


def sgm_files(folder: Path) -> list[Path]:
    found = {}
    for p in sorted(folder.glob("reut2-*.sgm*")):
        if p.name.endswith((".sgm", ".sgm.gz")):
            found.setdefault(p.name.split(".")[0], p)  # one of x.sgm / x.sgm.gz
    return [found[k] for k in sorted(found)]


def is_reuters_folder(folder: Path) -> bool:
    return bool(sgm_files(folder))


def find_folder() -> Path:
    from aekit.data.standard import data_dirs

    dirs = data_dirs(NAME)
    for d in dirs:
        if d.is_dir() and is_reuters_folder(d):
            return d
    raise DataError(f"reuters: the Reuters-21578 files (reut2-000.sgm[.gz] …) are not in "
                    f"{' or '.join(map(str, dirs))}; set $AEKIT_DATA or give the folder's path")


def parse_sgml(text: str) -> list[dict]:
    """Every ``<REUTERS>`` record: attributes, topics, title + body text."""
    docs = []
    for attrs, inner in _DOC.findall(text):
        a = dict(_ATTR.findall(attrs))
        t = _TOPICS.search(inner)
        topics = [html.unescape(d) for d in _D.findall(t.group(1))] if t else []
        title = _TITLE.search(inner)
        body = _BODY.search(inner)
        if body is None:  # "BRIEF" and "UNPROC" stories: the text is all there is
            whole = _TEXT.search(inner)
            parts = [html.unescape(_TAG.sub(" ", whole.group(1)))] if whole else []
        else:
            parts = [html.unescape(m.group(1)) for m in (title, body) if m]
        docs.append({"id": a.get("NEWID", ""), "topics_attr": a.get("TOPICS", ""),
                     "lewissplit": a.get("LEWISSPLIT", ""), "topics": topics,
                     "text": _CONTROL.sub(" ", "\n".join(parts)).strip()})
    return docs


def read_sgm(path: Path) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    # the distribution is ASCII except for a stray byte or two: Latin-1 never fails
    return raw.decode("latin-1")


def load_reuters(folder: Path | None = None, split: str = "train") -> Corpus:
    """ModApte ``train`` / ``test``, or ``all`` (train then test)."""
    if split not in ("train", "test", "all"):
        raise DataError(f"reuters: split must be train, test or all, got {split!r}")
    folder = find_folder() if folder is None else Path(folder)
    files = sgm_files(folder)
    if not files:
        raise DataError(f"{folder}: no reut2-*.sgm[.gz] files")
    if len(files) < N_FILES:
        from aekit.errors import warn

        warn(f"{folder}: {len(files)} of the {N_FILES} Reuters-21578 files found; "
             "the split is incomplete")
    wanted = {"train": ("TRAIN",), "test": ("TEST",), "all": ("TRAIN", "TEST")}[split]
    docs = []
    for p in files:
        text = read_sgm(p)
        records = parse_sgml(text)
        opened = text.count("<REUTERS ")
        if opened != len(records):  # (a file cut short lost its last stories silently)
            raise DataError(f"{p}: {opened} stories begin but {len(records)} end: the file is "
                            "truncated or damaged")
        docs += [d for d in records if d["topics_attr"] == "YES" and d["lewissplit"] in wanted]
    # by split, then by NEWID (numeric ones by number; another id, from an edited file, after)
    docs.sort(key=lambda d: (wanted.index(d["lewissplit"]), not d["id"].isdigit(),
                             int(d["id"]) if d["id"].isdigit() else 0, d["id"]))
    return Corpus([d["text"] for d in docs], [d["id"] for d in docs], [d["topics"] for d in docs],
                  f"reuters:{split}")
