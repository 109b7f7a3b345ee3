"""Image search and the latent explorer: ``aekit index``, ``aekit search``, ``aekit explore``.

An index is a folder::

    INDEX/index.json   model (path, weights digest, code size/kind), items (path, label)
    INDEX/codes.npy    codes (float32; packed bits for a binary model) ┐ aekit.index
    INDEX/codes.json   metric and search tuning; INDEX/ann_centroids.npy ┘ .CodeIndex
    INDEX/thumbs.npy   uint8 thumbnails (N, h, w, C)

No pickle and no faiss binary: numpy arrays are loaded with ``allow_pickle=False``, and the
approximate index is rebuilt from its cells' centroids (see :mod:`aekit.index`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.apps import Handler, command
from aekit.apps.common import (
    add_data_options,
    add_json_flag,
    check_html_name,
    check_out_dir,
    count_arg,
    emit,
    format_table,
    load_data_for,
    load_model,
    plural,
    positive_int,
    seed_arg,
)
from aekit.data import ArrayData
from aekit.data.images import list_images
from aekit.errors import AekitError, DataError, warn
from aekit.explorer import make_thumbnails, project_2d, render_explorer, render_search_page
from aekit.index import ANN_FILE, CENTROIDS_FILE, CodeIndex
from aekit.io import load_npy, read_json, staged_dir, write_json_atomic
from aekit.models import Autoencoder, sha256_file

INDEX_FILE, THUMBS_FILE = "index.json", "thumbs.npy"
FORMAT = "aekit-image-index/1"


# ------------------------------------------------------------------------------ helpers
def metric_for(model: Autoencoder) -> str:
    return "hamming" if model.config.code == "binary" else "l2"


@torch.no_grad()
def encode_all(model: Autoencoder, data: ArrayData, batch_size: int = 512,
               with_images: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes (N, latent) of every sample and, optionally, uint8 thumbnails."""
    model.eval()
    dev = next(model.parameters()).device
    codes, thumbs = [], []
    for xb in data.iter_batches(batch_size):
        codes.append(model.encode(xb.to(dev)).flatten(1).float().cpu().numpy())
        if with_images and data.is_image:
            thumbs.append(make_thumbnails(xb.numpy()))
    return np.concatenate(codes), (np.concatenate(thumbs) if thumbs else None)


def item_names(spec: str, data: ArrayData) -> tuple[list[str], list[Any] | None]:
    """Display names (file paths for a folder) and labels (the data's own; for a folder of
    class folders, the resolver gives each image its sub-folder's name)."""
    path = Path(spec)
    labels = data.labels()
    if path.is_dir():
        names = [str(f) for f in list_images(path)]
    elif path.is_file() and len(data) == 1:
        names = [str(path)]
    else:
        names = [f"{spec}#{i}" for i in range(len(data))]
    return names, (None if labels is None else [_plain(v) for v in labels])


def item_key(name: str) -> str:
    """What identifies an indexed item across --add runs: an image file's absolute path, else
    its name (an array row, ``data#i``)."""
    path = Path(name)
    return str(path.resolve()) if path.is_file() else name


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def read_index(directory: str | Path) -> tuple[dict[str, Any], CodeIndex, np.ndarray | None]:
    directory = Path(directory)
    meta_path = directory / INDEX_FILE
    meta = read_json(meta_path, "aekit index file",
                     missing=f"{directory}: not an aekit index ({INDEX_FILE} is missing)")
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt != FORMAT:
        raise AekitError(f"{meta_path}: unknown index format {fmt!r}")
    codes = CodeIndex.load(directory)
    if meta.get("metric") != codes.metric:
        raise AekitError(f"{directory}: the index files disagree on the metric ({INDEX_FILE}: "
                         f"{meta.get('metric')!r}, the codes: {codes.metric!r})")
    thumbs = None
    if (directory / THUMBS_FILE).is_file():
        thumbs = load_npy(directory / THUMBS_FILE, "thumbnails")
        if thumbs.ndim != 4 or thumbs.dtype != np.uint8 or thumbs.shape[-1] not in (1, 3) \
                or min(thumbs.shape[1:3]) < 1:
            raise AekitError(f"{directory / THUMBS_FILE} is not a valid thumbnail array")
    items = meta.get("items")
    if not isinstance(items, list) or len(items) != len(codes) or (
            thumbs is not None and len(thumbs) != len(codes)):
        raise AekitError(f"{directory}: the index files disagree on the number of items")
    if not all(isinstance(it, dict) and isinstance(it.get("name"), str) for it in items):
        raise AekitError(f"{meta_path}: an item is not a {{\"name\": …, \"label\": …}} record; "
                         "rebuild the index")
    return meta, codes, thumbs


