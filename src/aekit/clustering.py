"""Clustering codes: k-means, Gaussian mixtures, and DEC/IDEC, which refines the encoder itself.

DEC (Xie, Girshick & Farhadi 2016) and IDEC (Guo et al. 2017)::

    x ──encoder──▶ z ──Student-t kernel to centroids μ_j──▶ q_ij = (1+‖z_i−μ_j‖²/α)^(-(α+1)/2) / Σ_j'
    target   p_ij ∝ q_ij² / f_j   (f_j = Σ_i q_ij: sharpen, and discount big clusters)
    loss     = γ · KL(P ‖ Q)  [+ reconstruction, kept by IDEC to preserve local structure]

μ starts at k-means of the pretrained codes; P is recomputed from all the data every
``update_interval`` steps (held fixed in between, as in the papers) and training stops when
fewer than ``tol`` of the assignments change between two updates.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from aekit.data.arrays import ArrayData
from aekit.errors import AekitError
from aekit.models import Autoencoder
from aekit.training import as_array_data, pick_device

METHODS = ("kmeans", "gmm", "dec")


def kmeans(x: np.ndarray, k: int, seed: int = 0, n_init: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(labels, centres) of scikit-learn's k-means (k-means++, best of ``n_init``)."""
    from sklearn.cluster import KMeans

    km = KMeans(k, n_init=n_init, random_state=seed).fit(np.asarray(x, dtype=np.float64))
    return km.labels_.astype(np.int64), km.cluster_centers_.astype(np.float32)


