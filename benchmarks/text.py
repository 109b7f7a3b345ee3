"""Topic modelling and document retrieval on Reuters-21578 (ModApte split).

    python benchmarks/text.py --data ../shared/data/reuters21578 [--quick] [--json out.json]

Topics (K = 20, 50): mean NPMI of each topic's top 10 words (document co-occurrence in the
*test* split) and topic diversity (unique share of the top-25 lists) for aekit ``topic``
(ProdLDA with embedding clustering, ECRTM) and ``prodlda`` (``--restarts R``: the best of R
by NPMI on the training split, as ``aekit topics --restarts``) against scikit-learn
LatentDirichletAllocation and NMF, all on the same 2,000-word vocabulary built from the
training split. aekit and LDA are trained once per ``--seeds`` seed (default 0 1 2: one
seed's topics can be much better or worse than another's) and the table gives the median and
the range; NMF (nndsvd start) has no seed. aekit's top words are ranked as ``aekit topics``
reports them (``topic_ranking``); LDA's and NMF's by their topic-word weights, and again by
the relevance ranking ``topic`` uses (λ = 0.6, rows marked so), so the table shows how much
of a difference is the ranking's.

Retrieval: precision@10 of test stories (queries) against training stories (a hit shares a
topic label; stories without a label are left out of both sides) for aekit codes (``doc-hash``
with its real-valued code, cosine, as ``aekit docindex --dense``; ``doc-hash`` bits, ranked by
Hamming distance as ``aekit docsearch --doc`` ranks an indexed document, and by the expected
Hamming distance of the query's bit probabilities as it ranks a new text) against LSA
(TruncatedSVD of TF-IDF, same size, cosine) and full TF-IDF cosine, at 10 and 32 dimensions.
aekit's models train with the library's defaults (as ``aekit docindex``), once per seed;
the table gives the median and the range.

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
from statistics import median

import numpy as np
import torch
from _args import bench_data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aekit.text import build_vocabulary, load_corpus
from aekit.text.measures import (
    label_matrix,
    npmi_per_topic,
    precision_at_k,
    relevance,
    top_words,
    topic_diversity,
)
from aekit.text.modelling import (
    ECR_RELEVANCE,
    REAL_TWIN,
    bit_probabilities,
    encode_counts,
    topic_ranking,
    train_doc_hash,
    train_topic_model,
)

#: aekit's topic presets in the table: preset → row name
AEKIT_TOPICS = {"topic": "aekit topic (ProdLDA + ECR)", "prodlda": "aekit prodlda"}


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


def finished(jobs: dict) -> tuple[dict, list[str]]:
    """The results of finished tasks by key, and one line per task that raised (the rest of
    the run is still reported: one diverged training must not hide every other number)."""
    done, failed = {}, []
    for key, job in jobs.items():
        try:
            done[key] = job.result()
        except Exception as e:  # noqa: BLE001 - reported, and the exit status says so
            failed.append(f"{key}: {type(e).__name__}: {e}")
    return done, failed


def median_rows(rows: list[dict]) -> list[dict]:
    """One row per (K, method): the median NPMI, diversity and CPU seconds of its runs,
    with the range of the first two."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["K"], r["method"]), []).append(r)
    out = []
    for (k, method), runs in groups.items():
        npmi, div = [r["NPMI"] for r in runs], [r["diversity"] for r in runs]
        out.append({"K": k, "method": method, "runs": len(runs), "NPMI": median(npmi),
                    "NPMI range": f"{min(npmi):.3f} to {max(npmi):.3f}", "diversity": median(div),
                    "diversity range": f"{min(div):.3f} to {max(div):.3f}",
                    "cpu s": round(median(r["cpu s"] for r in runs))})
    return out


def load_reuters(data: str):
    train = load_corpus(f"{data}:train")
    test = load_corpus(f"{data}:test")
    vocab = build_vocabulary(train.texts, 2000)
    return train, test, vocab, vocab.counts(train.texts), vocab.counts(test.texts)


