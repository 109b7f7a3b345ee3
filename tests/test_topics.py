"""Text jobs: topic recovery on an LDA-generated corpus, retrieval, loaders, bad inputs."""

from __future__ import annotations

import gzip
import itertools
import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from aekit.cli import main
from aekit.codes import CODES
from aekit.errors import AekitError, DataError
from aekit.models import Autoencoder, create_model
from aekit.penalties import sinkhorn_plan
from aekit.text import TopicModel, build_vocabulary, load_corpus
from aekit.text.measures import (
    label_matrix,
    nearest,
    npmi_per_topic,
    precision_at_k,
    top_words,
    topic_diversity,
)
from aekit.text.modelling import (
    REAL_TWIN,
    attribute_counts,
    bit_probabilities,
    encode_counts,
    topic_ranking,
    topic_word,
    train_doc_hash,
    train_topic_model,
)
from aekit.text.reuters import load_reuters
from aekit.text.wordvec import ppmi_vectors

K, V = 5, 150


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def pseudo_words(n: int) -> list[str]:
    """Letter-only made-up words (the tokenizer drops digits), none an English stop word."""
    syl = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    return ["".join(p) for p in itertools.islice(itertools.product(syl, repeat=3), 0, n * 7, 7)]


def lda_corpus(n_docs: int, seed: int = 0, doc_len: int = 60):
    """Documents drawn by LDA's generative process: θ ~ Dir(0.1), β_k ~ Dir(0.05)."""
    rng = np.random.default_rng(seed)
    words = pseudo_words(V)
    beta = np.random.default_rng(123).dirichlet(np.full(V, 0.05), K)
    theta = rng.dirichlet(np.full(K, 0.1), n_docs)
    texts = []
    for t in theta:
        counts = rng.multinomial(doc_len, t @ beta)
        texts.append(" ".join(w for w, c in zip(words, counts) for _ in range(c)))
    labels = [[f"t{int(np.argmax(t))}"] for t in theta]
    return texts, labels, beta, words


@pytest.fixture(scope="module")
def corpus():
    texts, labels, beta, words = lda_corpus(1000)
    vocab = build_vocabulary(texts, size=V, min_df=1, max_df=1.0)
    counts = vocab.counts(texts)
    # the true topics in the vocabulary's order
    pos = {w: i for i, w in enumerate(words)}
    true = np.zeros((K, len(vocab)))
    for j, w in enumerate(vocab.words):
        true[:, j] = beta[:, pos[w]]
    return texts, labels, vocab, counts, true


@pytest.fixture(scope="module")
def topic_model(corpus):
    _, _, _, counts, _ = corpus
    model, _ = train_topic_model(counts, K, hidden=[64, 64], batch_size=100, epochs=150,
                                 patience=30, progress=False)
    return model


