"""``aekit anomaly fit | score``: reconstruction-error anomaly detection on tables, images and
time series (sliding windows), over :class:`aekit.detectors.AutoencoderOutlierDetector`."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from aekit.apps import Handler, command
from aekit.apps.common import (
    add_data_options,
    add_json_flag,
    add_progress_flag,
    check_not_data,
    check_out_dir,
    emit,
    format_table,
    load_data_for,
    positive_float,
    positive_int,
    seed_arg,
)
from aekit.data import ArrayData, load_npy, spec_path
from aekit.data.images import list_images
from aekit.errors import AekitError
from aekit.io import atomic_path, write_text_atomic


def load_detector_data(args: argparse.Namespace, window: int | None,
                       model: Any = None) -> ArrayData:
    """The data of ``--data``; for a windowed detector a 1-D series (T,) in a .npy is (T, 1)
    (memory-mapped: a 2-D file is not read twice)."""
    path = spec_path(args.data)
    if window and path is not None and path.suffix.lower() == ".npy" and path.is_file():
        x = load_npy(path)
        if x.ndim == 1:
            return ArrayData(np.asarray(x).reshape(-1, 1), name=path.name)
    return load_data_for(args, args.data, model)


def detector_input(data: ArrayData, window: int | None) -> Any:
    """What the detector takes: the ArrayData itself, or for windows the (T, C) series."""
    if window:
        if data.is_image:
            raise AekitError("--window needs a time series (a .csv/.npy of shape (T,) or (T, C))")
        return np.asarray(data.x, dtype=np.float32)
    return data


def same_label(value: Any, given: str) -> bool:
    """A label equals the one given on the command line: as numbers when both are (a CSV's
    1.0 is ``--normal-label 1``), else as text."""
    try:
        v, g = float(value), float(given)
    except (TypeError, ValueError):
        return str(value) == given
    return v == g or (math.isnan(v) and math.isnan(g))  # --normal-label nan: the NaN labels


def ranking_scores(scores: np.ndarray, y: np.ndarray, normal_label: str) -> dict[str, float]:
    """ROC-AUC and PR-AUC (average precision) with anomaly = label ≠ ``normal_label``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    is_anomaly = ~np.array([same_label(v, normal_label) for v in y], dtype=bool)
    if is_anomaly.all():
        kinds = sorted({str(v) for v in y})
        shown = ", ".join(kinds[:10]) + (", …" if len(kinds) > 10 else "")
        raise AekitError(f"--normal-label {normal_label} is not among the labels ({shown})")
    if not is_anomaly.any():
        raise AekitError(f"--normal-label {normal_label}: every sample has this label, so there "
                         "are no anomalies to rank")
    return {"roc_auc": float(roc_auc_score(is_anomaly, scores)),
            "pr_auc": float(average_precision_score(is_anomaly, scores)),
            "anomalies": int(is_anomaly.sum())}


def write_scores(path: str, scores: np.ndarray, labels: np.ndarray,
                 starts: np.ndarray | None = None) -> None:
    """Every score to .npy, or to .csv with its sample's index (a window's first step)."""
    if path.endswith(".npy"):
        with atomic_path(path, suffix=".npy") as tmp:
            np.save(tmp, scores)
    elif path.endswith(".csv"):
        head, index = ("index", range(len(scores))) if starts is None else ("first_step", starts)
        lines = [f"{head},score,outlier"] + [f"{i},{s:.8g},{int(o)}"
                                             for i, s, o in zip(index, scores, labels)]
        write_text_atomic(path, "\n".join(lines) + "\n")
    else:
        raise AekitError("--scores must end in .csv or .npy")


@command("anomaly", help="anomaly detection by reconstruction error: `fit` a detector, `score` data")
def anomaly_cmd(p: argparse.ArgumentParser) -> Handler:
    sub = p.add_subparsers(dest="action", metavar="fit|score")
    sub.required = True
    f = sub.add_parser("fit", help="train a detector on (mostly) normal data")
    f.set_defaults(_parser=f)  # an unknown argument points to `aekit anomaly fit --help`
    f.add_argument("--data", required=True, help="data spec: table (.csv/.npy), images, or a series")
    f.add_argument("--out", required=True, help="detector directory")
    f.add_argument("--preset", default="deep", help="model preset (default deep)")
    f.add_argument("--latent-dim", type=positive_int, default=8, help="code size (default 8)")
    f.add_argument("--contamination", type=float, default=0.1,
                   help="expected share of outliers; sets the threshold (default 0.1, as PyOD)")
    # (no choices=: they live in aekit.detectors, which loads scikit-learn, ~1.4 s that
    # every `aekit … --help` paid; the detector refuses another value in one line)
    f.add_argument("--threshold-on", default="train", choices=("train", "held-out"),
                   metavar="train|held-out",
                   help="scores the threshold is the quantile of: the training samples' (default, "
                        "as PyOD; new data is flagged more often) or the held-out share's (about "
                        "--contamination of new data is flagged; needs ≥ 20 held out: 200 samples)")
    f.add_argument("--epochs", type=positive_int, default=100, help="epochs (default 100)")
    f.add_argument("--batch-size", type=positive_int, default=64, help="batch size (default 64)")
    f.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (default 0.001)")
    f.add_argument("--window", type=positive_int, default=None,
                   help="time series (T,) or (T, C): each window of this many steps is a sample")
    f.add_argument("--stride", type=positive_int, default=1,
                   help="time series: window step (default 1)")
    f.add_argument("--seed", type=seed_arg, default=0, help="random seed")
    f.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    s = sub.add_parser("score", help="score data with a fitted detector")
    s.set_defaults(_parser=s)
    s.add_argument("--model", required=True, help="detector directory from `aekit anomaly fit`")
    s.add_argument("--data", required=True, help="data spec to score")
    s.add_argument("--scores", default=None, metavar="OUT", help="write scores to .csv or .npy")
    s.add_argument("--normal-label", default=None,
                   help="with labelled data: the normal class; reports ROC-AUC and PR-AUC")
    s.add_argument("--top", type=int, default=10, help="list this many top outliers (default 10)")
    for q in (f, s):
        add_data_options(q)
        add_json_flag(q)
    add_progress_flag(f)

    def run(args: argparse.Namespace) -> int:
        return fit_action(args) if args.action == "fit" else score_action(args)

    return run


