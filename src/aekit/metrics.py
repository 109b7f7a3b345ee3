"""Metrics on data-space tensors (images in [0, 1])."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def sse_per_sample(x_hat: Tensor, x: Tensor) -> Tensor:
    """Summed squared error per sample, shape (B,) — Hinton & Salakhutdinov's measure."""
    return (x_hat - x).pow(2).flatten(1).sum(1)


def mse(x_hat: Tensor, x: Tensor) -> float:
    return float((x_hat - x).pow(2).mean())


def psnr(x_hat: Tensor | np.ndarray, x: Tensor | np.ndarray, data_range: float = 1.0) -> float:
    """PSNR in dB of the mean squared error over everything given."""
    err = float(((torch.as_tensor(x_hat, dtype=torch.float64) -
                  torch.as_tensor(x, dtype=torch.float64)) ** 2).mean())
    return math.inf if err == 0 else 10 * math.log10(data_range**2 / err)


def explained_variance(sse_total: float, x_sq_dev_total: float) -> float:
    """1 − SSE / total variance (summed squared deviation from the per-feature mean)."""
    return 1.0 - sse_total / x_sq_dev_total if x_sq_dev_total > 0 else float("nan")


def l0(z: Tensor, eps: float = 1e-6) -> float:
    """Mean number of active (non-zero) code units per sample."""
    return float((z.flatten(1).abs() > eps).sum(1).float().mean())


def dead_fraction(active_count: Tensor) -> float:
    """Share of code units never active over a dataset (``active_count`` per unit)."""
    return float((active_count == 0).float().mean())


class RunningReconstruction:
    """Accumulates reconstruction metrics over batches (bounded memory)."""

    def __init__(self) -> None:
        self.n = 0
        self.numel = 0
        self.sse = 0.0
        self.sum = None
        self.sumsq = None

    def update(self, x_hat: Tensor, x: Tensor) -> None:
        x64 = x.double().flatten(1)
        self.sse += float(sse_per_sample(x_hat.double(), x.double()).sum())
        self.n += x.shape[0]
        self.numel += x.numel()
        s, ss = x64.sum(0), (x64**2).sum(0)
        self.sum = s if self.sum is None else self.sum + s
        self.sumsq = ss if self.sumsq is None else self.sumsq + ss

    def result(self, data_range: float | None = 1.0) -> dict[str, float]:
        total_var = float((self.sumsq - self.sum**2 / self.n).sum()) if self.n else float("nan")
        m = self.sse / max(self.numel, 1)
        out = {"mse": m, "sse_per_image": self.sse / max(self.n, 1),
               "explained_variance": explained_variance(self.sse, total_var), "n": self.n}
        if data_range is not None:
            out["psnr"] = math.inf if m == 0 else 10 * math.log10(data_range**2 / m)
        return out