def topics_task(args: argparse.Namespace, method: str, k: int, seed: int) -> dict:
    """One topic model with K topics: its NPMI (test split as reference) and diversity."""
    from sklearn.decomposition import NMF, LatentDirichletAllocation
    from sklearn.feature_extraction.text import TfidfTransformer

    torch.set_num_threads(args.threads)
    _, _, vocab, x_train, x_test = load_reuters(args.data)
    with Timer() as t:
        if method in AEKIT_TOPICS:
            budget = {"epochs": args.topic_epochs} if args.topic_epochs else {}
            model, res = train_topic_model(x_train, k, seed=seed, restarts=args.restarts,
                                           preset=method, progress=False, **budget)
            name = AEKIT_TOPICS[method] + (f", best of {args.restarts}" if args.restarts > 1 else "")
            tw, iters = topic_ranking(model), res.epochs
        elif method == "lda":
            lda = LatentDirichletAllocation(k, learning_method="batch", max_iter=args.lda_iter,
                                            random_state=seed).fit(x_train)
            tw, name, iters = lda.components_, "sklearn LDA (batch VB)", args.lda_iter
        else:
            nmf = NMF(k, init="nndsvd", random_state=0, max_iter=400).fit(
                TfidfTransformer().fit_transform(x_train))
            tw, name, iters = nmf.components_, "sklearn NMF (TF-IDF)", int(nmf.n_iter_)
    rankings = [(name, tw)]
    if method not in AEKIT_TOPICS:
        # the same relevance ranking aekit topic uses (λ = ECR_RELEVANCE), for a fair look at
        # how much of aekit's diversity is ranking rather than model
        log_tw = np.log(tw / tw.sum(1, keepdims=True) + 1e-12)
        rankings.append((f"{name}, relevance λ {ECR_RELEVANCE}", relevance(log_tw, ECR_RELEVANCE)))
    rows = [{"K": k, "method": label, "seed": seed if method != "nmf" else "—",
             "NPMI": float(npmi_per_topic(top_words(scores, 10), x_test).mean()),
             "diversity": topic_diversity(top_words(scores, 25)), "wall s": round(t.wall),
             "cpu s": round(t.cpu), "epochs": iters} for label, scores in rankings]
    print(table(rows, list(rows[0])), flush=True)
    return {"rows": rows, "top_words": [[vocab.words[i] for i in r] for r in top_words(tw, 10)]}


