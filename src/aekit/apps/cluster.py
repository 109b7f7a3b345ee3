"""``aekit cluster``: cluster data by its codes (k-means, GMM, or DEC/IDEC), with baselines.

With labels (a labelled dataset, an ``.npz`` with ``y``, class folders) it scores every
result by Hungarian-matched accuracy, NMI and ARI, beside k-means on the raw pixels and on PCA
codes of the same size, all in the same run.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.apps import Handler, command
from aekit.apps.common import (
    add_data_options,
    add_json_flag,
    add_progress_flag,
    check_not_data,
    check_out_dir,
    check_out_file,
    emit,
    format_table,
    load_data_for,
    load_model,
    seed_arg,
)
from aekit.clustering import METHODS, dec, gmm, kmeans, predict_dec
from aekit.data import ArrayData
from aekit.errors import AekitError, DataError, warn
from aekit.io import atomic_path
from aekit.metrics_cluster import cluster_scores
from aekit.models import Autoencoder, create_model
from aekit.training import fit, pick_device

#: DEC's encoder widths (Xie et al. 2016): d-500-500-2000-k
DEC_HIDDEN = (500, 500, 2000)


def parse_widths(text: str) -> list[int]:
    try:
        widths = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths look like 500,500,2000, got {text!r}") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError("widths must be positive")
    if not widths:  # ("," built a linear autoencoder without a word)
        raise argparse.ArgumentTypeError(f"give at least one width, e.g. 500,500,2000; got {text!r}")
    return widths


def pretrain(data: ArrayData, latent_dim: int, hidden: list[int], epochs: int | None,
             minutes: float | None, seed: int, device: str, progress: bool) -> tuple[Autoencoder, dict]:
    """A deep autoencoder for clustering: DEC's widths, ReLU, trained by the core ``fit``."""
    overrides: dict[str, Any] = {"arch_options": {"hidden": hidden, "act": "relu"}}
    if not data.is_image:
        overrides["normalization"] = "standard"
    model = create_model("deep", data.input_shape, latent_dim, **overrides)
    if epochs is None and minutes is None:
        epochs = 300  # on the digits, 60 epochs left AE + k-means below k-means on pixels
    res = fit(model, data, epochs=epochs, minutes=minutes, batch_size=256, lr=1e-3, seed=seed,
              device=device, patience=None, val_fraction=0.0, progress=progress)
    return model, res.summary()


def flat_pixels(data: ArrayData, standardize: bool = False) -> np.ndarray:
    """The samples as rows; ``standardize``: each column to mean 0, std 1, the input the
    autoencoder of a table sees (k-means on raw columns whose scales differ by 1000× was a
    straw man: on wine 0.70 accuracy, against 0.97 standardised)."""
    x = np.concatenate([b.flatten(1).numpy() for b in data.iter_batches(4096)])
    if standardize:
        sd = x.std(0)
        x = (x - x.mean(0)) / np.where(sd < 1e-8, 1.0, sd)
    return x


@torch.no_grad()
def codes_of(model: Autoencoder, data: ArrayData) -> np.ndarray:
    model.eval()
    dev = next(model.parameters()).device
    return np.concatenate([model.encode(b.to(dev)).flatten(1).cpu().numpy()
                           for b in data.iter_batches(1024)])


def baselines(x: np.ndarray, k: int, n_components: int, seed: int,
              raw: str = "pixels") -> list[dict[str, Any]]:
    """k-means on the raw data (``raw``: what its columns are, pixels or features) and on PCA
    codes of the given size, timed."""
    from sklearn.decomposition import PCA

    rows = []
    t = time.perf_counter()
    rows.append({"method": f"k-means on {raw}", "labels": kmeans(x, k, seed)[0],
                 "seconds": time.perf_counter() - t})
    t = time.perf_counter()
    nc = min(n_components, x.shape[1], len(x))
    pcs = PCA(nc, random_state=seed).fit_transform(x)
    rows.append({"method": f"k-means on PCA-{nc}", "labels": kmeans(pcs, k, seed)[0],
                 "seconds": time.perf_counter() - t})
    return rows


