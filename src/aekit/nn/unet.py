"""U-Net encoder/decoder for image-to-image restoration (Ronneberger et al. 2015), with a
residual output (Zhang et al. 2017, DnCNN: learn the correction, not the image).

    x (B, C, H, W) ─unshuffle r─▶ (B, C·r², H/r, W/r) ─stem─▶ [block ─(skip)─ down]×(L−1) ─block─to_code─▶ h
    z ─from_code─▶ [up ─cat(skip)─ block]×(L−1) ─to_pixels─▶ (B, C·r², …) ─shuffle r─▶ + x ─▶ out

``unshuffle=r`` (space-to-depth, as FFDNet does) runs the whole network at 1/r of the
resolution: r = 2 makes a denoiser ~4× cheaper, and r = s turns a bicubic-upscaled ×s image
into a network that works at the low resolution (ESPCN-style cost, VDSR-style residual).
``skips=False`` drops the skip connections (an ablation: what the skips buy); ``residual``
adds the input to the output (and its last convolution starts at zero, so an untrained model
is the identity and training only learns the correction; this trains several times faster).
The model's output activation should then be ``identity``. ``gate=True`` (with ``residual``)
adds one output channel, a per-pixel gate g: out = x + σ(g)·Δ. A model that undoes a *local*
corruption (a watermark) learns where to act and leaves the pixels where its gate is shut as they were
(the decoder keeps the last gate logits in ``gate_logits``, so training can supervise them
with the corruption's mask, as watermark-removal networks with a mask branch do).

The encoder hands its skip features to the decoder through a small shared holder, so the
model contract (``encode`` → code → ``decode``) is kept: ``decode`` uses the skips of the last
``encode`` (``reconstruct`` and ``forward`` always pair them). Input sides should be multiples
of ``size_multiple`` (= r·2^(L−1)); other sizes are padded (reflected) and cropped back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from aekit.errors import AekitError
from aekit.nn import ARCHS, activation


class _Skips:
    """Holder shared by a U-Net's encoder and decoder (deliberately not an nn.Module)."""

    def __init__(self) -> None:
        self.items: list[Tensor] = []


def _block(c_in: int, c_out: int, n: int, act: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1), activation(act)]
    return nn.Sequential(*layers)


class UNetEncoder(nn.Module):
    def __init__(self, channels: int, widths: list[int], blocks: int, act: str, unshuffle: int,
                 code_width: int, skips: _Skips, use_skips: bool) -> None:
        super().__init__()
        self._holder = skips
        self.use_skips = use_skips
        self.levels = len(widths)
        self.size_multiple = unshuffle * 2 ** (self.levels - 1)
        self.unshuffle = nn.PixelUnshuffle(unshuffle) if unshuffle > 1 else nn.Identity()
        self.stem = nn.Sequential(nn.Conv2d(channels * unshuffle**2, widths[0], 3, padding=1),
                                  activation(act))
        for i in range(self.levels):
            setattr(self, f"level{i + 1}", _block(widths[i], widths[i], blocks, act))
            if i + 1 < self.levels:
                setattr(self, f"down{i + 1}", nn.Sequential(
                    nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1), activation(act)))
        self.to_code = nn.Conv2d(widths[-1], code_width, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) → (B, code_width, H/m, W/m)
        m = self.size_multiple
        feats = [x]
        ph, pw = (-x.shape[-2]) % m, (-x.shape[-1]) % m
        if ph or pw:  # any size works: pad (reflected) here, the decoder crops back
            mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
            x = nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
        h = self.stem(self.unshuffle(x))
        for i in range(self.levels):
            h = getattr(self, f"level{i + 1}")(h)
            if i + 1 < self.levels:
                feats.append(h)
                h = getattr(self, f"down{i + 1}")(h)
        self._holder.items = feats
        return self.to_code(h)


