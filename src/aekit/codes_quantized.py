"""The ``quantized`` code: gain units, rounding and a learned factorized entropy model.

    h (B, M, h, w) ─× gain[q]─▶ y ─round (infer) / + U(−½, ½) (train)─▶ ŷ ─× inv_gain[q]─▶ z
                                                      │
                                          p(ŷ) = Π_c p_{q,c}(ŷ_c)  →  bits = −Σ log₂ p(ŷ)

* Quantisation and rate: Ballé, Laparra & Simoncelli 2017 ("End-to-end optimized image
  compression"): additive uniform noise in training stands in for rounding; the entropy
  model is the non-parametric factorized density of Ballé et al. 2018 ("Variational image
  compression with a scale hyperprior", appendix 6.1), one per latent channel, as in
  CompressAI's ``EntropyBottleneck``. In training the decoder sees the rounded value through
  a straight-through estimator while the rate uses the noisy one ("mixed" quantisation,
  Minnen & Singh 2020), so training matches inference.
* Variable rate: one model for every quality q. Gain vectors scale the latent before
  quantisation and inverse gains undo it after (Cui et al. 2021, "Asymmetric Gained Deep
  Image Compression with Continuous Rate Adaptation"); each quality has its own factorized
  density. The loss of quality q is ``SSE + bits / λ'_q`` per image — the CompressAI
  objective ``λ·255²·MSE + bpp`` multiplied by the pixel count, with ``λ' = λ·255²/3``.
* Determinism: :meth:`QuantizedCode.export_tables` computes integer frequency tables once
  (on the CPU, in float64) and stores them as buffers, so they travel in
  ``model.safetensors``; the range coder (``aekit.codec``) only ever reads those integers.
* Per-image table choice (forward adaptation): besides each channel's own table, export
  stores tables of the same density stretched by ``s_j = 2^((j − ADAPT_UNIT)/4)`` (a quarter
  octave apart, ½ … 5.7) and the encoder picks, per image and channel, the table that codes
  that channel in the fewest bits — or "all zeros", which codes nothing (``ADAPT_CHOICES``
  choices, 4 bits a channel in the file). One image's latents are rarely as wide as the
  training average in every channel: on CBSD68 the choice saves ~6 % of the bits at every
  quality (side information included), and the decoded pixels are exactly the same.

The ``codec`` preset is registered here too (this module is imported at the end of
``aekit.models``, after :data:`aekit.models.PRESETS` exists).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aekit.codes import CODES, Code
from aekit.errors import AekitError

#: CompressAI's MSE λ ladder (bmshj2018 qualities 1–6); λ' = λ·255²/3 per RGB image SSE
COMPRESSAI_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483)
#: the fixed-point precision of the stored frequency tables (they sum to 2**PRECISION)
PRECISION = 16
#: probability mass left to the escape symbol on each side when choosing a table's range
TAIL_MASS = 1e-9
#: choices of the per-image table (format v2): 0 = the channel is all zeros, j ≥ 1 = the
#: channel's density stretched by 2^((j − ADAPT_UNIT)/4); j = ADAPT_UNIT is the plain table
ADAPT_CHOICES = 16
ADAPT_UNIT = 5
#: the per-image tables' buffers: ragged (only as long as each table needs), absent (empty)
#: in models exported before they existed, which then write format-1 files
ADAPT_BUFFERS = ("adapt_counts", "adapt_start", "adapt_offset", "adapt_length")
LIKELIHOOD_MIN = 1e-9


def code_lambda(lam: float) -> float:
    """CompressAI's λ (``λ·255²·MSE + bpp``) → the code's λ' = λ·255²/3 (per RGB image SSE)."""
    return float(lam) * 255.0**2 / 3.0


