"""Topic modelling and document retrieval on Reuters-21578 (ModApte split).

    python benchmarks/text.py --data /work/shared/data/reuters21578 [--quick] [--json out.json]

Topics (K = 20, 50): mean NPMI of each topic's top 10 words (document co-occurrence in the
*test* split) and topic diversity (unique share of the top-25 lists) for aekit ``topic``
(ProdLDA) against scikit-learn LatentDirichletAllocation and NMF, all on the same
2,000-word vocabulary built from the training split.

Retrieval: precision@10 of test stories (queries) against training stories (a hit shares a
topic label; stories without a label are left out of both sides) for aekit codes (the bow
autoencoder with a dense code, cosine; ``doc-hash`` bits, Hamming) against LSA
(TruncatedSVD of TF-IDF, same size, cosine) and full TF-IDF cosine, at 10 and 32 dimensions.

Every baseline is measured in the same run. Times are wall clock and process CPU seconds
(the machine may be shared: CPU seconds are the steadier number).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aekit.text import build_vocabulary, load_corpus
from aekit.text.measures import (
    label_matrix,
    npmi_per_topic,
    precision_at_k,
    top_words,
    topic_diversity,
)
from aekit.text.modelling import (
    encode_counts,
    topic_word,
    train_doc_hash,
    train_topic_model,
)


class Timer:
    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.w
        self.cpu = time.process_time() - self.c


def table(rows: list[dict], cols: list[str]) -> str:
    def f(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    cells = [[f(r.get(c, "")) for c in cols] for r in rows]
    w = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(n) for c, n in zip(cols, w)), "  ".join("-" * n for n in w)]
    out += ["  ".join(x.ljust(n) for x, n in zip(row, w)) for row in cells]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="/work/shared/data/reuters21578",
                    help="folder of reut2-*.sgm[.gz]")
    ap.add_argument("--topics", type=int, nargs="+", default=[20, 50])
    ap.add_argument("--dims", type=int, nargs="+", default=[10, 32])
    ap.add_argument("--topic-epochs", type=int, default=100)
    ap.add_argument("--hash-epochs", type=int, default=40)
    ap.add_argument("--lda-iter", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="few epochs: a smoke run")
    ap.add_argument("--skip", nargs="*", default=[], choices=["topics", "retrieval"])
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if not Path(args.data).is_dir():
        sys.exit(f"no such folder: {args.data}")
    if args.quick:
        args.topic_epochs, args.hash_epochs, args.lda_iter = 5, 3, 2
    torch.set_num_threads(args.threads)
    from sklearn.decomposition import NMF, LatentDirichletAllocation, TruncatedSVD
    from sklearn.feature_extraction.text import TfidfTransformer

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} at start; torch threads "
          f"{args.threads}")
    train = load_corpus(f"{args.data}:train")
    test = load_corpus(f"{args.data}:test")
    vocab = build_vocabulary(train.texts, 2000)
    x_train, x_test = vocab.counts(train.texts), vocab.counts(test.texts)
    print(f"Reuters-21578 ModApte: {len(train)} train / {len(test)} test stories, "
          f"{len(vocab)}-word vocabulary (stop words out, 2 ≤ df ≤ 50 %)")
    results: dict = {"load_average_start": load, "train": len(train), "test": len(test)}

    if "topics" not in args.skip:
        rows = []
        tfidf_train = TfidfTransformer().fit_transform(x_train)
        for k in args.topics:
            def score(tw: np.ndarray) -> tuple[float, float]:
                return (float(npmi_per_topic(top_words(tw, 10), x_test).mean()),
                        topic_diversity(top_words(tw, 25)))
            with Timer() as t:
                model, res = train_topic_model(x_train, k, epochs=args.topic_epochs,
                                               progress=False)
            npmi, div = score(topic_word(model))
            rows.append({"K": k, "method": "aekit topic (ProdLDA)", "NPMI": npmi,
                         "diversity": div, "wall s": round(t.wall), "cpu s": round(t.cpu),
                         "epochs": res.epochs})
            print(table(rows[-1:], list(rows[-1])), flush=True)
            results[f"aekit_topic_{k}_top_words"] = [
                [vocab.words[i] for i in row] for row in top_words(topic_word(model), 10)]
            with Timer() as t:
                lda = LatentDirichletAllocation(k, learning_method="batch", max_iter=args.lda_iter,
                                                random_state=0).fit(x_train)
            npmi, div = score(lda.components_)
            rows.append({"K": k, "method": "sklearn LDA (batch VB)", "NPMI": npmi,
                         "diversity": div, "wall s": round(t.wall), "cpu s": round(t.cpu),
                         "epochs": args.lda_iter})
            with Timer() as t:
                nmf = NMF(k, init="nndsvd", random_state=0, max_iter=400).fit(tfidf_train)
            npmi, div = score(nmf.components_)
            rows.append({"K": k, "method": "sklearn NMF (TF-IDF)", "NPMI": npmi,
                         "diversity": div, "wall s": round(t.wall), "cpu s": round(t.cpu),
                         "epochs": nmf.n_iter_})
            print(table(rows[-2:], list(rows[-1])), flush=True)
        results["topics"] = rows
        print("\nTopics (NPMI: top 10 words, test split as reference; diversity: top 25)")
        print(table(rows, ["K", "method", "NPMI", "diversity", "wall s", "cpu s", "epochs"]))

    if "retrieval" not in args.skip:
        q_rows = [i for i, ls in enumerate(test.labels) if ls]
        d_rows = [i for i, ls in enumerate(train.labels) if ls]
        y_all, classes = label_matrix(train.labels + test.labels)
        y_db, _ = label_matrix([train.labels[i] for i in d_rows], classes)
        y_q, _ = label_matrix([test.labels[i] for i in q_rows], classes)
        del y_all
        tfidf = TfidfTransformer().fit(x_train)
        t_db, t_q = tfidf.transform(x_train[d_rows]), tfidf.transform(x_test[q_rows])
        rows = []

        def p10(q: np.ndarray, db: np.ndarray, metric: str = "cosine") -> float:
            return precision_at_k(q, y_q, db, y_db, 10, metric)

        with Timer() as t:
            p = p10(t_q.toarray(), t_db.toarray())
        rows.append({"dims": len(vocab), "method": "TF-IDF cosine", "P@10": p,
                     "train s": 0})
        print(table(rows, list(rows[0])), flush=True)
        for d in args.dims:
            with Timer() as t:
                svd = TruncatedSVD(d, random_state=0).fit(tfidf.transform(x_train))
            rows.append({"dims": d, "method": "LSA (TruncatedSVD of TF-IDF)",
                         "P@10": p10(svd.transform(t_q), svd.transform(t_db)),
                         "train s": round(t.wall, 1)})
            for code, name, metric in (("dense", "aekit bow, dense code", "cosine"),
                                       ("doc_binary", "aekit doc-hash, bits", "hamming")):
                with Timer() as t:
                    model, _ = train_doc_hash(x_train, d, code=code, epochs=args.hash_epochs,
                                              progress=False)
                p = p10(encode_counts(model, x_test[q_rows]), encode_counts(model, x_train[d_rows]),
                        metric)
                rows.append({"dims": d, "method": name, "P@10": p, "train s": round(t.wall)})
            print(table(rows[-3:], list(rows[0])), flush=True)
        results["retrieval"] = rows
        print(f"\nRetrieval: precision@10, {len(q_rows)} labelled test queries against "
              f"{len(d_rows)} labelled training stories (hit = shares a topic label)")
        print(table(rows, ["dims", "method", "P@10", "train s"]))
    load = os.getloadavg()
    results["load_average_end"] = load
    print(f"\nload average at the end {load[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