class UNetDecoder(nn.Module):
    def __init__(self, channels: int, widths: list[int], blocks: int, act: str, unshuffle: int,
                 latent_dim: int, skips: _Skips, use_skips: bool, residual: bool,
                 gate: bool = False) -> None:
        super().__init__()
        self._holder = skips
        self.use_skips, self.residual, self.gate = use_skips, residual, gate
        self.channels = channels
        #: the gate's logits (B, 1, H, W) of the last forward pass (gate=True only)
        self.gate_logits: Tensor | None = None
        #: inference only: a gate below this acts as shut, and above it opens on a linear ramp
        #: to 1, so pixels the network is unsure of are left exactly as they were
        self.gate_threshold = 0.0
        self.levels = len(widths)
        self.from_code = nn.Sequential(nn.Conv2d(latent_dim, widths[-1], 3, padding=1),
                                       activation(act))
        for i in reversed(range(self.levels - 1)):
            setattr(self, f"up{i + 1}", nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(widths[i + 1], widths[i], 3, padding=1), activation(act)))
            c_in = widths[i] * (2 if use_skips else 1)
            setattr(self, f"fuse{i + 1}", _block(c_in, widths[i], max(blocks, 1), act))
        self.to_pixels = nn.Conv2d(widths[0], (channels + int(gate)) * unshuffle**2, 3, padding=1)
        if residual:  # start as the identity: training only ever has to learn the correction
            nn.init.zeros_(self.to_pixels.weight)
            nn.init.zeros_(self.to_pixels.bias)
        self.shuffle = nn.PixelShuffle(unshuffle) if unshuffle > 1 else nn.Identity()

    @property
    def standalone(self) -> bool:
        """Whether the output is a function of the code alone (no skips, no residual input):
        only then can the decoder run, or be exported, without its encoder."""
        return not (self.use_skips or self.residual)

    def forward(self, z: Tensor) -> Tensor:
        feats = self._holder.items
        if (self.use_skips or self.residual) and not feats:
            raise AekitError("a unet decoder needs the skip features of its encoder: "
                             "decode right after encode (or use reconstruct)")
        h = self.from_code(z)
        for i in reversed(range(self.levels - 1)):
            h = getattr(self, f"up{i + 1}")(h)
            if self.use_skips:
                h = torch.cat([h, feats[i + 1]], dim=1)
            h = getattr(self, f"fuse{i + 1}")(h)
        out = self.shuffle(self.to_pixels(h))
        out = out[..., :feats[0].shape[-2], :feats[0].shape[-1]]
        if self.gate:
            out, g = out[:, :self.channels], out[:, self.channels:]
            self.gate_logits = g
            p = torch.sigmoid(g)
            if self.gate_threshold > 0:
                t = self.gate_threshold
                p = ((p - t) / (1 - t)).clamp(0, 1)
            out = p * out
        if self.residual:
            out = out + feats[0]
        self._holder.items = []  # free the skip activations
        return out


@ARCHS.register("unet", help="U-Net: conv encoder/decoder with skip connections, residual output")
def build_unet(
    input_shape: Sequence[int],
    latent_dim: int,
    code_width: int,
    widths: Sequence[int] | None = None,
    levels: int | None = None,
    blocks: int = 2,
    act: str = "relu",
    unshuffle: int = 1,
    skips: bool = True,
    residual: bool = True,
    gate: bool = False,
) -> tuple[nn.Module, nn.Module]:
    if len(input_shape) != 3:
        raise AekitError(f"the unet architecture needs image input (C, H, W), got {tuple(input_shape)}")
    c, h, w = (int(s) for s in input_shape)
    unshuffle = int(unshuffle)
    if unshuffle < 1 or h % unshuffle or w % unshuffle:
        raise AekitError(f"unshuffle must be ≥ 1 and divide the image size {h}×{w}, got {unshuffle}")
    if levels is None and widths:
        levels = len(widths)
    if levels is None:
        levels = 1
        while levels < 3 and (h // unshuffle) % 2**levels == 0 and (w // unshuffle) % 2**levels == 0 \
                and min(h, w) // unshuffle // 2**levels >= 2:
            levels += 1
    if gate and not residual:
        raise AekitError("unet gate=True needs residual=True (the gate blends a correction into the input)")
    levels = int(levels)
    if levels < 1:
        raise AekitError(f"unet needs ≥ 1 level, got {levels}")
    widths = [int(x) for x in (widths or [32 * 2**i for i in range(levels)])][:levels]
    while len(widths) < levels:
        widths.append(widths[-1] * 2)
    holder = _Skips()
    enc = UNetEncoder(c, widths, int(blocks), act, unshuffle, code_width, holder, bool(skips))
    dec = UNetDecoder(c, widths, int(blocks), act, unshuffle, latent_dim, holder, bool(skips),
                      bool(residual), bool(gate))
    return enc, dec
