"""Bag-of-words encoder/decoder: word counts in, logits of a softmax over the vocabulary out
(the model's ``loss="multinomial"`` turns them into −Σ count·log p).

    counts (B, V) ─input─▶ [Linear─act]×len(hidden) ─dropout─▶ Linear ─(BatchNorm)─▶ h
    z (B, K) ─▶ "linear":  Linear(K, V) + bias                                  ─▶ logits (B, V)
               "prodlda": dropout ─▶ Linear(K, V, no bias) ─▶ BatchNorm(V)     ─▶ logits (B, V)

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
from aekit.nn import ARCHS, activation

BOW_INPUTS = ("counts", "log1p", "tfidf")


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


def _act(name: str) -> nn.Module:
    return nn.Softplus() if name == "softplus" else activation(name)


@ARCHS.register("bow", help="bag of words: counts/TF-IDF in, softmax over the vocabulary out "
                            "(decoder linear or ProdLDA product of experts)")
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
) -> tuple[nn.Module, nn.Module]:
    v = math.prod(input_shape)
    if len(input_shape) != 1:
        raise AekitError(f"the bow architecture needs (N, vocabulary) data, got samples of shape "
                         f"{tuple(input_shape)}")
    if decoder not in ("linear", "prodlda"):
        raise AekitError(f"bow decoder must be 'linear' or 'prodlda', got {decoder!r}")
    if not 0 <= dropout < 1:
        raise AekitError(f"dropout must be in [0, 1), got {dropout}")

    enc: OrderedDict[str, nn.Module] = OrderedDict(input=BowInput(v, input))
    width = v
    for i, w in enumerate(hidden, 1):
        enc[f"linear{i}"] = nn.Linear(width, int(w))
        enc[f"act{i}"] = _act(act)
        width = int(w)
    if dropout:
        enc["dropout"] = nn.Dropout(dropout)
    enc[f"linear{len(hidden) + 1}"] = nn.Linear(width, code_width)
    if batchnorm:
        enc["bn"] = nn.BatchNorm1d(code_width, affine=False)

    dec: OrderedDict[str, nn.Module] = OrderedDict()
    if decoder == "prodlda":
        p = dropout if decoder_dropout is None else decoder_dropout
        if p:
            dec["dropout"] = nn.Dropout(p)
        dec["linear"] = nn.Linear(latent_dim, v, bias=False)
        dec["bn"] = nn.BatchNorm1d(v, affine=False)
    else:
        dec["linear"] = nn.Linear(latent_dim, v)
    return nn.Sequential(enc), nn.Sequential(dec)
