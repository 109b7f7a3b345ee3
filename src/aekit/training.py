"""``fit()``: the one training loop every preset uses.

AdamW with linear warm-up and cosine decay, a budget in epochs or wall-clock minutes, a
seeded validation split with early stopping (the best weights are kept), a progress bar,
a JSON-lines metrics log, atomic checkpoints and exact resume, device choice and bf16 mixed
precision on CUDA.

Repeatability: the validation split and each epoch's shuffle come from generators seeded by
``seed`` (and the epoch); corruption noise and variational samples use torch's global
generator, whose state is saved in each checkpoint. A run killed and resumed from its last
checkpoint therefore ends with the same weights as an uninterrupted one (on the same device
and thread count).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.data.arrays import ArrayData
from aekit.errors import AekitError, DataError
from aekit.io import atomic_path, write_text_atomic
from aekit.models import Autoencoder

CHECKPOINT_NAME = "checkpoint.safetensors"
METRICS_NAME = "metrics.jsonl"
#: datasets whose float32 copy is below this are converted once and kept in memory (fast
#: indexing); larger ones are gathered batch by batch from their (memory-mapped) storage
IN_MEMORY_BYTES = 1 << 30


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_val_loss: float = math.inf
    best_epoch: int = -1
    epochs: int = 0
    steps: int = 0
    seconds: float = 0.0
    stopped: str = "budget"  # "budget" | "early_stopping" | "time"
    samples_per_second: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"best_val_loss": self.best_val_loss, "best_epoch": self.best_epoch,
                "epochs": self.epochs, "steps": self.steps, "seconds": round(self.seconds, 2),
                "stopped": self.stopped, "samples_per_second": round(self.samples_per_second, 1)}


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise AekitError(f"unknown device {device!r}; use auto, cpu, cuda or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AekitError("device 'cuda' asked for but no CUDA GPU is available")
    return dev


def as_array_data(data: ArrayData | np.ndarray | torch.Tensor, name: str = "data") -> ArrayData:
    if isinstance(data, ArrayData):
        return data
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    if isinstance(data, np.ndarray):
        return ArrayData(data, name=name)
    raise DataError(f"cannot train on {type(data).__name__}; give an array or an ArrayData")


class BatchSource:
    """Serves batches of one dataset (and of an optional paired target dataset)."""

    def __init__(self, data: ArrayData, device: torch.device) -> None:
        self.data = data
        self.device = device
        nbytes = len(data) * math.prod(data.input_shape) * 4
        self.cache = data.all() if nbytes <= IN_MEMORY_BYTES else None

    def __len__(self) -> int:
        return len(self.data)

    def get(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.cache[idx] if self.cache is not None else self.data.batch(idx.numpy())
        return x.to(self.device, non_blocking=True)


def lr_factor(progress: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` share, then cosine decay to 5 %."""
    if progress < warmup:
        return max(progress / warmup, 1e-3)
    p = min((progress - warmup) / max(1 - warmup, 1e-8), 1.0)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p))


