"""``aekit export``: a saved model's encoder, decoder or whole, as an ONNX file."""

from __future__ import annotations

import argparse

from aekit.apps import Handler, command
from aekit.apps.common import add_json_flag, emit, load_model
from aekit.errors import AekitError
from aekit.export import DEFAULT_OPSET, FORMATS, PARTS, export_checked


@command("export", help="export a model (encoder, decoder or full) to ONNX for deployment")
def export_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("model", help="model directory")
    p.add_argument("out", help="output file (.onnx)")
    p.add_argument("--format", default="onnx", choices=FORMATS, help="file format (default onnx)")
    p.add_argument("--part", default="full", choices=PARTS,
                   help="encoder: data → code; decoder: code → data; full: data → reconstruction")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--no-check", action="store_true",
                   help="skip running the file with onnxruntime against PyTorch")
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        if not args.out.lower().endswith(".onnx"):
            raise AekitError("the output file must end in .onnx")
        model = load_model(args.model)
        # checked before the file takes its name: a file onnxruntime cannot run, or one
        # that disagrees with PyTorch, is one error line and leaves nothing behind
        path, diff = export_checked(model, args.out, args.part, args.opset,
                                    check=not args.no_check)
        obj = {"out": str(path), "part": args.part, "format": args.format, "opset": args.opset,
               "bytes": path.stat().st_size, "max_abs_diff": diff}
        check = "" if diff is None else f"; onnxruntime matches PyTorch to {diff:.1e}"
        what = "whole model" if args.part == "full" else args.part
        emit(args, obj, f"wrote the {what} of {args.model} to {path} "
                        f"({obj['bytes'] / 1024:.0f} KiB, opset {args.opset}){check}")
        return 0

    return run