def assert_recovers(model, corpus, max_tv=None):
    """The learned topics match the true ones: by top words, by the documents' dominant
    topic, and (``max_tv``) by the whole word distribution.

    Top-10 overlap alone is a low bar on this corpus (5 sharp topics of 150 words): KMeans
    of the PPMI word vectors, no model at all, meets it (min 0.8, mean 0.86).
    It makes no document–topic proportions, and its word distributions are at total
    variation 0.17 (mean) / 0.26 (max) from the truth; the ``topic`` preset's at 0.05 / 0.09.
    ProdLDA's decoder distribution for θ = e_k is far peakier than the true topic (TV ~0.55,
    seeds 0–1) even where its top words and θ are right, so it is held to the first two."""
    from scipy.optimize import linear_sum_assignment

    _, labels, _, counts, true = corpus
    tw = topic_word(model)
    learned = top_words(tw, 10)
    overlap = np.array([[len(set(a) & set(b)) / 10 for b in learned]
                        for a in top_words(true, 10)])
    best = overlap.max(1)
    assert best.min() >= 0.7, best  # every true topic has a learned twin
    assert best.mean() >= 0.8, best
    assert len(set(overlap.argmax(1))) == K  # ... and a different one for each
    assert topic_diversity(top_words(tw, 10)) > 0.8
    rows, cols = linear_sum_assignment(-overlap)  # true topic rows[i] ↔ learned cols[i]
    # θ: each document's dominant learned topic is its true dominant topic's twin
    twin_of = dict(zip(cols, rows))
    dominant = encode_counts(model, counts).argmax(1)
    truth = np.array([int(lab[0][1:]) for lab in labels])
    accuracy = np.mean([twin_of[d] == t for d, t in zip(dominant, truth)])
    assert accuracy >= 0.9, accuracy  # 0.94–0.96 for both presets, seeds 0–1
    if max_tv is not None:
        p = np.exp(tw - tw.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        tv = 0.5 * np.abs(true[rows] - p[cols]).sum(1)
        assert tv.max() <= max_tv, tv


def test_topic_model_recovers_the_generating_topics(corpus, topic_model):
    assert topic_model.config.arch_options["decoder"] == "ecr"
    assert_recovers(topic_model, corpus, max_tv=0.15)


def test_prodlda_recovers_the_generating_topics(corpus):
    counts = corpus[3]
    model, _ = train_topic_model(counts, K, hidden=[64, 64], batch_size=100, epochs=150,
                                 patience=30, preset="prodlda", progress=False)
    assert model.config.arch_options["decoder"] == "prodlda"
    assert_recovers(model, corpus)


def test_attributed_counts_share_out_every_training_word(corpus, topic_model):
    *_, counts, _ = corpus
    phi = topic_model.decoder.topics.topic_counts.numpy()
    assert phi.shape == (K, counts.shape[1]) and (phi >= 0).all()
    # each occurrence is split over the topics: a word's column sums to its corpus count
    assert np.allclose(phi.sum(0), np.asarray(counts.sum(0)).ravel(), rtol=1e-4)
    assert np.allclose(attribute_counts(topic_model, counts), phi, rtol=1e-4)


def test_ppmi_word_vectors_put_a_topic_s_words_together(corpus):
    *_, vocab, counts, true = corpus
    vecs = ppmi_vectors(counts, 16)
    assert vecs.shape == (len(vocab), 16) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    top = top_words(true, 10)
    sims = vecs @ vecs.T
    within = np.mean([sims[np.ix_(t, t)][~np.eye(10, dtype=bool)].mean() for t in top])
    across = np.mean([sims[np.ix_(a, b)].mean() for i, a in enumerate(top)
                      for j, b in enumerate(top) if i != j])
    assert within > across + 0.3, (within, across)
    assert np.array_equal(ppmi_vectors(counts, 16), vecs)  # reproducible


def test_sinkhorn_plan_spreads_the_mass_evenly_at_low_cost():
    cost = torch.rand(5, 40, generator=torch.Generator().manual_seed(0)) * 4
    plan = sinkhorn_plan(cost, alpha=20.0)
    assert plan.shape == (5, 40) and plan.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(plan.sum(0).numpy(), 1 / 40, atol=5e-3 / 40 * 5)
    assert np.allclose(plan.sum(1).numpy(), 1 / 5, atol=1e-6)
    uniform = cost.mean().item()  # the cost of the independent coupling
    assert (plan * cost).sum().item() < 0.5 * uniform


def test_restarts_keep_the_most_coherent_model_on_the_training_documents(corpus):
    _, _, _, counts, _ = corpus
    model, _ = train_topic_model(counts, K, hidden=[32], batch_size=100, epochs=8, seed=5,
                                 restarts=3, progress=False)
    rec = model.config.extra["restarts"]
    assert rec["seeds"] == [5, 1005, 2005] and len(set(rec["train_npmi"])) == 3
    assert rec["picked_seed"] == rec["seeds"][int(np.argmax(rec["train_npmi"]))]
    own = npmi_per_topic(top_words(topic_ranking(model), 10), counts).mean()
    assert own == pytest.approx(max(rec["train_npmi"]), abs=1e-4)
    with pytest.raises(AekitError, match="restarts"):
        train_topic_model(counts, K, restarts=0)


def test_cli_restarts_must_be_positive(tmp_path, capsys):
    assert main(["topics", str(tmp_path / "nowhere.txt"), "--topics", "3", "--restarts", "0"]) == 2
    assert "--restarts must be at least 1" in capsys.readouterr().err


def test_topic_proportions_retrieve_same_topic_documents(corpus, topic_model):
    _, labels, _, counts, _ = corpus
    theta = encode_counts(topic_model, counts)
    assert np.allclose(theta.sum(1), 1, atol=1e-5)
    y, _ = label_matrix(labels)
    chance = float((np.asarray(y.sum(0)).ravel() / len(labels)) ** 2 @ np.ones(y.shape[1]))
    p = precision_at_k(theta, y, theta, y, 10, exclude=np.arange(len(labels)))
    assert p > 0.8 and p > 2.5 * chance, (p, chance)


def test_semantic_hashing_retrieves_same_topic_documents(corpus):
    _, labels, _, counts, _ = corpus
    model, _ = train_doc_hash(counts, 16, hidden=[64], epochs=60, progress=False)
    bits = encode_counts(model, counts)
    assert set(np.unique(bits)) <= {0.0, 1.0}
    assert 0.1 < bits.mean() < 0.9  # the prior keeps bits in use
    y, _ = label_matrix(labels)
    chance = float((np.asarray(y.sum(0)).ravel() / len(labels)) ** 2 @ np.ones(y.shape[1]))
    p = precision_at_k(bits, y, bits, y, 10, "hamming", exclude=np.arange(len(labels)))
    assert p > 0.75 and p > 2.5 * chance, (p, chance)
    # the query side of the asymmetric search: the probabilities the bits are thresholded from
    prob = bit_probabilities(model, counts)
    assert np.array_equal(prob > 0.5, bits > 0.5)
    p_asym = precision_at_k(prob, y, bits, y, 10, "expected_hamming",
                            exclude=np.arange(len(labels)))
    assert p_asym > 0.75 and p_asym > 2.5 * chance, (p_asym, chance)


def test_precision_at_k_counts_ties_at_their_expectation():
    # one query at 0000; db: one hit at distance 0, three at distance 1 (two hits), one far
    db = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0], [1, 1, 1, 1]], np.float32)
    hits = [1, 0, 1, 1, 1]
    y_db = sp.csr_matrix(np.array([[h, 1 - h] for h in hits]))
    y_q = sp.csr_matrix(np.array([[1, 0]]))
    q = np.zeros((1, 4), np.float32)
    p = precision_at_k(q, y_q, db, y_db, 2, "hamming")
    assert p == pytest.approx((1 + 2 / 3) / 2)  # the place left is filled at the tied rate 2/3
    order = [4, 3, 2, 1, 0]  # the db's order cannot change it (a stable sort's tie-break did)
    assert precision_at_k(q, y_q, db[order], y_db[order], 2, "hamming") == pytest.approx(p)


def test_precision_at_k_leaves_unlabelled_queries_out():
    db = np.array([[0, 0], [0, 1], [1, 1]], np.float32)
    y_db = sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1]]))
    q = np.zeros((3, 2), np.float32)
    y_q = sp.csr_matrix(np.array([[1, 0], [0, 0], [0, 1]]))  # the second query has no label
    both = precision_at_k(q, y_q, db, y_db, 1, "hamming")
    assert both == pytest.approx(precision_at_k(q[[0, 2]], y_q[[0, 2]], db, y_db, 1, "hamming"))
    assert both == pytest.approx(0.5)  # not 1/3: the unlabelled query is not a miss
    excl = precision_at_k(q, y_q, db, y_db, 1, "hamming", exclude=np.array([0, -1, 2]))
    assert excl == pytest.approx((1 + 0) / 2)  # exclude stays aligned with its query
    with pytest.raises(ValueError, match="no query has a label"):
        precision_at_k(q, sp.csr_matrix((3, 2)), db, y_db, 1, "hamming")


def test_hash_bits_stay_finite_under_bf16_autocast():
    # saturated bf16 logits: the prior's KL took log(1 − q) with 1 − 1e-6 rounded to 1 (NaN),
    # which made doc-hash training diverge on CPUs with native bf16
    code = CODES.build("doc_binary", 4, kl_weight=1.0)
    h = torch.tensor([[20.0, -20.0, 0.0, 3.0]], dtype=torch.bfloat16).repeat(3, 1)
    z, losses = code(h, sample=True)
    assert torch.isfinite(losses["kl"]) and set(z.detach().unique().tolist()) <= {0.0, 1.0}


