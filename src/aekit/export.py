"""Deploying a model outside Python: ONNX export of its encoder, decoder or whole.

    part="encoder":  x (B, *input_shape) ──▶ z (B, latent…)      deterministic (a VAE: its mean)
    part="decoder":  z (B, latent…)      ──▶ x̂ (B, *input_shape)
    part="full":     x (B, *input_shape) ──▶ x̂                   decode(encode(x))

Inputs and outputs are in data space (images in [0, 1], tabular data in its own units): the
normalisation a model learned travels inside the graph. The batch axis is dynamic. The
model's ``config.json`` and the part are stored in the ONNX metadata (``aekit_config``,
``aekit_part``), so a deployment can tell what it runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aekit.errors import AekitError
from aekit.io import atomic_path
from aekit.models import Autoencoder

PARTS = ("encoder", "decoder", "full")
FORMATS = ("onnx",)
DEFAULT_OPSET = 17


class _Encoder(nn.Module):
    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x)


class _Decoder(nn.Module):
    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)


class _Full(nn.Module):
    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.reconstruct(x)


def part_module(model: Autoencoder, part: str) -> nn.Module:
    """The callable one part computes, as a module (what gets exported)."""
    wrappers = {"encoder": _Encoder, "decoder": _Decoder, "full": _Full}
    if part not in wrappers:
        raise AekitError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    return wrappers[part](model).eval()


@torch.no_grad()
def example_input(model: Autoencoder, part: str, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A deterministic input batch for ``part``: data-like for encoder/full, codes of such
    data for the decoder."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, *model.input_shape, generator=g)
    if model.config.normalization == "standard":  # tabular: values around the data's range
        x = model.denormalize(torch.randn(batch, *model.input_shape, generator=g))
    return model.encode(x) if part == "decoder" else x


def opset_range() -> tuple[int, int]:
    """The ONNX opsets torch's TorchScript exporter (``dynamo=False``) writes."""
    try:
        from torch.onnx import _constants as c

        return int(c.ONNX_MIN_OPSET), int(getattr(c, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET",
                                                 c.ONNX_MAX_OPSET))
    except (ImportError, AttributeError):  # pragma: no cover - a torch that moved them
        return 7, DEFAULT_OPSET