def index_model(meta: dict[str, Any], model_path: str | None) -> tuple[Autoencoder, str]:
    """The model to encode queries with: ``model_path`` or the index's own; refused when its
    code differs in size or kind from the index's codes."""
    made_by = meta.get("model")
    if not isinstance(made_by, dict) or not all(
            k in made_by for k in ("path", "latent_dim", "code", "weights_sha256")):
        raise AekitError(f"{INDEX_FILE} does not say which model made the index; rebuild it")
    path = model_path or made_by["path"]
    if model_path is None and not Path(path).is_dir():
        raise AekitError(f"the index's model {path} is missing; pass --model")
    model = load_model(path)
    want, kind = made_by["latent_dim"], made_by["code"]
    if model.config.latent_dim != want:
        raise AekitError(f"model {path} gives {model.config.latent_dim}-d codes but the index holds "
                         f"{want}-d codes from {meta['model']['path']}; search with that model "
                         "or build a new index")
    if metric_for(model) != meta["metric"]:
        raise AekitError(f"model {path} has a {model.config.code} code but the index holds "
                         f"{kind} codes; search with the index's model")
    # codes of two models (or of one model before and after more training) are not comparable
    if sha256_file(Path(path) / "model.safetensors") != made_by["weights_sha256"]:
        raise AekitError(f"model {path} is not the model that made this index (its weights differ "
                         "from the ones recorded, so its codes would not match the index's); use "
                         "that model or build a new index")
    return model, path


# ------------------------------------------------------------------------------ index
@command("index", help="build (or --add to) a search index of images' codes")
def index_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("data", help="folder of images or any data spec")
    p.add_argument("--model", default=None, help="model directory (with --add: default the index's)")
    p.add_argument("--out", required=True, help="index folder")
    p.add_argument("--add", action="store_true", help="append to an existing index")
    p.add_argument("--exact-below", type=count_arg, default=None,
                   help="search exactly below this many codes, approximately from there on "
                        "(default 20000; 0 = always approximate; with --add, changes the index's)")
    add_data_options(p)
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        out = Path(args.out)
        if args.add:
            meta, codes, thumbs = read_index(out)
            model, model_path = index_model(meta, args.model)
        else:
            if not args.model:
                raise AekitError("--model is required to build a new index")
            if (out / INDEX_FILE).exists():
                raise AekitError(f"{out} already holds an index; use --add to append or another --out")
            check_out_dir(out, fresh=True)  # a file, or a folder holding other files: refused
            model, model_path = load_model(args.model), args.model
            kw = {"exact_below": args.exact_below} if args.exact_below is not None else {}
            codes = CodeIndex(model.config.latent_dim, metric_for(model), **kw)
            thumbs = None
            meta = {"format": FORMAT, "metric": codes.metric, "items": [], "model": {
                "path": str(Path(model_path).resolve()), "latent_dim": model.config.latent_dim,
                "code": model.config.code, "preset": model.config.preset,
                "input_shape": list(model.input_shape),
                "weights_sha256": sha256_file(Path(model_path) / "model.safetensors")}}
        data = load_data_for(args, args.data, model)
        new_codes, new_thumbs = encode_all(model, data, with_images=True)
        names, labels = item_names(args.data, data)
        keys = [item_key(n) for n in names]  # (resolved once: the --add check and the items)
        skipped = 0
        if args.add:  # an item already indexed is not added twice (it would fill two result slots)
            # the same file however it was typed (absolute, relative, from another folder);
            # an older index's items have no "path": their name, as typed then, and what it
            # resolves to from here
            had: set[str] = set()
            for it in meta["items"]:
                path = it.get("path")
                had |= {path} if isinstance(path, str) else {it["name"], item_key(it["name"])}
            keep = [i for i, key in enumerate(keys) if key not in had]
            skipped = len(names) - len(keep)
            if not keep:
                raise AekitError(f"every one of the {plural(len(names), 'item')} of {args.data} is "
                                 f"already in {out}; nothing to add")
            if skipped:
                warn(f"{plural(skipped, 'item')} already in {out} left out (the same files)")
                new_codes = new_codes[keep]
                new_thumbs = None if new_thumbs is None else new_thumbs[keep]
                names = [names[i] for i in keep]
                keys = [keys[i] for i in keep]
                labels = None if labels is None else [labels[i] for i in keep]
        if args.add and len(codes) and (thumbs is None) != (new_thumbs is None):
            raise DataError(f"{out} holds no thumbnails ({THUMBS_FILE} is missing) but the new data "
                            "are images; build a new index" if thumbs is None else
                            f"{out} holds image thumbnails but {args.data} is not images; add images "
                            "or build a new index")
        if args.add and args.exact_below is not None:
            codes.set_exact_below(args.exact_below, len(codes) + len(new_codes))
        codes.add(new_codes)
        if new_thumbs is not None:
            if thumbs is not None and thumbs.shape[1:] != new_thumbs.shape[1:]:
                raise DataError("new thumbnails differ in size from the index's")
            thumbs = new_thumbs if thumbs is None else np.concatenate([thumbs, new_thumbs])
        meta["items"] += [{"name": n, "path": key, "label": None if labels is None else labels[i]}
                          for i, (n, key) in enumerate(zip(names, keys))]
        with staged_dir(out) as stage:  # every file or none: a failure leaves the old index
            codes.save(stage)
            if thumbs is not None:
                np.save(stage / THUMBS_FILE, thumbs)
            write_json_atomic(stage / INDEX_FILE, meta)
        # staging keeps files it did not write: an older aekit's ann.faiss goes, and the cells'
        # centroids when an --exact-below raised past the size made the index exact again
        (out / ANN_FILE).unlink(missing_ok=True)
        if not codes.approximate:
            (out / CENTROIDS_FILE).unlink(missing_ok=True)
        obj = {"index": str(out), "added": len(names), "skipped": skipped, "total": len(codes),
               "metric": codes.metric,
               "code_size": codes.dim, "approximate": codes.approximate, "nprobe": codes.nprobe}
        how = (f"approximate (faiss IVF, nprobe {codes.nprobe})" if codes.approximate
               else "exact" + (" Hamming" if codes.metric == "hamming" else ""))
        emit(args, obj, f"{'added' if args.add else 'indexed'} {len(names)} items "
                        f"({codes.dim}-{'bit' if codes.metric == 'hamming' else 'd'} codes); "
                        f"{len(codes)} in {out}, search: {how}")
        return 0

    return run


