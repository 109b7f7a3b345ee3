"""One self-contained HTML page for a training run (``aekit report RUN_DIR``).

    RUN_DIR/config.json + model.safetensors ─▶ model ─┬─▶ reconstructions, code map, layer stats
    RUN_DIR/metrics.jsonl ─────────────────────────────┼─▶ loss curves
    RUN_DIR/run.json (data spec, seed) ─▶ held-out data ┘    config, metrics ─▶ report.html

Every figure is a PNG embedded as base64, so the file can be mailed or archived alone; the
page needs no network and no script.
"""

from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import torch
from torch import nn

from aekit.data.arrays import ArrayData
from aekit.errors import AekitError
from aekit.evaluation import evaluate_model, reconstruct_array
from aekit.io import write_text_atomic
from aekit.models import Autoencoder, count_parameters
from aekit.report import figures
from aekit.training import METRICS_NAME, split_indices

TEMPLATE = Path(__file__).with_name("template.html")
#: the report's sections, in page order: (id, title)
SECTIONS = (("loss", "Loss curves"), ("reconstructions", "Reconstructions"),
            ("codes", "Map of the codes"), ("activations", "Layer activations"),
            ("metrics", "Metrics"), ("config", "Configuration"))
#: units of these layers count as dead when they are never positive on the sample (no
#: gradient flows back through them); units of any other layer count as dead when constant
RECTIFIERS = (nn.ReLU, nn.GELU, nn.SiLU, nn.ELU, nn.LeakyReLU)
DEAD_EPS = 1e-6


@dataclass
class Section:
    id: str
    title: str
    body: list[str] = field(default_factory=list)

    def figure(self, png: bytes, caption: str, name: str) -> None:
        b64 = base64.b64encode(png).decode("ascii")
        self.body.append(f'<figure data-figure="{html.escape(name)}"><img alt="{html.escape(caption)}" '
                         f'src="data:image/png;base64,{b64}"><figcaption>{html.escape(caption)}'
                         "</figcaption></figure>")

    def note(self, text: str) -> None:
        self.body.append(f'<p class="note">{html.escape(text)}</p>')

    def html(self) -> str:
        return (f'<section id="{self.id}"><h2>{html.escape(self.title)}</h2>\n'
                + "\n".join(self.body) + "\n</section>")


