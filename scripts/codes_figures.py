"""Pictures for the README search, cluster and anomaly sections (small models, CPU, ~2 min).

    PYTHONPATH=src python scripts/codes_figures.py --out docs/img --work /tmp/aekit-figs
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from aekit import create_model, fit
from aekit.cli import main as aekit
from aekit.data import resolve


def search_figure(work: Path, out: Path) -> Path:
    model_dir = work / "digits16"
    if not (model_dir / "config.json").is_file():
        torch.manual_seed(0)
        m = create_model("deep", (1, 8, 8), 16)
        fit(m, resolve("digits:train"), epochs=150, progress=False)
        m.save_pretrained(model_dir)
    ix = work / "ix"
    if not (ix / "index.json").is_file():
        aekit(["index", "digits:train", "--model", str(model_dir), "--out", str(ix)])
    from aekit.apps.search import read_index
    from aekit.index import CodeIndex  # noqa: F401

    meta, codes, thumbs = read_index(ix)
    test = resolve("digits:test")
    model = __import__("aekit").Autoencoder.from_pretrained(model_dir)
    picks = [0, 5, 11, 23, 42]
    with torch.no_grad():
        q = model.encode(test.batch(np.array(picks))).numpy()
    _, idx = codes.search(q, 8)
    fig, axes = plt.subplots(len(picks), 9, figsize=(9 * 0.8, len(picks) * 0.9))
    xq = test.batch(np.array(picks)).numpy()
    for r in range(len(picks)):
        axes[r, 0].imshow(xq[r, 0], cmap="gray_r")
        axes[r, 0].set_title("query" if r == 0 else "", fontsize=8)
        for c in range(8):
            j = idx[r, c]
            axes[r, c + 1].imshow(thumbs[j, ..., 0], cmap="gray_r")
            axes[r, c + 1].set_title(str(meta["items"][j]["label"]), fontsize=7)
    for a in axes.flat:
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle("aekit search: held-out digit (left), 8 nearest by 16-d code (label above)",
                 fontsize=8)
    fig.tight_layout()
    path = out / "search-digits.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def explorer_screenshot(work: Path, out: Path) -> Path | None:
    page = work / "explore.html"
    aekit(["explore", str(work / "ix"), "--out", str(page), "--neighbours", "6"])
    try:
        from selenium.webdriver.common.action_chains import ActionBuilder
        from selenium.webdriver.support.ui import WebDriverWait

        from aekit._browser import headless_chromium, screenshot_png
    except ImportError:
        return None
    path = out / "search-explorer.png"
    with headless_chromium(1000, 560) as driver:
        driver.get(page.as_uri())
        WebDriverWait(driver, 20).until(lambda d: d.execute_script(
            "return !!(window.aekitExplorer && window.aekitExplorer.count > 0)"))
        for i, click in ((3, True), (40, False)):
            x, y = driver.execute_script(f"return window.aekitExplorer.screen({i})")
            act = ActionBuilder(driver)
            move = act.pointer_action.move_to_location(int(round(x)), int(round(y)))
            if click:
                move.click()
            act.perform()
        time.sleep(0.2)
        path.write_bytes(screenshot_png(driver))
    return path


def cluster_figure(work: Path, out: Path) -> Path:
    from sklearn.decomposition import PCA

    from aekit.apps.cluster import codes_of, pretrain
    from aekit.clustering import dec, kmeans
    from aekit.metrics_cluster import cluster_accuracy

    data = resolve("digits")
    y = data.labels()
    torch.manual_seed(0)
    model, _ = pretrain(data, 10, [256, 256, 1024], 300, None, 0, "cpu", False)
    z0 = codes_of(model, data)
    acc0 = cluster_accuracy(y, kmeans(z0, 10)[0])
    res = dec(model, data, 10, max_iter=1000, device="cpu")
    z1 = codes_of(model, data)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8))
    for a, z, title in [(axes[0], z0, f"pretrained codes (k-means acc {acc0:.2f})"),
                        (axes[1], z1, f"after IDEC (acc {cluster_accuracy(y, res.labels):.2f})")]:
        p = PCA(2).fit_transform(z)
        sc = a.scatter(p[:, 0], p[:, 1], c=y, cmap="tab10", s=4, vmin=-0.5, vmax=9.5)
        a.set_title(title, fontsize=9)
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle("digits, 10-d codes (PCA view), coloured by true class", fontsize=9)
    fig.tight_layout()
    fig.colorbar(sc, ax=axes, ticks=range(10), label="class", fraction=0.03, pad=0.02)
    path = out / "cluster-idec.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def anomaly_figure(data_dir: Path, out: Path) -> Path | None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from anomaly import load_ecg

    from aekit.detectors import AutoencoderOutlierDetector

    if not data_dir.is_dir():
        return None
    x, y = load_ecg(data_dir)
    normal = np.flatnonzero(y == 1)
    tr = np.sort(np.random.default_rng(0).choice(normal, len(normal) // 2, replace=False))
    mask = np.ones(len(x), bool)
    mask[tr] = False
    det = AutoencoderOutlierDetector(latent_dim=4, epochs=200, batch_size=32, patience=None,
                                     val_fraction=0.0,
                                     model_options={"arch_options": {"hidden": [64, 32]}})
    det.fit(x[tr])
    test, yt = x[mask], y[mask]
    s = det.decision_function(test)
    with torch.no_grad():
        rec = det.model_.reconstruct(torch.as_tensor(test)).numpy()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    for a, cls, title in [(axes[0], 1, "normal beat"), (axes[1], 0, "abnormal beat")]:
        i = np.flatnonzero(yt == 1 if cls == 1 else yt != 1)[0]
        a.plot(test[i], label="beat")
        a.plot(rec[i], "--", label="reconstruction")
        a.set_title(f"{title}: score {s[i]:.3f}", fontsize=9)
        a.set_xlabel("time step", fontsize=8)
        a.set_ylabel("value (standardised)", fontsize=8)
        a.legend(fontsize=7)
    # every score shown (a log axis: the abnormal tail runs an order of magnitude further)
    bins = np.geomspace(max(float(s.min()), 1e-6), float(s.max()), 40)
    axes[2].hist(s[yt == 1], bins, alpha=0.6, label="normal (held out)")
    axes[2].hist(s[yt != 1], bins, alpha=0.6, label="abnormal")
    axes[2].axvline(det.threshold_, color="k", ls=":", label=f"threshold (contamination {det.contamination:.0%})")
    axes[2].set_xscale("log")
    axes[2].set_title("reconstruction-error scores", fontsize=9)
    axes[2].set_xlabel("score (squared error per value)", fontsize=8)
    axes[2].set_ylabel("beats", fontsize=8)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    path = out / "anomaly-ecg.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--work", default="/tmp/aekit-figs")
    ap.add_argument("--ecg", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "ecg5000"))
    ap.add_argument("--only", default="search,explorer,cluster,anomaly")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    only = args.only.split(",")
    made = []
    if "search" in only:
        made.append(search_figure(work, out))
    if "explorer" in only:
        made.append(explorer_screenshot(work, out))
    if "anomaly" in only:
        made.append(anomaly_figure(Path(args.ecg), out))
    if "cluster" in only:
        made.append(cluster_figure(work, out))
    for p in made:
        if p is not None:
            subprocess.run([sys.executable, "-c", ("import sys; from PIL import Image; "
                            "im = Image.open(sys.argv[1]); im.save(sys.argv[1], optimize=True)"),
                            str(p)], check=True)
            print(f"wrote {p} ({p.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