def retrieval_task(args: argparse.Namespace, method: str, d: int | None,
                   seed: int | None = None) -> dict:
    """Precision@10 of one method at code size d (test queries against the training set)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfTransformer

    torch.set_num_threads(args.threads)
    train, test, vocab, x_train, x_test = load_reuters(args.data)
    q_rows = [i for i, ls in enumerate(test.labels) if ls]
    d_rows = [i for i, ls in enumerate(train.labels) if ls]
    _, classes = label_matrix(train.labels + test.labels)
    y_db, _ = label_matrix([train.labels[i] for i in d_rows], classes)
    y_q, _ = label_matrix([test.labels[i] for i in q_rows], classes)
    tfidf = TfidfTransformer().fit(x_train)
    t_db, t_q = tfidf.transform(x_train[d_rows]), tfidf.transform(x_test[q_rows])
    with Timer() as t:
        if method == "tfidf":
            runs = [("TF-IDF cosine", t_q.toarray(), t_db.toarray(), "cosine")]
            d = len(vocab)
        elif method == "lsa":
            svd = TruncatedSVD(d, random_state=0).fit(tfidf.transform(x_train))
            runs = [("LSA (TruncatedSVD of TF-IDF)", svd.transform(t_q), svd.transform(t_db),
                     "cosine")]
        else:
            budget = {"epochs": args.hash_epochs} if args.hash_epochs else {}
            code = REAL_TWIN if method == "dense" else "doc_binary"
            model, res = train_doc_hash(x_train, d, code=code, seed=seed, progress=False,
                                        **budget)
            db = encode_counts(model, x_train[d_rows])
            if method == "dense":
                runs = [(f"aekit doc-hash, real code ({code})",
                         encode_counts(model, x_test[q_rows]), db, "cosine")]
            else:
                runs = [("aekit doc-hash, bits (query bits: Hamming)",
                         encode_counts(model, x_test[q_rows]), db, "hamming"),
                        ("aekit doc-hash, bits (query P(bit): expected Hamming)",
                         bit_probabilities(model, x_test[q_rows]), db, "expected_hamming")]
    rows = [{"dims": d, "method": name, "seed": "—" if seed is None else seed,
             "P@10": precision_at_k(q, y_q, db, y_db, 10, metric),
             "epochs": res.epochs if method in ("dense", "bits") else "—",
             "train s": round(t.wall), "cpu s": round(t.cpu)} for name, q, db, metric in runs]
    print(table(rows, list(rows[0])), flush=True)
    return {"rows": rows, "queries": len(q_rows), "db": len(d_rows)}


def median_retrieval(rows: list[dict]) -> list[dict]:
    """One row per (dims, method): the median P@10 and CPU seconds of its runs, P@10's range."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dims"], r["method"]), []).append(r)
    out = []
    for (d, method), runs in groups.items():
        p = [r["P@10"] for r in runs]
        out.append({"dims": d, "method": method, "runs": len(runs), "P@10": median(p),
                    "P@10 range": f"{min(p):.3f} to {max(p):.3f}",
                    "cpu s": round(median(r["cpu s"] for r in runs))})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(bench_data("reuters21578")),
                    help="folder of reut2-*.sgm[.gz]")
    ap.add_argument("--topics", type=int, nargs="+", default=[20, 50])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                    help="seeds of the aekit and LDA topic models and of the aekit retrieval "
                         "models (NMF's start and LSA have none)")
    ap.add_argument("--restarts", type=int, default=1,
                    help="aekit topics: best of R restarts by NPMI on the training split "
                         "(aekit topics --restarts; the test split is only used to report)")
    ap.add_argument("--dims", type=int, nargs="+", default=[10, 32])
    ap.add_argument("--topic-epochs", type=int, default=None,
                    help="ProdLDA epochs (default: the library's, as `aekit topics` uses)")
    ap.add_argument("--hash-epochs", type=int, default=None,
                    help="doc-hash epochs (default: the library's per code, as `aekit docindex`)")
    ap.add_argument("--lda-iter", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per task (1: on a shared machine more threads only spin)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="tasks run in parallel processes")
    ap.add_argument("--quick", action="store_true", help="few epochs: a smoke run")
    ap.add_argument("--skip", nargs="*", default=[], choices=["topics", "retrieval"])
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if not Path(args.data).is_dir():
        sys.exit(f"no such folder: {args.data}")
    if args.quick:
        args.topic_epochs, args.hash_epochs, args.lda_iter = 5, 3, 2
    from concurrent.futures import ProcessPoolExecutor

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} at start; {args.jobs} "
          f"parallel tasks, torch threads {args.threads} each")
    train, test, vocab, *_ = load_reuters(args.data)
    print(f"Reuters-21578 ModApte: {len(train)} train / {len(test)} test stories, "
          f"{len(vocab)}-word vocabulary (stop words out, 2 ≤ df ≤ 50 %)", flush=True)
    results: dict = {"load_average_start": load, "train": len(train), "test": len(test),
                     "settings": vars(args)}
    t0 = time.perf_counter()
    topic_keys = [(m, k, s) for k in args.topics for m in (*AEKIT_TOPICS, "lda", "nmf")
                  for s in (args.seeds if m != "nmf" else args.seeds[:1])]
    retr_keys = [("tfidf", None, None)] + [
        (m, d, s) for d in args.dims for m in ("lsa", "dense", "bits")
        for s in (args.seeds if m != "lsa" else [None])]
    with ProcessPoolExecutor(args.jobs) as pool:
        topic_jobs = ({key: pool.submit(topics_task, args, *key) for key in topic_keys}
                      if "topics" not in args.skip else {})
        retr_jobs = ({key: pool.submit(retrieval_task, args, *key) for key in retr_keys}
                     if "retrieval" not in args.skip else {})
        topic_res, failed = finished(topic_jobs)
        retr_res, failed_retr = finished(retr_jobs)
    failed += failed_retr
    if topic_res:
        rows = [row for key in topic_keys if key in topic_res for row in topic_res[key]["rows"]]
        results["topics"] = rows
        results["aekit_top_words"] = {k: topic_res[("topic", k, args.seeds[0])]["top_words"]
                                      for k in args.topics if ("topic", k, args.seeds[0]) in topic_res}
        print("\nTopics, every run (NPMI: top 10 words, test split as reference; diversity: top 25)")
        print(table(rows, ["K", "method", "seed", "NPMI", "diversity", "wall s", "cpu s", "epochs"]))
        results["topics_median"] = summary = median_rows(rows)
        print(f"\nTopics, median over seeds {' '.join(map(str, args.seeds))} (and their range)")
        print(table(summary, ["K", "method", "runs", "NPMI", "NPMI range", "diversity",
                              "diversity range", "cpu s"]))
    if retr_res:
        rows = [row for key in retr_keys if key in retr_res for row in retr_res[key]["rows"]]
        results["retrieval"] = rows
        first = next(iter(retr_res.values()))
        print(f"\nRetrieval, every run: precision@10, {first['queries']} labelled test queries "
              f"against {first['db']} labelled training stories (hit = shares a topic label)")
        print(table(rows, ["dims", "method", "seed", "P@10", "epochs", "train s", "cpu s"]))
        results["retrieval_median"] = summary = median_retrieval(rows)
        print(f"\nRetrieval, median over seeds {' '.join(map(str, args.seeds))} (and their range)")
        print(table(summary, ["dims", "method", "runs", "P@10", "P@10 range", "cpu s"]))
    load = os.getloadavg()
    results["load_average_end"] = load
    results["wall_seconds"] = round(time.perf_counter() - t0)
    print(f"\nwhole run {results['wall_seconds']} s wall; load average at the end {load[0]:.1f}")
    if failed:
        results["failed"] = failed
        print(f"\n{len(failed)} task(s) failed, left out of the tables above:")
        print("\n".join(f"  {line}" for line in failed))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