def standardization(data: ArrayData, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std of a dataset, in chunks (Chan et al. parallel update)."""
    n, mean, m2 = 0, None, None
    for start in range(0, len(data), chunk):
        x = data.batch(np.arange(start, min(start + chunk, len(data)))).double()
        bn, bmean = x.shape[0], x.mean(0)
        bm2 = ((x - bmean) ** 2).sum(0)
        if mean is None:
            n, mean, m2 = bn, bmean, bm2
        else:
            delta = bmean - mean
            tot = n + bn
            mean = mean + delta * bn / tot
            m2 = m2 + bm2 + delta**2 * n * bn / tot
            n = tot
    std = (m2 / max(n - 1, 1)).sqrt()
    std = torch.where(std < 1e-8, torch.ones_like(std), std)
    return mean.float(), std.float()


# ------------------------------------------------------------------------------ checkpoints
def save_checkpoint(path: Path, model: Autoencoder, optimizer: torch.optim.Optimizer,
                    best_state: dict[str, torch.Tensor] | None, state: dict[str, Any]) -> None:
    """Model, optimiser, best weights and RNG in one safetensors file; loop state as JSON in
    its metadata. Written to a temp file and renamed: a kill never leaves half a checkpoint."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    if best_state is not None:
        for k, v in best_state.items():
            tensors[f"best.{k}"] = v.detach().cpu().contiguous()
    opt = optimizer.state_dict()
    for pid, pstate in opt["state"].items():
        for k, v in pstate.items():
            t = v if isinstance(v, torch.Tensor) else torch.tensor(v)
            tensors[f"optim.{pid}.{k}"] = t.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"state": json.dumps(state), "param_groups": json.dumps(opt["param_groups"])}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_checkpoint(path: Path, model: Autoencoder, optimizer: torch.optim.Optimizer
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        state = json.loads(meta["state"])
        groups = json.loads(meta["param_groups"])
    except Exception as e:
        raise AekitError(f"{path}: cannot resume from this checkpoint ({e})") from None
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, name = k.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    torch.set_rng_state(tensors["rng.torch"])
    return state, best


# ------------------------------------------------------------------------------------ fit
def fit(
    model: Autoencoder,
    data: ArrayData | np.ndarray | torch.Tensor,
    *,
    target: ArrayData | np.ndarray | torch.Tensor | None = None,
    epochs: int | None = None,
    minutes: float | None = None,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    warmup: float = 0.02,
    val_fraction: float = 0.1,
    val_data: ArrayData | None = None,
    patience: int | None = 20,
    seed: int = 0,
    device: str = "auto",
    amp: bool = True,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    checkpoint_every: int = 1,
    progress: bool | None = None,
    grad_clip: float | None = 5.0,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``data`` (reconstructing it, or ``target`` when given: pairs).

    The budget is ``epochs`` or ``minutes`` (wall clock, checked every step); with neither,
    30 epochs. With ``out_dir``, a metrics log and a checkpoint are written there after every
    ``checkpoint_every`` epochs, and ``resume=True`` continues from that checkpoint.
    """
    if epochs is None and minutes is None:
        epochs = 30
    if epochs is not None and epochs < 1:
        raise AekitError(f"epochs must be ≥ 1, got {epochs}")
    if minutes is not None and minutes <= 0:
        raise AekitError(f"minutes must be > 0, got {minutes}")
    if batch_size < 1:
        raise AekitError(f"batch size must be ≥ 1, got {batch_size}")
    data = as_array_data(data)
    tgt = as_array_data(target, "target") if target is not None else None
    if tgt is not None and len(tgt) != len(data):
        raise DataError(f"{len(data)} inputs but {len(tgt)} targets")
    if len(data) == 0:
        raise DataError(f"{data.name}: the dataset is empty")
    if tuple(data.input_shape) != model.input_shape:
        raise DataError(f"{data.name}: samples have shape {tuple(data.input_shape)} but the model "
                        f"expects {model.input_shape}")

    torch.manual_seed(seed)
    dev = pick_device(device)
    model.to(dev)
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / CHECKPOINT_NAME if out is not None else None

    # -- split -----------------------------------------------------------------------------
    n = len(data)
    if val_data is not None:
        train_idx, val_idx = np.arange(n), None
    elif val_fraction > 0 and n >= 10:
        perm = np.random.default_rng(seed).permutation(n)
        n_val = max(1, int(round(n * val_fraction)))
        train_idx, val_idx = np.sort(perm[n_val:]), np.sort(perm[:n_val])
    else:
        train_idx, val_idx = np.arange(n), None
    train_src = BatchSource(data.subset(train_idx), dev)
    train_tgt = BatchSource(tgt.subset(train_idx), dev) if tgt is not None else None
    if val_data is not None:
        val_src, val_tgt = BatchSource(val_data, dev), None
    elif val_idx is not None:
        val_src = BatchSource(data.subset(val_idx), dev)
        val_tgt = BatchSource(tgt.subset(val_idx), dev) if tgt is not None else None
    else:
        val_src = val_tgt = None

    if model.config.normalization == "standard" and not resume:
        mean, std = standardization(data.subset(train_idx))
        model.set_normalization(mean.to(dev), std.to(dev))

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise AekitError("the model has no trainable parameters (everything is frozen)")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    n_train = len(train_src)
    bs = min(batch_size, n_train)
    steps_per_epoch = max(1, n_train // bs)  # drop the ragged last batch: stable batch stats
    total_steps = epochs * steps_per_epoch if epochs is not None else None
    budget_s = minutes * 60 if minutes is not None else None

    result = FitResult()
    state: dict[str, Any] = {"epoch": 0, "step": 0, "elapsed": 0.0, "best_val": math.inf,
                             "best_epoch": -1, "bad_epochs": 0, "history": []}
    best_state: dict[str, torch.Tensor] | None = None
    if resume:
        if ckpt_path is None or not ckpt_path.is_file():
            raise AekitError(f"nothing to resume: no {CHECKPOINT_NAME} in {out}")
        state, best_state = load_checkpoint(ckpt_path, model, optimizer)
        model.to(dev)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    use_amp = amp and dev.type == "cuda"
    show = sys.stderr.isatty() if progress is None else progress
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps if total_steps else None, initial=state["step"],
                   unit="step", dynamic_ncols=True, leave=False, file=sys.stderr)

    start_time = time.perf_counter() - state["elapsed"]
    step = state["step"]
    epoch = state["epoch"]
    samples_seen = 0
    stopped = "budget"

    def elapsed() -> float:
        return time.perf_counter() - start_time

    def progress_now() -> float:
        if total_steps is not None:
            return step / total_steps
        return min(elapsed() / budget_s, 1.0)  # type: ignore[operator]

    def evaluate() -> dict[str, float]:
        if val_src is None:
            return {}
        model.eval()
        sums: dict[str, float] = {}
        count = 0
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
            for s in range(0, len(val_src), 512):
                idx = torch.arange(s, min(s + 512, len(val_src)))
                xb = val_src.get(idx)
                tb = val_tgt.get(idx) if val_tgt is not None else None
                o = model(xb, tb)
                for k, v in o.losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
                count += len(idx)
        model.train()
        out_d = {f"val_{k}": v / count for k, v in sums.items()}
        out_d["val_loss"] = sum(v for k, v in out_d.items())
        return out_d

    model.train()
    done = False
    t_train = 0.0
    while not done:
        if epochs is not None and epoch >= epochs:
            break
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        perm = torch.randperm(n_train, generator=g)
        run_loss = torch.zeros((), device=dev)
        comp: dict[str, torch.Tensor] = {}
        t0 = time.perf_counter()
        steps_this_epoch = 0
        for b in range(steps_per_epoch):
            idx = perm[b * bs:(b + 1) * bs]
            xb = train_src.get(idx)
            tb = train_tgt.get(idx) if train_tgt is not None else None
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_factor(progress_now(), warmup)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                o = model(xb, tb)
                loss = o.loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            step += 1
            steps_this_epoch += 1
            samples_seen += len(idx)
            run_loss += loss.detach()
            for k, v in o.losses.items():
                comp[k] = comp.get(k, 0.0) + v.detach()
            if bar is not None and (step % 10 == 0 or b == steps_per_epoch - 1):
                bar.update(10 if step % 10 == 0 else step % 10)
                bar.set_postfix(epoch=epoch + 1, loss=f"{float(run_loss) / steps_this_epoch:.4g}")
            if budget_s is not None and elapsed() >= budget_s:
                stopped = "time"
                done = True
                break
        t_train += time.perf_counter() - t0
        loss_val = float(run_loss) / max(steps_this_epoch, 1)
        if not math.isfinite(loss_val):
            raise AekitError(f"training diverged at epoch {epoch + 1} (loss {loss_val}); "
                             "try a smaller --lr")
        epoch += 1
        record: dict[str, float] = {"epoch": epoch, "step": step, "loss": loss_val,
                                    "lr": optimizer.param_groups[0]["lr"],
                                    "seconds": round(elapsed(), 3)}
        record.update({k: float(v) / max(steps_this_epoch, 1) for k, v in comp.items()})
        record.update(evaluate())
        state["history"].append(record)
        monitored = record.get("val_loss", loss_val)
        if monitored < state["best_val"] * (1 - 1e-4) or state["best_epoch"] < 0:
            state["best_val"], state["best_epoch"], state["bad_epochs"] = monitored, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            state["bad_epochs"] += 1
        if on_epoch_end is not None:
            on_epoch_end(record)
        if patience is not None and state["bad_epochs"] >= patience:
            stopped = "early_stopping"
            done = True
        state.update(epoch=epoch, step=step, elapsed=elapsed())
        if out is not None:
            write_text_atomic(out / METRICS_NAME, "".join(json.dumps(r) + "\n" for r in state["history"]))
            if (epoch % checkpoint_every == 0) or done:
                save_checkpoint(ckpt_path, model, optimizer, best_state, state)  # type: ignore[arg-type]
    if bar is not None:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.history = state["history"]
    result.best_val_loss = state["best_val"]
    result.best_epoch = state["best_epoch"]
    result.epochs = epoch
    result.steps = step
    result.seconds = elapsed()
    result.stopped = stopped
    result.samples_per_second = samples_seen / t_train if t_train > 0 else 0.0
    return result
