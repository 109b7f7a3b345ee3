"""Evaluating and applying a trained model over a dataset, in batches (bounded memory)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.codes import gaussian_kl
from aekit.data.arrays import ArrayData
from aekit.data.stream import PageReleaser
from aekit.errors import AekitError
from aekit.io import atomic_path
from aekit.metrics import RunningReconstruction, dead_fraction, l0
from aekit.models import Autoencoder


@torch.no_grad()
def evaluate_model(model: Autoencoder, data: ArrayData, batch_size: int = 512) -> dict[str, Any]:
    """Reconstruction metrics in data space (images: pixels in [0, 1]), plus L0 and the dead
    share for sparse codes and the ELBO for variational ones."""
    model.eval()
    dev = next(model.parameters()).device
    run = RunningReconstruction()
    active = None
    l0_sum = 0.0
    kl_sum = recon_loss_sum = 0.0
    gaussian = model.config.code == "gaussian"
    devices = [dev] if dev.type == "cuda" else []
    # a held-out split's rows are scattered over a memory-mapped file: release its pages
    # after every batch (evaluating one left the whole file resident)
    release = PageReleaser(data.x, every=1)
    for i, xb in enumerate(data.iter_batches(batch_size)):
        release(1)
        xb = xb.to(dev)
        out = model(xb)
        run.update(out.x_hat, xb)
        z = out.z.flatten(1)
        thr = getattr(model.code, "active_threshold", 1e-6)
        nz = (z.abs() > thr)
        active = nz.sum(0) if active is None else active + nz.sum(0)
        l0_sum += l0(z, thr) * len(xb)
        if gaussian:
            # the ELBO's reconstruction term is an expectation over z ~ q(z|x): one seeded
            # draw per sample (unbiased; the dataset mean averages the noise away). At z = μ
            # it read 1.6 nats too high on digits. The KL is reported without β.
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(i)
                drawn = model(xb, sample=True)
            recon_loss_sum += float(drawn.losses["recon"]) * len(xb)
            mu, logvar = model.code.split(model.encoder(model.normalize(model.as_batch(xb))))
            kl_sum += float(gaussian_kl(mu, logvar).sum())
    unit = model.config.normalization == "unit"
    res: dict[str, Any] = run.result(1.0 if unit else None)
    code = model.code
    if getattr(code, "sparse", False):
        res["l0"] = l0_sum / run.n
        res["dead_fraction"] = dead_fraction(active)
        res["latent_units"] = int(active.numel())
    if gaussian:
        res["kl"] = kl_sum / run.n
        # ELBO in the model's loss units: −(E_q[reconstruction term] + KL) per sample
        res["elbo"] = -(recon_loss_sum + kl_sum) / run.n
    return res


@torch.no_grad()
def encode_to_npy(model: Autoencoder, data: ArrayData, out: str | Path, layer: str | None = None,
                  batch_size: int = 1024, progress: bool = False) -> tuple[int, ...]:
    """Codes (or one layer's activations) of every sample into ``out`` (.npy), streamed: the
    output is written batch by batch to a temp file, then renamed into place; memory stays
    bounded by the batch size, whatever the dataset's size."""
    model.eval()
    dev = next(model.parameters()).device
    n = len(data)
    first = data.batch(np.arange(min(1, n))).to(dev)
    feats = _features(model, first, layer)
    shape = (n, *feats.shape[1:])
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, unit="sample", leave=False)
    # written sequentially through a plain file (a writable memory map would keep every
    # written page resident); input pages of a memory-mapped .npy are released as we go
    release = PageReleaser(data.x)
    row_bytes = data.x.dtype.itemsize * math.prod(data.x.shape[1:])
    with atomic_path(out, suffix=".npy") as tmp, open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                "fortran_order": False, "shape": shape})
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(start + batch_size, n))
            feats = _features(model, data.batch(idx).to(dev), layer)
            f.write(np.ascontiguousarray(feats.cpu().numpy(), dtype=np.float32).tobytes())
            release(len(idx) * row_bytes)
            if bar is not None:
                bar.update(len(idx))
    if bar is not None:
        bar.close()
    return shape


def _features(model: Autoencoder, x: torch.Tensor, layer: str | None) -> torch.Tensor:
    if layer is None or layer == "code":
        return model.encode(x)
    outs = model.layer_outputs(x)
    if layer not in outs:
        raise AekitError(f"no layer {layer!r}; layers: {', '.join(outs)}")
    return outs[layer]


@torch.no_grad()
def reconstruct_array(model: Autoencoder, data: ArrayData, batch_size: int = 512,
                      limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(originals, reconstructions) as float32 arrays in data space."""
    model.eval()
    dev = next(model.parameters()).device
    n = len(data) if limit is None else min(limit, len(data))
    xs, hs = [], []
    for start in range(0, n, batch_size):
        xb = data.batch(np.arange(start, min(start + batch_size, n))).to(dev)
        xs.append(xb.cpu().numpy())
        hs.append(model.reconstruct(xb).cpu().numpy())
    return np.concatenate(xs), np.concatenate(hs)


def image_grid(rows: list[np.ndarray], pad: int = 1) -> np.ndarray:
    """Stack rows of (N, C, H, W) images into one (H', W'[, 3]) picture in [0, 1]."""
    n = max(len(r) for r in rows)
    c, h, w = rows[0].shape[1:]
    grid = np.ones((len(rows) * (h + pad) + pad, n * (w + pad) + pad, c), dtype=np.float32)
    for i, r in enumerate(rows):
        for j, img in enumerate(r):
            top, left = pad + i * (h + pad), pad + j * (w + pad)
            grid[top: top + h, left: left + w] = np.clip(img.transpose(1, 2, 0), 0, 1)
    return grid[..., 0] if c == 1 else grid[..., :3]