def test_dense_twin_of_the_hash_model_trains(corpus):
    *_, counts, _ = corpus
    model, _ = train_doc_hash(counts[:200], 8, code="dense", hidden=[32], epochs=2,
                              progress=False)
    assert model.config.code == "dense" and model.config.code_options == {}
    assert encode_counts(model, counts[:5]).shape == (5, 8)


def test_saved_topic_model_gives_the_same_topics(tmp_path, corpus, topic_model):
    *_, counts, _ = corpus
    topic_model.save_pretrained(tmp_path / "m")
    again = Autoencoder.from_pretrained(tmp_path / "m")
    assert np.allclose(topic_word(again), topic_word(topic_model))
    assert np.allclose(encode_counts(again, counts[:20]), encode_counts(topic_model, counts[:20]),
                       atol=1e-6)


# ------------------------------------------------------------------ TopicModel (sklearn)
def test_topic_model_estimator_learns_from_texts_and_saves(tmp_path, corpus):
    texts, _, vocab, counts, true = corpus
    est = TopicModel(K, max_epochs=80, min_df=1, max_df=1.0, random_state=0).fit(texts)
    assert est.vocabulary_.words == vocab.words and est.n_features_in_ == len(vocab)
    assert est.components_.shape == (K, len(vocab))
    assert np.allclose(est.components_.sum(1), 1)
    # every true topic has its own learned twin among the top words
    pos = {w: i for i, w in enumerate(vocab.words)}
    learned = [{pos[w] for w in row} for row in est.top_words(10)]
    overlap = np.array([[len(set(t) & ll) / 10 for ll in learned] for t in top_words(true, 10)])
    assert overlap.max(1).min() >= 0.7 and len(set(overlap.argmax(1))) == K, overlap
    theta = est.transform(texts[:50])
    assert theta.shape == (50, K) and np.allclose(theta.sum(1), 1, atol=1e-5)
    # texts and their counts are the same input
    assert np.allclose(est.transform(counts[:50]), theta, atol=1e-6)
    assert est.coherence(texts).shape == (K,) and est.coherence(texts).mean() > 0.2
    assert 0.8 < est.diversity(10) <= 1
    assert list(est.get_feature_names_out()) == [f"topicmodel{k}" for k in range(K)]
    est.save(tmp_path / "tm")
    loaded = TopicModel.load(tmp_path / "tm")
    assert loaded.get_params() == est.get_params()
    assert loaded.top_words(10) == est.top_words(10)
    assert np.array_equal(loaded.transform(texts[:50]), theta)
    with pytest.raises(ValueError, match="X has 7 features, but TopicModel is expecting"):
        loaded.transform(np.ones((2, 7)))


def test_topic_model_estimator_on_counts_and_its_errors(tmp_path, corpus):
    from sklearn.exceptions import NotFittedError

    texts, _, _, counts, _ = corpus
    est = TopicModel(3, preset="prodlda", max_epochs=5, random_state=0).fit(counts)
    assert est.vocabulary_ is None and est.n_features_in_ == counts.shape[1]
    # the same seed fits the same model (a clone: the same parameters, unfitted)
    assert np.array_equal(clone(est).fit(counts).transform(counts[:9]), est.transform(counts[:9]))
    assert est.transform(counts[:4].toarray().astype(np.float64)).dtype == np.float64
    assert all(w.isdigit() for row in est.top_words(3) for w in row)  # word columns
    with pytest.raises(DataError, match="fitted on counts"):
        est.transform(texts[:2])
    with pytest.raises(ValueError, match="Negative values"):
        est.transform(-counts[:2].toarray())
    with pytest.raises(NotFittedError):
        TopicModel(3).transform(counts)
    with pytest.raises(ValueError, match="n_components"):
        TopicModel(1).fit(counts)
    with pytest.raises(DataError, match="single string"):
        TopicModel(3).fit("one document")
    est.save(tmp_path / "counts-model")
    assert TopicModel.load(tmp_path / "counts-model").vocabulary_ is None
    # a model that is not a topic model is one clear error
    create_model("vanilla", (8,), 2).save_pretrained(tmp_path / "ae")
    with pytest.raises(AekitError, match="does not hold a topic model"):
        TopicModel.load(tmp_path / "ae")


def test_topic_model_files_from_strangers_and_folders_it_would_spoil(tmp_path, corpus):
    texts = corpus[0][:200]
    est = TopicModel(3, max_epochs=2, min_df=1, max_df=1, random_state=0).fit(texts)  # max_df 1:
    assert len(est.vocabulary_) > 100  # all documents (an int 1 was "at most one" and left none)
    create_model("vanilla", (8,), 2).save_pretrained(tmp_path / "other")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "documents.json").write_text("{}")
    for folder, needle in (("other", "holds another model"), ("run", "indexed corpus")):
        with pytest.raises(AekitError, match=needle):
            est.save(tmp_path / folder)
    est.save(tmp_path / "tm")
    est.save(tmp_path / "tm")  # its own folder: written over
    vocab_file = tmp_path / "tm" / "vocab.json"
    good = json.loads(vocab_file.read_text())
    for key, value in (("token_pattern", "(\\w+\\s?)+$"), ("stop_words", "klingon"),
                       ("lowercase", "no")):
        vocab_file.write_text(json.dumps({**good, "tokenizer": {**good["tokenizer"], key: value}}))
        with pytest.raises(AekitError, match=key):  # never compiled: it took forever
            TopicModel.load(tmp_path / "tm")
    assert TopicModel(3).fit(texts[:50]).transform([]).shape == (0, 3)


def test_text_file_errors_point_at_the_right_place(tmp_path, capsys):
    from aekit.text.corpus import decode_bytes

    decode_bytes(b"\xef\xbb\xbfabc\xe9def", "f.txt")
    assert "byte 0xe9 at offset 6" in capsys.readouterr().err  # (counted after the BOM)
    (tmp_path / "q.csv").write_text('id,text\n1,a\n2,"open\n3,c\n')
    with pytest.raises(DataError, match="the row from line 3"):
        load_corpus(str(tmp_path / "q.csv"))


@parametrize_with_checks([TopicModel(3, max_epochs=2, random_state=0)],
                         expected_failed_checks=lambda est: est._xfail_checks)
