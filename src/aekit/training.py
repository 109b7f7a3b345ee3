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

Several processes (``torchrun --nproc-per-node N -m aekit train …``): ``batch_size`` stays
the *global* batch. Every rank draws the same seeded permutation and takes a contiguous share
of each global batch (a distributed sampler that keeps one process's batches); DDP averages
the gradients, and each share's mean loss is weighted by its size, so the update equals the
one-process update up to float rounding. Only rank 0 logs, shows progress and writes
checkpoints; each rank's RNG state is kept in the checkpoint, so ``resume`` stays exact.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit import distributed
from aekit.data.arrays import ArrayData
from aekit.data.stream import PageReleaser
from aekit.errors import AekitError, DataError, ParameterError, warn
from aekit.io import atomic_path, write_text_atomic
from aekit.models import Autoencoder, state_dict_mismatch

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
    except (RuntimeError, TypeError):
        raise ParameterError(f"unknown device {device!r}; use auto, cpu, cuda or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device 'cuda' asked for but no CUDA GPU is available")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                  and torch.backends.mps.is_available()):
        raise ParameterError("device 'mps' asked for but this machine has no Apple GPU")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ParameterError(f"unknown device {device!r}; use auto, cpu, cuda or mps")
    return dev


def as_array_data(data: ArrayData | np.ndarray | torch.Tensor, name: str = "data") -> ArrayData:
    if isinstance(data, ArrayData):
        return data
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    if isinstance(data, np.ndarray):
        # an array handed straight to fit(): NaN in a validation row would otherwise make every
        # val loss NaN and keep epoch 1's weights; in a training row it read as divergence
        return ArrayData(data, name=name).validate()
    raise DataError(f"cannot train on {type(data).__name__}; give an array or an ArrayData")


