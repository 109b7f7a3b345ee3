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

from aekit.errors import AekitError
from aekit.nn import ARCHS, activation, layer_widths


def default_hidden(input_dim: int) -> list[int]:
    # Hinton & Salakhutdinov's 1000-500-250 for MNIST-sized inputs; narrower for small inputs
    # so an 8×8 digit does not get a 1000-wide layer it cannot use.
    if input_dim >= 400:
        return [1000, 500, 250]
    return [max(64, 4 * input_dim), max(32, 2 * input_dim), max(16, input_dim)]


#: the most weights an MLP preset builds (400 MB in float32; training holds ~4× that)
MLP_MAX_PARAMETERS = 100_000_000


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
    hidden = layer_widths(hidden, "hidden")
    dec_hidden = (layer_widths(decoder_hidden, "decoder_hidden") if decoder_hidden is not None
                  else hidden[::-1])
    widths = [d, *hidden, code_width], [latent_dim, *dec_hidden, d]
    n_params = sum(a * b for ws in widths for a, b in zip(ws, ws[1:]))
    if n_params > MLP_MAX_PARAMETERS:  # refused before any memory is taken
        raise AekitError(
            f"a dense (MLP) autoencoder on {d:,} inputs would have {n_params / 1e6:,.0f} M "
            f"weights (~{16 * n_params / 2**30:,.0f} GB to train); make the samples smaller "
            "(--image-size resizes images, a folder's or one file) or use the conv preset")

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
