"""Dimensionality reduction side by side with PCA, and the HTML run report.

    aekit compare-pca --data digits --latent-dims 2,8,32 --presets vanilla,deep,conv --out DIR
    aekit report RUN_DIR

``compare-pca`` fits PCA and each preset (through :class:`AutoencoderTransformer`, the same
estimator a scikit-learn user gets) at each code size on one train/test split and measures
everything on the held-out part: summed squared error per sample, MSE, PSNR (images),
explained variance 1 − SSE / total variance, and fit time.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aekit.apps import Handler, command
from aekit.apps.common import (
    add_data_options,
    add_json_flag,
    check_html_name,
    check_out_dir,
    data_stem,
    emit,
    format_table,
    load_data_for,
    positive_float,
    positive_int,
    seed_arg,
    unique_run_dir,
)
from aekit.data.arrays import ArrayData
from aekit.errors import AekitError
from aekit.models import PRESETS

DEFAULT_LATENT_DIMS = (2, 8, 32)
DEFAULT_PRESETS = ("vanilla", "deep", "conv")
DEFAULT_EPOCHS = 100
#: smaller than fit()'s 128: on a few thousand samples 128 leaves too few steps per epoch
#: (vanilla at 32-d on digits, 100 epochs: held-out SSE 0.72 at 128, 0.28 at 32)
DEFAULT_BATCH = 32
COLUMNS = ["method", "latent_dim", "sse_per_image", "mse", "psnr", "explained_variance",
           "ratio_to_pca", "fit_seconds"]


@dataclass
class Comparison:
    """What :func:`compare_pca` measured, plus what its figures need."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    originals: np.ndarray | None = None  # first test samples, (n, *input_shape)
    reconstructions: dict[str, np.ndarray] = field(default_factory=dict)  # "pca-8" -> (n, …)
    codes_2d: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (n_test, 2)
    labels: np.ndarray | None = None
    is_image: bool = False


def parse_int_list(text: str, what: str = "latent dims") -> list[int]:
    try:
        vals = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise AekitError(f"--{what.replace(' ', '-')} must be integers separated by commas, "
                         f"got {text!r}") from None
    if not vals or min(vals) < 1:
        raise AekitError(f"--{what.replace(' ', '-')} must be positive integers, got {text!r}")
    return sorted(set(vals))


def parse_presets(text: str) -> list[str]:
    names = [v for v in text.replace(" ", "").split(",") if v]
    if not names:
        raise AekitError("--presets is empty")
    from aekit.estimators import TRANSFORMER_PRESETS

    for n in names:
        PRESETS.get(n)  # one-line "unknown preset" error listing the known ones
        if n not in TRANSFORMER_PRESETS:  # (codec, restore, topic models: not a reduction)
            raise AekitError(f"preset {n!r} is not a dimensionality reduction to set beside PCA; "
                             f"use {', '.join(sorted(TRANSFORMER_PRESETS))}")
    return list(dict.fromkeys(names))


def reconstruction_metrics(x: np.ndarray, rec: np.ndarray, data_range: float | None) -> dict[str, float]:
    """Held-out metrics in data space; explained variance is against the test set's own mean."""
    x64 = x.reshape(len(x), -1).astype(np.float64)
    r64 = rec.reshape(len(rec), -1).astype(np.float64)
    sse = float(((r64 - x64) ** 2).sum())
    total = float(((x64 - x64.mean(0)) ** 2).sum())
    mse = sse / x64.size
    out = {"sse_per_image": sse / len(x64), "mse": mse,
           "explained_variance": 1 - sse / total if total > 0 else math.nan,
           "psnr": math.nan}
    if data_range is not None:
        out["psnr"] = math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)
    return out