# ------------------------------------------------------------------------------ search
@command("search", help="nearest images in an index to query images")
def search_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("index", help="index folder from `aekit index`")
    p.add_argument("query", help="query image, folder or data spec")
    p.add_argument("-k", "--k", type=int, default=10, help="results per query (default 10)")
    p.add_argument("--model", default=None, help="model for the queries (default: the index's)")
    p.add_argument("--exact", action="store_true", help="exact search even on a large index")
    p.add_argument("--html", default=None, metavar="OUT.html", help="also write a page of thumbnails")
    add_data_options(p)
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        if args.k < 1:
            raise AekitError(f"-k must be ≥ 1, got {args.k}")
        if args.html:
            check_html_name(args.html, "--html")
        meta, codes, thumbs = read_index(args.index)
        model, _ = index_model(meta, args.model)
        data = load_data_for(args, args.query, model)
        q_codes, q_thumbs = encode_all(model, data)
        q_names, _ = item_names(args.query, data)
        dist, idx = codes.search(q_codes, args.k, exact=args.exact)
        items = meta["items"]
        queries = []
        for qi, name in enumerate(q_names):
            res = [{"rank": r + 1, "index": int(j), "name": items[j]["name"],
                    "label": items[j].get("label"), "distance": float(d)}
                   for r, (j, d) in enumerate(zip(idx[qi], dist[qi])) if j >= 0]
            queries.append({"query": name, "results": res})
        if args.html:
            pages = [{"name": q["query"], "thumb": None if q_thumbs is None else q_thumbs[i],
                      "results": [{**r, "thumb": None if thumbs is None else thumbs[r["index"]]}
                                  for r in q["results"]]} for i, q in enumerate(queries)]
            render_search_page(args.html, pages, f"aekit search: {args.index}")
        lines = []
        for q in queries:
            lines.append(f"query {q['query']}:")
            rows = [{k: r[k] for k in ("rank", "distance", "name", "label")} for r in q["results"]]
            lines += ["  " + ln for ln in format_table(rows).splitlines()]
        k = min(args.k, len(codes))
        if k < args.k:
            lines.append(f"(-k {args.k}: the index holds {plural(len(codes), 'item')})")
        if args.html:
            lines.append(f"wrote {args.html}")
        emit(args, {"index": args.index, "k": k, "queries": queries, "html": args.html},
             "\n".join(lines))
        return 0

    return run


