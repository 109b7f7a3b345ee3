"""Bottlenecks ("codes"), registered by name in :data:`CODES`.

A code is an ``nn.Module`` built as ``Code(latent_dim, **options)`` with a class attribute
``expand`` (how many encoder outputs it needs per latent). ``forward(h, sample)`` returns
``(z, losses)``; with ``sample=False`` it must be deterministic (a variational code returns
its mean), which is what :meth:`Autoencoder.encode` uses.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from aekit.errors import AekitError, is_integer, nonnegative
from aekit.registry import Registry

CODES: Registry = Registry("code")

_CODE_ACTS = {"none": nn.Identity, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class Code(nn.Module):
    expand = 1
    #: True for codes whose units are meant to be mostly zero (L0 and dead units are reported)
    sparse = False
    #: |z| above this counts as active for L0 / dead-unit statistics
    active_threshold = 1e-6

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def forward(self, h: Tensor, sample: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError


@CODES.register("dense", help="plain code, optional activation (none/relu/sigmoid/tanh)")
class DenseCode(Code):
    def __init__(self, latent_dim: int, activation: str = "none") -> None:
        super().__init__(latent_dim)
        if activation not in _CODE_ACTS:
            raise AekitError(f"dense code activation must be one of {sorted(_CODE_ACTS)}")
        self.act = _CODE_ACTS[activation]()
        self.sparse = activation in ("relu", "sigmoid")
        # a sigmoid unit is never exactly 0: call it active above 0.1 (KL-sparse codes sit
        # near their target ρ ≈ 0.05 when inactive)
        self.active_threshold = 0.1 if activation == "sigmoid" else 1e-6

    def forward(self, h: Tensor, sample: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        return self.act(h), {}


@CODES.register("topk", help="k-sparse code: keep the k largest (ReLU) units, zero the rest")
class TopKCode(Code):
    """Makhzani & Frey 2013, "k-Sparse Autoencoders"; ReLU before the top-k as in Gao et al.
    2024 (OpenAI TopK SAE), so kept units are non-negative."""

    sparse = True

    def __init__(self, latent_dim: int, k: int = 8) -> None:
        super().__init__(latent_dim)
        if not is_integer(k, 1, latent_dim):  # a JSON 2.0 or true reached topk() before
            raise AekitError(f"topk code needs an integer 1 ≤ k ≤ latent_dim ({latent_dim}), "
                             f"got k={k!r}")
        self.k = int(k)
        #: set by a model with the auxk penalty: training steps leave their pre-activations
        #: in ``pre_activation`` for it (which takes them, so no graph stays on the module)
        self.keep_pre_activation = False
        self.pre_activation: Tensor | None = None

    def forward(self, h: Tensor, sample: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        flat = h.flatten(1)  # (B, D)
        vals, idx = flat.topk(self.k, dim=1)
        z = torch.zeros_like(flat).scatter(1, idx, torch.relu(vals))
        # only a training step's own forward (sample=True) leaves them: encode() and the
        # contractive penalty's Jacobian (sample=False) would leave a graph on the module, or
        # a vmapped tensor, in their place
        if sample and self.training and self.keep_pre_activation:
            self.pre_activation = flat
        return z.view_as(h), {}


@CODES.register("gaussian", help="variational: reparameterised sample in training, mean at inference")
class GaussianCode(Code):
    """Kingma & Welling 2014. The encoder emits (μ, log σ²) along dim 1; the KL to N(0, I),
    summed over latents and averaged over the batch, is returned as ``losses["kl"]`` × β."""

    expand = 2

    def __init__(self, latent_dim: int, beta: float = 1.0) -> None:
        super().__init__(latent_dim)
        self.beta = nonnegative(beta, "the variational code's beta (KL weight)")

    def split(self, h: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def forward(self, h: Tensor, sample: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        mu, logvar = self.split(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return z, {"kl": self.beta * gaussian_kl(mu, logvar).mean()}


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per sample (B,), summed over the latents; in float32 (under
    bf16 autocast the rounding of each term, up to 0.035, exceeded a collapsed unit's KL)."""
    mu, logvar = mu.float(), logvar.float()
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).flatten(1).sum(1)


# the codes of other modules, so CODES is complete whichever module a user imports first
# (at the end: they import Code and CODES from this module)
import aekit.codes_binary  # noqa: E402,F401
import aekit.codes_quantized  # noqa: E402,F401
import aekit.codes_text  # noqa: E402,F401