def compare_pca(train: ArrayData, test: ArrayData, latent_dims: Sequence[int],
                presets: Sequence[str], *, epochs: int | None = DEFAULT_EPOCHS,
                minutes: float | None = None, batch_size: int = DEFAULT_BATCH, lr: float = 2e-3,
                seed: int = 0, device: str = "cpu", progress: bool = False, n_show: int = 10,
                on_row: Callable[[dict[str, Any]], None] | None = None) -> Comparison:
    """Fit PCA and every preset at every code size on ``train``; measure on ``test``."""
    from sklearn.decomposition import PCA

    from aekit.estimators import AutoencoderTransformer

    if tuple(train.input_shape) != tuple(test.input_shape):
        raise AekitError(f"train samples have shape {tuple(train.input_shape)} but test samples "
                         f"{tuple(test.input_shape)}")
    if len(train) < 2 or len(test) < 1:
        raise AekitError(f"need at least 2 training and 1 test sample (got {len(train)} and "
                         f"{len(test)})")
    xtr = train.all().numpy()
    xte = test.all().numpy()
    d = int(np.prod(xtr.shape[1:]))
    in_unit = train.is_image and float(xtr.min()) >= 0 and float(xtr.max()) <= 1
    data_range = 1.0 if in_unit else None
    cmp = Comparison(originals=xte[:n_show], labels=test.labels(), is_image=train.is_image)
    for p in presets:
        if PRESETS.get(p).get("arch") == "conv" and not train.is_image:
            cmp.notes.append(f"{p}: skipped, it needs image data")
    presets = [p for p in presets
               if not (PRESETS.get(p).get("arch") == "conv" and not train.is_image)]
    flat_tr, flat_te = xtr.reshape(len(xtr), -1), xte.reshape(len(xte), -1)
    # a table's columns are standardised (on the training split) for PCA as the autoencoders
    # standardise them inside, and every error is measured in those units: in raw units one
    # wide column (wine's proline, sd 315) was 99 % of the error, PCA kept just it, and the
    # autoencoders read 10³–10⁵ times worse while explaining more of the standardised data
    mu, sd = 0.0, 1.0
    if not train.is_image:
        mu, sd = flat_tr.mean(0), flat_tr.std(0)
        sd = np.where(sd > 1e-8, sd, 1.0)

    def scaled(x: np.ndarray) -> np.ndarray:
        return ((x.reshape(len(x), -1) - mu) / sd).reshape(x.shape)

    def unscaled(x: np.ndarray) -> np.ndarray:
        return (x.reshape(len(x), -1) * sd + mu).reshape(x.shape)

    if not train.is_image:
        cmp.notes.append("errors in standardised units (each column scaled to mean 0, sd 1 on "
                         "the training split, for PCA as inside the autoencoders)")

    def add(row: dict[str, Any]) -> None:
        cmp.rows.append(row)
        if on_row is not None:
            on_row(row)

    for k in latent_dims:
        if k > d:
            cmp.notes.append(f"code size {k}: skipped, larger than the {d} input features")
            continue
        pca_sse = None
        if k <= min(len(xtr), d):
            t0 = time.perf_counter()
            pca = PCA(n_components=k, random_state=seed).fit(scaled(flat_tr))
            secs = time.perf_counter() - t0
            z = pca.transform(scaled(flat_te))
            rec = pca.inverse_transform(z).reshape(xte.shape)  # (in scaled units)
            m = reconstruction_metrics(scaled(xte), rec, data_range)
            rec = unscaled(rec)
            pca_sse = m["sse_per_image"]
            add({"method": "pca", "latent_dim": k, **m, "ratio_to_pca": 1.0, "fit_seconds": secs})
            cmp.reconstructions[f"pca-{k}"] = rec[:n_show]
            if k == 2:
                cmp.codes_2d["pca"] = z
        else:
            cmp.notes.append(f"pca at code size {k}: skipped, more components than the "
                             f"{len(xtr)} training samples")
        for p in presets:
            est = AutoencoderTransformer(n_components=k, preset=p, max_epochs=epochs,
                                         max_minutes=minutes, batch_size=batch_size,
                                         learning_rate=lr, random_state=seed, device=device,
                                         verbose=progress)
            est.fit(xtr)
            z = est.transform(xte)
            rec = est.inverse_transform(z)
            m = reconstruction_metrics(scaled(xte), scaled(rec), data_range)
            ratio = m["sse_per_image"] / pca_sse if pca_sse else math.nan
            add({"method": p, "latent_dim": k, **m, "ratio_to_pca": ratio,
                 "fit_seconds": est.fit_time_, "epochs": est.n_iter_})
            cmp.reconstructions[f"{p}-{k}"] = rec[:n_show]
            if k == 2:
                cmp.codes_2d[p] = z
    del flat_tr, flat_te
    if not cmp.rows:  # every code size skipped: nothing was compared
        raise AekitError(f"nothing to compare: {'; '.join(cmp.notes)}")
    return cmp


