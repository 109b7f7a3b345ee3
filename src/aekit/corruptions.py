"""Input corruptions for denoising-style training, registered by name in :data:`CORRUPTIONS`.

A corruption is built as ``Corruption(**options)`` and called on a clean batch in the space
the model sees — images in [0, 1]; standardised tables, so a σ is in standard deviations —
during training: ``x̃ = corruption(x)``. The model learns to map x̃ back to
x, so the corruption decides the job: noise → denoising, ``mask`` → inpainting; the restoration
jobs register ``grayscale``, ``watermark``, ``downsample`` and ``blur`` beside these.
Randomness comes from torch's global generator, which :func:`aekit.training.fit` seeds and
checkpoints, so corrupted batches are repeatable and survive a resume.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from aekit.errors import AekitError
from aekit.registry import Registry

CORRUPTIONS: Registry = Registry("corruption")


class Corruption:
    #: clip the result to [0, 1] (images); off for standardised tabular data
    clip = False

    def __call__(self, x: Tensor) -> Tensor:
        raise NotImplementedError


@CORRUPTIONS.register("gaussian", help="additive Gaussian noise, fixed σ or σ ~ U[lo, hi] per sample")
class GaussianNoise(Corruption):
    def __init__(self, sigma: float | Sequence[float] = 0.1, clip: bool = False) -> None:
        lo, hi = (sigma, sigma) if isinstance(sigma, (int, float)) else tuple(sigma)
        if lo < 0 or hi < lo:
            raise AekitError(f"gaussian corruption needs 0 ≤ sigma (or a range lo ≤ hi), got {sigma}")
        self.lo, self.hi, self.clip = float(lo), float(hi), clip

    def __call__(self, x: Tensor) -> Tensor:
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        sigma = self.lo + (self.hi - self.lo) * torch.rand(shape, device=x.device, dtype=x.dtype)
        y = x + sigma * torch.randn_like(x)
        return y.clamp(0, 1) if self.clip else y


@CORRUPTIONS.register("salt_pepper", help="set a share p of values to the min (pepper) or max (salt)")
class SaltPepper(Corruption):
    def __init__(self, p: float = 0.1, low: float = 0.0, high: float = 1.0) -> None:
        if not 0 <= p <= 1:
            raise AekitError(f"salt_pepper needs 0 ≤ p ≤ 1, got {p}")
        self.p, self.low, self.high = p, low, high

    def __call__(self, x: Tensor) -> Tensor:
        u = torch.rand_like(x)
        y = torch.where(u < self.p / 2, torch.full_like(x, self.low), x)
        return torch.where((u >= self.p / 2) & (u < self.p), torch.full_like(x, self.high), y)


@CORRUPTIONS.register("mask", help="masking noise: zero a share p of input values (pixels/features)")
class MaskNoise(Corruption):
    """Vincent et al. 2008's masking noise. For images, ``per_pixel=True`` drops whole pixels
    (all channels at once) rather than single channel values."""

    def __init__(self, p: float = 0.25, fill: float = 0.0, per_pixel: bool = True) -> None:
        if not 0 <= p < 1:
            raise AekitError(f"mask needs 0 ≤ p < 1, got {p}")
        self.p, self.fill, self.per_pixel = p, fill, per_pixel

    def __call__(self, x: Tensor) -> Tensor:
        if self.per_pixel and x.dim() == 4:
            keep = torch.rand(x.shape[0], 1, *x.shape[2:], device=x.device) >= self.p
        else:
            keep = torch.rand_like(x) >= self.p
        return torch.where(keep, x, torch.full_like(x, self.fill))


# the restoration corruptions (grayscale, watermark, downsample, blur, holes), so CORRUPTIONS
# is complete whichever module a user imports first (at the end: they import from this one)
import aekit.corruptions_restore  # noqa: E402,F401