def fit_action(args: argparse.Namespace) -> int:
    check_out_dir(Path(args.out), fresh=True)  # before training, not after
    data = load_detector_data(args, args.window)
    from aekit.detectors import AutoencoderOutlierDetector

    det = AutoencoderOutlierDetector(
        preset=args.preset, latent_dim=args.latent_dim, contamination=args.contamination,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, window=args.window,
        stride=args.stride, seed=args.seed, device=args.device, threshold_on=args.threshold_on,
        verbose=not (args.json or args.no_progress) and __import__("sys").stderr.isatty())
    det.fit(detector_input(data, args.window))
    det.save(args.out)
    n_out = int(det.labels_.sum())
    obj = {"out": args.out, "samples": len(det.decision_scores_), "threshold": det.threshold_,
           "flagged": n_out, "contamination": args.contamination,
           "threshold_on": args.threshold_on, "training": det.fit_summary_}
    unit = f"windows of {args.window}" if args.window else "samples"
    held = " (set on the held-out share)" if args.threshold_on == "held-out" else ""
    emit(args, obj, f"fitted on {len(det.decision_scores_)} {unit} of {args.data}; threshold "
                    f"{det.threshold_:.4g}{held} flags {n_out} ({n_out / len(det.labels_):.1%}) "
                    f"of them\nsaved detector to {args.out}")
    return 0


def score_action(args: argparse.Namespace) -> int:
    if args.top < 0:
        raise AekitError(f"--top must be 0 or more, got {args.top}")
    if args.scores:
        check_not_data(args.data, args.scores)
    from aekit.detectors import (
        AutoencoderOutlierDetector,
        window_scores_to_points,
        window_starts,
    )

    det = AutoencoderOutlierDetector.load(args.model)
    data = load_detector_data(args, det.window, None if det.window else det.model_)
    scores = det.decision_function(detector_input(data, det.window))
    flags = (scores > det.threshold_).astype(np.int64)
    obj: dict[str, Any] = {"model": args.model, "data": args.data, "samples": len(scores),
                           "threshold": det.threshold_, "flagged": int(flags.sum())}
    y = data.labels()
    if det.window:
        obj["point_scores"] = window_scores_to_points(scores, len(data), det.window, det.stride)
    if args.normal_label is not None:
        if det.window:
            raise AekitError("--normal-label ranks labelled samples; this detector scores "
                             "windows of a series (use the point scores of --json)")
        if y is None:
            raise AekitError("--normal-label needs labelled samples (e.g. a CSV label column)")
        obj.update(ranking_scores(scores, y, args.normal_label))
    starts = window_starts(len(data), det.window, det.stride) if det.window else None
    if args.scores:
        write_scores(args.scores, scores, flags, starts)
    order = np.argsort(-scores)[: args.top]
    folder = spec_path(args.data)  # a folder of images: name the files, not only their index
    files = list_images(folder) if not det.window and folder and folder.is_dir() else None
    if starts is not None:  # a window is named by the time steps it covers, not its number
        rows = [{"first_step": int(starts[i]), "last_step": int(starts[i]) + det.window - 1,
                 "score": float(scores[i])} for i in order]
    else:
        rows = [{"index": int(i), **({"file": str(files[i])} if files else {}),
                 "score": float(scores[i]), **({"label": y[i]} if y is not None else {})}
                for i in order]
    obj["top"] = rows
    lines = [(f"{len(scores)} {'windows' if det.window else 'samples'} of {args.data}: "
             f"{int(flags.sum())} above the threshold {det.threshold_:.4g}")]
    if "roc_auc" in obj:
        lines.append(f"ROC-AUC {obj['roc_auc']:.4f}, PR-AUC {obj['pr_auc']:.4f} "
                     f"({obj['anomalies']} anomalies, normal = {args.normal_label})")
    lines += ["most abnormal:", format_table(rows)]
    if args.scores:
        lines.append(f"wrote scores to {Path(args.scores)}")
    emit(args, obj, "\n".join(lines))
    return 0
