"""Fully connected encoder/decoder: depth 1 is the shallow (vanilla) autoencoder, deeper is
the stacked autoencoder of Hinton & Salakhutdinov (2006), decoder mirroring the encoder.

    x (B, *shape) ─flatten─▶ [Linear─act]×len(hidden) ─Linear─▶ h (B, code_width)
    z (B, latent) ─▶ [Linear─act]×len(hidden), reversed ─Linear─unflatten─▶ x̂ (B, *shape)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch.nn as nn

from aekit.nn import ARCHS, activation


def default_hidden(input_dim: int) -> list[int]:
    # Hinton & Salakhutdinov's 1000-500-250 for MNIST-sized inputs; narrower for small inputs
    # so an 8×8 digit does not get a 1000-wide layer it cannot use.
    if input_dim >= 400:
        return [1000, 500, 250]
    return [max(64, 4 * input_dim), max(32, 2 * input_dim), max(16, input_dim)]


@ARCHS.register("mlp", help="fully connected; hidden=[] is shallow (vanilla), longer is deep")
def build_mlp(
    input_shape: Sequence[int],
    latent_dim: int,
    code_width: int,
    hidden: Sequence[int] | str | None = None,
    act: str = "gelu",
    decoder_hidden: Sequence[int] | None = None,
) -> tuple[nn.Module, nn.Module]:
    d = math.prod(input_shape)
    if hidden == "auto" or hidden is None:
        hidden = default_hidden(d)
    hidden = [int(w) for w in hidden]
    dec_hidden = [int(w) for w in decoder_hidden] if decoder_hidden is not None else hidden[::-1]

    enc: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    width = d
    for i, w in enumerate(hidden, 1):
        enc[f"linear{i}"] = nn.Linear(width, w)
        enc[f"act{i}"] = activation(act)
        width = w
    enc[f"linear{len(hidden) + 1}"] = nn.Linear(width, code_width)

    dec: OrderedDict[str, nn.Module] = OrderedDict()
    width = latent_dim
    for i, w in enumerate(dec_hidden, 1):
        dec[f"linear{i}"] = nn.Linear(width, w)
        dec[f"act{i}"] = activation(act)
        width = w
    dec[f"linear{len(dec_hidden) + 1}"] = nn.Linear(width, d)
    dec["unflatten"] = nn.Unflatten(1, tuple(input_shape))
    return nn.Sequential(enc), nn.Sequential(dec)
