"""Bag-of-words encoder/decoder: word counts in, logits of a softmax over the vocabulary out
(the model's ``loss="multinomial"`` turns them into −Σ count·log p).

    counts (B, V) ─input─▶ [Linear─act]×len(hidden) ─dropout─▶ Linear ─(BatchNorm)─▶ h
    z (B, K) ─▶ "linear":  Linear(K, V) + bias                                  ─▶ logits (B, V)
               "prodlda": dropout ─▶ Linear(K, V, no bias) ─▶ BatchNorm(V)     ─▶ logits (B, V)
               "ecr":     dropout ─▶ EmbeddingTopics: θ·β  ─▶ BatchNorm(V)     ─▶ logits (B, V)

``input`` chooses what the encoder sees: ``counts`` (ProdLDA), ``log1p`` (log(1 + count)),
or ``tfidf`` (log(1 + count)·idf, L2-normalised; the idf weights are a buffer of the input
layer, set from the training corpus by :func:`set_idf` and saved with the model).

The "prodlda" decoder is the product of experts of Srivastava & Sutton (2017): the word
distribution is softmax(β θ) with the topic matrix β unnormalised, so the decoder weight
``decoder.linear.weight`` (V, K), read column by column, holds the topics; batch
normalisation of the logits is what keeps the topics from collapsing onto frequent words.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from aekit.errors import AekitError
from aekit.nn import ARCHS, activation, layer_widths

BOW_INPUTS = ("counts", "log1p", "tfidf")
BOW_DECODERS = ("linear", "prodlda", "ecr")


class BowInput(nn.Module):
    """Counts → the encoder's view of a document (see the module docstring)."""

    def __init__(self, vocab_size: int, mode: str = "counts") -> None:
        super().__init__()
        if mode not in BOW_INPUTS:
            raise AekitError(f"bow input must be one of {', '.join(BOW_INPUTS)}, got {mode!r}")
        self.mode = mode
        self.register_buffer("idf", torch.ones(vocab_size))

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)  # (B, V)
        if self.mode == "counts":
            return x
        x = torch.log1p(x.clamp_min(0))
        if self.mode == "tfidf":
            x = x * self.idf
            x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-8)
        return x


def set_idf(model: nn.Module, counts) -> None:
    """Set the idf buffer of a bow model's input layer from a (N, V) count matrix
    (scikit-learn's smoothed idf: log((1 + N) / (1 + df)) + 1)."""
    import numpy as np

    layer = getattr(model.encoder, "input", None)
    if not isinstance(layer, BowInput):
        raise AekitError("set_idf needs a model with a bow encoder")
    df = np.asarray((counts > 0).sum(0)).ravel().astype(np.float64)
    n = counts.shape[0]
    idf = np.log((1 + n) / (1 + df)) + 1
    layer.idf.copy_(torch.as_tensor(idf, dtype=layer.idf.dtype))


class EmbeddingTopics(nn.Module):
    """θ (B, K) ↦ θ·β (B, V), β (K, V) from topic and word vectors (see the module docstring).

    ``word_vectors`` (V, d) is a buffer: random unit vectors until :func:`set_word_vectors`
    puts the corpus's own there, before training. ``topic_counts`` (K, V) is a buffer that
    training fills at the end (:func:`aekit.text.modelling.attribute_counts`): how many of
    the training corpus's words each topic explains, from which its top words are read."""

    def __init__(self, n_topics: int, vocab_size: int, dim: int = 50, tau: float = 0.2) -> None:
        super().__init__()
        if tau <= 0:
            raise AekitError(f"the ecr decoder's temperature tau must be > 0, got {tau}")
        self.tau = float(tau)
        self.register_buffer("word_vectors",
                             nn.functional.normalize(torch.randn(vocab_size, dim), dim=1))
        topics = nn.init.trunc_normal_(torch.empty(n_topics, dim), std=0.1)
        self.topic_vectors = nn.Parameter(nn.functional.normalize(topics, dim=1))
        self.register_buffer("topic_counts", torch.zeros(n_topics, vocab_size))

    def cost(self) -> Tensor:
        """Squared distances (K, V) between topic and word vectors, in float32."""
        with torch.autocast(self.topic_vectors.device.type, enabled=False):
            t, w = self.topic_vectors.float(), self.word_vectors.float()
            return ((t * t).sum(1, keepdim=True) + (w * w).sum(1) - 2.0 * t @ w.T).clamp_min(0)

    def beta(self) -> Tensor:
        """(K, V): each word's weight shared out over the topics (columns sum to 1)."""
        return torch.softmax(-self.cost() / self.tau, dim=0)

    def forward(self, theta: Tensor) -> Tensor:
        return theta.float() @ self.beta()