#: the figures compare-pca writes, by name
FIGURES = {"error_vs_code_size": "error_vs_code_size.png",
           "reconstructions": "reconstructions.png", "codes_2d": "codes_2d.png"}


def write_figures(cmp: Comparison, out: Path, title: str = "") -> dict[str, str]:
    """The comparison's figures as PNG files in ``out``; returns name -> path."""
    from aekit.report import figures

    written: dict[str, str] = {}
    curves: dict[str, list[tuple[int, float]]] = {}
    for r in cmp.rows:
        curves.setdefault(r["method"], []).append((r["latent_dim"], r["sse_per_image"]))
    if cmp.rows:
        fig = figures.error_vs_code_size(curves)
        if title:
            fig.axes[0].set_title(title)
        written["error_vs_code_size"] = str(figures.save_png(fig, out / "error_vs_code_size.png"))
    if cmp.is_image and cmp.originals is not None and cmp.reconstructions:
        names = list(cmp.reconstructions)
        rows = [cmp.originals] + [np.clip(cmp.reconstructions[n], 0, 1) for n in names]
        rows = [r.reshape(len(r), *cmp.originals.shape[1:]) for r in rows]
        if cmp.originals.ndim == 4:
            lo, hi = float(cmp.originals.min()), float(cmp.originals.max())
            if lo < 0 or hi > 1:  # not [0, 1] images: stretch all rows alike for display
                rows = [np.clip((r - lo) / (hi - lo + 1e-12), 0, 1) for r in rows]
            fig = figures.labelled_image_rows(rows, ["original"] + names,
                                              "held-out originals and reconstructions")
            written["reconstructions"] = str(figures.save_png(fig, out / "reconstructions.png"))
    if "pca" in cmp.codes_2d and len(cmp.codes_2d) > 1:
        panels = [("PCA, 2 components", cmp.codes_2d["pca"])]
        panels += [(f"{m} autoencoder, 2-d code", z) for m, z in cmp.codes_2d.items() if m != "pca"]
        fig = figures.code_scatter(panels, cmp.labels, "held-out samples in 2-d")
        written["codes_2d"] = str(figures.save_png(fig, out / "codes_2d.png"))
    for name in FIGURES.keys() - written.keys():  # an earlier comparison's, in a reused --out:
        (out / FIGURES[name]).unlink(missing_ok=True)  # it would pass for this one's
    return written


