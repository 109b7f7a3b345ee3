"""Figure for the README: the top words of a trained topic model's topics, as bars of each
word's probability under the topic (``topic_word``: for the ``topic`` preset the share of the
training words attributed to the topic; for ``prodlda`` the decoder's word distribution for
θ = e_k). The words are those ``aekit topics`` reported (``topic_ranking``), in its order.

    python scripts/text_figure.py RUN_DIR [--topics 8] [--words 8] [--out docs/img/text-topics.png]

RUN_DIR is a directory written by ``aekit topics``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> int:
    from aekit.models import Autoencoder
    from aekit.text import Vocabulary
    from aekit.text.measures import top_words
    from aekit.text.modelling import topic_ranking, topic_word

    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--topics", type=int, default=8)
    ap.add_argument("--words", type=int, default=8)
    ap.add_argument("--out", default="docs/img/text-topics.png")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(args.run)
    model = Autoencoder.from_pretrained(run)
    vocab = Vocabulary.load(run)
    info = json.loads((run / "topics.json").read_text())
    npmi = {t["topic"]: t["npmi"] for t in info["topics"]}
    tw = topic_word(model)
    probs = np.exp(tw - tw.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    # show the most coherent topics
    order = sorted(range(len(tw)), key=lambda k: -npmi[k + 1])[: args.topics]
    top = top_words(topic_ranking(model), args.words)  # as `aekit topics` ranks them
    cols = 4
    rows = int(np.ceil(len(order) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 2.3 * rows), squeeze=False)
    for ax, k in zip(axes.flat, order):
        words = [vocab.words[i] for i in top[k]][::-1]
        ax.barh(words, probs[k, top[k]][::-1], color="#4c72b0")
        ax.set_title(f"topic {k + 1}  (NPMI {npmi[k + 1]:.2f})", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.set_xticks([])
        for s in ("top", "right", "bottom"):
            ax.spines[s].set_visible(False)
    for ax in list(axes.flat)[len(order):]:
        ax.axis("off")
    fig.suptitle(f"aekit topics: {len(tw)} topics ({model.config.preset}) of "
                 f"{info.get('documents')} documents "
                 f"(mean NPMI {info['mean_npmi']:.3f}, diversity {info['diversity']:.2f})",
                 fontsize=10)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
