"""Training the pretrained ``codec`` (zoo recipe ``codec``).

One variable-rate model learns every quality: each step draws random crops (with flips)
from the photos shipped inside installed packages and trains one quality of the ladder on
``λ_q·255²·MSE + bpp`` (qualities taken in turn). On CUDA the photos live on the GPU, the
transforms run under bf16 autocast (GDN and the entropy model stay in float32) and crops are
256×256; on a CPU crops are smaller, and bf16 autocast is used where the CPU has native bf16.
After training the model moves to the CPU and the integer coding tables are exported there
in float64, so they are the same wherever the weights were trained. ``init`` fine-tunes a
saved codec (``scripts/train_zoo.py --only codec --init-from zoo``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.codec import rd_loss
from aekit.codes_quantized import code_lambda
from aekit.errors import AekitError
from aekit.models import Autoencoder, create_model
from aekit.zoo import RECIPES

#: the shipped codec's size: hidden width N and latent channels M (see benchmarks/codec.py
#: for the speed this buys; N = 96 took 3.5 s for a 768×512 photo on the loaded 2-core CPU)
CODEC_CHANNELS = 64
CODEC_LATENT = 128
#: steps between divergence checks (each one a GPU sync and a copy of the weights)
CHECK_EVERY = 100
#: Adam's learning rate from scratch; a fine-tune (``init``) uses a third of it
LR = 1e-3


def codec_model(channels: int = CODEC_CHANNELS, latent: int = CODEC_LATENT,
                lambdas: Sequence[float] | None = None, *,
                code_lambdas: Sequence[float] | None = None) -> Autoencoder:
    """A fresh ``codec`` preset model; its nominal input shape only matters to the generic
    ``forward`` (the codec itself codes any size). ``lambdas``: the quality ladder in
    CompressAI's units (``λ·255²·MSE + bpp``), lowest first; default its six bmshj2018 ones.
    ``code_lambdas``: the ladder as the code stores it (λ' = λ·255²/3), taken as it is."""
    extra: dict[str, Any] = {}
    if lambdas is not None:
        code_lambdas = [code_lambda(v) for v in lambdas]
    if code_lambdas is not None:
        extra["code_options"] = {"lambdas": [float(v) for v in code_lambdas]}
    return create_model("codec", (3, 64, 64), latent, arch_options={"channels": channels}, **extra)


class CropSampler:
    """Random crops (and horizontal flips) from a list of uint8 photos, on ``device``."""

    def __init__(self, photos: list[np.ndarray], crop: int, device: torch.device, seed: int) -> None:
        self.photos = [torch.from_numpy(np.array(p)).to(device).permute(2, 0, 1)
                       for p in photos if min(p.shape[:2]) >= crop]
        if not self.photos:
            raise RuntimeError(f"no training photo is at least {crop} pixels on its short side")
        # sample photos in proportion to their area, so big photos give more distinct crops
        areas = np.array([p.shape[1] * p.shape[2] for p in self.photos], np.float64)
        self.weights = areas / areas.sum()
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int) -> torch.Tensor:
        out = []
        for k in self.rng.choice(len(self.photos), size=n, p=self.weights):
            p = self.photos[k]
            top = int(self.rng.integers(0, p.shape[1] - self.crop + 1))
            left = int(self.rng.integers(0, p.shape[2] - self.crop + 1))
            c = p[:, top: top + self.crop, left: left + self.crop]
            if self.rng.random() < 0.5:
                c = c.flip(2)
            out.append(c)
        return torch.stack(out).float().div_(255.0)  # (n, 3, crop, crop)


