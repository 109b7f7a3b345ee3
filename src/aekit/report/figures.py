"""Figures shared by the jobs: matplotlib (Agg, no display), returned as PNG bytes or saved.

Each function takes plain arrays and returns a ``Figure``; :func:`png_bytes` and
:func:`save_png` turn it into a small PNG (the HTML report embeds the bytes, commands write
the files atomically).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.text
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from aekit.data.arrays import MAX_CLASSES, label_range
from aekit.io import atomic_path

matplotlib.use("Agg")  # no display, ever: figures are files
import matplotlib.pyplot as plt  # (after choosing the backend)

DPI = 100


def literal(text: object) -> str:
    """A user's string (a label, a name) drawn as written: matplotlib parses text between two
    "$" as TeX, and "$\\foo$" stopped the whole report with a mathtext error."""
    return str(text).replace("$", r"\$")


def png_bytes(fig: Figure) -> bytes:
    # titles, axis labels and legends are drawn as written (they may hold a user's names);
    # tick labels keep mathtext, which a log axis writes its labels in ($10^{1}$)
    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for minor in (False, True) for t in axis.get_ticklabels(minor=minor)}
    for text in fig.findobj(matplotlib.text.Text):
        if id(text) not in ticks:
            text.set_parse_math(False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def save_png(fig: Figure, path: str | Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        Path(tmp).write_bytes(png_bytes(fig))
    return Path(path)


def loss_curves(history: Sequence[Mapping[str, float]], title: str = "training") -> Figure:
    """Training (and validation) loss per epoch, log scale when it spans a decade."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    epochs = [r["epoch"] for r in history]
    # markers where the points are few: a 1-epoch run's single point was invisible
    marker = "o" if len(epochs) <= 30 else None
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        vals = [r.get(key) for r in history]
        if any(v is not None for v in vals):
            ax.plot(epochs, [np.nan if v is None else v for v in vals], label=label, lw=1.6,
                    marker=marker, ms=3)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # whole epochs
    finite = [r.get(k) for r in history for k in ("loss", "val_loss") if r.get(k) is not None]
    finite = [v for v in finite if np.isfinite(v) and v > 0]
    if finite and max(finite) / min(finite) > 10:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (per sample)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def labelled_image_rows(rows: Sequence[np.ndarray], labels: Sequence[str], title: str = "",
                        pad: int = 1) -> Figure:
    """Rows of (N, C, H, W) images in [0, 1], one label per row on the left."""
    from aekit.evaluation import image_grid

    grid = image_grid(list(rows), pad=pad)
    h = rows[0].shape[2] + pad
    n_cols = max(len(r) for r in rows)
    width = min(12.0, 1.2 + 0.55 * n_cols)
    fig, ax = plt.subplots(figsize=(width, max(1.2, 0.55 * len(rows) * width / (1.2 + 0.55 * n_cols))
                                    * 1.0 + 0.4))
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_yticks([pad + i * h + (h - pad) / 2 for i in range(len(rows))])
    ax.set_yticklabels([literal(v) for v in labels], fontsize=9)
    ax.set_xticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(title)
    return fig


def code_scatter(panels: Sequence[tuple[str, np.ndarray]], labels: np.ndarray | None,
                 title: str = "") -> Figure:
    """2-D codes side by side, one panel each, coloured by label when labels exist."""
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.0), squeeze=False)
    classes = scale = None
    if labels is not None:
        scale = label_range(labels)  # a measurement: one colour scale (shared with explore)
        classes = None if scale is not None else np.unique(labels)
    for ax, (name, z) in zip(axes[0], panels):
        z = np.asarray(z)
        if classes is not None and len(classes) <= MAX_CLASSES:
            cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
            for i, c in enumerate(classes):
                m = labels == c
                ax.scatter(z[m, 0], z[m, 1], s=6, alpha=0.7, color=cmap(i % cmap.N), label=str(c))
        elif scale is not None:
            sc = ax.scatter(z[:, 0], z[:, 1], s=6, alpha=0.7,
                            c=np.asarray(labels, dtype=np.float64), cmap="viridis")
            fig.colorbar(sc, ax=ax)
        elif labels is not None:  # more than 20 named classes: colours repeat, no legend
            index = np.unique(labels, return_inverse=True)[1]
            ax.scatter(z[:, 0], z[:, 1], s=6, alpha=0.7, c=index % 20, cmap="tab20",
                       vmin=0, vmax=19)
        else:
            ax.scatter(z[:, 0], z[:, 1], s=6, alpha=0.6, color="tab:blue")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if classes is not None and len(classes) <= MAX_CLASSES:
        handles, names = axes[0][-1].get_legend_handles_labels()
        fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=3,
                   fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def error_vs_code_size(curves: Mapping[str, Sequence[tuple[int, float]]],
                       ylabel: str = "held-out squared error per sample") -> Figure:
    """One line per method: error against code size (log-2 x axis)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, pts) in enumerate(curves.items()):
        pts = sorted(pts)
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", lw=1.8,
                ls="--" if name.lower() == "pca" else "-", color="black" if name.lower() == "pca"
                else plt.get_cmap("tab10")(i % 10), label=name)
    ax.set_xscale("log", base=2)
    sizes = sorted({p[0] for pts in curves.values() for p in pts})
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_xlabel("code size (dimensions)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def value_scatter(x: np.ndarray, x_hat: np.ndarray, title: str = "") -> Figure:
    """Tabular reconstructions: every reconstructed value against the original."""
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    a, b = np.ravel(x), np.ravel(x_hat)
    ax.scatter(a, b, s=3, alpha=0.3)
    lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
    ax.plot([lo, hi], [lo, hi], color="black", lw=1)
    ax.set_xlabel("original value")
    ax.set_ylabel("reconstructed value")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


def layer_bars(names: Sequence[str], means: Sequence[float], dead: Sequence[float]) -> Figure:
    """Per-layer mean activation and share of dead units."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, max(2.5, 0.28 * len(names) + 1)), sharey=True)
    y = np.arange(len(names))
    a1.barh(y, means, color="tab:blue")
    a1.set_yticks(y)
    a1.set_yticklabels([literal(v) for v in names], fontsize=8)
    a1.invert_yaxis()
    a1.set_xlabel("mean activation")
    a1.axvline(0, color="black", lw=0.8)
    a2.barh(y, [100 * d for d in dead], color="tab:red")
    a2.set_xlabel("dead units (%)")
    a2.set_xlim(0, 100)
    for a in (a1, a2):
        a.grid(alpha=0.3, axis="x")
    return fig