@command("cluster", help="cluster data by its codes (kmeans, gmm, dec) with pixel/PCA baselines")
def cluster_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("--data", required=True, help="data spec")
    p.add_argument("-k", "--k", type=int, required=True, help="number of clusters")
    p.add_argument("--model", default=None, help="trained model (default: pretrain one here)")
    p.add_argument("--method", choices=METHODS, default="kmeans", help="clustering of the codes")
    p.add_argument("--latent-dim", type=int, default=None, help="code size when pretraining (default 10)")
    p.add_argument("--hidden", type=parse_widths, default=None,
                   help="encoder widths when pretraining (default DEC's 500,500,2000)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=None, help="pretraining epochs (default 300)")
    budget.add_argument("--minutes", type=float, default=None, help="pretraining budget in minutes")
    p.add_argument("--gamma", type=float, default=0.1, help="dec: weight of the clustering loss")
    p.add_argument("--no-reconstruction", action="store_true",
                   help="dec: plain DEC (drop the reconstruction loss IDEC keeps)")
    p.add_argument("--max-iter", type=int, default=20000, help="dec: refinement steps at most")
    p.add_argument("--tol", type=float, default=1e-3, help="dec: stop when fewer assignments change")
    p.add_argument("--no-baselines", action="store_true", help="skip the baselines: k-means on the pixels (or features) and on PCA")
    p.add_argument("--out", default=None, help="save the (pretrained / refined) model here")
    p.add_argument("--assignments", default=None, metavar="OUT.npy", help="write cluster labels")
    p.add_argument("--seed", type=seed_arg, default=0, help="random seed")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    add_data_options(p)
    add_progress_flag(p)
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        if args.k < 2:
            raise AekitError(f"--k must be ≥ 2, got {args.k}")
        if not args.gamma > 0 or not math.isfinite(args.gamma):  # (NaN passed `<= 0`)
            raise AekitError(f"--gamma must be > 0, got {args.gamma}")
        if args.max_iter < 1 or not args.tol >= 0:  # (0 steps printed an "IDEC" row)
            raise AekitError(f"--max-iter must be ≥ 1 and --tol ≥ 0, got {args.max_iter} and "
                             f"{args.tol}")
        if args.assignments and not args.assignments.endswith(".npy"):
            raise AekitError("--assignments must end in .npy")
        if args.assignments:
            check_not_data(args.data, args.assignments)
            check_out_file(Path(args.assignments), "--assignments")  # before training
        if args.out:
            check_out_dir(Path(args.out), fresh=True)  # before training, not after
        pretraining = {"--latent-dim": args.latent_dim, "--hidden": args.hidden,
                       "--epochs": args.epochs, "--minutes": args.minutes}
        if args.model and any(v is not None for v in pretraining.values()):
            warn(f"{', '.join(k for k, v in pretraining.items() if v is not None)}: "
                 "pretraining options, ignored with --model (its encoder is used as it is)")
        t_start = time.perf_counter()
        torch.manual_seed(args.seed)
        model = load_model(args.model) if args.model else None
        if model is not None:
            model.to(pick_device(args.device))
        data = load_data_for(args, args.data, model)
        # a model refined by dec with its centroids: new data is assigned to them (no
        # clustering runs, so k may be more than the samples)
        saved = model.config.extra.get("clusters") if model is not None else None
        assign_only = bool(saved) and args.method == "dec"
        if args.k > len(data) and not assign_only:
            raise AekitError(f"--k {args.k} is more than the {len(data)} samples")
        y = checked_labels(data)  # a folder of class folders: their names (the resolver's)
        progress = False if args.json or args.no_progress else None
        rows: list[dict[str, Any]] = []
        summary: dict[str, Any] = {}
        if model is None:
            t = time.perf_counter()
            model, summary = pretrain(data, args.latent_dim or 10, args.hidden or list(DEC_HIDDEN),
                                      args.epochs, args.minutes, args.seed, args.device,
                                      bool(progress is None and _tty()))
            summary["pretrain_seconds"] = round(time.perf_counter() - t, 2)
        z = codes_of(model, data)
        distinct = len(np.unique(z, axis=0))
        if args.k > distinct and not assign_only:  # (k-means warned and left clusters empty)
            raise AekitError(f"--k {args.k} is more than the {distinct} distinct codes of the "
                             f"{len(data)} samples")
        t = time.perf_counter()
        if assign_only:
            # the encoder is not refined again (the centroids were not kept before)
            try:
                centers = np.asarray(saved["centers"], dtype=np.float32)
                alpha = float(saved.get("alpha", 1.0))
                ok = (centers.shape == (len(centers), z.shape[1]) and np.isfinite(centers).all()
                      and math.isfinite(alpha) and alpha > 0)
            except (KeyError, TypeError, ValueError, AttributeError):
                ok = False
            if not ok:
                raise AekitError(f"{args.model}: its saved cluster centroids are damaged")
            if len(centers) != args.k:
                raise AekitError(f"{args.model} holds {len(centers)} clusters, not --k {args.k}")
            labels = predict_dec(model, data, centers, alpha)
            name = f"{saved.get('method', 'IDEC')} (saved centroids)"
        elif args.method == "kmeans":
            labels, name = kmeans(z, args.k, args.seed)[0], "k-means"
        elif args.method == "gmm":
            labels, name = gmm(z, args.k, args.seed), "GMM"
        else:
            res = dec(model, data, args.k, gamma=args.gamma,
                      reconstruction=not args.no_reconstruction, max_iter=args.max_iter,
                      tol=args.tol, seed=args.seed, device=args.device,
                      progress=bool(progress is None and _tty()))
            rows.append({"method": "k-means on AE codes (dec init)", "labels": res.init_labels,
                         "seconds": None})
            labels = res.labels
            summary.update({"dec_iterations": res.iterations, "dec_stopped": res.stopped})
            model.cpu()
            name = "DEC" if args.no_reconstruction else "IDEC"
            model.config.extra["clusters"] = {"method": name, "alpha": 1.0,
                                              "centers": res.centers.astype(float).tolist()}
        rows.append({"method": f"{name} on AE codes", "labels": labels,
                     "seconds": time.perf_counter() - t})
        skipped = not args.no_baselines and args.k > distinct  # (only when assigning)
        if skipped:
            warn(f"no baselines: k-means needs at least --k {args.k} distinct samples, and "
                 f"there are {distinct}")
        if not args.no_baselines and not skipped:
            standard = model.config.normalization == "standard"
            raw = ("standardised " if standard else "") + ("pixels" if data.is_image else "features")
            rows = baselines(flat_pixels(data, standard), args.k, z.shape[1], args.seed, raw) + rows
        if args.out:
            model.save_pretrained(Path(args.out), summary={"cluster": summary, "data": args.data})
        if args.assignments:
            with atomic_path(args.assignments, suffix=".npy") as tmp:
                np.save(tmp, labels)
        table = []
        for r in rows:
            row: dict[str, Any] = {"method": r["method"]}
            if y is not None:
                row.update(cluster_scores(y, r["labels"]))
            row["seconds"] = None if r["seconds"] is None else round(r["seconds"], 2)
            table.append(row)
        sizes = np.bincount(labels, minlength=args.k).tolist()
        obj = {"data": args.data, "k": args.k, "method": args.method, "n": len(data),
               "labelled": y is not None, "results": table, "cluster_sizes": sizes,
               "training": summary, "seconds": round(time.perf_counter() - t_start, 2)}
        text = [(f"{len(data)} samples of {args.data} in {args.k} clusters "
                f"({z.shape[1]}-d codes{', labels given' if y is not None else ', no labels'}):"),
                format_table(table), f"cluster sizes: {sizes}"]
        if args.out:
            text.append(f"saved model to {args.out}")
        if args.assignments:
            text.append(f"wrote cluster labels to {args.assignments}")
        emit(args, obj, "\n".join(text))
        return 0

    return run


def checked_labels(data: ArrayData) -> np.ndarray | None:
    """The data's labels, for scoring: a missing label (NaN, None) is refused by its sample
    (it crashed scikit-learn's metrics after all the training), a blank one warned about (it
    is scored as a class of its own)."""
    y = data.labels()
    if y is None:
        return None
    missing = (np.isnan(y) if y.dtype.kind == "f"
               else np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in y])
               if y.dtype.kind == "O" else np.zeros(len(y), bool))
    if missing.any():
        raise DataError(f"{data.name}: sample {int(np.argmax(missing))} (counting from 0) has no "
                        f"label ({int(missing.sum())} in all); give every sample one, or none")
    if y.dtype.kind in "OUS":
        blank = np.array([isinstance(v, str) and not v.strip() for v in y])
        if blank.any():
            warn(f"{int(blank.sum())} samples have a blank label (first: sample "
                 f"{int(np.argmax(blank))}); they are scored as a class of their own")
    return y


def _tty() -> bool:
    import sys

    return sys.stderr.isatty()