@command("compare-pca", help="PCA and autoencoder presets side by side at several code sizes")
def compare_pca_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("--data", default="digits", help="data spec (default digits, embedded)")
    p.add_argument("--test", default=None,
                   help="held-out data spec (default: a seeded 20%% split of --data)")
    p.add_argument("--latent-dims", default=",".join(map(str, DEFAULT_LATENT_DIMS)),
                   help="code sizes, comma-separated (default 2,8,32)")
    p.add_argument("--presets", default=",".join(DEFAULT_PRESETS),
                   help="autoencoder presets, comma-separated (default vanilla,deep,conv; "
                        "conv is skipped for tabular data)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=positive_int, default=None,
                        help=f"epochs per autoencoder (default {DEFAULT_EPOCHS}, early stopping)")
    budget.add_argument("--minutes", type=positive_float, default=None,
                        help="wall-clock budget of each autoencoder fit, in minutes")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH,
                   help=f"default {DEFAULT_BATCH}: small sets need the steps (see the README)")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="learning rate")
    p.add_argument("--seed", type=seed_arg, default=0, help="random seed")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--out", default=None, help="folder for the figures "
                   "(default runs/compare-pca-<data>-<time>)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    add_data_options(p)
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        dims = parse_int_list(args.latent_dims)
        presets = parse_presets(args.presets)
        if args.epochs is not None and args.epochs < 1:
            raise AekitError(f"--epochs must be ≥ 1, got {args.epochs}")
        if args.out:
            check_out_dir(Path(args.out), results=True)  # before training, not after
        data = load_data_for(args, args.data)
        if args.test:
            train, test = data, load_data_for(args, args.test)
        else:
            train, test = data.split(0.2, seed=args.seed)
        epochs = args.epochs if args.epochs is not None else (
            None if args.minutes is not None else DEFAULT_EPOCHS)
        show = not args.no_progress and not args.json and sys.stderr.isatty()

        def on_row(row: dict[str, Any]) -> None:
            if show:
                sys.stderr.write(f"  {row['method']:>10} @ {row['latent_dim']:>3}-d: SSE/sample "
                                 f"{row['sse_per_image']:.4g} ({row['fit_seconds']:.1f} s)\n")

        t0 = time.perf_counter()
        from aekit.training import pick_device

        cmp = compare_pca(train, test, dims, presets, epochs=epochs, minutes=args.minutes,
                          batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                          device=str(pick_device(args.device)), on_row=on_row)
        out = Path(args.out) if args.out else unique_run_dir(f"compare-pca-{data_stem(args.data)}")
        figs = write_figures(cmp, out, f"{args.data}: held-out error against code size")
        obj = {"data": args.data, "test": args.test or f"{args.data} (seeded 20% split)",
               "n_train": len(train), "n_test": len(test),
               "input_shape": list(train.input_shape), "rows": cmp.rows, "notes": cmp.notes,
               "figures": figs, "seconds": round(time.perf_counter() - t0, 2)}
        columns = COLUMNS if cmp.is_image else [c for c in COLUMNS if c != "psnr"]
        head = (f"{args.data}: {len(train)} training and {len(test)} held-out samples of shape "
                f"{tuple(train.input_shape)}; errors are on the held-out samples")
        lines = [head, format_table(cmp.rows, columns)]
        lines += [f"note: {n}" for n in cmp.notes]
        lines.append(f"figures: {', '.join(figs.values()) or 'none'}")
        emit(args, obj, "\n".join(lines))
        return 0

    return run


#: images in the report's reconstruction row: more made an unreadable strip
MAX_REPORT_IMAGES = 64


@command("report", help="a single self-contained HTML report of a training run")
def report_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("run_dir", help="a run directory written by `aekit train`")
    p.add_argument("--data", default=None,
                   help="data for reconstructions and codes (default: the run's held-out split)")
    p.add_argument("--out", default=None, help="HTML file (default RUN_DIR/report.html)")
    p.add_argument("-n", type=int, default=16, help="images in the reconstruction figure")
    p.add_argument("--label-col", default=None,
                   help="CSV column holding labels (default: the run's, for its own data)")
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        from aekit.report.run_report import build_run_report

        if not 1 <= args.n <= MAX_REPORT_IMAGES:
            raise AekitError(f"-n is 1–{MAX_REPORT_IMAGES} (the images make one row), got {args.n}")
        if args.out is not None:
            check_html_name(args.out, "--out")
        path = build_run_report(args.run_dir, args.data, args.out, n_images=args.n,
                                label_col=args.label_col)
        size = path.stat().st_size
        emit(args, {"out": str(path), "bytes": size},
             f"wrote {path} ({size / 1024:.0f} KiB, self-contained: open it in any browser)")
        return 0

    return run
