"""Text jobs: ``aekit topics`` (topic model: ProdLDA with embedding clustering, or plain
ProdLDA), ``aekit docindex`` (semantic-hashing index) and ``aekit docsearch`` (the most
similar documents to a query text or document).

A topics or index directory holds the model (``config.json`` + ``model.safetensors``), its
vocabulary (``vocab.json``), every document's code (``doc_topics.npy`` for a topic model:
the document–topic matrix; ``codes.npy`` for an index) and ``documents.json`` (ids, labels,
the first words of each document, and how codes are compared).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from aekit.apps import Handler, command
from aekit.apps.common import (
    add_json_flag,
    check_out_dir,
    emit,
    format_table,
    plural,
    seed_arg,
    unique_run_dir,
)
from aekit.errors import AekitError, DataError, ModelFileError, warn
from aekit.io import atomic_path, load_npy, read_json, staged_dir, write_json_atomic

DOCS_NAME = "documents.json"
PROBS_NAME = "bit_probabilities.npy"
TOPICS_NAME = "topics.json"
SNIPPET_CHARS = 160
#: how documents.json says codes are compared (aekit.text.measures.nearest)
METRICS = ("cosine", "hamming")  # a text query on a hamming index: expected_hamming


def add_corpus_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text-col", default=None, help="text column of a .csv/.tsv/.jsonl (default: the first of text, body, document, content)")
    p.add_argument("--label-col", default=None, help="label column of a .csv/.tsv/.jsonl (optional)")


def add_vocab_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vocab-size", type=int, default=2000, help="words kept (default 2000)")
    p.add_argument("--min-df", type=float, default=2,
                   help="drop words in fewer documents (count, or share if < 1; default 2)")
    p.add_argument("--max-df", type=float, default=0.5,
                   help="drop words in more documents (share if ≤ 1, else count; default 0.5)")
    p.add_argument("--stop-words", default="english", help="'english' (default) or 'none'")


def add_fit_options(p: argparse.ArgumentParser, default_epochs: int | str) -> None:
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs (default {default_epochs})")
    budget.add_argument("--minutes", type=float, default=None, help="wall-clock training budget")
    p.add_argument("--seed", type=seed_arg, default=0, help="random seed")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def fit_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = {"seed": args.seed, "device": args.device,
                          "progress": False if args.no_progress else None}
    if args.epochs is not None:
        kw["epochs"] = args.epochs
    if args.minutes is not None:
        kw["minutes"] = args.minutes
    return kw


def prepare(args: argparse.Namespace):
    """Corpus → (corpus, vocabulary, counts, the documents with no vocabulary word); warns
    about those."""
    from aekit.text import build_vocabulary, load_corpus

    corpus = load_corpus(args.corpus, args.text_col, args.label_col)
    if args.vocab_size < 2:
        raise AekitError(f"--vocab-size must be at least 2, got {args.vocab_size}")
    vocab = build_vocabulary(corpus.texts, args.vocab_size, args.min_df, args.max_df,
                             args.stop_words)
    counts = vocab.counts(corpus.texts)
    empty = no_word_documents(counts)
    if len(empty):
        warn(f"{corpus.name}: {len(empty)} document(s) have no word of the vocabulary (first: "
             f"{corpus.ids[empty[0]]}); they are left out of training and of search results")
    return corpus, vocab, counts, empty


def snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[:SNIPPET_CHARS - 1] + "…"


def no_word_documents(counts) -> np.ndarray:
    """Indices of the documents with no word of the vocabulary (their code says nothing)."""
    return np.flatnonzero(np.asarray(counts.sum(1)).ravel() == 0)


def save_documents(out: Path, corpus, codes: np.ndarray, codes_name: str, metric: str,
                   probabilities: np.ndarray | None = None,
                   no_words: np.ndarray | None = None) -> None:
    """The documents' codes (and, for bits, the probabilities they were thresholded from:
    ``docsearch --doc`` ranks by the expected Hamming distance with them) and documents.json,
    which lists the documents with no vocabulary word (``no_words``: docsearch never returns
    them; their codes are the encoder's answer to an empty input, the same for all)."""
    with atomic_path(out / codes_name, suffix=".npy") as tmp:
        np.save(tmp, codes.astype(np.float32))
    extra = {}
    if probabilities is not None:
        with atomic_path(out / PROBS_NAME, suffix=".npy") as tmp:
            np.save(tmp, probabilities.astype(np.float32))
        extra["probabilities"] = PROBS_NAME
    write_json_atomic(out / DOCS_NAME, {
        "corpus": corpus.name, "codes": codes_name, "metric": metric, **extra, "ids": corpus.ids,
        "labels": corpus.labels, "snippets": [snippet(t) for t in corpus.texts],
        "no_words": [] if no_words is None else [int(i) for i in no_words]})


def run_stem(kind: str, corpus: str) -> str:
    """``topics-<corpus name>``: the default output folder's name before its time stamp."""
    return f"{kind}-{Path(corpus.split(':')[0]).stem or 'corpus'}"


# -------------------------------------------------------------------------------- topics
@command("topics", help="topic model (ProdLDA with embedding clustering) of a corpus: top "
                         "words, NPMI, diversity")
def topics_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("corpus", help="folder of .txt, .txt (one document per line), .csv, .tsv, .jsonl, "
                                  "or reuters[:train|:test]")
    p.add_argument("--topics", type=int, required=True, metavar="K", help="number of topics")
    p.add_argument("--reference", default=None,
                   help="corpus the NPMI co-occurrences are counted in (default: the corpus)")
    p.add_argument("--top", type=int, default=10, help="top words printed per topic (default 10)")
    p.add_argument("--restarts", type=int, default=1, metavar="R",
                   help="train R models (different seeds) and keep the one whose topics are the "
                        "most coherent on the training corpus itself (default 1)")
    p.add_argument("--preset", default="topic",
                   help="topic (default): ProdLDA whose topics cluster the corpus's word "
                        "vectors (ECRTM), so they repeat each other less; prodlda: plain ProdLDA")
    p.add_argument("--out", default=None, help="output directory (default runs/topics-…)")
    add_corpus_options(p)
    add_vocab_options(p)
    add_fit_options(p, 100)
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        from aekit.text import load_corpus
        from aekit.text.corpus import is_table
        from aekit.text.measures import npmi_per_topic, top_words, topic_diversity
        from aekit.text.modelling import encode_counts, topic_ranking, train_topic_model

        t0 = time.perf_counter()
        if args.topics < 2:
            raise AekitError(f"--topics must be at least 2, got {args.topics}")
        if args.restarts < 1:
            raise AekitError(f"--restarts must be at least 1, got {args.restarts}")
        if args.top < 1:
            raise AekitError(f"--top must be at least 1, got {args.top}")
        if args.out:
            check_out_dir(Path(args.out), fresh=True)  # before training, not after
        corpus, vocab, counts, empty = prepare(args)
        if args.topics > len(vocab):
            raise DataError(f"--topics {args.topics} is more than the vocabulary's {len(vocab)} "
                            "words (a topic is a distribution over them; the topics would "
                            "repeat each other)")
        if args.reference:
            # --text-col names the corpus's column; a folder or .txt reference has none
            ref = load_corpus(args.reference, args.text_col if is_table(args.reference) else None)
            ref_counts, ref_name = vocab.counts(ref.texts), ref.name
        else:
            ref_counts, ref_name = counts, corpus.name
        model, result = train_topic_model(counts, args.topics, restarts=args.restarts,
                                          preset=args.preset, **fit_kwargs(args))
        tw = topic_ranking(model)  # top words by relevance
        top10, top25 = top_words(tw, 10), top_words(tw, 25)
        npmi = npmi_per_topic(top10, ref_counts)
        diversity = topic_diversity(top25)
        theta = encode_counts(model, counts)
        summary = {"corpus": args.corpus, **result.summary()}
        restarts = model.config.extra.get("restarts")
        if restarts:
            summary["restarts"] = restarts
        model.config.extra.update({"task": "topics", "vocabulary": "vocab.json"})
        out = Path(args.out) if args.out else unique_run_dir(run_stem("topics", args.corpus))
        shown = top_words(tw, args.top)
        topics = [{"topic": k + 1, "npmi": float(npmi[k]),
                   "words": [vocab.words[i] for i in shown[k]]} for k in range(args.topics)]
        obj = {"out": str(out), "documents": len(corpus), "vocabulary": len(vocab),
               "topics": topics, "mean_npmi": float(npmi.mean()), "diversity": diversity,
               "npmi_reference": ref_name, "training": summary,
               "seconds": round(time.perf_counter() - t0, 2)}
        with staged_dir(out) as stage:  # a failed write leaves no half-written model
            model.save_pretrained(stage, summary=summary)
            vocab.save(stage)
            save_documents(stage, corpus, theta, "doc_topics.npy", "cosine", no_words=empty)
            write_json_atomic(stage / TOPICS_NAME, obj)
        lines = [f"{'topic':>5}  {'NPMI':>6}  top words"]
        lines += [f"{t['topic']:>5}  {t['npmi']:>6.3f}  {' '.join(t['words'])}" for t in topics]
        lines += ["",
                  (f"mean NPMI {npmi.mean():.3f} (top 10 words, document co-occurrence in "
                   f"{ref_name}); topic diversity {diversity:.2f} (top 25 words)"),
                  (f"{plural(len(corpus), 'document')}, {len(vocab)}-word vocabulary; "
                   f"trained {plural(summary['epochs'], 'epoch')} in {summary['seconds']:.1f} s"),
                  *([f"best of {args.restarts} restarts by training-corpus NPMI: seed "
                     f"{restarts['picked_seed']} (scores "
                     f"{', '.join(f'{v:.3f}' for v in restarts['train_npmi'])})"]
                    if restarts else []),
                  (f"saved model, vocabulary and the document–topic matrix "
                   f"({theta.shape[0]}×{theta.shape[1]}, doc_topics.npy) to {out}")]
        emit(args, obj, "\n".join(lines))
        return 0

    return run


# ------------------------------------------------------------------------------ docindex
@command("docindex", help="semantic-hashing index of a corpus (doc-hash preset) for docsearch")
def docindex_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("corpus", help="folder of .txt, .txt (one document per line), .csv, .tsv, .jsonl, "
                                  "or reuters[:train|:test]")
    p.add_argument("--bits", type=int, default=32, help="code size (default 32)")
    p.add_argument("--dense", action="store_true",
                   help="real-valued (variational) code compared by cosine instead of bits "
                        "compared by Hamming distance")
    p.add_argument("--out", default=None, help="output directory (default runs/docindex-…)")
    add_corpus_options(p)
    add_vocab_options(p)
    add_fit_options(p, "60; bits: up to 300, stopped early when validation stops improving")
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        from aekit.text.modelling import (
            REAL_TWIN,
            bit_probabilities,
            encode_counts,
            train_doc_hash,
        )

        t0 = time.perf_counter()
        if args.out:
            check_out_dir(Path(args.out), fresh=True)  # before training, not after
        corpus, vocab, counts, empty = prepare(args)
        model, result = train_doc_hash(counts, args.bits, code=REAL_TWIN if args.dense
                                       else "doc_binary", **fit_kwargs(args))
        codes = encode_counts(model, counts)
        probs = None if args.dense else bit_probabilities(model, counts)
        out = Path(args.out) if args.out else unique_run_dir(run_stem("docindex", args.corpus))
        summary = {"corpus": args.corpus, **result.summary()}
        model.config.extra.update({"task": "docsearch", "vocabulary": "vocab.json"})
        metric = "cosine" if args.dense else "hamming"
        with staged_dir(out) as stage:  # a failed write leaves no half-written index
            model.save_pretrained(stage, summary=summary)
            vocab.save(stage)
            save_documents(stage, corpus, codes, "codes.npy", metric, probs, no_words=empty)
        kind = f"{args.bits}-d dense" if args.dense else f"{args.bits}-bit"
        obj = {"out": str(out), "documents": len(corpus), "vocabulary": len(vocab),
               "code": kind, "metric": metric, "training": summary,
               "seconds": round(time.perf_counter() - t0, 2)}
        emit(args, obj, f"indexed {len(corpus)} documents with {kind} codes ({len(vocab)}-word "
                        f"vocabulary; {plural(summary['epochs'], 'epoch')} in "
                        f"{summary['seconds']:.1f} s)\n"
                        f"saved index to {out}")
        return 0

    return run


# ----------------------------------------------------------------------------- docsearch
def load_index(directory: str):
    from aekit.models import Autoencoder
    from aekit.text import Vocabulary

    d = Path(directory)
    docs_path = d / DOCS_NAME
    if d.is_file():
        raise ModelFileError(f"{d} is a file; docsearch takes the folder `aekit docindex` or "
                             "`aekit topics` wrote")
    if not d.is_dir():
        raise ModelFileError(f"{d}: no such directory")
    docs = read_json(docs_path, "document list", error=ModelFileError,
                     missing=f"{docs_path} is missing: make the directory with `aekit topics` "
                             "or `aekit docindex`")
    def member(key: str) -> Path:
        """A file the document list names: a plain name inside the index folder (a path
        elsewhere, absolute or through .., is refused: the folder may come from anyone)."""
        name = docs[key]
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise ModelFileError(f"{docs_path} is not a valid document list ({key} must name "
                                 f"a file in {d}, got {name!r})")
        return d / name

    try:
        codes_file = member("codes")
        ids = [str(i) for i in docs["ids"]]
    except (KeyError, TypeError) as e:
        raise ModelFileError(f"{docs_path} is not a valid document list ({e})") from None
    bad = [key for key in ("labels", "snippets")
           if docs.get(key) is not None and (not isinstance(docs[key], list)
                                             or len(docs[key]) != len(ids))]
    if "labels" not in bad and docs.get("labels") is not None and not all(
            isinstance(ls, list) and all(isinstance(v, str) for v in ls) for ls in docs["labels"]):
        bad.append("labels (each a list of strings)")
    if "snippets" not in bad and docs.get("snippets") is not None and not all(
            isinstance(t, str) for t in docs["snippets"]):
        bad.append("snippets (each a string)")
    no_words = docs.get("no_words", [])  # absent in folders written before it was recorded
    if not (isinstance(no_words, list) and all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(ids) for i in no_words)):
        bad.append("no_words (document indices)")
    if docs.get("metric", "cosine") not in METRICS:
        bad.append(f"metric {docs.get('metric')!r}")
    if bad:
        raise ModelFileError(f"{docs_path} is not a valid document list (bad {', '.join(bad)})")
    codes = load_npy(codes_file, "document codes", ModelFileError)
    if codes.ndim != 2 or len(codes) != len(ids):
        raise ModelFileError(f"{codes_file} has shape {codes.shape} for {len(ids)} documents")
    if not np.isfinite(codes).all():
        raise ModelFileError(f"{codes_file} holds NaN or infinite codes")
    model = Autoencoder.from_pretrained(d)
    if codes.shape[1] != model.config.latent_dim:
        raise ModelFileError(f"{codes_file} holds {codes.shape[1]}-d codes but the model makes "
                             f"{model.config.latent_dim}-d ones")
    probs = None
    if docs.get("probabilities") is not None and docs.get("metric") == "hamming":
        probs_file = member("probabilities")
        if not probs_file.is_file():  # only --doc needs them: it ranks by Hamming distance
            warn(f"{probs_file} is missing: --doc queries rank by plain Hamming distance")
            return model, Vocabulary.load(d), docs, ids, codes, None
        probs = load_npy(probs_file, "bit probabilities", ModelFileError).astype(np.float32)
        if (probs.shape != codes.shape or not np.isfinite(probs).all()
                or probs.min(initial=0) < 0 or probs.max(initial=0) > 1
                or not np.array_equal(probs > 0.5, codes > 0.5)):
            raise ModelFileError(f"{probs_file} does not match {codes_file} (shape "
                                 f"{probs.shape}, or not the probabilities of those bits)")
    return model, Vocabulary.load(d), docs, ids, codes, probs