def test_topic_model_sklearn_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------------------------ measures
def test_npmi_and_diversity_by_hand():
    # 4 documents, 3 words: w0 & w1 always together (NPMI 1), w2 never with them (−1)
    ref = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [0, 0, 1]])
    assert npmi_per_topic(np.array([[0, 1]]), ref)[0] == pytest.approx(1.0)
    assert npmi_per_topic(np.array([[0, 2]]), ref)[0] == pytest.approx(-1.0)
    # independent words: p(a,b) = p(a)p(b) → 0
    ref2 = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])
    assert npmi_per_topic(np.array([[0, 1]]), ref2)[0] == pytest.approx(0.0, abs=1e-12)
    assert topic_diversity(np.array([[0, 1], [1, 2]])) == 0.75


def test_expected_hamming_ranks_what_hamming_ties():
    db = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 1]], dtype=np.float32)
    prob = np.array([[0.9, 0.6, 0.1, 0.1]])  # its bits 1100: db rows 0 and 1 both 1 bit away
    _, dist = nearest((prob > 0.5).astype(np.float32), db, 3, "hamming")
    assert dist[0].tolist() == [1, 1, 2]
    idx, dist = nearest(prob, db, 3, "expected_hamming")
    # Σ|p − b|: row 0 0.1 + 0.6 + 0.1 + 0.1, row 1 0.9 + 0.4 + 0.2, row 2 0.1 + 0.4 + 1.8
    assert idx[0].tolist() == [0, 1, 2] and dist[0] == pytest.approx([0.9, 1.5, 2.3])
    # 0/1 queries: the plain Hamming distance
    bits = np.array([[1, 0, 1, 1]], dtype=np.float32)
    assert nearest(bits, db, 3, "expected_hamming")[1][0] == pytest.approx(
        nearest(bits, db, 3, "hamming")[1][0])
    with pytest.raises(ValueError, match="bit probabilities"):
        nearest(prob * 3, db, 3, "expected_hamming")


def test_hamming_search_orders_by_distance():
    db = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]], dtype=np.float32)
    idx, dist = nearest(np.array([[1, 0, 0, 0]], dtype=np.float32), db, 3, "hamming")
    assert idx[0].tolist() == [2, 0, 3] and dist[0].tolist() == [0, 1, 1]


