"""Analysis and synthesis transforms of the learned image codec (Ballé et al. 2018).

    x (B, C, H, W) ─pad to 16─▶ [conv5×5 s2 ─GDN]×3 ─conv5×5 s2─▶ y (B, M, H/16, W/16)
    ŷ (B, M, h, w) ─[deconv5×5 s2 ─IGDN]×3 ─deconv5×5 s2─crop─▶ x̂ logits (B, C, H, W)

GDN is the generalized divisive normalization of Ballé, Laparra & Simoncelli 2016,
``y_i = x_i / sqrt(β_i + Σ_j γ_ij x_j²)``; its inverse (IGDN) multiplies instead. It is a
better nonlinearity than ReLU/GELU for transform coding at the same width (Ballé 2018).

Images of any size work: the encoder pads (replicate) to a multiple of 16 and the decoder
crops back to the model's nominal ``input_shape``. The codec itself (``aekit.codec``) runs
``decoder.body`` and crops to each file's true size, so one model codes any image.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aekit.errors import AekitError
from aekit.nn import ARCHS, activation

#: total down-sampling factor of the transforms (4 stride-2 stages)
STRIDE = 16


class GDN(nn.Module):
    """(Inverse) generalized divisive normalization over channels, computed in float32.

    β and γ are kept non-negative by squaring a raw parameter (with a small floor), the
    reparametrisation of Ballé 2018 without its pedestal bookkeeping."""

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6,
                 gamma_init: float = 0.1) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta_min = beta_min
        self.beta_raw = nn.Parameter(torch.ones(channels))
        self.gamma_raw = nn.Parameter(torch.eye(channels) * gamma_init ** 0.5)

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        with torch.autocast(device_type=x.device.type, enabled=False):  # bf16 is too coarse here
            x = x.float()
            beta = self.beta_raw.float().pow(2) + self.beta_min
            gamma = self.gamma_raw.float().pow(2)
            c = gamma.shape[0]
            norm = F.conv2d(x * x, gamma.view(c, c, 1, 1), beta)  # (B, C, H, W)
            out = x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)
        return out.to(dtype)


class PadTo(nn.Module):
    """Replicate-pad H and W up to a multiple of ``multiple`` (bottom/right)."""

    def __init__(self, multiple: int) -> None:
        super().__init__()
        self.multiple = multiple

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x


class CropTo(nn.Module):
    """Crop the top-left ``(h, w)`` of a larger image."""

    def __init__(self, h: int, w: int) -> None:
        super().__init__()
        self.h, self.w = h, w

    def forward(self, x: Tensor) -> Tensor:
        return x[..., : self.h, : self.w]


def _deconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)


@ARCHS.register("codec", help="Ballé 2018 transforms: 4 × (5×5 conv s2 + GDN), spatial code")
def build_codec(
    input_shape: Sequence[int],
    latent_dim: int,
    code_width: int,
    channels: int = 128,
    act: str = "gdn",
) -> tuple[nn.Module, nn.Module]:
    """``channels`` (N) is the hidden width, ``latent_dim`` (M) the code's channel count;
    ``act`` is ``gdn`` or any name of :data:`aekit.nn.ACTIVATIONS`."""
    if len(input_shape) != 3:
        raise AekitError(f"the codec architecture needs image input (C, H, W), got {tuple(input_shape)}")
    c, h, w = (int(s) for s in input_shape)
    n = int(channels)

    def nonlin(inverse: bool) -> nn.Module:
        return GDN(n, inverse=inverse) if act == "gdn" else activation(act)

    enc: OrderedDict[str, nn.Module] = OrderedDict(pad=PadTo(STRIDE))
    prev = c
    for i in range(3):
        enc[f"conv{i + 1}"] = nn.Conv2d(prev, n, 5, stride=2, padding=2)
        enc[f"gdn{i + 1}"] = nonlin(False)
        prev = n
    enc["to_code"] = nn.Conv2d(n, code_width, 5, stride=2, padding=2)

    body: OrderedDict[str, nn.Module] = OrderedDict()
    prev = latent_dim
    for i in range(3):
        body[f"deconv{i + 1}"] = _deconv(prev, n)
        body[f"igdn{i + 1}"] = nonlin(True)
        prev = n
    body["to_pixels"] = _deconv(n, c)
    decoder = nn.Sequential(OrderedDict(body=nn.Sequential(body), crop=CropTo(h, w)))
    return nn.Sequential(enc), decoder
