"""Training and applying the bag-of-words presets through the core :func:`fit`.

    texts ─vocabulary─▶ counts (N, V) ─fit(topic | prodlda | doc-hash)─▶ model
    model.encode(counts) ─▶ θ (document–topic proportions) or bits / dense codes
    topic: counts ─PPMI word vectors─▶ decoder; after training, the training words are
           attributed to the topics ─▶ topic_counts (K, V) ─ranking─▶ each topic's top words
    prodlda: decoder weight (V, K)ᵀ ─▶ topics (K, V) ─relevance (λ = 0.8)─▶ top words
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from aekit.data.arrays import ArrayData
from aekit.errors import AekitError, DataError, ParameterError, is_integer
from aekit.models import Autoencoder, create_model, preset_config
from aekit.nn.bow import EmbeddingTopics, set_word_vectors
from aekit.text.measures import npmi_per_topic, relevance, top_words
from aekit.training import FitResult, fit

#: ProdLDA's published settings (Srivastava & Sutton 2017: Adam, lr 2e-3, batch 200, dropout,
#: first-moment decay 0.99). beta1 = 0.99 rather than 0.9 raised the mean NPMI of 50 Reuters
#: topics from 0.106 to 0.158 at 100 epochs (benchmarks/text.py). 100 epochs, not 200: with
#: the dropout on θ, 200 epochs (early-stopped at ~185) gave NPMI 0.251 / 0.172 at K = 20 / 50
#: against 0.293 / 0.210 at 100 (the topic-word matrix overfits)
TOPIC_DEFAULTS: dict[str, Any] = {"batch_size": 200, "lr": 2e-3, "betas": (0.99, 0.999),
                                  "epochs": 100, "patience": 30}
#: λ of the relevance ranking of a topic's top words (:func:`topic_ranking`). On Reuters
#: (benchmarks/text.py, seeds 0 and 1) λ = 0.8 raised the diversity of the top-25 lists by
#: 0.03–0.04 at K = 20 and 50 for −0.01 to 0 NPMI; λ = 0.6 gave +0.08 at K = 20 but lowered
#: NPMI at K = 50 below NMF's on one seed
TOPIC_RELEVANCE = 0.8
#: ranking of the ``topic`` preset's (ecr decoder) top words: relevance of the attributed
#: counts with this λ, plus ECR_EXCLUSIVITY · log β_kv (the share of word v the decoder gives
#: topic k). Reuters K = 20, seeds 0–2 (benchmarks/text.py; the test split only reported):
#: NPMI 0.302–0.329 at diversity 0.838–0.862; ranking by β alone gave 0.16–0.20 at 0.99, by
#: the attributed counts alone (λ 1) 0.23 at 0.56
ECR_RELEVANCE = 0.6
ECR_EXCLUSIVITY = 1.0
#: seeds of topic-model restarts are seed, seed + RESTART_STRIDE, … (restart 0 is the plain
#: run, and the restarts of nearby seeds do not overlap)
RESTART_STRIDE = 1000
#: presets train_topic_model (and ``aekit topics --preset``) trains
TOPIC_PRESETS = ("topic", "prodlda")
HASH_DEFAULTS: dict[str, Any] = {"batch_size": 128, "lr": 1e-3, "epochs": 60, "patience": 10}
#: per-code changes to HASH_DEFAULTS. Bits are sampled in training (straight-through), so
#: their gradient is noisy and they converge slowly: on Reuters (benchmarks/text.py, seeds 0
#: and 1) 10 bits gave P@10 0.649 after 30 epochs, 0.695–0.699 after 60, 0.733–0.735 at the
#: early-stopping point at lr 1e-3 (~180 epochs) and 0.738–0.739 at lr 3e-3 (~110 epochs)
HASH_CODE_DEFAULTS: dict[str, dict[str, Any]] = {"doc_binary": {"lr": 3e-3, "epochs": 300}}
#: the real-valued twin of the doc-hash bits (``aekit docindex --dense``): a variational code
#: (the mean at inference; NVDM, Miao et al. 2016). Its sampling noise regularises the code
#: as the bits' does: Reuters P@10, seeds 0/1, 60 epochs: 10-d 0.820/0.819, 32-d 0.838/0.843,
#: against 0.814/0.816 and 0.831/0.836 (early-stopped) for a plain dense code
REAL_TWIN = "gaussian"


def hash_defaults(code: str) -> dict[str, Any]:
    """doc-hash training settings (batch, lr, epochs, patience) for a code."""
    return {**HASH_DEFAULTS, **HASH_CODE_DEFAULTS.get(code, {})}


def check_counts(dense: np.ndarray, what: str = "counts") -> None:
    """Word counts are finite and ≥ 0 (a TF-IDF or centred matrix is not a count matrix)."""
    if dense.size and not (np.isfinite(dense).all() and dense.min() >= 0):
        raise DataError(f"{what}: word counts must be finite and ≥ 0 (NaN, inf or negative "
                        "values found)")


def as_counts(counts: Any, vocab_size: int | None = None):
    """A (N, V) count matrix as given (a scipy.sparse matrix becomes CSR, which slices by
    rows; anything else a 2-D NumPy array), checked: numbers, finite, ≥ 0, and V columns when
    ``vocab_size`` is given (a model's vocabulary). Texts are refused with how to count them."""
    if isinstance(counts, str) or (isinstance(counts, (list, tuple)) and len(counts)
                                   and isinstance(counts[0], str)):
        raise DataError("this takes a (documents, words) count matrix, not texts: count them "
                        "with vocab = aekit.text.build_vocabulary(texts); vocab.counts(texts)")
    if sp.issparse(counts):
        m = sp.csr_matrix(counts)
        values = m.data
    else:
        m = values = np.asarray(counts)
    if m.ndim != 2 or not np.issubdtype(values.dtype, np.number) \
            or np.issubdtype(values.dtype, np.complexfloating):
        raise DataError(f"counts must be a 2-D (documents, words) matrix of numbers, got "
                        f"{values.dtype} {m.shape}")
    check_counts(values)
    if vocab_size is not None and m.shape[1] != vocab_size:
        raise DataError(f"the counts have {m.shape[1]} word columns but the model's vocabulary "
                        f"has {vocab_size} words (count with the model's own vocabulary)")
    return m


def counts_data(counts, name: str = "corpus") -> ArrayData:
    """A (sparse) count matrix as :class:`ArrayData`, stored densely as compactly as its
    largest count allows (uint8/uint16/float32), served as float counts (scale 1)."""
    dense = counts.toarray() if sp.issparse(counts) else np.asarray(counts)
    check_counts(dense, name)
    hi = float(dense.max()) if dense.size else 0.0
    dtype = np.uint8 if hi < 256 else (np.uint16 if hi < 65536 else np.float32)
    return ArrayData(dense.astype(dtype), name=name, layout="ND", scale=1.0)


def nonempty_rows(counts) -> np.ndarray:
    lengths = np.asarray(counts.sum(1)).ravel()
    return np.flatnonzero(lengths > 0)


def _train(model: Autoencoder, counts, defaults: dict[str, Any], **fit_args: Any) -> FitResult:
    rows = nonempty_rows(counts)
    if len(rows) == 0:
        raise DataError("no document has a word of the vocabulary")
    if len(rows) < 2:
        raise DataError("at least 2 documents with words of the vocabulary are needed")
    args = {**defaults, **fit_args}
    if args.get("minutes") is not None and "epochs" not in fit_args:
        args.pop("epochs")
    data = counts_data(counts[rows] if sp.issparse(counts) else np.asarray(counts)[rows])
    # batch statistics need more than one document per batch
    args["batch_size"] = max(2, min(args["batch_size"], len(rows)))
    return fit(model, data, **args)


def train_topic_model(counts, n_topics: int, *, hidden: list[int] | None = None,
                      seed: int = 0, restarts: int = 1, preset: str = "topic",
                      **fit_args: Any) -> tuple[Autoencoder, FitResult]:
    """A topic model (preset ``topic``, or ``prodlda``) on a (N, V) count matrix.
    ``fit_args`` go to :func:`fit`. For ``topic`` the decoder's word vectors come from
    ``counts`` (:func:`aekit.text.wordvec.ppmi_vectors`) and, after training, the words of
    ``counts`` are attributed to the topics (:func:`attribute_counts`).

    ``restarts`` > 1 trains that many models (seeds ``seed``, ``seed + RESTART_STRIDE``, …)
    and keeps the one whose topics are the most coherent on the training documents
    themselves (mean NPMI of each topic's top 10 words, counted in ``counts``; no held-out
    text is looked at). ProdLDA's topics vary a lot between seeds (Reuters, K = 20: NPMI
    0.17–0.30; ``topic``'s 0.30–0.33); the seeds and their scores are kept in
    ``model.config.extra["restarts"]``."""
    if not is_integer(n_topics, 2):
        raise ParameterError(f"the number of topics (--topics) is an integer ≥ 2, got "
                             f"{n_topics!r}")
    if not is_integer(restarts, 1):
        raise ParameterError(f"restarts (--restarts) is an integer ≥ 1, got {restarts!r}")
    counts = as_counts(counts)
    if preset not in TOPIC_PRESETS:
        raise AekitError(f"topic preset must be one of {', '.join(TOPIC_PRESETS)}, got {preset!r}")
    v = counts.shape[1]
    opts = {"hidden": hidden} if hidden is not None else {}
    runs = []
    for r in range(restarts):
        run_seed = seed + RESTART_STRIDE * r
        with torch.random.fork_rng(devices=[]):  # the caller's generator is left as it was
            torch.manual_seed(run_seed)
            model = create_model(preset, (v,), n_topics, arch_options=opts)
            ecr = isinstance(getattr(model.decoder, "topics", None), EmbeddingTopics)
            if ecr:
                set_word_vectors(model, counts)
            result = _train(model, counts, TOPIC_DEFAULTS, seed=run_seed, **fit_args)
        if ecr:
            attribute_counts(model, counts)
        score = float("nan")
        if restarts > 1:
            score = float(npmi_per_topic(top_words(topic_ranking(model), 10), counts).mean())
        runs.append((score, run_seed, model, result))
    if restarts == 1:
        return runs[0][2], runs[0][3]
    best = max(range(restarts), key=lambda i: runs[i][0])
    _, _, model, result = runs[best]
    model.config.extra["restarts"] = {
        "seeds": [r[1] for r in runs], "train_npmi": [round(r[0], 4) for r in runs],
        "picked_seed": runs[best][1], "criterion": "mean NPMI of the top 10 words on the "
                                                   "training documents"}
    return model, result


def train_doc_hash(counts, bits: int, *, code: str = "doc_binary", hidden: list[int] | None = None,
                   seed: int = 0, code_options: dict[str, Any] | None = None,
                   **fit_args: Any) -> tuple[Autoencoder, FitResult]:
    """Semantic hashing (preset ``doc-hash``); ``code=REAL_TWIN`` gives the real-valued twin
    (any registered code works: ``"dense"`` a plain one)."""
    from aekit.nn.bow import set_idf

    if not is_integer(bits, 1):
        raise ParameterError(f"the code needs an integer ≥ 1 of bits, got {bits!r}")
    counts = as_counts(counts)
    v = counts.shape[1]
    overrides: dict[str, Any] = {"arch_options": {"hidden": hidden}} if hidden is not None else {}
    config = preset_config("doc-hash", (v,), bits, **overrides)
    if code != config.code:  # the preset's code options belong to its own code
        config.code, config.code_options = code, {}
    config.code_options.update(code_options or {})
    with torch.random.fork_rng(devices=[]):  # the caller's generator is left as it was
        torch.manual_seed(seed)
        model = Autoencoder(config)
        set_idf(model, counts)
        result = _train(model, counts, hash_defaults(config.code), seed=seed, **fit_args)
    return model, result


def bit_probabilities(model: Autoencoder, counts, batch_size: int = 1024) -> np.ndarray:
    """P(bit = 1) (N, bits) of a doc-hash model's code for each document, before the bits are
    thresholded at ½: a query's side of the asymmetric distance
    (:func:`aekit.text.measures.nearest` with ``metric="expected_hamming"``)."""
    code = model.code
    if not hasattr(code, "probabilities"):
        raise AekitError(f"a {model.config.code!r} code has no bit probabilities")
    return _map_counts(model, counts, batch_size,
                       lambda x: code.probabilities(model.encoder(model.normalize(x))))


def _map_counts(model: Autoencoder, counts, batch_size: int, fn) -> np.ndarray:
    """``fn`` (a batch of counts as a float tensor → (B, latent)) over a (sparse) count
    matrix in batches, without gradients: (N, latent) float32."""
    counts = as_counts(counts, model.input_shape[0])
    model.eval()
    dev = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for s in range(0, counts.shape[0], batch_size):
            chunk = counts[s:s + batch_size]
            dense = np.asarray(chunk.toarray() if sp.issparse(chunk) else chunk, np.float32)
            if not dense.flags.writeable:  # a read-only array (a memmap): torch warns
                dense = dense.copy()
            out.append(fn(torch.as_tensor(dense, device=dev)).float().cpu())
    if not out:
        return np.zeros((0, model.config.latent_dim), np.float32)
    return torch.cat(out).numpy()


def _topic_layer(model: Autoencoder):
    dec = model.decoder
    layer = getattr(dec, "topics", None)
    if layer is None:
        layer = getattr(dec, "linear", None)
    if layer is None or model.config.arch != "bow":
        raise AekitError("not a bag-of-words model: it has no topics")
    return layer


def topic_word(model: Autoencoder) -> np.ndarray:
    """The topics (K, V): row k the log word distribution (up to a constant) of topic k.

    ``topic`` (ecr decoder): the training words attributed to topic k (``topic_counts``,
    :func:`attribute_counts`), once training has set them. ProdLDA (and an ecr decoder
    before that): the distribution the decoder gives a document that is all topic k,
    θ = e_k: the topic's column of the decoder weight (of β) through the decoder's batch
    normalisation, (W[:, k] − mean) / std. Reading the raw weight instead favours words whose
    logits merely vary a lot, and matches true topics less well."""
    layer = _topic_layer(model)
    if isinstance(layer, EmbeddingTopics):
        counts = layer.topic_counts.detach().cpu().double()
        if counts.sum() > 0:
            return torch.log(counts / counts.sum(1, keepdim=True).clamp_min(1e-300)
                             + 1e-12).numpy()
        w = layer.beta().detach().cpu().double().T  # (V, K)
    else:
        w = layer.weight.detach().cpu().double()  # (V, K)
    bn = getattr(model.decoder, "bn", None)
    if isinstance(bn, torch.nn.BatchNorm1d) and bn.running_mean is not None:
        w = (w - bn.running_mean.cpu().double()[:, None]) / torch.sqrt(
            bn.running_var.cpu().double()[:, None] + bn.eps)
    elif getattr(layer, "bias", None) is not None:
        w = w + layer.bias.detach().cpu().double()[:, None]
    return w.T.numpy().copy()


def topic_ranking(model: Autoencoder, lam: float | None = None) -> np.ndarray:
    """Scores (K, V) that order each topic's words for its top-word list: the LDAvis
    relevance (:func:`aekit.text.measures.relevance`) of :func:`topic_word`, which ranks a
    word shared by many topics (Reuters' "mln", "dlrs") below one as likely but specific to
    the topic; λ = ``ECR_RELEVANCE`` for ``topic`` (plus ``ECR_EXCLUSIVITY`` · log β, the
    share of the word its decoder gives the topic), ``TOPIC_RELEVANCE`` for ``prodlda``.
    ``lam`` overrides λ (for ``prodlda``, ``lam=1`` ranks by probability alone)."""
    layer = _topic_layer(model)
    if isinstance(layer, EmbeddingTopics):
        scores = relevance(topic_word(model), ECR_RELEVANCE if lam is None else lam)
        log_beta = torch.log(layer.beta().detach().cpu().double() + 1e-12).numpy()
        return scores + ECR_EXCLUSIVITY * log_beta
    return relevance(topic_word(model), TOPIC_RELEVANCE if lam is None else lam)


@torch.no_grad()
def attribute_counts(model: Autoencoder, counts, batch_size: int = 1024) -> np.ndarray:
    """Share the words of a (N, V) count matrix out over an ecr decoder's topics and store
    the result (K, V) in its ``topic_counts``: each occurrence of word v in document d goes
    to topic k in proportion θ_dk·β_kv (θ = the document's topic proportions), so every
    column sums to the word's count in ``counts``. These are the topics' word distributions
    that :func:`topic_word` reads (as LDA's topic–word counts are)."""
    layer = _topic_layer(model)
    if not isinstance(layer, EmbeddingTopics):
        raise AekitError("attribute_counts needs a topic model with the ecr decoder")
    beta = layer.beta().detach().cpu().double()  # (K, V)
    theta = torch.as_tensor(encode_counts(model, counts, batch_size), dtype=torch.float64)
    total = torch.zeros_like(beta)
    for s in range(0, counts.shape[0], batch_size):
        chunk = counts[s:s + batch_size]
        x = torch.from_numpy(chunk.toarray().astype(np.float64) if sp.issparse(chunk)
                             else np.array(chunk, dtype=np.float64))  # a copy: never read-only
        th = theta[s:s + batch_size]
        total += th.T @ (x / (th @ beta).clamp_min(1e-300))
    phi = beta * total
    layer.topic_counts.copy_(phi.to(layer.topic_counts.dtype))
    return phi.numpy()


@torch.no_grad()
def encode_counts(model: Autoencoder, counts, batch_size: int = 1024) -> np.ndarray:
    """Codes (N, latent) of a count matrix (θ for a topic model, bits for doc-hash)."""
    return _map_counts(model, counts, batch_size, model.encode)