class FactorizedDensity(nn.Module):
    """A learned, per-channel univariate density given by its CDF (Ballé 2018, §6.1).

    ``c(x) = σ(f_K ∘ … ∘ f_1(x))`` with ``f_k(x) = g(H_k x + b_k)``, ``H_k`` kept positive
    by a softplus and ``g(x) = x + tanh(a) ⊙ tanh(x)``, so c is monotone by construction.
    """

    def __init__(self, channels: int, filters: Sequence[int] = (3, 3, 3),
                 init_scale: float = 10.0) -> None:
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits_cdf(self, x: Tensor, sl: slice) -> Tensor:
        """x (C, 1, N) → logit of the CDF (C, 1, N) for the channels ``sl``."""
        for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(m[sl].to(x.dtype)), x) + b[sl].to(x.dtype)
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i][sl].to(x.dtype)) * torch.tanh(x)
        return x

    def likelihood(self, v: Tensor, sl: slice) -> Tensor:
        """P(v − ½ < Y < v + ½) per element of v (B, C, H, W), float32 and bounded below."""
        b, c, h, w = v.shape
        flat = v.float().permute(1, 0, 2, 3).reshape(c, 1, -1)  # (C, 1, B·H·W)
        lower = self.logits_cdf(flat - 0.5, sl)
        upper = self.logits_cdf(flat + 0.5, sl)
        # evaluate in the tail nearer to 0.5 for precision (CompressAI's sign trick)
        sign = -torch.sign(lower + upper).detach()
        lik = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        lik = lik.reshape(c, b, h, w).permute(1, 0, 2, 3)
        return lik.clamp_min(LIKELIHOOD_MIN)

    @torch.no_grad()
    def cdf(self, points: Tensor, sl: slice) -> Tensor:
        """CDF at ``points`` (N,) for every channel of ``sl``, float64: (C, N)."""
        n_ch = len(range(*sl.indices(self.matrices[0].shape[0])))
        x = points.double().view(1, 1, -1).expand(n_ch, 1, -1)
        return torch.sigmoid(self._logits_double(x, sl))[:, 0, :]

    def _logits_double(self, x: Tensor, sl: slice) -> Tensor:
        for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(m[sl].double()), x) + b[sl].double()
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i][sl].double()) * torch.tanh(x)
        return x