def gmm(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Labels of a full-covariance Gaussian mixture (k-means initialised)."""
    from sklearn.mixture import GaussianMixture

    g = GaussianMixture(k, covariance_type="full", n_init=2, random_state=seed, reg_covar=1e-4)
    return g.fit(np.asarray(x, dtype=np.float64)).predict(x).astype(np.int64)


def soft_assignment(z: Tensor, centers: Tensor, alpha: float = 1.0) -> Tensor:
    """Student-t similarity of each code to each centroid, rows normalised: (N, K)."""
    d2 = torch.cdist(z, centers).pow(2)  # (N, K)
    q = (1.0 + d2 / alpha).pow(-(alpha + 1) / 2)
    return q / q.sum(1, keepdim=True)


def target_distribution(q: Tensor) -> Tensor:
    """DEC's auxiliary target: square and renormalise by cluster frequency."""
    w = q.pow(2) / q.sum(0, keepdim=True)
    return w / w.sum(1, keepdim=True)


@dataclass
class DECResult:
    labels: np.ndarray
    centers: np.ndarray
    init_labels: np.ndarray  # k-means on the pretrained codes, before refinement
    iterations: int = 0
    stopped: str = "max_iter"  # "tol" | "max_iter" | "time"
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


@torch.no_grad()
def _codes(model: Autoencoder, data: ArrayData, dev: torch.device, bs: int = 1024) -> Tensor:
    model.eval()
    return torch.cat([model.code_of_normalized(model.normalize(xb.to(dev)))
                      for xb in data.iter_batches(bs)]).flatten(1)


#: steps before the label-change tolerance may stop DEC: IDEC's update interval T (Guo et
#: al. 2017). On data of one batch or less (n ≤ 256) the target is updated every step, and
#: a stop on the first check ended DEC after 1–2 steps, the k-means start unchanged (iris,
#: wine); any run that went on past the first checks is unchanged
MIN_STEPS = 140


def dec(model: Autoencoder, data: ArrayData, k: int, *, gamma: float = 0.1,
        reconstruction: bool = True, alpha: float = 1.0, lr: float = 1e-3, batch_size: int = 256,
        update_interval: int | None = None, tol: float = 1e-3, max_iter: int = 20000,
        minutes: float | None = None, seed: int = 0, device: str = "auto",
        progress: bool = False) -> DECResult:
    """Refine ``model``'s encoder (in place) and cluster ``data`` into ``k`` groups.

    ``reconstruction=True`` is IDEC (loss = mean squared reconstruction error + γ·KL),
    ``False`` is DEC (KL only, the decoder is dropped). ``update_interval`` defaults to one
    pass over the data; ``tol`` (the share of labels that changed since the last target
    update) stops it from MIN_STEPS steps on."""
    if model.config.code == "binary":
        raise AekitError("dec needs a continuous code; a binary code has no gradient")
    data = as_array_data(data)  # (a NumPy array or tensor works too)
    n = len(data)
    if not 1 < k <= n:
        raise AekitError(f"k must be between 2 and the number of samples ({n}), got {k}")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    dev = pick_device(device)
    model.to(dev)
    z = _codes(model, data, dev)
    init_labels, centers0 = kmeans(z.cpu().numpy(), k, seed=seed, n_init=20)
    centers = torch.nn.Parameter(torch.as_tensor(centers0, device=dev))
    params = [p for p in model.parameters() if p.requires_grad] + [centers]
    opt = torch.optim.Adam(params, lr=lr)
    x_all = data.all().to(dev) if n * math.prod(data.input_shape) * 4 <= 1 << 30 else None
    bs = min(batch_size, n)
    steps_per_pass = math.ceil(n / bs)
    interval = update_interval or steps_per_pass
    g = torch.Generator().manual_seed(seed)
    result = DECResult(labels=init_labels, centers=centers0, init_labels=init_labels)
    last = torch.as_tensor(init_labels, device=dev)
    p_all = None
    perm = torch.randperm(n, generator=g)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iter, unit="step", leave=False)
    it = 0
    while it < max_iter:
        if it % interval == 0:
            with torch.no_grad():
                q_all = soft_assignment(_codes(model, data, dev), centers, alpha)
                p_all = target_distribution(q_all)
                labels = q_all.argmax(1)
                changed = float((labels != last).float().mean())
                last = labels
            result.history.append({"iteration": it, "changed": changed})
            if it >= MIN_STEPS and changed < tol:
                result.stopped = "tol"
                break
            model.train()
        if minutes is not None and time.perf_counter() - t0 > minutes * 60:
            result.stopped = "time"
            break
        b = it % steps_per_pass
        if b == 0 and it > 0:
            perm = torch.randperm(n, generator=g)
        idx = perm[b * bs:(b + 1) * bs]
        xb = x_all[idx.to(dev)] if x_all is not None else data.batch(np.sort(idx.numpy())).to(dev)
        if x_all is None:
            idx = idx.sort().values
        xn = model.normalize(xb)
        z_raw = model.code_of_normalized(xn)
        zb = z_raw.flatten(1)
        qb = soft_assignment(zb, centers, alpha)
        pb = p_all[idx.to(dev)]
        kl = (pb * (pb.clamp_min(1e-12).log() - qb.clamp_min(1e-12).log())).sum(1).mean()
        loss = gamma * kl
        if reconstruction:
            out = model._output(model.decoder(z_raw))
            loss = loss + (out - xn).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    model.eval()
    with torch.no_grad():
        q_all = soft_assignment(_codes(model, data, dev), centers, alpha)
    result.labels = q_all.argmax(1).cpu().numpy().astype(np.int64)
    result.centers = centers.detach().cpu().numpy()
    result.iterations = it
    result.seconds = time.perf_counter() - t0
    return result


@torch.no_grad()
def predict_dec(model: Autoencoder, data: ArrayData, centers: np.ndarray, alpha: float = 1.0
                ) -> np.ndarray:
    """Cluster new data with a refined encoder and its centroids."""
    dev = next(model.parameters()).device
    z = _codes(model, as_array_data(data), dev)
    q = soft_assignment(z, torch.as_tensor(centers, device=dev), alpha)
    return q.argmax(1).cpu().numpy().astype(np.int64)