@command("docsearch", help="documents most similar to a query text (or to --doc ID)")
def docsearch_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("index", metavar="MODEL_OR_INDEX",
                   help="directory written by `aekit topics` or `aekit docindex`")
    p.add_argument("query", nargs="?", default=None, help="query text")
    p.add_argument("--doc", default=None, metavar="ID", help="use this indexed document as query")
    p.add_argument("-k", "--k", type=int, default=10, help="results (default 10)")
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        import scipy.sparse as sp

        from aekit.text.measures import nearest
        from aekit.text.modelling import bit_probabilities, encode_counts

        if (args.query is None) == (args.doc is None):
            raise AekitError("give a query text or --doc ID (one of them)")
        if args.k < 1:
            raise AekitError(f"-k must be at least 1, got {args.k}")
        model, vocab, docs, ids, codes, probs = load_index(args.index)
        metric = docs.get("metric", "cosine")
        # documents with no vocabulary word are never results: their codes all answer the
        # same empty input, and looked close to whatever a query was near
        pool = np.ones(len(ids), dtype=bool)
        pool[docs.get("no_words", [])] = False
        if args.doc is not None:
            try:
                qi = ids.index(str(args.doc))
            except ValueError:
                raise DataError(f"no document with id {args.doc!r} in {args.index}") from None
            if not pool[qi]:
                raise DataError(f"document {args.doc} has no word of the model's vocabulary: "
                                "there is nothing to search with")
            if probs is not None:  # ranked as a new text is (below)
                q, metric = probs[qi:qi + 1], "expected_hamming"
            else:
                q = codes[qi:qi + 1]
            pool[qi] = False
            query_desc = f"document {args.doc}"
        else:
            counts = vocab.counts([args.query])
            if counts.nnz == 0:
                raise DataError("the query has no word of the model's vocabulary")
            if metric == "hamming" and hasattr(model.code, "probabilities"):
                # a new text keeps its bits' probabilities: ranked by the expected Hamming
                # distance, documents the plain distance ties are told apart
                q, metric = bit_probabilities(model, sp.csr_matrix(counts)), "expected_hamming"
            else:
                q = encode_counts(model, sp.csr_matrix(counts))
            query_desc = repr(args.query)
        pool = np.flatnonzero(pool)
        if not len(pool):
            raise DataError("the index has no other document with a word of the vocabulary")
        idx, scores = nearest(q, codes[pool], args.k, metric)
        idx = pool[idx]
        labels = docs.get("labels")
        snippets = docs.get("snippets") or [""] * len(ids)
        # JSON key "hamming" for both Hamming kinds (the "metric" field says which); the
        # table's column is headed by the metric itself
        score_key = "similarity" if metric == "cosine" else "hamming"
        results = []
        for rank, (i, s) in enumerate(zip(idx[0], scores[0]), 1):
            r = {"rank": rank, "id": ids[i], score_key: round(float(s), 4), "text": snippets[i]}
            if labels:
                r["labels"] = list(labels[i])
            results.append(r)
        shown = "similarity" if metric == "cosine" else metric
        cols = ["rank", "id", shown]
        cols += (["labels"] if labels else []) + ["text"]
        table = format_table([{**r, shown: r[score_key], "text": r["text"][:70],
                               **({"labels": ",".join(r["labels"])} if labels else {})}
                              for r in results], cols)
        emit(args, {"query": args.query, "doc": args.doc, "metric": metric, "results": results},
             f"{plural(len(results), 'document')} nearest to {query_desc} ({metric}):\n{table}")
        return 0

    return run