@CODES.register("quantized", help="rounded spatial code with gain units and a learned entropy model")
class QuantizedCode(Code):
    """See the module docstring. ``latent_dim`` is the channel count M of a spatial code.

    ``quality`` (an attribute) picks the rate point: an int in ``range(n_qualities)``; None
    means a random quality per batch in training and the highest one at inference."""

    def __init__(self, latent_dim: int, lambdas: Sequence[float] | None = None,
                 table_size: int = 128, ste: bool = True) -> None:
        super().__init__(latent_dim)
        lams = [code_lambda(v) for v in COMPRESSAI_LAMBDAS] if lambdas is None \
            else [float(v) for v in lambdas]
        if not lams or any(v <= 0 for v in lams) or lams != sorted(lams):
            raise AekitError("quantized code needs increasing positive lambdas")
        if not 8 <= table_size <= 4096:
            raise AekitError(f"table_size must be in [8, 4096], got {table_size}")
        q, m = len(lams), latent_dim
        self.n_qualities = q
        self.ste = ste
        self.quality: int | None = None
        self.register_buffer("lambdas", torch.tensor(lams, dtype=torch.float32))
        # initial step sizes follow high-rate theory: Δ ∝ λ^(-1/2), the top quality at 1
        init = 0.5 * torch.log(self.lambdas / self.lambdas[-1])
        self.log_gain = nn.Parameter(init.view(q, 1).repeat(1, m))
        self.log_inv_gain = nn.Parameter(-init.view(q, 1).repeat(1, m))
        self.density = FactorizedDensity(q * m)
        # integer coding tables, filled by export_tables(): counts sum to 2**PRECISION
        self.register_buffer("cdf_counts", torch.zeros(q, m, table_size, dtype=torch.int32))
        self.register_buffer("cdf_offset", torch.zeros(q, m, dtype=torch.int32))
        self.register_buffer("cdf_length", torch.zeros(q, m, dtype=torch.int32))
        self.register_buffer("tables_ready", torch.zeros((), dtype=torch.int32))
        # the stretched tables, filled by export_tables(): counts of all tables end to end,
        # and (Q, M, ADAPT_CHOICES) start / first value / length of each (choice 0 unused)
        for name in ADAPT_BUFFERS:
            self.register_buffer(name, torch.zeros(0, dtype=torch.int32))

    @property
    def adaptive(self) -> bool:
        """Whether the per-image tables were exported (format-2 files)."""
        return self.adapt_counts.numel() > 0

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        # the ragged tables take the saved shape; a model saved before they existed loads
        # without them (its files stay format 1, its model id unchanged)
        for name in ADAPT_BUFFERS:
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.empty_like(state_dict[key]))
            else:
                state_dict[key] = torch.zeros(0, dtype=torch.int32)
                setattr(self, name, torch.zeros(0, dtype=torch.int32))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- quantisation ------------------------------------------------------------------------
    def _channels(self, q: int) -> slice:
        return slice(q * self.latent_dim, (q + 1) * self.latent_dim)

    def pick_quality(self, sample: bool = False) -> int:
        """The quality set in ``quality``; else a random one for a training step (``sample``:
        every quality is trained), the top one otherwise (``encode`` is deterministic)."""
        if self.quality is not None:
            q = int(self.quality)
            if not 0 <= q < self.n_qualities:
                raise AekitError(f"quality index must be in [0, {self.n_qualities}), got {q}")
            return q
        if self.training and sample:
            return int(torch.randint(self.n_qualities, ()).item())
        return self.n_qualities - 1

    def gain(self, q: int) -> Tensor:
        return self.log_gain[q].exp().view(1, -1, 1, 1)

    def inv_gain(self, q: int) -> Tensor:
        return self.log_inv_gain[q].exp().view(1, -1, 1, 1)

    def quantize(self, h: Tensor, q: int, sample: bool) -> tuple[Tensor, Tensor]:
        """(z for the decoder, bits per image (B,)) at quality q; always in float32."""
        with torch.autocast(device_type=h.device.type, enabled=False):
            y = h.float() * self.gain(q)  # (B, M, h, w)
            if sample:
                noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
                lik = self.density.likelihood(noisy, self._channels(q))
                y_hat = y + (torch.round(y) - y).detach() if self.ste else noisy
            else:
                y_hat = torch.round(y)
                lik = self.density.likelihood(y_hat, self._channels(q))
            bits = -torch.log2(lik).flatten(1).sum(1)
            return y_hat * self.inv_gain(q), bits

    def forward(self, h: Tensor, sample: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        if h.dim() != 4:
            raise AekitError("the quantized code needs a spatial (B, M, h, w) encoder output")
        q = self.pick_quality(sample)
        z, bits = self.quantize(h, q, sample)
        return z, {"rate": (bits / self.lambdas[q]).mean()}

    # -- a new ladder from a trained one ------------------------------------------------------
    @torch.no_grad()
    def adopt_ladder(self, source: QuantizedCode) -> dict[str, list[int]]:
        """Start this code's qualities from a trained code with another λ ladder (same M).

        A λ the source has takes that quality's gains and density as they are. A new λ takes
        gains interpolated (or extrapolated, at the ends) log-linearly in log λ through the two
        nearest source qualities — high-rate theory's Δ ∝ λ^(−½) is such a line — and the
        nearest quality's density, rescaled exactly to the new gain: the latents become
        y' = r·y, so c'(x) = c(x / r), which is the first layer's positive weights divided by r.
        Returns which new qualities were copied and which were made up (0-based)."""
        if source.latent_dim != self.latent_dim:
            raise AekitError(f"the source code has {source.latent_dim} channels, this one "
                             f"{self.latent_dim}")
        log_src = source.lambdas.double().log()
        copied: list[int] = []
        new: list[int] = []
        for q, lam in enumerate(self.lambdas.double().log()):
            dist = (log_src - lam).abs()
            near = int(dist.argmin())
            if float(dist[near]) < 1e-6:
                lg, lig, r = source.log_gain[near], source.log_inv_gain[near], None
                copied.append(q)
            else:
                i, j = sorted(int(k) for k in dist.argsort()[:2]) if len(log_src) > 1 else (near, near)
                t = float((lam - log_src[i]) / (log_src[j] - log_src[i])) if j != i else 0.0
                lg = source.log_gain[i] + t * (source.log_gain[j] - source.log_gain[i])
                lig = source.log_inv_gain[i] + t * (source.log_inv_gain[j] - source.log_inv_gain[i])
                r = (lg - source.log_gain[near]).exp()  # (M,) y' = r · y
                new.append(q)
            self.log_gain[q].copy_(lg)
            self.log_inv_gain[q].copy_(lig)
            dst, src = self._channels(q), source._channels(near)
            for mine, theirs in ((self.density.matrices, source.density.matrices),
                                 (self.density.biases, source.density.biases),
                                 (self.density.factors, source.density.factors)):
                for a, b in zip(mine, theirs):
                    a[dst].copy_(b[src])
            if r is not None:
                first = self.density.matrices[0]
                w = F.softplus(first[dst].double()) / r.double().view(-1, 1, 1)
                first[dst].copy_(w + torch.log(-torch.expm1(-w)))  # softplus⁻¹
        self.tables_ready.zero_()
        return {"copied": copied, "new": new}

    # -- integer tables for the range coder ------------------------------------------------
    @torch.no_grad()
    def export_tables(self) -> None:
        """Compute the integer frequency tables from the learned densities (CPU, float64).

        For quality q and channel c the table covers integers ``offset … offset+n−1`` plus a
        final escape symbol for values outside (coded separately, see ``aekit.codec``). The
        stretched tables of the per-image choice are made the same way from ``c(x / s_j)``."""
        q_n, m, size = self.cdf_counts.shape
        half = 4 * size
        grid = torch.arange(-half, half + 1, dtype=torch.float64)
        counts = np.zeros((q_n, m, size), np.int64)
        offsets = np.zeros((q_n, m), np.int64)
        lengths = np.zeros((q_n, m), np.int64)
        shape = (q_n, m, ADAPT_CHOICES)
        a_start, a_offset, a_length = (np.zeros(shape, np.int64) for _ in range(3))
        pieces: list[np.ndarray] = []
        used = 0
        for q in range(q_n):
            sl = self._channels(q)
            for j in range(1, ADAPT_CHOICES):
                s = 2.0 ** ((j - ADAPT_UNIT) / 4.0)
                upper = self.density.cdf((grid + 0.5) / s, sl).cpu().numpy()  # (M, G)
                lower = self.density.cdf((grid - 0.5) / s, sl).cpu().numpy()
                for c in range(m):
                    table, offset = _table(upper[c], lower[c], grid, size)
                    if j == ADAPT_UNIT:  # s = 1: the channel's own table (format 1)
                        counts[q, c, : len(table)] = table
                        offsets[q, c], lengths[q, c] = offset, len(table)
                    pieces.append(table)
                    a_start[q, c, j], a_offset[q, c, j], a_length[q, c, j] = used, offset, len(table)
                    used += len(table)
        self.cdf_counts.copy_(torch.from_numpy(counts.astype(np.int32)))
        self.cdf_offset.copy_(torch.from_numpy(offsets.astype(np.int32)))
        self.cdf_length.copy_(torch.from_numpy(lengths.astype(np.int32)))
        self.adapt_counts = torch.from_numpy(np.concatenate(pieces).astype(np.int32))
        self.adapt_start = torch.from_numpy(a_start.astype(np.int32))
        self.adapt_offset = torch.from_numpy(a_offset.astype(np.int32))
        self.adapt_length = torch.from_numpy(a_length.astype(np.int32))
        self.tables_ready.fill_(1)


def _table(upper: np.ndarray, lower: np.ndarray, grid: Tensor, size: int) -> tuple[np.ndarray, int]:
    """One channel's integer table from its CDF at ``grid ± ½``: (counts of the regular values
    then the escape, summing to 2**PRECISION; the first value), at most ``size`` long."""
    lo_i = int(np.searchsorted(upper, TAIL_MASS))
    hi_i = int(np.searchsorted(upper, 1 - TAIL_MASS))
    lo_i, hi_i = min(lo_i, len(grid) - 1), min(hi_i, len(grid) - 1)
    if hi_i - lo_i + 1 > size - 1:  # too wide: keep the size−1 values that hold most mass
        # (the window centred between the tail points held 59 % of a skewed channel's mass
        # where the best one holds 63 %: the rest is coded through the escape)
        mass = np.clip(upper[lo_i:hi_i + 1] - lower[lo_i:hi_i + 1], 0, None)
        windows = np.convolve(mass, np.ones(size - 1), mode="valid")
        lo_i += int(np.argmax(windows))
        hi_i = lo_i + size - 2
    pmf = np.clip(upper[lo_i:hi_i + 1] - lower[lo_i:hi_i + 1], 0, None)
    escape = max(lower[lo_i] + (1.0 - upper[hi_i]), 0.0)
    return quantize_pmf(np.r_[pmf, escape], PRECISION), int(grid[lo_i])


def quantize_pmf(pmf: np.ndarray, precision: int) -> np.ndarray:
    """Integer frequencies ≥ 1 summing to exactly 2**precision, close to ``pmf``."""
    total = 1 << precision
    n = len(pmf)
    if n > total:
        raise AekitError("table longer than the fixed-point precision allows")
    p = pmf / pmf.sum() if pmf.sum() > 0 else np.full(n, 1.0 / n)
    counts = np.maximum(1, np.floor(p * (total - n)).astype(np.int64) + 1)
    diff = total - int(counts.sum())
    order = np.argsort(-p, kind="stable")
    i = 0
    while diff != 0:  # give/take the rounding remainder from the likeliest symbols
        k = order[i % n]
        if diff > 0:
            counts[k] += 1
            diff -= 1
        elif counts[k] > 1:
            counts[k] -= 1
            diff += 1
        i += 1
    return counts
