"""The ``restore`` preset and its tasks: what corrupts the input for each restoration job.

A restoration model is a residual U-Net (:mod:`aekit.nn.unet`) with an identity output,
trained to undo one corruption. ``restore`` alone is blind denoising; :data:`TASKS` holds
the overrides of each task (``aekit train --preset restore --task upscale``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from aekit.errors import AekitError
from aekit.models import PRESETS, ModelConfig, preset_config

#: blind denoising range, σ in [0, 50] on the 0–255 scale (DnCNN-B's)
SIGMA_MAX = 50 / 255

UNET = {"widths": [32, 64, 128], "blocks": 2, "unshuffle": 2, "residual": True}

TASKS: dict[str, dict[str, Any]] = {
    "denoise": {"corruption": "gaussian",
                "corruption_options": {"sigma": [0.0, SIGMA_MAX], "clip": False}},
    "colorize": {"corruption": "grayscale", "corruption_options": {}},
    # gated: the network also says where the mark is and leaves every other pixel alone
    "unwatermark": {"corruption": "watermark", "corruption_options": {"split": "train"},
                    "arch_options": {"gate": True}},
    # unshuffle = scale: the network runs at the low resolution (see nn/unet.py)
    "upscale": {"corruption": "downsample", "corruption_options": {"scale": 2},
                "arch_options": {"unshuffle": 2}},
    "deblur": {"corruption": "blur", "corruption_options": {"sigma": [0.5, 2.0]}},
    "inpaint": {"corruption": "holes", "corruption_options": {}},
}

#: a task's training objective when none is given (others: "mse"; see
#: aekit.apps.restore.train_restorer). Denoising spans σ 0–50, where plain MSE is ruled by
#: σ = 50: the same 55-minute CPU round from one start reached a mean Set14-luma PSNR over
#: σ 15/25/50 of 28.75 dB on "relative" and 28.58 on MSE
TASK_OBJECTIVE = {"denoise": "relative"}

PRESETS.add("restore", {"arch": "unet", "arch_options": dict(UNET),
                        "output_activation": "identity", **TASKS["denoise"]},
            help="image restoration: residual U-Net undoing a corruption (--task denoise|colorize|"
                 "unwatermark|upscale)")


def task_overrides(task: str, scale: int = 2) -> dict[str, Any]:
    """Config overrides of ``restore`` for one task (``scale`` for upscale)."""
    if task not in TASKS:
        raise AekitError(f"unknown restoration task {task!r}; known: {', '.join(TASKS)}")
    o = copy.deepcopy(TASKS[task])
    if task == "upscale":
        if scale not in (2, 3, 4):
            raise AekitError(f"upscale scale must be 2, 3 or 4, got {scale}")
        o["corruption_options"] = {"scale": scale}
        # the network runs at the low resolution on every input pixel: keep it narrow so a
        # 768×512 photo upscales in a few CPU seconds
        o["arch_options"] = {"unshuffle": scale, "widths": [16, 32, 64]}
    return o


def restore_config(task: str, input_shape: Sequence[int], latent_dim: int = 64, scale: int = 2,
                   **overrides: Any) -> ModelConfig:
    """The ``restore`` preset's config for one task; the task's corruption *replaces* the
    preset's (options of different corruptions must not be merged)."""
    o = task_overrides(task, scale)
    merged = {**o, **overrides}
    if "arch_options" in o and "arch_options" in overrides:  # the task's unshuffle stays
        merged["arch_options"] = {**o["arch_options"], **overrides["arch_options"]}
    cfg = preset_config("restore", input_shape, latent_dim, **merged)
    cfg.corruption_options = copy.deepcopy(
        overrides.get("corruption_options", o.get("corruption_options", {})))
    cfg.extra = {"task": task, **({"scale": scale} if task == "upscale" else {}), **cfg.extra}
    return cfg