def train_codec(model: Autoencoder, photos: list[np.ndarray], *, device: str = "cpu",
                minutes: float = 4.0, seed: int = 0, crop: int | None = None,
                batch_size: int | None = None, lr: float = LR, density_lr_scale: float = 10.0,
                warm: bool = False, log_every: int = 200, log=print) -> dict[str, Any]:
    """Train ``model`` for ``minutes`` of wall clock; returns a summary (steps, last losses).
    ``warm``: the model is already trained (its gains are kept as they are)."""
    from aekit.training import bf16_autocast_pays

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    amp = bf16_autocast_pays(dev)
    crop = crop or (256 if cuda else 96)
    batch_size = batch_size or (16 if cuda else 8)
    torch.manual_seed(seed)
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    sampler = CropSampler(photos, crop, dev, seed)
    model.to(dev).train()
    if not warm:
        init_gains(model, sampler.batch(batch_size))
    # the entropy model's parameters get a 10× larger step: at the default rate its densities
    # need thousands of steps to narrow from their wide initial scale, and short budgets
    # would spend most of their bits there
    density = [p for n, p in model.named_parameters() if n.startswith("code.density.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("code.density.")]
    opt = torch.optim.Adam([{"params": rest, "lr_scale": 1.0},
                            {"params": density, "lr_scale": density_lr_scale}], lr=lr)
    n_q = model.code.n_qualities
    budget = minutes * 60.0
    t0 = time.perf_counter()
    step = 0
    recent: dict[int, list[torch.Tensor]] = {q: [] for q in range(n_q)}
    # a diverging step (GDN at a high learning rate) must not cost the whole run: every
    # CHECK_EVERY steps the weights are checked and either snapshotted or rolled back
    good = _snapshot(model)
    restarts = 0
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= budget:
            break
        frac = elapsed / budget
        # warm-up over the first 3 % of the budget, then cosine decay to 2 % of lr
        scale = min(1.0, frac / 0.03) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr * scale * g["lr_scale"]
        q = step % n_q
        x = sampler.batch(batch_size)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
            loss, bpp, mse = rd_loss(model, x, q)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        # kept on the device: a float() here would stall a GPU every step
        recent[q].append(torch.stack([loss.detach().float(), bpp.mean(), mse.mean()]))
        recent[q] = recent[q][-20:]
        if step % CHECK_EVERY == 0:
            if all(torch.isfinite(p).all() for p in model.parameters()):
                good = _snapshot(model)
            else:
                model.load_state_dict(good)
                opt.state.clear()  # fresh Adam moments
                lr *= 0.5
                restarts += 1
                recent = {k: [] for k in range(n_q)}
                if log:
                    log(f"step {step}: non-finite weights, rolled back; lr now {lr:g}")
        if log and step % log_every == 0 and all(recent[k] for k in range(n_q)):
            q_last = [_mean(recent[k]) for k in range(n_q) if recent[k]]
            text = "  ".join(f"{b:.3f}bpp/{-10 * math.log10(max(m, 1e-10)):.2f}dB"
                             for _, b, m in q_last)
            log(f"step {step} ({elapsed:.0f}s): {text}")
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        model.load_state_dict(good)
    model.eval().cpu().float()
    model.code.export_tables()  # integer tables on the CPU, in float64: deterministic
    per_q = {}
    for k in range(n_q):
        if recent[k]:
            _, b, m = _mean(recent[k])
            per_q[str(k + 1)] = {"train_bpp": round(float(b), 4),
                                 "train_psnr": round(-10 * math.log10(max(float(m), 1e-10)), 2)}
    return {"steps": step, "seconds": round(time.perf_counter() - t0, 1), "crop": crop,
            "batch_size": batch_size, "lr": lr, "rollbacks": restarts, "device": str(dev),
            "bf16": amp,
            "qualities": per_q}


@torch.no_grad()
def init_gains(model: Autoencoder, x: torch.Tensor, target_std: float = 2.0) -> float:
    """Scale the gains so the top quality's latents start with standard deviation
    ``target_std`` (a fresh encoder's outputs are ~0.05, which all round to 0: the decoder
    would see nothing but zeros and learn only through the straight-through gradient)."""
    std = float(model.encoder(x).float().std().clamp_min(1e-6))
    shift = math.log(target_std / std)
    model.code.log_gain.add_(shift)
    # and the decoder's input starts at unit scale (z = ŷ · inv_gain ≈ h / std(h))
    model.code.log_inv_gain.sub_(math.log(target_std))
    return shift


def _snapshot(model: Autoencoder) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _mean(rows: list[torch.Tensor]) -> list[float]:
    return torch.stack(rows).mean(0).cpu().tolist()


@RECIPES.register("codec", help="variable-rate learned image codec (aekit compress)")
def codec_recipe(out_dir: Path, *, device: str = "cpu", minutes: float = 4.0, seed: int = 0,
                 channels: int = CODEC_CHANNELS, latent: int = CODEC_LATENT,
                 lambdas: Sequence[float] | None = None, init: str | None = None,
                 **options: Any) -> dict[str, Any]:
    """The shipped codec: trained on every photo of ``photo_collection()`` (colour).
    ``channels``/``latent`` shrink it for a quick CPU stand-in; ``lambdas`` sets the quality
    ladder (CompressAI units, see :func:`codec_model`); ``init`` starts from a saved codec of
    the same size (a fine-tune: a third of the learning rate unless ``lr`` is given, the
    source's training record kept under ``earlier_runs``, see :func:`aekit.zoo.warm_start`;
    with ``lambdas`` its ladder is carried over by :meth:`QuantizedCode.adopt_ladder`); other
    options go to :func:`train_codec`."""
    from aekit.data.embedded import photo_collection
    from aekit.zoo import warm_start

    torch.manual_seed(seed)
    source = Autoencoder.from_pretrained(init) if init else None
    # a fine-tune keeps the source's ladder unless it is given a new one
    keep = source.code.lambdas.tolist() if source is not None and lambdas is None else None
    model = codec_model(channels, latent, lambdas, code_lambdas=keep)
    photos = photo_collection(3)
    started: dict[str, Any] = {}
    if init:
        ladder = model.code.lambdas.clone()
        started = warm_start(model, init)
        if not torch.equal(source.code.lambdas, ladder):
            # warm_start filled (or skipped) the code's ladder tensors by position;
            # adopt_ladder fills every one of them by λ (the tables come from export)
            model.code.lambdas.copy_(ladder)
            started["ladder"] = model.code.adopt_ladder(source.code)
            for key in ("init_fresh", "init_widened"):
                started[key] = [k for k in started[key] if not k.startswith("code.")]
        if started["init_fresh"]:  # a warm codec keeps its gains: every tensor must come over
            raise AekitError(f"{init} is not a codec of this size ({channels} channels, "
                             f"latent {latent}): {len(started['init_fresh'])} tensors do not fit")
        options = {"lr": LR / 3, **options}
    summary = train_codec(model, photos, device=device, minutes=minutes, seed=seed,
                          warm=bool(init), **options)
    summary.update({"data": "aekit.data.embedded.photo_collection(3): photos shipped in "
                            "scikit-image, scikit-learn and matplotlib; random crops + flips",
                    "seed": seed, "minutes": minutes, "recipe": "codec", **started})
    model.save_pretrained(out_dir, summary=summary)
    return summary