class BatchSource:
    """Serves batches of one dataset (and of an optional paired target dataset).

    Small data is converted to float once and indexed in memory; data whose float copy would
    pass :data:`IN_MEMORY_BYTES` (a big memory-mapped ``.npy``, a streamed image folder) is
    never held whole: each batch is gathered (decoded) from storage, in DataLoader worker
    processes when ``workers`` > 0, so reading overlaps training."""

    def __init__(self, data: ArrayData, device: torch.device) -> None:
        self.data = data
        self.device = device
        nbytes = len(data) * math.prod(data.input_shape) * 4
        self.cache = _in_memory(data) if nbytes <= IN_MEMORY_BYTES else None

    def __len__(self) -> int:
        return len(self.data)

    @property
    def streamed(self) -> bool:
        return self.cache is None

    def get(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.cache[idx] if self.cache is not None else self.data.batch(idx.numpy())
        return x.to(self.device, non_blocking=True)


def _in_memory(data: ArrayData, chunk: int = 8192) -> torch.Tensor:
    """The whole dataset as one float32 tensor, filled chunk by chunk: ``data.all()`` of a
    memory-mapped split gathered, reordered and converted whole (three transient copies)
    and left the file resident, so an 0.8 GB table peaked at 2.6 GB."""
    # a split's rows are scattered over the file: a chunk touches far more pages than it
    # reads, so the pages go after every chunk (``every=1``), not every 128 MB read
    release = PageReleaser(data.x, every=1)
    out = None
    for start in range(0, len(data), chunk):
        b = data.batch(np.arange(start, min(start + chunk, len(data))))
        if out is None:
            out = torch.empty((len(data), *b.shape[1:]), dtype=b.dtype)
        out[start: start + len(b)] = b
        release(1)
    return out if out is not None else data.all()


class _IndexedBatches(torch.utils.data.Dataset):
    """A map-style dataset whose items are whole batches: item ``idx`` (an index array) is
    ``(x, target)`` gathered from storage. Lets a DataLoader's workers decode ahead."""

    def __init__(self, src: BatchSource, tgt: BatchSource | None) -> None:
        self.src, self.tgt = src, tgt
        # an epoch over a big memory map would otherwise leave all its pages resident
        self.release = [PageReleaser(s.data.x) for s in (src, tgt) if s is not None]
        self.row_bytes = [s.data.x.dtype.itemsize * math.prod(s.data.x.shape[1:])
                          for s in (src, tgt) if s is not None]

    def __len__(self) -> int:  # not used for sampling; the sampler below decides
        return len(self.src)

    def __getitem__(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.src.data.batch(idx)
        t = self.tgt.data.batch(idx) if self.tgt is not None else x.new_empty(0)
        for release, row in zip(self.release, self.row_bytes):
            release(len(idx) * row)
        return x, t


class _EpochSampler:
    """Yields the current epoch's batch index arrays; set ``batches`` before each epoch (the
    DataLoader's persistent workers then receive them in order)."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def default_workers(local_world_size: int = 1) -> int:
    """DataLoader worker processes for streamed data: a share of the cores, at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores // max(local_world_size, 1) - 1))


def lr_factor(progress: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` share, then cosine decay to 5 %."""
    if progress < warmup:
        return max(progress / warmup, 1e-3)
    p = min((progress - warmup) / max(1 - warmup, 1e-8), 1.0)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p))


def standardization(data: ArrayData, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std of a dataset, in chunks (Chan et al. parallel update); the
    pages of a memory-mapped file are released as the pass goes (it held the whole file
    resident)."""
    release = PageReleaser(data.x, every=1)  # (a split's rows: see _in_memory)
    n, mean, m2 = 0, None, None
    for start in range(0, len(data), chunk):
        x = data.batch(np.arange(start, min(start + chunk, len(data)))).double()
        release(1)
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
                    best_state: dict[str, torch.Tensor] | None, state: dict[str, Any],
                    rng_states: list[torch.Tensor] | None = None) -> None:
    """Model, optimiser, best weights and RNG in one safetensors file; loop state as JSON in
    its metadata. Written to a temp file and renamed: a kill never leaves half a checkpoint.

    ``rng_states``: the other ranks' torch RNG states (rank order, rank 0 first) in a
    distributed run, so each rank resumes its own noise stream."""
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
    for r, st in list(enumerate(rng_states or []))[1:]:
        tensors[f"rng.torch.rank{r}"] = st.cpu().contiguous()
    dev = next(model.parameters()).device
    if dev.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(dev)
    meta = {"state": json.dumps(state), "param_groups": json.dumps(opt["param_groups"])}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_checkpoint(path: Path, model: Autoencoder, optimizer: torch.optim.Optimizer,
                    rank: int = 0) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        state = json.loads(meta["state"])
        groups = json.loads(meta["param_groups"])
    except Exception as e:  # noqa: BLE001 — safetensors/json raise many types
        raise AekitError(f"{path}: cannot resume from this checkpoint ({e})") from None
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    except RuntimeError as e:  # another architecture, code size or input shape
        raise AekitError(f"{path}: the checkpoint is of another model, so it cannot be "
                         f"resumed with this one ({state_dict_mismatch(e)}); resume with the "
                         "model it was made with, or train without resume") from None
    # the rest of a damaged (or hand-edited) checkpoint failed with an internal error: a
    # KeyError, a TypeError from a string epoch, a wrong-sized RNG state …
    kinds = {"epoch": int, "step": int, "elapsed": (int, float), "best_val": (int, float),
             "best_epoch": int, "bad_epochs": int, "history": list}
    if not isinstance(state, dict) or any(not isinstance(state.get(k), t) or
                                          isinstance(state.get(k), bool)
                                          for k, t in kinds.items()):
        raise AekitError(f"{path}: cannot resume from this checkpoint (its loop state is damaged)")
    try:
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        if best is not None and {k: tuple(v.shape) for k, v in best.items()} != shapes:
            raise ValueError("the best weights do not fit the model (names or shapes)")
        params = [p for g in optimizer.param_groups for p in g["params"]]
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, pid, name = k.split(".", 2)
                if name.startswith("exp_avg") and v.shape != params[int(pid)].shape:
                    raise ValueError(f"optimiser state {k} has shape {tuple(v.shape)}")
                opt_state.setdefault(int(pid), {})[name] = v
        optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
        if rank == 0:
            torch.set_rng_state(tensors["rng.torch"])
        elif f"rng.torch.rank{rank}" in tensors:
            torch.set_rng_state(tensors[f"rng.torch.rank{rank}"])
        else:  # a checkpoint from fewer processes: a fresh, distinct stream for this rank
            torch.manual_seed(int(state.get("step", 0)) * 1_000_003 + rank)
        dev = next(model.parameters()).device
        if dev.type == "cuda" and "rng.cuda" in tensors and rank == 0:
            torch.cuda.set_rng_state(tensors["rng.cuda"], dev)
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as e:
        raise AekitError(f"{path}: cannot resume from this checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else e})") from None
    return state, best


def make_optimizer(params: list[torch.nn.Parameter], lr: float, weight_decay: float,
                   device: torch.device,
                   betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Optimizer:
    """AdamW, with the fused kernel where the device has one (CPU and CUDA): one pass over
    all parameters instead of a Python loop of small ops per tensor."""
    betas = (float(betas[0]), float(betas[1]))
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas,
                                     fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX): there mixed precision
    runs convolutions and matrix products 1.5–2.5× faster; elsewhere it is emulated (slower).
    ``AEKIT_CPU_AMP=0`` turns it off, ``=1`` forces it (read at every call)."""
    env = os.environ.get("AEKIT_CPU_AMP")
    if env in ("0", "1"):
        return env == "1"
    return _cpuinfo_has_bf16()


def bf16_autocast_pays(dev: torch.device) -> bool:
    """Whether training on ``dev`` should run under bf16 autocast: always on CUDA, on a CPU
    only where it multiplies bf16 natively (:func:`cpu_has_native_bf16`)."""
    return dev.type == "cuda" or (dev.type == "cpu" and cpu_has_native_bf16())


@functools.cache
def _cpuinfo_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def uses_channels_last(model: torch.nn.Module, device: torch.device) -> bool:
    """Channels-last pays for 2-D convolutions on CPU (oneDNN's native layout)."""
    return device.type == "cpu" and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def match_state_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give optimiser state loaded from a file its parameter's memory layout (a fused step
    assumes they agree)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            st = optimizer.state.get(p, {})
            for k, v in list(st.items()):
                if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                    st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


# ------------------------------------------------------------------------------------ fit
def auto_batch_size(n: int) -> int:
    """The default batch: about 50 steps per epoch on small data, 128 from ~6,400 samples on.

    A fixed 128 gives a 1,400-sample set 11 steps an epoch and trains it 2–4× worse in the
    same epochs (benchmarks/pca_vs_ae.py on digits: held-out SSE 0.72 at 128, 0.28 at 32)."""
    return int(min(128, max(16, 2 ** round(math.log2(max(n, 1) / 50)))))


def fit(
    model: Autoencoder,
    data: ArrayData | np.ndarray | torch.Tensor,
    *,
    target: ArrayData | np.ndarray | torch.Tensor | None = None,
    epochs: int | None = None,
    minutes: float | None = None,
    batch_size: int | None = None,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    betas: tuple[float, float] = (0.9, 0.999),
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
    compile: bool = False,
    workers: int | None = None,
) -> FitResult:
    """Train ``model`` on ``data`` (reconstructing it, or ``target`` when given: pairs).

    The budget is ``epochs`` or ``minutes`` (wall clock, checked every step); with neither,
    30 epochs. ``batch_size`` defaults to :func:`auto_batch_size`. ``lr``, ``weight_decay`` and
    ``betas`` (the moment decay rates) configure AdamW. With ``out_dir``, a metrics log and a checkpoint are written there after every
    ``checkpoint_every`` epochs, and ``resume=True`` continues from that checkpoint.

    ``compile=True`` runs the training forward through ``torch.compile`` (opt-in: it costs
    seconds to minutes of compilation up front and pays on long GPU runs). ``workers``: the
    DataLoader worker processes that read batches of data too big to keep in memory
    (default: a share of the cores; 0 reads in the training process). Under ``torchrun``
    the run is distributed (see the module docstring); ``on_epoch_end`` is called on rank 0.
    """
    if epochs is None and minutes is None:
        epochs = 30
    if epochs is not None and (isinstance(epochs, bool) or not float(epochs).is_integer()
                               or epochs < 1):
        raise ParameterError(f"epochs must be a whole number ≥ 1, got {epochs}")
    epochs = None if epochs is None else int(epochs)
    if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):  # (NaN passed <= 0)
        raise AekitError(f"minutes must be a finite number > 0, got {minutes}")
    for name, value, least in (("lr", lr, 0.0), ("weight_decay", weight_decay, None)):
        ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) \
            and math.isfinite(value) and (value > least if least is not None else value >= 0)
        if not ok:
            raise ParameterError(f"{name} must be a finite number "
                                 f"{'> 0' if least is not None else '≥ 0'}, got {value!r}")
    data = as_array_data(data)
    if batch_size is None:
        batch_size = auto_batch_size(len(data))
    if batch_size < 1:
        raise AekitError(f"batch size must be ≥ 1, got {batch_size}")
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise AekitError(f"betas must be two numbers in [0, 1), got {tuple(betas)}")
    if not 0 <= val_fraction < 1:
        raise AekitError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if patience is not None and patience < 0:
        raise AekitError(f"patience must be ≥ 0 (0 or None = no early stopping), got {patience}")
    patience = patience or None
    if checkpoint_every < 1:
        raise AekitError(f"checkpoint_every must be ≥ 1, got {checkpoint_every}")
    if val_data is not None:
        val_data = as_array_data(val_data, "val_data")
    tgt = as_array_data(target, "target") if target is not None else None
    if tgt is not None and len(tgt) != len(data):
        raise DataError(f"{len(data)} inputs but {len(tgt)} targets")
    if len(data) == 0:
        raise DataError(f"{data.name}: the dataset is empty")
    if tuple(data.input_shape) != model.input_shape:
        raise DataError(f"{data.name}: samples have shape {tuple(data.input_shape)} but the model "
                        f"expects {model.input_shape}")
    recon = tgt if tgt is not None else data  # what the output must reproduce
    if model.sigmoid_output and not recon.in_unit_range():
        raise DataError(f"{recon.name}: values outside [0, 1], which the model's sigmoid output "
                        "cannot reproduce; make the model with normalization='standard' (what "
                        "`aekit train` picks for such data), or scale the data into [0, 1]")

    seed = int(seed)  # np.int64 from a parameter grid: torch's generators want a Python int
    torch.manual_seed(seed)
    info, dev, owns_group = distributed.setup(pick_device(device))
    try:
        return _fit(model, data, tgt, info, dev, epochs=epochs, minutes=minutes,
                    batch_size=batch_size, lr=lr, weight_decay=weight_decay, betas=betas,
                    warmup=warmup,
                    val_fraction=val_fraction, val_data=val_data, patience=patience, seed=seed,
                    amp=amp, out_dir=out_dir, resume=resume, checkpoint_every=checkpoint_every,
                    progress=progress, grad_clip=grad_clip, on_epoch_end=on_epoch_end,
                    compile=compile, workers=workers)
    finally:
        distributed.teardown(owns_group)


def data_fingerprint(data: ArrayData, rows: int = 64) -> str:
    """A short digest of a dataset's shape and of ``rows`` rows spread over it (read like any
    batch, so cheap on a memory map or a folder): what a resume checks it continues on."""
    n = len(data)
    idx = np.unique(np.linspace(0, n - 1, min(rows, n)).round().astype(np.int64))
    h = hashlib.sha256(repr((n, tuple(data.input_shape))).encode())
    h.update(np.ascontiguousarray(data.batch(idx).numpy()).tobytes())
    return h.hexdigest()[:16]


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`fit`'s split of ``n`` samples: (training indices, validation indices or None
    when nothing is held out: ``val_fraction`` 0 or fewer than 10 samples), seeded, sorted."""
    if val_fraction > 0 and n >= 10:
        perm = np.random.default_rng(seed).permutation(n)
        n_val = max(1, round(n * val_fraction))
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    return np.arange(n), None


def _fit(model: Autoencoder, data: ArrayData, tgt: ArrayData | None, info: distributed.DistInfo,
         dev: torch.device, *, epochs: int | None, minutes: float | None, batch_size: int,
         lr: float, weight_decay: float, betas: tuple[float, float], warmup: float,
         val_fraction: float,
         val_data: ArrayData | None, patience: int | None, seed: int, amp: bool,
         out_dir: str | os.PathLike[str] | None, resume: bool, checkpoint_every: int,
         progress: bool | None, grad_clip: float | None,
         on_epoch_end: Callable[[dict[str, float]], None] | None, compile: bool,
         workers: int | None) -> FitResult:
    rank, world, main = info.rank, info.world_size, info.is_main
    model.to(dev)
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / CHECKPOINT_NAME if out is not None else None

    # -- split -----------------------------------------------------------------------------
    n = len(data)
    if val_data is not None:
        train_idx, val_idx = np.arange(n), None
    else:
        train_idx, val_idx = split_indices(n, val_fraction, seed)
    train_src = BatchSource(data.subset(train_idx), dev)
    train_tgt = BatchSource(tgt.subset(train_idx), dev) if tgt is not None else None
    if val_data is not None:
        val_src, val_tgt = BatchSource(val_data, dev), None
    elif val_idx is not None:
        val_src = BatchSource(data.subset(val_idx), dev)
        val_tgt = BatchSource(tgt.subset(val_idx), dev) if tgt is not None else None
    else:
        val_src = val_tgt = None

    # (the statistics of a transferred encoder come with its layers: frozen layers expect them)
    if model.config.normalization == "standard" and not resume \
            and not getattr(model, "normalization_transferred", False):
        mean, std = standardization(data.subset(train_idx))
        model.set_normalization(mean.to(dev), std.to(dev))

    # channels-last convolutions skip oneDNN's layout copies on CPU (measured in
    # benchmarks/scale.py); the model goes back to the default layout at the end
    channels_last = uses_channels_last(model, dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise AekitError("the model has no trainable parameters (everything is frozen)")
    optimizer = make_optimizer(params, lr, weight_decay, dev, betas)
    n_train = len(train_src)
    if n_train == 0:
        raise DataError(f"{data.name}: no samples left to train on after holding out "
                        f"{val_fraction:g} of {n} for validation")
    bs = min(batch_size, n_train)
    if bs < world:
        raise AekitError(f"a global batch of {bs} cannot be shared by {world} processes")
    steps_per_epoch = max(1, n_train // bs)  # drop the ragged last batch: stable batch stats
    total_steps = epochs * steps_per_epoch if epochs is not None else None
    budget_s = minutes * 60 if minutes is not None else None
    # this rank's contiguous share [lo, hi) of every global batch; its mean loss is weighted
    # by share size × world so DDP's gradient average is the global batch's mean gradient
    bounds = distributed.shard_bounds(bs, world)
    lo, hi = bounds[rank], bounds[rank + 1]
    loss_weight = world * (hi - lo) / bs

    result = FitResult()
    # what decides the run besides the weights: a resume with other values would not continue
    # it (another split, other batches) and is refused
    settings = {"samples": n, "data": data_fingerprint(data), "seed": seed,
                "batch_size": batch_size, "lr": lr,
                "weight_decay": weight_decay, "patience": patience,
                "val_fraction": None if val_data is not None else val_fraction,
                "val_corrupted": model.corruption is not None}
    state: dict[str, Any] = {"epoch": 0, "step": 0, "elapsed": 0.0, "best_val": math.inf,
                             "best_epoch": -1, "bad_epochs": 0, "history": [],
                             "settings": settings}
    best_state: dict[str, torch.Tensor] | None = None
    if resume:
        if ckpt_path is None or not ckpt_path.is_file():
            raise AekitError(f"nothing to resume: no {CHECKPOINT_NAME} in {out}")
        state, best_state = load_checkpoint(ckpt_path, model, optimizer, rank)
        recorded = state.get("settings") or settings  # (checkpoints before they were kept)
        changed = [f"{k} {recorded.get(k)!r} (now {v!r})" for k, v in settings.items()
                   if k in recorded and recorded[k] != v]
        if any(k in recorded and recorded[k] != settings[k] for k in ("samples", "data")):
            # (other data of the same size resumed silently; a size change was reported as
            # the batch size it implies)
            raise AekitError(f"{ckpt_path} was trained on other data ({recorded['samples']} "
                             f"samples; now {n}{', other values' if recorded['samples'] == n else ''}"
                             "): a resume continues on the data the run started on")
        if changed:
            raise AekitError(f"{ckpt_path} was trained with {', '.join(changed)}: a resume with "
                             "other settings would not continue that run")
        if "val_corrupted" not in recorded and model.corruption is not None:
            # checkpointed when validation saw clean inputs: its best loss is not comparable
            # with the noisy validation of now, so early stopping starts its count afresh
            state["best_val"], state["bad_epochs"] = math.inf, 0
            recorded["val_corrupted"] = True
        model.to(dev)
        match_state_layout(optimizer)
    elif rank > 0:
        torch.manual_seed(seed * 1_000_003 + rank)  # own corruption / sampling noise per rank
    if out is not None and main:
        out.mkdir(parents=True, exist_ok=True)

    net: torch.nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    step_fn = torch.compile(net) if compile else net

    use_amp = amp and bf16_autocast_pays(dev)
    if resume and state.get("amp") is not None and state["amp"] != use_amp and main:
        # (another machine, or AEKIT_CPU_AMP): allowed, but no longer bit for bit
        warn(f"the run started with bf16 autocast {'on' if state['amp'] else 'off'} and resumes "
             f"with it {'on' if use_amp else 'off'}: it continues, but not exactly as it would "
             "have")
    state["amp"] = use_amp
    autocast = ((lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if use_amp
                else contextlib.nullcontext)
    show = (sys.stderr.isatty() if progress is None else progress) and main
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps if total_steps else None, initial=state["step"],
                   unit="step", dynamic_ncols=True, leave=False, file=sys.stderr)

    # streamed data: a DataLoader whose persistent workers gather the next batches ahead
    streamed = train_src.streamed or (train_tgt is not None and train_tgt.streamed)
    n_workers = (default_workers(info.local_world_size) if workers is None else workers) if streamed else 0
    sampler = _EpochSampler()
    loader = None
    threads_before = torch.get_num_threads()
    if n_workers > 0 and dev.type == "cpu":
        # the workers decode on cores of their own: oversubscribed OpenMP threads crawl
        from aekit._runtime import available_cores

        spare = max(1, available_cores() // max(info.local_world_size, 1) - n_workers)
        torch.set_num_threads(min(threads_before, spare))
    if n_workers > 0:
        loader = torch.utils.data.DataLoader(
            _IndexedBatches(train_src, train_tgt), batch_size=None, sampler=sampler,
            num_workers=n_workers, persistent_workers=True, prefetch_factor=4,
            pin_memory=dev.type == "cuda")

    def layout(t: torch.Tensor) -> torch.Tensor:
        if channels_last and t.dim() == 4:
            return t.contiguous(memory_format=torch.channels_last)
        return t

    def epoch_batches(perm: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        shares = [perm[b * bs + lo: b * bs + hi] for b in range(steps_per_epoch)]
        if loader is None:
            for idx in shares:
                xb = train_src.get(idx)
                tb = train_tgt.get(idx) if train_tgt is not None else None
                yield layout(xb), (layout(tb) if tb is not None else None)
            return
        # sorted indices read a memory map or a folder in file order; the batch's contents
        # (a set) and so its mean gradient are unchanged
        sampler.batches = [np.sort(idx.numpy()) for idx in shares]
        try:
            for xb, tb in loader:
                xb = xb.to(dev, non_blocking=True)
                tb = tb.to(dev, non_blocking=True) if train_tgt is not None else None
                yield layout(xb), (layout(tb) if tb is not None else None)
        except DataError as e:  # raised in a worker: keep its one line, not the traceback
            last = str(e).strip().splitlines()[-1]
            raise DataError(last.split("DataError: ", 1)[-1]) from None

    start_time = time.perf_counter() - state["elapsed"]
    step = state["step"]
    epoch = state["epoch"]
    samples_seen = 0
    stopped = "budget"
    # distributed runs on a time budget agree on rank 0's clock (a broadcast per step), so
    # every rank uses the same learning rate and stops after the same step
    clock = torch.zeros(1, dtype=torch.float64, device=dev)

    def elapsed() -> float:
        return time.perf_counter() - start_time

    def shared_elapsed() -> float:
        if world == 1:
            return elapsed()
        clock.fill_(elapsed())
        return float(distributed.broadcast_(clock, 0))

    now = shared_elapsed() if budget_s is not None else 0.0

    def progress_now() -> float:
        if total_steps is not None:
            return step / total_steps
        return min((elapsed() if world == 1 else now) / budget_s, 1.0)  # type: ignore[operator]

    def evaluate() -> dict[str, float]:
        if val_src is None:
            return {}
        model.eval()
        nv = len(val_src)
        vb = distributed.shard_bounds(nv, world) if nv >= world else [0] + [nv] * world
        v_lo, v_hi = (vb[rank], vb[rank + 1]) if nv >= world else (0, nv)
        sums: dict[str, float] = {}
        count = 0
        # a denoiser is judged on noisy inputs, as it trains (on clean ones its validation
        # loss measured copying, 0.6 against a training loss of 1.0): the same seeded noise
        # at every validation, so epochs compare
        with torch.no_grad(), autocast(), torch.random.fork_rng(
                devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed + rank)
            for s in range(v_lo, v_hi, 512):
                idx = torch.arange(s, min(s + 512, v_hi))
                xb = val_src.get(idx)
                tb = val_tgt.get(idx) if val_tgt is not None else None
                o = model(xb, tb, corrupt=True)
                for k, v in o.losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
                count += len(idx)
        model.train()
        if world > 1 and nv >= world:
            keys = sorted(sums)
            tot = distributed.all_reduce_sum(torch.tensor([count] + [sums[k] for k in keys],
                                                          dtype=torch.float64, device=dev)).tolist()
            count, sums = int(tot[0]), dict(zip(keys, tot[1:]))
        out_d = {f"val_{k}": v / count for k, v in sums.items()}
        out_d["val_loss"] = sum(v for k, v in out_d.items())
        return out_d

    model.train()
    done = False
    if resume:  # a run that had finished: resuming it trains nothing more (it went on, one
        # epoch or step per resume, and replaced the saved model)
        if patience is not None and state["bad_epochs"] >= patience:
            stopped, done = "early_stopping", True
        elif budget_s is not None and state["elapsed"] >= budget_s:
            stopped, done = "time", True
    t_train = 0.0
    try:
        while not done:
            if epochs is not None and epoch >= epochs:
                break
            g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            perm = torch.randperm(n_train, generator=g)
            run_loss = torch.zeros((), device=dev)
            comp: dict[str, torch.Tensor] = {}
            t0 = time.perf_counter()
            steps_this_epoch = 0
            for b, (xb, tb) in enumerate(epoch_batches(perm)):
                for group in optimizer.param_groups:
                    group["lr"] = lr * lr_factor(progress_now(), warmup)
                with autocast():
                    o = step_fn(xb, tb)
                    loss = o.loss if loss_weight == 1.0 else o.loss * loss_weight
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
                optimizer.step()
                step += 1
                steps_this_epoch += 1
                samples_seen += bs
                run_loss += loss.detach()
                for k, v in o.losses.items():
                    v = v.detach()
                    comp[k] = comp[k] + v if k in comp else v
                if bar is not None and (step % 10 == 0 or b == steps_per_epoch - 1):
                    bar.update(10 if step % 10 == 0 else step % 10)
                    bar.set_postfix(epoch=epoch + 1,
                                    loss=f"{float(run_loss) / steps_this_epoch:.4g}")
                if budget_s is not None:
                    now = shared_elapsed()
                    if now >= budget_s:
                        stopped = "time"
                        done = True
                        break
            t_train += time.perf_counter() - t0
            if world > 1:  # the global batch's loss: average the weighted shares over ranks
                keys = list(comp)
                tot = distributed.all_reduce_sum(
                    torch.stack([run_loss.float()] + [comp[k].float() * loss_weight for k in keys]))
                tot = (tot / world).tolist()
                run_loss_val, comp = tot[0], dict(zip(keys, tot[1:]))
            else:
                run_loss_val = float(run_loss)
            loss_val = run_loss_val / max(steps_this_epoch, 1)
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
            if on_epoch_end is not None and main:
                on_epoch_end(record)
            if patience is not None and state["bad_epochs"] >= patience:
                stopped = "early_stopping"
                done = True
            state.update(epoch=epoch, step=step, elapsed=elapsed())
            if out is not None and ((epoch % checkpoint_every == 0) or done):
                # every rank's RNG goes into rank 0's checkpoint (a collective: all ranks call)
                rngs = ([t.cpu() for t in distributed.all_gather(torch.get_rng_state().to(dev))]
                        if world > 1 else None)
                if main:
                    save_checkpoint(ckpt_path, model, optimizer, best_state, state, rngs)  # type: ignore[arg-type]
            if out is not None and main:
                write_text_atomic(out / METRICS_NAME,
                                  "".join(json.dumps(r) + "\n" for r in state["history"]))
    finally:
        if bar is not None:
            bar.close()
        if loader is not None:
            del loader  # stops the persistent workers
            torch.set_num_threads(threads_before)
    if best_state is not None:
        model.load_state_dict(best_state)
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
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
