"""Convolutional encoder/decoder.

    x (B, C, H, W) ─[conv s2 ─act]×L─▶ (B, c_L, H/2^L, W/2^L) ─flatten─Linear─▶ h (B, code_width)
    z (B, latent) ─Linear─unflatten─▶ (B, c_L, H/2^L, W/2^L) ─[up×2 ─conv ─act]×L─conv─▶ x̂

Upsampling is resize-convolution (nearest ×2 then 3×3 conv, free of the checkerboard
artefacts of transposed convolutions; Odena et al. 2016) or ``up="transposed"``.
``spatial=True`` drops the linear layers and keeps a spatial code ``(B, latent, h, w)``
(for codecs and image-to-image models); ``latent_dim`` is then its channel count.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch.nn as nn

from aekit.errors import AekitError, is_integer
from aekit.nn import ARCHS, activation, layer_widths


def auto_levels(h: int, w: int, max_levels: int = 3, min_size: int = 2) -> int:
    """The most stride-2 levels (≤ max_levels) that divide both sides and keep ≥ min_size."""
    levels = 0
    while (
        levels < max_levels
        and h % (2 ** (levels + 1)) == 0
        and w % (2 ** (levels + 1)) == 0
        and h // 2 ** (levels + 1) >= min_size
        and w // 2 ** (levels + 1) >= min_size
    ):
        levels += 1
    return levels


@ARCHS.register("conv", help="strided conv down, resize- or transposed-conv up")
def build_conv(
    input_shape: Sequence[int],
    latent_dim: int,
    code_width: int,
    channels: Sequence[int] | None = None,
    levels: int | None = None,
    act: str = "gelu",
    up: str = "resize",
    spatial: bool = False,
) -> tuple[nn.Module, nn.Module]:
    if len(input_shape) != 3:
        raise AekitError(f"the conv architecture needs image input (C, H, W), got {tuple(input_shape)}")
    c, h, w = (int(s) for s in input_shape)
    if levels is None:
        levels = auto_levels(h, w)
    if not is_integer(levels, 0):
        raise AekitError(f"levels (conv downsamplings) is an integer ≥ 0, got {levels!r}")
    if h % (2**levels) or w % (2**levels):
        raise AekitError(f"image size {h}×{w} is not divisible by 2^{levels} for {levels} conv levels")
    if channels is None:
        channels = [32, 64, 128, 256][:levels] or [32]
    channels = layer_widths(channels, "channels")[:max(levels, 1)]
    if not channels:
        raise AekitError("channels lists at least one width (one per conv level)")
    while len(channels) < levels:
        channels.append(channels[-1] * 2)
    if up not in ("resize", "transposed"):
        raise AekitError(f"up must be 'resize' or 'transposed', got {up!r}")

    enc: OrderedDict[str, nn.Module] = OrderedDict()
    prev = c
    for i in range(levels):
        enc[f"conv{i + 1}"] = nn.Conv2d(prev, channels[i], 3, stride=2, padding=1)
        enc[f"act{i + 1}"] = activation(act)
        prev = channels[i]
    if levels == 0:
        enc["conv1"] = nn.Conv2d(prev, channels[0], 3, padding=1)
        enc["act1"] = activation(act)
        prev = channels[0]
    hh, ww = h // 2**levels, w // 2**levels
    if spatial:
        enc["to_code"] = nn.Conv2d(prev, code_width, 3, padding=1)
    else:
        enc["flatten"] = nn.Flatten()
        enc["to_code"] = nn.Linear(prev * hh * ww, code_width)

    dec: OrderedDict[str, nn.Module] = OrderedDict()
    if spatial:
        dec["from_code"] = nn.Conv2d(latent_dim, prev, 3, padding=1)
    else:
        dec["from_code"] = nn.Linear(latent_dim, prev * hh * ww)
        dec["unflatten"] = nn.Unflatten(1, (prev, hh, ww))
    dec["act0"] = activation(act)
    rev = list(reversed(channels[:levels]))
    for i in range(levels):
        nxt = rev[i + 1] if i + 1 < levels else max(rev[-1] // 2, 16)
        if up == "resize":
            dec[f"up{i + 1}"] = nn.Upsample(scale_factor=2, mode="nearest")
            dec[f"conv{i + 1}"] = nn.Conv2d(rev[i], nxt, 3, padding=1)
        else:
            dec[f"deconv{i + 1}"] = nn.ConvTranspose2d(rev[i], nxt, 4, stride=2, padding=1)
        dec[f"act{i + 1}"] = activation(act)
        prev = nxt
    dec["to_pixels"] = nn.Conv2d(prev, c, 3, padding=1)
    return nn.Sequential(enc), nn.Sequential(dec)

