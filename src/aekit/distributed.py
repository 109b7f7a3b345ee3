"""Multi-process training under ``torchrun``: which process am I, and the few collectives
:func:`aekit.training.fit` needs.

``torchrun --nproc-per-node N -m aekit train …`` starts N copies of the same command with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment; ``fit()`` then joins the
process group (gloo on CPU, NCCL on GPUs), wraps the model in DistributedDataParallel and
gives each process a contiguous share of every global batch. Only rank 0 logs, shows
progress and writes files; :func:`is_main_process` is how the commands above ``fit()`` ask.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch

from aekit.errors import AekitError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise AekitError(f"environment variable {name} must be an integer") from None


def current() -> DistInfo:
    """This process's place: from the live process group, else from torchrun's variables."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0),
                        _env_int("LOCAL_WORLD_SIZE", 1))
    world = _env_int("WORLD_SIZE", 1)
    if world < 1:
        raise AekitError(f"environment variable WORLD_SIZE must be at least 1, not {world}")
    if world == 1:  # one process: a RANK left by a scheduler or shell does not make it rank > 0
        return DistInfo(0, 1, 0, 1)
    rank = _env_int("RANK", 0)
    if not 0 <= rank < world:
        raise AekitError(f"environment variable RANK={rank} is outside 0..{world - 1} "
                         f"(WORLD_SIZE={world})")
    return DistInfo(rank, world, _env_int("LOCAL_RANK", 0), _env_int("LOCAL_WORLD_SIZE", 1))


def is_main_process() -> bool:
    return current().is_main


def setup(device: torch.device) -> tuple[DistInfo, torch.device, bool]:
    """Join the process group if torchrun asked for several processes.

    Returns (info, the device this rank trains on, whether this call created the group and
    so must destroy it)."""
    import torch.distributed as dist

    info = current()
    if not info.active:
        return info, device, False
    if not dist.is_available():
        raise AekitError("this PyTorch build has no torch.distributed; run one process")
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise AekitError(f"distributed training runs on cpu (gloo) or cuda (nccl), not {device.type}")
    if dist.is_initialized():
        return current(), device, False
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = timedelta(minutes=float(os.environ.get("AEKIT_DIST_TIMEOUT_MIN", "30")))
    try:
        dist.init_process_group(backend, timeout=timeout)
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise AekitError(f"cannot join the {backend} process group: {first}") from None
    return current(), device, True


def teardown(owned: bool) -> None:
    import torch.distributed as dist

    if owned and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over all ranks (in place, and returned); a no-op in one process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.broadcast(t, src)
    return t


def all_gather(t: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's copy of a same-shaped tensor, in rank order."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return [t]
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t.contiguous())
    return out


def shard_bounds(n: int, world_size: int) -> list[int]:
    """Start offsets (plus the end) of ``world_size`` contiguous, near-equal shares of ``n``."""
    return [(n * r) // world_size for r in range(world_size + 1)]