@contextlib.contextmanager
def _quiet_output() -> Iterator[None]:
    """Send file descriptors 1 and 2 to /dev/null for the block (the exporter's C++ side logs
    to them directly, past Python's sys.stdout/sys.stderr)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # pragma: no cover - nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        for fd, old in zip((1, 2), saved):
            os.dup2(old, fd)
            os.close(old)


def export_onnx(model: Autoencoder, out: str | os.PathLike[str], part: str = "full",
                opset: int = DEFAULT_OPSET) -> Path:
    """Write ``part`` of ``model`` as an ONNX file at ``out`` (atomically), batch axis dynamic.

    Input name ``x`` (or ``z`` for the decoder), output ``z`` (or ``x_hat``)."""
    return export_checked(model, out, part, opset, check=False)[0]


def export_checked(model: Autoencoder, out: str | os.PathLike[str], part: str = "full",
                   opset: int = DEFAULT_OPSET, check: bool = True) -> tuple[Path, float | None]:
    """:func:`export_onnx`, and with ``check`` the file is run with onnxruntime against
    PyTorch (:func:`check_onnx`) before it takes the name ``out``: a file onnxruntime cannot
    run, or one that disagrees, is an AekitError and is not kept. (path, largest difference
    or None)."""
    out = Path(out)
    lo, hi = opset_range()
    if not lo <= opset <= hi:  # (torch's own refusal comes after a 50-line graph dump)
        raise AekitError(f"opset {opset} is not one this torch exports: {lo}–{hi}")
    if part == "decoder" and not getattr(model.decoder, "standalone", True):
        # the skip features and the input would be traced from the example batch and stored
        # as constants: a file that runs and ignores the image it is given
        raise AekitError(f"the decoder of this {model.config.preset} model ({model.config.arch}) "
                         "takes its encoder's skip features and input besides the code, so it "
                         "cannot run alone: export --part full (or encoder)")
    module = part_module(model.cpu().eval(), part)
    example = example_input(model, part)
    in_name = "z" if part == "decoder" else "x"
    out_name = "z" if part == "encoder" else "x_hat"
    diff = None
    with atomic_path(out, suffix=".onnx") as tmp:
        try:
            # the exporter prints its whole Torch IR graph (~100 lines) to the process's stdout
            # before an unsupported-operator error (e.g. unflatten below opset 13): the one-line
            # error below says what failed
            with warnings.catch_warnings(), _quiet_output():
                warnings.simplefilter("ignore")  # tracer chatter about Python-side shape checks
                torch.onnx.export(
                    module, (example,), str(tmp), input_names=[in_name], output_names=[out_name],
                    dynamic_axes={in_name: {0: "batch"}, out_name: {0: "batch"}},
                    opset_version=opset, dynamo=False, do_constant_folding=True)
        except Exception as e:  # noqa: BLE001 — the exporter raises many types
            first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            what = "whole model" if part == "full" else part
            raise AekitError(f"cannot export the {what} of this {model.config.preset} model to "
                             f"ONNX: {first}") from None
        with torch.no_grad():
            ref = module(example)
        _add_metadata(tmp, model, part, tuple(ref.shape[1:]))
        if check:
            diff = check_onnx(model, tmp, part)
            tol = 1e-3 * max(1.0, float(ref.abs().max()))  # data in its own units
            if not diff <= tol:
                raise AekitError(f"the exported {part} disagrees with PyTorch by {diff:.3g} "
                                 f"(more than {tol:.1g}): not written")
    return out, diff


def _add_metadata(path: Path, model: Autoencoder, part: str,
                  out_shape: tuple[int, ...] = ()) -> None:
    """The model's config and the part as metadata; the output's fixed sizes written into
    its type (shape inference left some unnamed, e.g. a VAE's code as ``Castz_dim_1``)."""
    import onnx

    from aekit import __version__

    proto = onnx.load(str(path))
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    if len(dims) == len(out_shape) + 1:
        for dim, size in zip(list(dims)[1:], out_shape):
            dim.dim_value = int(size)
    for key, value in (("aekit_config", json.dumps(model.config.to_dict())),
                       ("aekit_part", part), ("aekit_version", __version__)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def onnx_session(path: str | os.PathLike[str], threads: int | None = None):
    """An onnxruntime CPU inference session for an exported file (what the check and the
    benchmarks run; a deployment builds its own)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise AekitError("onnxruntime is not installed: pip install onnxruntime") from None
    from aekit._runtime import SMALL_CPU_CORES, available_cores

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # fatal only: a failure is raised to the caller, not printed
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if available_cores() <= SMALL_CPU_CORES:
        # as for torch (aekit/_runtime.py): on a small, contended CPU spinning threads wait
        # on descheduled ones; passive waiting encoded 1.6× faster on a shared 2-core machine
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@torch.no_grad()
def check_onnx(model: Autoencoder, path: str | os.PathLike[str], part: str,
               batch: int = 8) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's outputs of ``part``
    on a deterministic batch (of a different size than the export's, to exercise the
    dynamic batch axis)."""
    x = example_input(model, part, batch=batch, seed=1)
    want = part_module(model.cpu().eval(), part)(x).numpy()
    try:
        sess = onnx_session(path)
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    except AekitError:
        raise
    except Exception as e:  # noqa: BLE001 — onnxruntime's own error types
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise AekitError(f"onnxruntime cannot run the exported {part}: {first}") from None
    if got.shape != want.shape:
        raise AekitError(f"{path}: ONNX output shape {got.shape} differs from PyTorch's {want.shape}")
    return float(np.max(np.abs(got - want))) if want.size else 0.0