def read_history(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / METRICS_NAME
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill mid-write: skip it, keep the rest
            if isinstance(row, dict) and isinstance(row.get("epoch"), (int, float)):
                rows.append(row)  # (anything else is not an epoch's record)
    return rows


@torch.no_grad()
def activation_statistics(model: Autoencoder, x: torch.Tensor) -> list[dict[str, Any]]:
    """Per layer: output shape, mean, std, and the share of dead units over the batch ``x``.

    A unit is a feature of a flat layer or a channel of a convolutional one. After a
    rectifier (ReLU, GELU, SiLU, ELU, LeakyReLU) a unit is dead when it is never positive;
    elsewhere when its output is constant."""
    model.eval()
    rows = []
    for name, out in model.layer_outputs(x).items():
        part, _, child = name.partition(".")
        module = getattr(getattr(model, part), child, None) if child else None
        t = out.detach().float()
        units = t.transpose(0, 1).reshape(t.shape[1], -1) if t.ndim > 1 else t[None]
        if isinstance(module, RECTIFIERS):
            dead = units.max(1).values <= DEAD_EPS
            rule = "never positive"
        else:
            dead = units.std(1, unbiased=False) <= DEAD_EPS * (1 + units.abs().mean(1))
            rule = "constant"
        rows.append({"layer": name, "shape": list(t.shape[1:]), "mean": float(t.mean()),
                     "std": float(t.std(unbiased=False)), "units": int(units.shape[0]),
                     "dead_fraction": float(dead.float().mean()), "dead_rule": rule})
    return rows


def _table(rows: list[dict[str, Any]], columns: list[str], cls: str = "") -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "—" if not np.isfinite(v) else (f"{v:.4g}" if abs(v) < 1e5 else f"{v:.0f}")
        return html.escape("—" if v is None else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


#: how the data note of the run's own held-out split starts (the metrics are "held-out"
#: only then; on data given with --data or the training data they are "evaluation")
HELD_OUT_NOTE = "data: the held-out"


def resolve_run_data(run_dir: Path, spec: str | None, model: Autoencoder,
                     label_col: str | None = None) -> tuple[ArrayData | None, str]:
    """The run's held-out data (the validation split ``fit`` kept aside), or the data given."""
    from aekit.data import resolve

    run: dict[str, Any] = {}
    if (run_dir / "run.json").is_file():
        try:
            run = json.loads((run_dir / "run.json").read_text())
        except json.JSONDecodeError:
            run = {}
    given = spec is not None
    if label_col is None and (not given or spec == run.get("data")):
        # the run's own CSV: its label column is not a feature (run.json records it)
        label_col = run.get("label_col") if isinstance(run.get("label_col"), str) else None
    spec = spec or run.get("data") or model.training_summary.get("data")
    if not spec:
        return None, "no data: the run does not say what it was trained on; pass --data"
    shape = model.input_shape
    size = tuple(shape[1:]) if len(shape) == 3 else None
    try:
        data = resolve(spec, image_size=size, channels=shape[0] if len(shape) == 3 else None,
                       label_col=label_col)
    except AekitError:
        if given:
            raise
        # the recorded data may be a description rather than a path (the zoo's recipes train
        # on generated crops) or a folder on another machine: report what the run holds
        return None, (f"no data: what the run trained on ({spec}) cannot be read here; pass "
                      "--data for reconstructions, codes and metrics")
    if tuple(data.input_shape) != shape:
        raise AekitError(f"{spec}: samples have shape {tuple(data.input_shape)} but the model "
                         f"expects {shape}")
    if given:
        return data, f"data: {spec}"
    seed = int(run.get("seed", model.training_summary.get("seed", 0)))
    val_fraction = float(run.get("val_fraction", 0.1))  # `aekit train`'s default
    held = split_indices(len(data), val_fraction, seed)[1]  # fit()'s own split
    if held is not None and len(held) >= 16:
        return data.subset(held), f"{HELD_OUT_NOTE} {val_fraction:g} of {spec} (seed {seed})"
    return data, f"data: {spec} (the training data: too little was held out to show)"


def build_run_report(run_dir: str | Path, data_spec: str | None = None,
                     out: str | Path | None = None, n_images: int = 16,
                     max_points: int = 2000, label_col: str | None = None) -> Path:
    """Write the HTML report of a run directory; returns its path (default RUN_DIR/report.html)."""
    run_dir = Path(run_dir)
    model = Autoencoder.from_pretrained(run_dir)
    cfg = model.config
    history = read_history(run_dir)
    if not history:
        history = model.training_summary.get("history", []) or []
    data, data_note = resolve_run_data(run_dir, data_spec, model, label_col)
    sections = {sid: Section(sid, title) for sid, title in SECTIONS}

    # -- loss curves ---------------------------------------------------------------------------
    s = sections["loss"]
    if history:
        s.figure(figures.png_bytes(figures.loss_curves(history, f"{cfg.preset}: loss per epoch")),
                 "training and validation loss per epoch", "loss")
    else:
        s.note(f"no {METRICS_NAME} in the run directory: nothing to plot")

    metrics: dict[str, Any] = {}
    if data is None:
        for sid in ("reconstructions", "codes", "activations"):
            sections[sid].note(data_note)
    else:
        n = min(len(data), max_points)
        idx = np.random.default_rng(0).permutation(len(data))[:n] if len(data) > n else np.arange(n)
        idx = np.sort(idx)
        sample = data.subset(idx)
        # -- reconstructions -------------------------------------------------------------------
        s = sections["reconstructions"]
        x, rec = reconstruct_array(model, sample, limit=n_images if data.is_image else 512)
        if len(model.input_shape) == 3:
            s.figure(figures.png_bytes(figures.labelled_image_rows(
                [x, np.clip(rec, 0, 1)], ["original", "reconstructed"])),
                f"originals (top) and reconstructions (bottom); {data_note}", "reconstructions")
        else:
            s.figure(figures.png_bytes(figures.value_scatter(x, rec, "reconstructed vs original")),
                     f"every feature of {len(x)} samples, reconstructed against original; "
                     f"{data_note}", "reconstructions")
        # -- codes -----------------------------------------------------------------------------
        s = sections["codes"]
        with torch.no_grad():
            z = torch.cat([model.encode(xb).flatten(1) for xb in sample.iter_batches(512)]).numpy()
        if len(z) < 2:
            z2, how = None, "one sample: no map of its code"
        elif z.shape[1] == 2:
            z2, how = z, "the 2-d codes"
        elif z.shape[1] == 1:
            z2, how = np.c_[z[:, 0], np.zeros(len(z))], "the 1-d codes"
        else:
            from sklearn.decomposition import PCA

            z2 = PCA(2, random_state=0).fit_transform(z)
            how = f"the {z.shape[1]}-d codes projected on their first 2 principal components"
        if z2 is None:
            s.note(how)
        else:
            s.figure(figures.png_bytes(figures.code_scatter([(how, z2)], sample.labels())),
                     f"{how}, {len(z)} samples" + (", coloured by label" if sample.y is not None
                                                   else ""), "codes")
        # -- activations -----------------------------------------------------------------------
        s = sections["activations"]
        xb = sample.batch(np.arange(min(len(sample), 512)))
        stats = activation_statistics(model, xb)
        s.figure(figures.png_bytes(figures.layer_bars([r["layer"] for r in stats],
                                                      [r["mean"] for r in stats],
                                                      [r["dead_fraction"] for r in stats])),
                 f"mean activation and share of dead units per layer, over {len(xb)} samples",
                 "activations")
        for r in stats:
            r["dead %"] = 100 * r["dead_fraction"]
            r["shape"] = "×".join(map(str, r["shape"]))
        s.body.append(_table(stats, ["layer", "shape", "units", "mean", "std", "dead %",
                                     "dead_rule"], "activations"))
        s.note("a unit is a feature (or a conv channel); after a rectifier it is dead when "
               "never positive on these samples, elsewhere when its output is constant")
        metrics = evaluate_model(model, data)

    # -- metrics ---------------------------------------------------------------------------------
    s = sections["metrics"]
    scope = "held-out" if data_note.startswith(HELD_OUT_NOTE) else "evaluation"
    rows = [{"metric": f"{scope} {k}", "value": v} for k, v in metrics.items()]
    rows += [{"metric": f"training {k}", "value": v}
             for k, v in model.training_summary.items() if k != "history"]
    rows.append({"metric": "parameters", "value": count_parameters(model)})
    s.body.append(_table(rows, ["metric", "value"], "metrics"))
    if data is not None:
        s.note(data_note)

    # -- config ----------------------------------------------------------------------------------
    s = sections["config"]
    s.body.append(f'<pre class="config">{html.escape(json.dumps(cfg.to_dict(), indent=2), quote=False)}</pre>')

    title = f"aekit report: {cfg.preset} ({cfg.latent_dim}-d code) — {run_dir.name}"
    nav = " · ".join(f'<a href="#{sid}">{html.escape(t)}</a>' for sid, t in SECTIONS)
    page = Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        title=html.escape(title), run_dir=html.escape(str(run_dir)),
        created=time.strftime("%Y-%m-%d %H:%M"), nav=nav,
        sections="\n".join(sections[sid].html() for sid, _ in SECTIONS))
    out_path = Path(out) if out is not None else run_dir / "report.html"
    write_text_atomic(out_path, page)
    return out_path