# ----------------------------------------------------------------------------- the CLI
def test_cli_topics_then_docsearch(tmp_path, capsys):
    texts, labels, *_ = lda_corpus(400, seed=1)
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "body": t, "topic": lab[0]}) + "\n"
                            for i, (t, lab) in enumerate(zip(texts, labels)))
                    + json.dumps({"id": "dz", "body": "the and of it is", "topic": "t0"}) + "\n")
    out = tmp_path / "run"
    assert main(["topics", str(path), "--topics", "5", "--epochs", "40", "--text-col", "body",
                 "--label-col", "topic", "--min-df", "1", "--out", str(out), "--no-progress",
                 "--json"]) == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    assert "1 document(s) have no word of the vocabulary (first: dz)" in captured.err
    assert len(res["topics"]) == 5 and len(res["topics"][0]["words"]) == 10
    assert 0 < res["diversity"] <= 1 and -1 <= res["mean_npmi"] <= 1
    theta = np.load(out / "doc_topics.npy")
    assert theta.shape == (401, 5)
    # the run folder is a TopicModel: same topics, same document mixtures; and TopicModel
    # with the same seed and settings trains the same model
    est = TopicModel.load(out)
    assert [t["words"] for t in res["topics"]] == est.top_words(10)
    assert np.allclose(est.transform(texts[:10]), theta[:10], atol=1e-6)
    docs = load_corpus(str(path), text_col="body").texts
    again = TopicModel(5, max_epochs=40, min_df=1, random_state=0).fit(docs)
    assert again.top_words(10) == est.top_words(10)
    assert json.loads((out / "vocab.json").read_text())["words"]
    # aekit encode on a corpus: one line pointing to the text commands; word counts work
    code, err = run_cli(["encode", "--model", str(out), "--data", str(path), "--out",
                         str(tmp_path / "z.npy")], capsys)
    assert code == 2 and len(err) == 1 and "text model" in err[0]
    from aekit.text import Vocabulary

    np.save(tmp_path / "c.npy", Vocabulary.load(out).counts(texts[:4]).toarray().astype(np.float32))
    assert main(["encode", "--model", str(out), "--data", str(tmp_path / "c.npy"), "--out",
                 str(tmp_path / "z.npy")]) == 0
    capsys.readouterr()
    assert np.load(tmp_path / "z.npy").shape == (4, 5)
    # the wordless document is never a result, and cannot be a query
    assert main(["docsearch", str(out), "--doc", "d3", "-k", "1000", "--json"]) == 0
    every = json.loads(capsys.readouterr().out)["results"]
    assert len(every) == 399 and "dz" not in {h["id"] for h in every}
    code, err = run_cli(["docsearch", str(out), "--doc", "dz"], capsys)
    assert code == 2 and len(err) == 1 and "no word of the model's vocabulary" in err[0]
    docs = json.loads((out / "documents.json").read_text())
    assert docs["no_words"] == [400]  # recorded by index
    # a folder written before the list was kept still searches (every document a result)
    del docs["no_words"]
    (out / "documents.json").write_text(json.dumps(docs))
    assert main(["docsearch", str(out), "--doc", "d3", "-k", "1000", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 400

    # query by document: same-topic neighbours, the document itself excluded
    assert main(["docsearch", str(out), "--doc", "d3", "-k", "5", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["results"]
    assert len(hits) == 5 and all(h["id"] != "d3" for h in hits)
    assert sum(h["labels"] == [labels[3][0]] for h in hits) >= 3  # a list: labels may hold commas
    # query by text: the text of document 7 finds document 7 first
    assert main(["docsearch", str(out), texts[7], "-k", "3"]) == 0
    printed = capsys.readouterr().out
    assert "nearest to" in printed and "d7" in printed

    # an index of bits
    idx = tmp_path / "index"
    assert main(["docindex", str(path), "--text-col", "body", "--label-col", "topic", "--bits",
                 "16", "--epochs", "20", "--min-df", "1", "--out", str(idx), "--no-progress"]) == 0
    assert "16-bit" in capsys.readouterr().out
    assert main(["docsearch", str(idx), "--doc", "d0", "-k", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["metric"] == "expected_hamming" and len(res["results"]) == 4
    assert all(h["id"] != "d0" for h in res["results"])
    # an index without the bits' probabilities (made before they were kept) ranks by Hamming
    docs = json.loads((idx / "documents.json").read_text())
    (idx / docs.pop("probabilities")).rename(tmp_path / "probs.npy")
    (idx / "documents.json").write_text(json.dumps(docs))
    assert main(["docsearch", str(idx), "--doc", "d0", "-k", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["metric"] == "hamming" and len(res["results"]) == 4
    assert all(float(h["hamming"]).is_integer() for h in res["results"])
    # a new text keeps its bits' probabilities: the expected Hamming distance ranks the index
    assert main(["docsearch", str(idx), texts[7], "-k", "400", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    dist = {h["id"]: h["hamming"] for h in res["results"]}
    assert res["metric"] == "expected_hamming" and list(dist.values()) == sorted(dist.values())
    # round(p) minimises Σ|p − b|: the text's own document (its bits) is at the least distance
    assert dist["d7"] == min(dist.values()) and not float(dist["d7"]).is_integer()
    assert main(["docsearch", str(idx), texts[7], "-k", "2"]) == 0
    header = capsys.readouterr().out.splitlines()[1].split()
    assert header[:3] == ["rank", "id", "expected_hamming"]  # fractions: not plain Hamming
    # a real-valued index: the variational twin, compared by cosine
    dense = tmp_path / "dense"
    assert main(["docindex", str(path), "--text-col", "body", "--bits", "8", "--dense",
                 "--epochs", "5", "--min-df", "1", "--out", str(dense), "--no-progress"]) == 0
    assert "8-d dense" in capsys.readouterr().out
    assert Autoencoder.from_pretrained(dense).config.code == REAL_TWIN
    assert main(["docsearch", str(dense), texts[7], "-k", "3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["metric"] == "cosine" and all(-1 <= h["similarity"] <= 1 for h in res["results"])


def test_cli_topics_preset_chooses_the_decoder(tmp_path, capsys):
    texts, *_ = lda_corpus(150, seed=2)
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(texts))
    for preset, decoder in (("prodlda", "prodlda"), ("topic", "ecr")):
        out = tmp_path / preset
        assert main(["topics", str(path), "--topics", "3", "--epochs", "2", "--min-df", "1",
                     "--preset", preset, "--out", str(out), "--no-progress", "--json"]) == 0
        capsys.readouterr()
        model = Autoencoder.from_pretrained(out)
        assert model.config.arch_options["decoder"] == decoder
    code, err = run_cli(["topics", str(path), "--topics", "3", "--preset", "lda"], capsys)
    assert code == 2 and len(err) == 1 and "topic preset must be one of topic, prodlda" in err[0]


@pytest.mark.parametrize("preset", ["topic", "prodlda", "doc-hash"])
def test_generic_train_sends_text_presets_to_their_jobs(tmp_path, capsys, preset):
    code, err = run_cli(["train", "--preset", preset, "--data", str(tmp_path)], capsys)
    assert code == 2 and len(err) == 1 and "trains on a text corpus" in err[0]


def test_corpus_formats(tmp_path):
    folder = tmp_path / "news"
    for lab in ("sport", "politics"):
        (folder / lab).mkdir(parents=True)
        (folder / lab / "a.txt").write_text(f"a story about {lab}\n")
    c = load_corpus(str(folder))
    assert c.ids == ["politics/a.txt", "sport/a.txt"] and c.labels == [["politics"], ["sport"]]
    lines = tmp_path / "lines.txt"
    lines.write_text("first document\nsecond document\n")
    assert load_corpus(str(lines)).texts == ["first document", "second document"]
    table = tmp_path / "t.csv"
    table.write_text('text,label\n"hello, world",a;b\nbye,c\n')
    c = load_corpus(str(table), label_col="label")
    assert c.texts == ["hello, world", "bye"] and c.labels == [["a", "b"], ["c"]]


def test_a_quote_left_open_is_an_error_not_one_long_document(tmp_path):
    rows = [f"{i}," + ('"' if i == 5 else "") + f"word{i} apple pear" for i in range(40)]
    (tmp_path / "q.csv").write_text("id,text\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match="quote"):  # it read 6 documents, the 6th all the rest
        load_corpus(str(tmp_path / "q.csv"))


def test_repeated_ids_are_made_unique_with_a_warning(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("id,Text\n7,apples\n7,pears\n8,plums\n7,figs\n")
    c = load_corpus(str(tmp_path / "d.csv"))  # "Text" is found as the text column
    assert c.ids == ["7", "7#2", "8", "7#3"] and c.texts[1] == "pears"
    assert "repeat an earlier one" in capsys.readouterr().err
    (tmp_path / "d.jsonl").write_text('{"id": null, "text": "apples"}\n{"text": "pears"}\n')
    assert load_corpus(str(tmp_path / "d.jsonl")).ids == ["1", "2"]  # null is no id


def test_a_top_level_file_does_not_unlabel_the_folders(tmp_path):
    for lab in ("sport", "politics"):
        (tmp_path / lab).mkdir()
        (tmp_path / lab / "a.txt").write_text(f"a story about {lab}\n")
    (tmp_path / "top.txt").write_text("a story about nothing\n")
    c = load_corpus(str(tmp_path))
    assert dict(zip(c.ids, c.labels)) == {"politics/a.txt": ["politics"],
                                          "sport/a.txt": ["sport"], "top.txt": []}


@pytest.mark.parametrize("text,flags,words", [
    ("the and of it is was\n" * 20, [], "no word of two or more letters"),
    ("same words here always\n" * 20, ["--max-df", "1.0"], "at least 2"),
    ("apples and pears\npears and plums\n" * 5, ["--min-df", "1.5"], "--min-df"),
    ("apples and pears\npears and plums\n" * 5, ["--max-df", "inf"], "--max-df"),
    ("apples and pears\npears and plums\n" * 5, ["--top", "0"], "--top"),
    ("apples and pears\npears and plums\n" * 5, ["--topics", "9"], "more than the vocabulary"),
])
def test_vocabulary_and_topic_options_say_what_is_wrong(tmp_path, capsys, text, flags, words):
    (tmp_path / "d.txt").write_text(text)
    argv = ["topics", str(tmp_path / "d.txt"), "--min-df", "1", "--epochs", "1", "--no-progress"]
    argv += flags if "--topics" in flags else ["--topics", "2", *flags]
    code, err = run_cli(argv, capsys)
    assert code == 2 and len(err) == 1 and words in err[0], err


# -------------------------------------------------------------------------- bad inputs
def run_cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()


def test_empty_corpus_is_one_line(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    code, err = run_cli(["topics", str(tmp_path / "empty.txt"), "--topics", "3"], capsys)
    assert code == 2 and len(err) == 1 and "corpus is empty" in err[0]
    (tmp_path / "blank.txt").write_text("\n   \n\n")
    code, err = run_cli(["topics", str(tmp_path / "blank.txt"), "--topics", "3"], capsys)
    assert code == 2 and len(err) == 1 and "empty" in err[0]
    (tmp_path / "nofiles").mkdir()
    code, err = run_cli(["topics", str(tmp_path / "nofiles"), "--topics", "3"], capsys)
    assert code == 2 and len(err) == 1 and "no .txt files" in err[0]


def test_empty_documents_are_skipped_with_a_warning(tmp_path, capsys):
    path = tmp_path / "docs.csv"
    path.write_text("id,text\n1,apples and pears\n2,\n3,pears and plums\n")
    c = load_corpus(str(path))
    assert c.ids == ["1", "3"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "skipped 1 empty document" in err[0] and "first: 2" in err[0]


def test_missing_text_column_is_one_line(tmp_path, capsys):
    path = tmp_path / "docs.csv"
    path.write_text("id,words\n1,apples and pears\n")
    code, err = run_cli(["topics", str(path), "--topics", "2"], capsys)
    assert code == 2 and len(err) == 1 and "no text column" in err[0] and "words" in err[0]
    code, err = run_cli(["topics", str(path), "--topics", "2", "--text-col", "body"], capsys)
    assert code == 2 and len(err) == 1 and "no column named 'body'" in err[0]
    jl = tmp_path / "docs.jsonl"
    jl.write_text('{"text": "a b"}\n{"body": "c"}\n')
    with pytest.raises(DataError, match="line 2 has no 'text' field"):
        load_corpus(str(jl))


def test_non_utf8_bytes_decode_with_a_warning(tmp_path, capsys):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café au lait\nsecond line\n".encode("latin-1"))
    c = load_corpus(str(path))
    assert c.texts[0] == "caf\ufffd au lait" and len(c) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not valid UTF-8" in err[0] and "0xe9" in err[0]


def test_docsearch_bad_inputs(tmp_path, capsys):
    code, err = run_cli(["docsearch", str(tmp_path), "query"], capsys)
    assert code == 2 and len(err) == 1 and "documents.json is missing" in err[0]
    (tmp_path / "c.csv").write_text("text\napples\n")
    code, err = run_cli(["docsearch", str(tmp_path / "c.csv"), "query"], capsys)
    assert code == 2 and len(err) == 1 and "is a file" in err[0]
    code, err = run_cli(["topics", "reuters:dev", "--topics", "3"], capsys)
    assert code == 2 and len(err) == 1 and "unknown split 'dev'" in err[0]
    code, err = run_cli(["docsearch", str(tmp_path)], capsys)
    assert code == 2 and len(err) == 1 and "query text or --doc" in err[0]



@pytest.mark.parametrize("flags, words", [(["--stop-words", "french"], "stop words"),
                                          (["--max-df", "-1"], "--max-df")])
def test_bad_vocabulary_options_are_one_line(tmp_path, capsys, flags, words):
    (tmp_path / "d.txt").write_text("apples and pears\npears and plums\n")
    code, err = run_cli(["topics", str(tmp_path / "d.txt"), "--topics", "2", *flags], capsys)
    assert code == 2 and len(err) == 1 and words in err[0], err


def test_damaged_index_files_are_one_line(tmp_path, capsys):
    texts, *_ = lda_corpus(120, seed=2)
    (tmp_path / "docs.txt").write_text("\n".join(texts) + "\n")
    idx = tmp_path / "index"
    assert main(["docindex", str(tmp_path / "docs.txt"), "--bits", "8", "--epochs", "2",
                 "--min-df", "1", "--out", str(idx), "--no-progress"]) == 0
    capsys.readouterr()
    docs = json.loads((idx / "documents.json").read_text())
    for damage, words in ((lambda d: d.update(metric="euclid"), "metric"),
                          (lambda d: d.update(snippets=d["snippets"][:3]), "snippets"),
                          (lambda d: d.update(labels=[None] * len(d["ids"])), "labels"),
                          (lambda d: d.update(snippets=[1] * len(d["ids"])), "snippets")):
        bad = dict(docs)
        damage(bad)
        (idx / "documents.json").write_text(json.dumps(bad))
        code, err = run_cli(["docsearch", str(idx), "--doc", "1"], capsys)
        assert code == 2 and len(err) == 1 and words in err[0], err
    (idx / "documents.json").write_text(json.dumps(docs))
    probs = np.load(idx / "bit_probabilities.npy")
    # another size; not these bits; NaN; out of [0, 1]
    for damage in (probs[:, :5], 1 - probs, probs * np.nan, probs * 2):
        np.save(idx / "bit_probabilities.npy", damage)
        code, err = run_cli(["docsearch", str(idx), "--doc", "1"], capsys)
        assert code == 2 and len(err) == 1 and "does not match" in err[0], err
    (idx / "bit_probabilities.npy").unlink()  # only --doc needs them: a warning, not an error
    code, err = run_cli(["docsearch", str(idx), "some words"], capsys)
    assert code in (0, 2) and all("internal error" not in e for e in err)
    code, err = run_cli(["docsearch", str(idx), "--doc", "1"], capsys)
    assert code == 0 and len(err) == 1 and "plain Hamming distance" in err[0], err
    np.save(idx / "bit_probabilities.npy", probs)
    vocab = json.loads((idx / "vocab.json").read_text())
    for bad in ({**vocab, "words": vocab["words"][:1]}, {**vocab, "words": vocab["words"] * 2},
                {**vocab, "tokenizer": {"foo": 1}}):
        (idx / "vocab.json").write_text(json.dumps(bad))
        code, err = run_cli(["docsearch", str(idx), "--doc", "1"], capsys)
        assert code == 2 and len(err) == 1 and "not a valid vocabulary" in err[0], err
    (idx / "vocab.json").write_text(json.dumps(vocab))
    outside = tmp_path / "outside.npy"  # a document list naming a file elsewhere
    np.save(outside, np.load(idx / "codes.npy"))
    for name in (str(outside), "../outside.npy"):
        (idx / "documents.json").write_text(json.dumps({**docs, "codes": name}))
        code, err = run_cli(["docsearch", str(idx), "--doc", "1"], capsys)
        assert code == 2 and len(err) == 1 and "must name a file in" in err[0], err
    (idx / "documents.json").write_text(json.dumps(docs))
    np.save(idx / "codes.npy", np.zeros((120, 5), np.float32))  # codes of another size
    code, err = run_cli(["docsearch", str(idx), "--doc", "1"], capsys)
    assert code == 2 and len(err) == 1 and "5-d codes" in err[0], err
    (idx / "codes.npy").write_text("garbage")
    code, err = run_cli(["docsearch", str(idx), "--doc", "1"], capsys)
    assert code == 2 and len(err) == 1 and "not a valid .npy" in err[0], err
    assert "pickle" not in err[0]


def test_a_failed_save_leaves_the_earlier_run_whole(tmp_path):
    from aekit.io import staged_dir

    out = tmp_path / "run"
    with staged_dir(out) as stage:
        for name in ("a.json", "b.npy"):
            (stage / name).write_text("old")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OSError), staged_dir(out) as stage:
        (stage / "a.json").write_text("new")
        raise OSError("disk full")
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "a.json": "old", "b.npy": "old", "notes.txt": "mine"}
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging folder left
    # staged inside the target (same file system for the renames; the parent may be a
    # read-only folder or another device), and a target this call made goes again on failure
    with staged_dir(out) as stage:
        assert stage.parent == out
    with pytest.raises(OSError), staged_dir(tmp_path / "new") as stage:
        raise OSError("disk full")
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_tiny_or_disjoint_vocabulary_trains(tmp_path, capsys):
    # no two words share a document: the PPMI is all zero (ARPACK refused it)
    assert not ppmi_vectors(np.eye(3), 50).any()
    (tmp_path / "indep.txt").write_text("alpha beta\nalpha\nbeta\ngamma\n")
    code = main(["topics", str(tmp_path / "indep.txt"), "--topics", "2", "--epochs", "2",
                 "--min-df", "1", "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 0, capsys.readouterr().err


def test_corpus_reading_details(tmp_path, capsys):
    # only \n ends a line document (a form feed or U+2028 inside a line does not)
    (tmp_path / "seps.txt").write_text("one\ntwo \u2028 more\nthree \x0c page\r\nfour\n")
    c = load_corpus(str(tmp_path / "seps.txt"))
    assert c.ids == ["1", "2", "3", "4"] and c.texts[2] == "three \x0c page"
    # a folder of non-UTF-8 files: one warning, not one per file
    (tmp_path / "latin").mkdir()
    for i in range(5):
        (tmp_path / "latin" / f"d{i}.txt").write_bytes("café au lait".encode("latin-1"))
    capsys.readouterr()
    c = load_corpus(str(tmp_path / "latin"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(c) == 5 and len(err) == 1 and "5 file(s) not valid UTF-8" in err[0]
    # columns are for tables only: a .txt with --text-col is refused, not silently read
    with pytest.raises(DataError, match="csv, .tsv and .jsonl"):
        load_corpus(str(tmp_path / "seps.txt"), text_col="body")


def test_text_col_names_the_corpus_column_not_the_references(tmp_path, capsys):
    texts, *_ = lda_corpus(120, seed=3)
    (tmp_path / "c.csv").write_text("body\n" + "\n".join(texts) + "\n")
    (tmp_path / "ref.txt").write_text("\n".join(texts[:60]) + "\n")
    assert main(["topics", str(tmp_path / "c.csv"), "--text-col", "body", "--topics", "3",
                 "--epochs", "2", "--min-df", "1", "--reference", str(tmp_path / "ref.txt"),
                 "--out", str(tmp_path / "o"), "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["npmi_reference"] == "ref.txt"

# ----------------------------------------------------------------------------- Reuters
SGML = """<!DOCTYPE lewis SYSTEM "lewis.dtd">
<REUTERS TOPICS="YES" LEWISSPLIT="TRAIN" CGISPLIT="TRAINING-SET" OLDID="1" NEWID="1">
<TOPICS><D>cocoa</D></TOPICS>
<TEXT>&#2;
<TITLE>BAHIA COCOA &lt;REVIEW&gt;</TITLE>
<DATELINE>    SALVADOR, Feb 26 - </DATELINE><BODY>Showers continued &amp; cocoa.
&#3;</BODY></TEXT>
</REUTERS>
<REUTERS TOPICS="YES" LEWISSPLIT="TEST" CGISPLIT="PUBLISHED-TESTSET" OLDID="2" NEWID="2">
<TOPICS><D>grain</D><D>wheat</D></TOPICS>
<TEXT TYPE="BRIEF">&#2;
<TITLE>WHEAT SALES</TITLE>&#3;
</TEXT>
</REUTERS>
<REUTERS TOPICS="NO" LEWISSPLIT="TRAIN" CGISPLIT="TRAINING-SET" OLDID="3" NEWID="3">
<TOPICS></TOPICS>
<TEXT><BODY>not in ModApte</BODY></TEXT>
</REUTERS>
<REUTERS TOPICS="YES" LEWISSPLIT="NOT-USED" CGISPLIT="TRAINING-SET" OLDID="4" NEWID="4">
<TOPICS><D>acq</D></TOPICS>
<TEXT><BODY>unused</BODY></TEXT>
</REUTERS>
"""


@pytest.mark.parametrize("gz", [False, True])
def test_reuters_modapte_split(tmp_path, gz, capsys, monkeypatch):
    if gz:
        with gzip.open(tmp_path / "reut2-000.sgm.gz", "wt", encoding="latin-1") as f:
            f.write(SGML)
    else:
        (tmp_path / "reut2-000.sgm").write_text(SGML, encoding="latin-1")
    train = load_reuters(tmp_path, "train")
    assert train.ids == ["1"] and train.labels == [["cocoa"]]
    assert train.texts[0] == "BAHIA COCOA <REVIEW>\nShowers continued & cocoa."
    test = load_corpus(f"{tmp_path}:test")
    assert test.ids == ["2"] and test.labels == [["grain", "wheat"]]
    assert "WHEAT SALES" in test.texts[0]
    assert "1 of the 22" in capsys.readouterr().err
    monkeypatch.setenv("AEKIT_DATA", str(tmp_path.parent))
    (tmp_path.parent / "reuters21578").mkdir(exist_ok=True)
    with pytest.raises(DataError, match="not in"):
        load_corpus("reuters:train")
    # a file cut short lost its last stories without a word
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "reut2-000.sgm").write_text(SGML[: SGML.index("not in ModApte")], encoding="latin-1")
    with pytest.raises(DataError, match="3 stories begin but 2 end: the file is truncated"):
        load_reuters(cut, "train")
    # an edited NEWID that is not a number sorts after the numbered stories (it crashed)
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "reut2-000.sgm").write_text(SGML.replace('NEWID="1"', 'NEWID="x1"'), encoding="latin-1")
    assert load_reuters(odd, "train").ids == ["x1"]


def test_relevance_ranks_shared_words_lower():
    from aekit.text.measures import relevance

    # word 0 is likely in both topics, word 1 only in topic 0, word 2 only in topic 1
    lw = np.log(np.array([[0.50, 0.40, 0.10], [0.50, 0.10, 0.40]]))
    assert np.array_equal(top_words(relevance(lw, 1.0), 3), top_words(lw, 3))
    assert top_words(relevance(lw, 0.5), 1)[:, 0].tolist() == [1, 2]
    assert top_words(lw, 1)[:, 0].tolist() == [0, 0]
    # each row is shifted by a constant: the ranking ignores it
    assert np.array_equal(top_words(relevance(lw + [[3.0], [-2.0]], 0.8), 3),
                          top_words(relevance(lw, 0.8), 3))


def test_text_api_inputs_and_the_callers_generator():
    """A single string was read as one document per character and None failed inside
    scikit-learn; negative or NaN counts were encoded; training reseeded the caller's torch
    generator (the estimators leave it alone)."""
    texts, _, _, _ = lda_corpus(60)
    with pytest.raises(DataError, match="single string"):
        build_vocabulary("apple banana cherry apple banana")
    with pytest.raises(DataError, match="document 60 .* NoneType"):
        build_vocabulary(texts + [None], size=V, min_df=1, max_df=1.0)
    vocab = build_vocabulary(iter(texts), size=V, min_df=1, max_df=1.0)  # any iterable
    counts = vocab.counts(texts)
    with pytest.raises(DataError, match="int, not text"):
        vocab.counts(["a b", 3])
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model, _ = train_topic_model(counts, 3, hidden=[16], batch_size=30, epochs=1, progress=False)
    hashed, _ = train_doc_hash(counts, 4, hidden=[16], batch_size=30, epochs=1, progress=False)
    assert torch.equal(torch.rand(3), expected)
    bad = counts.toarray()
    bad[0, 0] = -1
    with pytest.raises(DataError, match="finite and ≥ 0"):
        encode_counts(model, bad)
    with pytest.raises(DataError, match="finite and ≥ 0"):
        train_topic_model(bad, 3, hidden=[16], batch_size=30, epochs=1, progress=False)


def test_ragged_csv_rows_and_non_text_jsonl_fields_are_errors(tmp_path):
    """A row with more cells than the header (an unquoted comma in the text) lost its extra
    cells and the text was cut; a JSONL text given as an array was stored as its repr."""
    (tmp_path / "r.csv").write_text("text,label\nhello world,a\nhello, world,b\n")
    with pytest.raises(DataError, match="line 3 has 3 cells but the header 2"):
        load_corpus(str(tmp_path / "r.csv"))
    (tmp_path / "t.csv").write_text("text,label\nhello world,a,\nbye,b,,\n")  # trailing commas
    assert load_corpus(str(tmp_path / "t.csv")).texts == ["hello world", "bye"]
    (tmp_path / "a.jsonl").write_text('{"text": "fine"}\n{"text": ["a", "b"]}\n')
    with pytest.raises(DataError, match="line 2: the 'text' field is a JSON array"):
        load_corpus(str(tmp_path / "a.jsonl"))


def test_text_api_checks_counts_widths_and_counts_of_results():
    """NaN counts were called "no document has a word"; texts or a 1-D array failed deep in
    NumPy; a COO matrix or a list could not be encoded; a 4-bit query against 16-bit codes
    was ranked without a word; n or k = −1 returned all but one; a string topic count or a
    negative lr failed inside torch."""
    from aekit.errors import ParameterError

    nan = np.ones((10, 6), np.float32)
    nan[2, 3] = np.nan
    with pytest.raises(DataError, match="finite and ≥ 0"):
        train_topic_model(nan, 2, epochs=1, progress=False)
    with pytest.raises(DataError, match="not texts: count them"):
        train_topic_model(["oil price", "wheat crop"], 2, epochs=1, progress=False)
    with pytest.raises(DataError, match="2-D .* got float32 \\(6,\\)"):
        train_topic_model(np.ones(6, np.float32), 2, epochs=1, progress=False)
    for bad in ("3", 1, 2.0):
        with pytest.raises(ParameterError, match="topics"):
            train_topic_model(np.ones((10, 6), np.float32), bad, epochs=1, progress=False)
    with pytest.raises(ParameterError, match="lr must be a finite number > 0"):
        train_topic_model(np.ones((10, 6), np.float32), 2, epochs=1, lr=-1, progress=False)
    counts = np.random.default_rng(0).poisson(1.0, (12, 6)).astype(np.float32)
    model, _ = train_topic_model(counts, 2, hidden=[8], epochs=1, progress=False)
    theta = encode_counts(model, counts[:2])
    for same in (sp.coo_matrix(counts[:2]), counts[:2].tolist()):
        assert np.allclose(encode_counts(model, same), theta, atol=1e-6)
    with pytest.raises(DataError, match="5 word columns but the model's vocabulary has 6"):
        encode_counts(model, counts[:, :5])
    with pytest.raises(ParameterError, match="vocabulary size is an integer"):
        build_vocabulary(["oil price", "wheat crop"], size="10")
    db = np.random.default_rng(1).random((5, 16)) > 0.5
    for metric in ("hamming", "expected_hamming", "cosine"):
        with pytest.raises(ParameterError, match="same width"):
            nearest(db[:1, :4].astype(float), db, metric=metric)
    with pytest.raises(ParameterError, match="k is an integer"):
        nearest(db[:1], db, k=-1, metric="hamming")
    with pytest.raises(ParameterError, match="n \\(top words\\)"):
        top_words(np.random.default_rng(2).random((3, 8)), -1)