def set_word_vectors(model: nn.Module, counts) -> None:
    """Put word vectors computed from a (N, V) count matrix (positive PMI of document
    co-occurrence, :func:`aekit.text.wordvec.ppmi_vectors`) into an ``ecr`` decoder."""
    from aekit.text.wordvec import ppmi_vectors

    layer = getattr(model.decoder, "topics", None)
    if not isinstance(layer, EmbeddingTopics):
        raise AekitError("set_word_vectors needs a model with the ecr topic decoder")
    vecs = ppmi_vectors(counts, layer.word_vectors.shape[1])
    layer.word_vectors.copy_(torch.as_tensor(vecs, dtype=layer.word_vectors.dtype))


def _act(name: str) -> nn.Module:
    return nn.Softplus() if name == "softplus" else activation(name)


@ARCHS.register("bow", help="bag of words: counts/TF-IDF in, softmax over the vocabulary out "
                            "(decoder linear, ProdLDA product of experts, or its "
                            "embedding-clustering form ecr)")
def build_bow(
    input_shape: Sequence[int],
    latent_dim: int,
    code_width: int,
    hidden: Sequence[int] = (200, 200),
    input: str = "counts",
    act: str = "softplus",
    dropout: float = 0.0,
    batchnorm: bool = False,
    decoder: str = "linear",
    decoder_dropout: float | None = None,
    embed_dim: int = 50,
    tau: float = 0.2,
) -> tuple[nn.Module, nn.Module]:
    v = math.prod(input_shape)
    if len(input_shape) != 1:
        raise AekitError(f"the bow architecture needs (N, vocabulary) data, got samples of shape "
                         f"{tuple(input_shape)}")
    if decoder not in BOW_DECODERS:
        raise AekitError(f"bow decoder must be one of {', '.join(BOW_DECODERS)}, got {decoder!r}")
    if not 0 <= dropout < 1:
        raise AekitError(f"dropout must be in [0, 1), got {dropout}")

    hidden = layer_widths(hidden, "hidden")
    enc: OrderedDict[str, nn.Module] = OrderedDict(input=BowInput(v, input))
    width = v
    for i, w in enumerate(hidden, 1):
        enc[f"linear{i}"] = nn.Linear(width, w)
        enc[f"act{i}"] = _act(act)
        width = w
    if dropout:
        enc["dropout"] = nn.Dropout(dropout)
    enc[f"linear{len(hidden) + 1}"] = nn.Linear(width, code_width)
    if batchnorm:
        enc["bn"] = nn.BatchNorm1d(code_width, affine=False)

    dec: OrderedDict[str, nn.Module] = OrderedDict()
    if decoder in ("prodlda", "ecr"):
        p = dropout if decoder_dropout is None else decoder_dropout
        if p:
            dec["dropout"] = nn.Dropout(p)
        if decoder == "ecr":
            dec["topics"] = EmbeddingTopics(latent_dim, v, int(embed_dim), tau)
        else:
            dec["linear"] = nn.Linear(latent_dim, v, bias=False)
        dec["bn"] = nn.BatchNorm1d(v, affine=False)
    else:
        dec["linear"] = nn.Linear(latent_dim, v)
    return nn.Sequential(enc), nn.Sequential(dec)
