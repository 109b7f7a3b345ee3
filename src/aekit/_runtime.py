"""Process-wide defaults that must be in place before torch loads its OpenMP runtime.

On a small CPU (≤ 4 cores) every core is usually contended — by DataLoader workers, by
other ``torchrun`` processes, by whatever else runs — and OpenMP's default of spinning
while it waits for a descheduled thread then makes each parallel op crawl: on a shared
2-core machine a deep MLP encoded 875 images/s with 2 threads and 7,300 with 1 thread;
with ``OMP_WAIT_POLICY=PASSIVE`` 2 threads gave 7,600 (benchmarks/scale.py, section 5).
So aekit makes passive waiting the default there, unless the user chose a policy, and only
if torch is not yet imported (a library user who imports torch first keeps torch's default).
"""

from __future__ import annotations

import os
import sys

SMALL_CPU_CORES = 4


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


if "torch" not in sys.modules and available_cores() <= SMALL_CPU_CORES:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
