"""Codes for the text presets: ``logistic_normal`` (ProdLDA topics) and ``doc_binary``
(semantic hashing of documents).

``doc_binary`` is this branch's binary code; a general ``binary`` code may exist elsewhere
(``codes_binary.py``). They differ in training trick (here: stochastic bits with a
straight-through gradient, as in NASH, Shen et al. 2018), and can be unified later.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from aekit.codes import CODES, Code
from aekit.errors import AekitError, nonnegative


@CODES.register("logistic_normal",
                help="topic proportions: softmax of a Gaussian, KL to a Laplace-approximated "
                     "Dirichlet prior (ProdLDA)")
class LogisticNormalCode(Code):
    """Srivastava & Sutton 2017, "Autoencoding Variational Inference for Topic Models".

        h ─▶ (μ, log σ²) ─sample─▶ r ─softmax─▶ θ  (document–topic proportions, sums to 1)

    The prior is the Laplace approximation (in the softmax basis) of a symmetric
    Dirichlet(α): mean log α − mean(log α) = 0, variance (1/α)(1 − 2/K) + (1/K²)·Σ 1/α.
    At inference θ = softmax(μ) (deterministic)."""

    expand = 2

    def __init__(self, latent_dim: int, alpha: float = 1.0, beta: float = 1.0) -> None:
        super().__init__(latent_dim)
        if latent_dim < 2:
            raise AekitError(f"a topic model needs at least 2 topics, got {latent_dim}")
        if nonnegative(alpha, "the Dirichlet prior's alpha") == 0:
            raise AekitError(f"the Dirichlet prior's alpha must be > 0, got {alpha}")
        k = latent_dim
        a = torch.full((k,), float(alpha))
        self.register_buffer("prior_mean", a.log() - a.log().mean(), persistent=False)
        self.register_buffer("prior_var", (1 / a) * (1 - 2 / k) + (1 / a).sum() / k**2,
                             persistent=False)
        self.beta = nonnegative(beta, "the topic code's beta (KL weight)")

    def forward(self, h: Tensor, sample: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        mu, logvar = h.chunk(2, dim=1)  # (B, K) each
        logvar = logvar.clamp(-30.0, 20.0)
        r = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        theta = torch.softmax(r, dim=1)
        var = logvar.exp()
        kl = 0.5 * (var / self.prior_var + (mu - self.prior_mean).pow(2) / self.prior_var
                    + self.prior_var.log() - logvar - 1)
        return theta, {"kl": self.beta * kl.sum(1).mean()}


@CODES.register("doc_binary",
                help="binary code for semantic hashing: stochastic bits (straight-through) in "
                     "training, sigmoid > 0.5 at inference")
class DocBinaryCode(Code):
    """Bits for Hamming-distance search (Salakhutdinov & Hinton 2009, "Semantic hashing").

        h ─sigmoid─▶ p ─▶ training: b ~ Bernoulli(p), gradient of p (straight-through)
                         inference: b = 1[p > 0.5]

    Sampling the bits in training (NASH, Shen et al. 2018) forces the decoder to work from
    bits, the role Salakhutdinov & Hinton's added noise played. ``kl_weight`` adds the KL
    to a Bernoulli(½) prior, which keeps bits balanced (each bit splits the corpus)."""

    sparse = False

    def __init__(self, latent_dim: int, kl_weight: float = 0.0) -> None:
        super().__init__(latent_dim)
        self.kl_weight = nonnegative(kl_weight, "the binary code's kl_weight")

    def probabilities(self, h: Tensor) -> Tensor:
        """P(bit = 1) of each bit (B, bits); the code is ``probabilities > ½``. Float32:
        under bf16 autocast 1 − 1e-6 rounds to 1 and the KL's log(1 − q) to −inf."""
        return torch.sigmoid(h.float())

    def forward(self, h: Tensor, sample: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        p = self.probabilities(h)  # (B, bits)
        if not sample:
            return (p > 0.5).to(p.dtype), {}
        b = (torch.rand_like(p) < p).to(p.dtype)
        z = p + (b - p).detach()
        losses: dict[str, Tensor] = {}
        if self.kl_weight:
            q = p.clamp(1e-6, 1 - 1e-6)
            kl = q * (q.log() + math.log(2)) + (1 - q) * ((1 - q).log() + math.log(2))
            losses["kl"] = self.kl_weight * kl.sum(1).mean()
        return z, losses