# ------------------------------------------------------------------------------ explore
def load_codes_source(spec: str, args: argparse.Namespace
                      ) -> tuple[np.ndarray, list[str], list[Any] | None, np.ndarray | None, str]:
    """(codes, names, labels, thumbnails, metric) from an index folder or a codes file."""
    path = Path(spec)
    if path.is_dir():
        meta, index, thumbs = read_index(path)
        codes = index.codes
        if index.metric == "hamming":
            from aekit.codes_binary import unpack_bits

            codes = unpack_bits(codes, index.dim).astype(np.float32)
        labels = [it.get("label") for it in meta["items"]]
        return (codes, [it["name"] for it in meta["items"]],
                None if all(v is None for v in labels) else labels, thumbs, index.metric)
    if not path.is_file() or path.suffix.lower() not in (".npy", ".npz"):
        raise AekitError(f"{spec}: give an index folder, or codes as .npy / .npz (x, y)")
    labels = None
    if path.suffix.lower() == ".npz":
        from aekit.data import load_npz

        codes, y = load_npz(path)
        if y is not None and len(y) != len(codes):
            raise DataError(f"{spec}: {len(codes)} codes (x) but {len(y)} labels (y)")
        labels = None if y is None else [_plain(v) for v in y]
    else:
        codes = load_npy(path, "codes")
    codes = np.asarray(codes, dtype=np.float32).reshape(len(codes), -1)
    thumbs = None
    names = [f"{path.name}#{i}" for i in range(len(codes))]
    if args.data:
        data = load_data_for(args, args.data)
        if len(data) != len(codes):
            raise DataError(f"{args.data} has {len(data)} samples but {spec} {len(codes)} codes")
        if data.is_image:
            thumbs = np.concatenate([make_thumbnails(b.numpy()) for b in data.iter_batches(1024)])
        names, data_labels = item_names(args.data, data)
        labels = labels if labels is not None else data_labels
    return codes, names, labels, thumbs, "l2"


@command("explore", help="an HTML page mapping codes in 2-D: hover shows images, click neighbours")
def explore_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("source", help="index folder, or codes .npy / .npz (x = codes, y = labels)")
    p.add_argument("--out", required=True, help="output .html")
    p.add_argument("--data", default=None, help="with a codes file: the images (and labels) they came from")
    p.add_argument("--clusters", type=positive_int, default=10,
                   help="k-means colours when there are no labels (default 10)")
    p.add_argument("--neighbours", type=positive_int, default=8,
                   help="neighbours listed on click (default 8)")
    p.add_argument("--max-points", type=positive_int, default=5000,
                   help="random sample above this (default 5000)")
    p.add_argument("--seed", type=seed_arg, default=0, help="random seed")
    add_data_options(p)
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        check_html_name(args.out, "--out")
        if args.max_points < 2:
            raise AekitError(f"--max-points must be at least 2 (a map of one point), got {args.max_points}")
        codes, names, labels, thumbs, metric = load_codes_source(args.source, args)
        n_all = len(codes)
        if n_all < 2:
            raise DataError(f"{args.source}: {n_all} code(s); a map needs at least 2")
        finite = np.isfinite(codes.reshape(n_all, -1)).all(1)
        if not finite.all():
            raise DataError(f"{args.source}: code {int(np.argmin(finite))} (counting from 0) has "
                            "NaN or infinite values")
        keep = np.arange(n_all)
        if n_all > args.max_points:
            keep = np.sort(np.random.default_rng(args.seed).choice(n_all, args.max_points, replace=False))
        codes = codes[keep]
        names = [names[i] for i in keep]
        labels = None if labels is None else [labels[i] for i in keep]
        thumbs = None if thumbs is None else thumbs[keep]
        coords, method = project_2d(codes, args.seed)
        clusters = None
        if labels is None:
            from sklearn.cluster import KMeans

            # no more clusters than distinct codes (k-means warned about duplicates)
            k = max(1, min(args.clusters, len(np.unique(codes, axis=0))))
            clusters = KMeans(k, n_init=4, random_state=args.seed).fit_predict(codes).tolist()
        nn_index = CodeIndex(codes.shape[1], metric, exact_below=sys.maxsize)
        nn_index.add(codes)
        k = min(args.neighbours + 1, len(codes))
        dist, idx = nn_index.search(codes, k)
        nbr, nbd = _drop_self(idx, dist)
        colour = "label" if labels is not None else f"k-means cluster (k={len(set(clusters))})"
        subtitle = (f"{len(codes)} of {n_all} codes ({codes.shape[1]}-d), {method} map, "
                    f"coloured by {colour}; neighbours by {metric} distance in code space")
        render_explorer(args.out, coords, names=names, neighbours=nbr, neighbour_dist=nbd,
                        labels=labels, clusters=clusters, thumbnails=thumbs, subtitle=subtitle)
        emit(args, {"out": args.out, "points": len(codes), "total": n_all, "map": method,
                    "colour": colour}, f"wrote {args.out}: {subtitle}")
        return 0

    return run


def _drop_self(idx: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's neighbours without the row itself (or, among duplicates, the last one)."""
    rows = np.arange(len(idx))[:, None]
    mask = idx != rows
    # rows where self was not returned (exact duplicates): drop the last column instead
    missing = mask.all(1)
    mask[missing, -1] = False
    k = idx.shape[1] - 1
    return idx[mask].reshape(-1, k), dist[mask].reshape(-1, k)
