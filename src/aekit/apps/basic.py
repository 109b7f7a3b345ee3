"""The core commands: train, evaluate, encode, reconstruct, info, presets, datasets."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from aekit.apps import Handler, command
from aekit.apps.common import (
    TRAIN_HOOKS,
    add_data_options,
    add_json_flag,
    add_progress_flag,
    check_not_data,
    check_out_dir,
    count_arg,
    data_stem,
    emit,
    format_table,
    load_data_for,
    load_model,
    plural,
    positive_float,
    positive_int,
    seed_arg,
    unique_run_dir,
)
from aekit.data import absolute_spec, list_datasets
from aekit.distributed import is_main_process
from aekit.errors import AekitError
from aekit.evaluation import encode_to_npy, evaluate_model, image_grid, reconstruct_array
from aekit.io import read_json
from aekit.models import PRESETS, Autoencoder, preset_config
from aekit.training import CHECKPOINT_NAME, fit, split_indices

DEFAULT_DATA = "digits"
DEFAULT_PRESET = "deep"
DEFAULT_LATENT_DIM = 16
DEFAULT_LR = 2e-3


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with a JSON value (bare words are strings): ``arch_options={"hidden":[64]}``."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"options look like key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        val = json.loads(raw)
    except json.JSONDecodeError:
        val = raw
    return key.strip(), val


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None,
                   help=f"one of `aekit presets` (default {DEFAULT_PRESET}; with --resume, the run's)")
    p.add_argument("--data", default=None,
                   help=f"data spec (default {DEFAULT_DATA}, embedded; with --resume, the run's)")
    p.add_argument("--latent-dim", type=int, default=None,
                   help=f"code size (default {DEFAULT_LATENT_DIM}; with --resume, the run's)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=None, help="epochs (default 30 without --minutes)")
    budget.add_argument("--minutes", type=float, default=None, help="wall-clock budget in minutes")
    p.add_argument("--out", default=None, help="model directory (default runs/<preset>-<data>-<time>)")
    p.add_argument("--seed", type=seed_arg, default=None,
                   help="seed of the weights, the split and the batches (default 0; with "
                        "--resume, the run's)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --out, on the data, seed and training "
                        "settings it recorded")
    p.add_argument("--batch-size", type=int, default=None,
                   help="global batch (default: ~50 steps per epoch, at most 128; with --resume, "
                        "the run's)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"peak learning rate (default {DEFAULT_LR}; --preset restore: its own; "
                        "with --resume, the run's)")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="share of the data held out for early stopping and the printed metrics "
                        "(default 0.1; 0 = none; with --resume, the run's)")
    p.add_argument("--patience", type=count_arg, default=None,
                   help="early-stopping patience in epochs (default 20; 0 = off; with --resume, "
                        "the run's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--option", action="append", type=parse_option, default=[], metavar="KEY=VALUE",
                   help="override a model config field, e.g. code_options='{\"k\": 4}' (repeatable)")
    p.add_argument("--init-encoder-from", default=None, metavar="DIR",
                   help="transfer learning: start from this saved model's encoder")
    p.add_argument("--transfer-layers", type=int, default=None, metavar="N",
                   help="with --init-encoder-from: copy only the first N encoder layers")
    p.add_argument("--freeze", action="store_true", help="keep transferred encoder layers frozen")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--compile", action="store_true",
                   help="run training through torch.compile (opt-in; pays on long GPU runs)")
    p.add_argument("--task", default=None,
                   help="for --preset restore: denoise, colorize, unwatermark, "
                        "upscale[-x2|-x3|-x4], deblur or inpaint")
    add_data_options(p)
    add_json_flag(p)


#: `aekit train` flags a run records in run.json and a resume takes back (flag → default)
RUN_SETTINGS = {"data": DEFAULT_DATA, "seed": 0, "val_fraction": 0.1, "patience": 20,
                "batch_size": None, "lr": None,
                # how a folder or a CSV is read (a resume re-reads the data: without them it
                # read a 16x16 run's folder at 64x64 and refused it)
                "image_size": None, "channels": None, "label_col": None}
#: the kind of value each recorded setting (and budget) must have in run.json: a hand-edited
#: "32" failed deep in training with an internal error
_RECORDED_KINDS = {"seed": int, "val_fraction": (int, float), "patience": (int, type(None)),
                   "batch_size": (int, type(None)), "lr": (int, float, type(None)),
                   "image_size": (list, tuple, type(None)), "channels": (int, type(None)),
                   "label_col": (str, type(None)), "epochs": (int, type(None)),
                   "minutes": (int, float, type(None))}


def resolve_run_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """Fill the flags of :data:`RUN_SETTINGS` that were not given: with ``--resume`` from the
    run's ``run.json`` (so a resumed run continues on the data, split and batches it started
    with), else the defaults. Returns the run file's contents when resuming."""
    run = None
    if args.resume:
        if not args.out:
            raise AekitError("--resume needs --out (the run directory to continue)")
        cfg_file = Path(args.out) / "run.json"
        run = read_json(cfg_file, "run file",
                        missing=f"nothing to resume in {args.out}: run.json is missing")
        if not isinstance(run, dict):
            raise AekitError(f"{cfg_file} is not a valid run file")
        for key in RUN_SETTINGS:
            if getattr(args, key, None) is None:
                setattr(args, key, run.get(key))
        if args.epochs is None and args.minutes is None:  # the run's budget (and LR schedule)
            args.epochs, args.minutes = run.get("epochs"), run.get("minutes")
        bad = [key for key, kinds in _RECORDED_KINDS.items()
               if isinstance(getattr(args, key, None), bool)
               or not isinstance(getattr(args, key, None), kinds)]
        if bad:
            raise AekitError(f"{cfg_file} is not a valid run file (bad "
                             f"{', '.join(f'{k} {getattr(args, k)!r}' for k in bad)})")
        if args.image_size is not None:
            if len(args.image_size) != 2 or not all(isinstance(v, int) and v > 0
                                                    for v in args.image_size):
                raise AekitError(f"{cfg_file} is not a valid run file (bad image_size "
                                 f"{args.image_size!r})")
            args.image_size = tuple(args.image_size)
        model = run.get("model") if isinstance(run.get("model"), dict) else {}
        for key, flag in (("preset", "--preset"), ("latent_dim", "--latent-dim")):
            given, recorded = getattr(args, key), model.get(key)
            if given is not None and recorded is not None and given != recorded:
                # (they were silently ignored: the run continues with its own model)
                raise AekitError(f"{flag} {given} differs from the run's {recorded}: a resume "
                                 f"continues the run's own model; leave {flag} out, or train a "
                                 "new run in another --out")
            setattr(args, key, recorded if recorded is not None else given)
        # the same command again with --resume is fine; a model option the run did not
        # start with would be ignored (the model was built when it started): refused
        overrides = run.get("model_overrides") if isinstance(run.get("model_overrides"), dict) else {}
        transfer = run.get("transfer") if isinstance(run.get("transfer"), dict) else {}
        changed = [f"--option {key}=" for key, value in args.option if overrides.get(key) != value]
        given = {"init_encoder_from": absolute_spec(args.init_encoder_from)
                 if args.init_encoder_from else None,
                 "transfer_layers": args.transfer_layers, "freeze": args.freeze or None}
        changed += [f"--{key.replace('_', '-')}" for key, value in given.items()
                    if value is not None and transfer.get(key) != value]
        if changed:
            raise AekitError(f"{', '.join(changed)} differ from what the run being resumed "
                             "started with (its model was built then); leave them out")
    if getattr(args, "preset", None) is None:
        args.preset = DEFAULT_PRESET
    if getattr(args, "latent_dim", None) is None:
        args.latent_dim = DEFAULT_LATENT_DIM
    for key, default in RUN_SETTINGS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, default)
    if not isinstance(args.data, str) or not isinstance(args.seed, int) or args.seed < 0:
        raise AekitError(f"{args.out}/run.json is not a valid run file (data {args.data!r}, "
                         f"seed {args.seed!r})")
    if not 0 <= args.val_fraction < 1:
        raise AekitError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    for key, value in args.option:
        if key in ("latent_dim", "input_shape", "preset"):
            raise AekitError(f"--option {key}= is not a model option here: "
                             + ("use --latent-dim" if key == "latent_dim" else "use --preset"
                                if key == "preset" else "the input shape comes from the data"))
        if key.endswith("_options") and not isinstance(value, dict):
            raise AekitError(f"--option {key}= needs a JSON object, e.g. {key}='{{\"k\": 4}}', "
                             f"got {value!r}")
    return run


def train_from_args(args: argparse.Namespace) -> tuple[Autoencoder, Path, dict[str, Any]]:
    """Shared by `aekit train` and by jobs that train through the same flags."""
    if (args.transfer_layers is not None or args.freeze) and not args.init_encoder_from:
        raise AekitError("--transfer-layers and --freeze go with --init-encoder-from DIR")
    run = resolve_run_args(args)  # (a resume takes its preset from the run)
    # PRESETS.get raises the one-line "unknown preset" error
    if PRESETS.get(args.preset).get("arch") == "bow":
        # the text presets need what their jobs compute from the corpus first (vocabulary,
        # idf, word vectors) and after (the topics' attributed counts)
        raise AekitError(f"preset {args.preset!r} trains on a text corpus: use `aekit topics "
                         f"CORPUS --topics K` (topic, prodlda) or `aekit docindex CORPUS` "
                         f"(doc-hash)")
    if args.out:
        check_out_dir(Path(args.out), fresh=not args.resume)
    if run is not None:
        cfg_file = Path(args.out) / "run.json"
        try:
            config = preset_config(**{k: run["model"][k]
                                      for k in ("preset", "input_shape", "latent_dim")},
                                   **run["model_overrides"])
        except (KeyError, TypeError) as e:
            raise AekitError(f"{cfg_file} is not a valid run file (no {e})") from None
    data = load_data_for(args, args.data)
    if not args.resume:
        overrides = dict(args.option)
        # tables, and images outside [0, 1] (a sigmoid output cannot reproduce them), are
        # standardised and decoded linearly
        if not data.is_image or not data.in_unit_range():
            overrides.setdefault("normalization", "standard")
        config = preset_config(args.preset, data.input_shape, args.latent_dim, **overrides)
        run = {"model": {"preset": args.preset, "input_shape": list(data.input_shape),
                         "latent_dim": args.latent_dim},
               "model_overrides": overrides, **{k: getattr(args, k) for k in RUN_SETTINGS},
               "epochs": args.epochs, "minutes": args.minutes}
        run["data"] = absolute_spec(args.data)  # a resume from another folder finds it too
    import torch

    torch.manual_seed(args.seed)  # the initial weights follow --seed (every rank alike)
    model = Autoencoder(config)
    if tuple(data.input_shape) != model.input_shape:
        raise AekitError(f"{data.name}: samples have shape {tuple(data.input_shape)} but the run "
                         f"being resumed expects {model.input_shape}")
    if args.init_encoder_from and not args.resume:
        model.load_encoder_from(args.init_encoder_from, args.transfer_layers, args.freeze)
        run["frozen"] = [n for n, p in model.named_parameters() if not p.requires_grad]
        run["transfer"] = {"init_encoder_from": absolute_spec(args.init_encoder_from),
                           "transfer_layers": args.transfer_layers, "freeze": args.freeze or None}
    elif args.resume:  # a resumed transfer run keeps its layers frozen
        for name in run.get("frozen") or []:
            model.get_parameter(name).requires_grad_(False)
    main = is_main_process()  # under torchrun only rank 0 writes files
    made_out = False
    if args.out:
        out = Path(args.out)
        if main:  # only rank 0 makes it, so a run that fails early can remove what it made
            from aekit.io import make_dir

            made_out = not out.exists()
            make_dir(out)
    elif main:
        out, made_out = unique_run_dir(f"{args.preset}-{data_stem(args.data)}"), True
    else:  # pragma: no cover - torchrun ranks > 0 write nothing, the name only labels them
        out = Path("runs") / f"{args.preset}-{data_stem(args.data)}"
    if not args.resume and main:
        from aekit.io import write_json_atomic

        write_json_atomic(out / "run.json", run)
    try:
        result = fit(model, data, epochs=args.epochs, minutes=args.minutes,
                     batch_size=args.batch_size, lr=DEFAULT_LR if args.lr is None else args.lr,
                     val_fraction=args.val_fraction, patience=args.patience or None,  # 0 = off
                     seed=args.seed, device=args.device, out_dir=out, resume=args.resume,
                     progress=False if args.no_progress else None,
                     compile=getattr(args, "compile", False))
    except BaseException:
        # a run that failed before its first checkpoint has nothing to resume: leave no files
        try:
            if not args.resume and main and not (out / CHECKPOINT_NAME).exists():
                (out / "run.json").unlink(missing_ok=True)
                if made_out and not any(out.iterdir()):
                    out.rmdir()
        except OSError:  # --out gone or unwritable: the training error is the one to report
            pass
        raise
    summary = {"data": args.data, "seed": args.seed, **result.summary()}
    model.cpu()
    if main:
        model.save_pretrained(out, summary=summary)
    return model, out, summary


#: the longest side of a ``reconstruct`` image grid (PNG's and viewers' practical limit)
MAX_GRID_SIDE = 16384


@command("train", help="train an autoencoder (default: deep preset on the embedded digits)")
def train_cmd(p: argparse.ArgumentParser) -> Handler:
    add_train_arguments(p)

    def run(args: argparse.Namespace) -> int:
        if args.preset is None and not args.resume:
            args.preset = DEFAULT_PRESET
        if args.task and args.preset not in TRAIN_HOOKS:
            raise AekitError(f"--task is for --preset restore, not {args.preset or 'a resumed run'}")
        if args.preset in TRAIN_HOOKS:  # a job with its own loop (e.g. restore: random crops)
            unused = [flag for flag, given in (
                ("--val-fraction", args.val_fraction is not None),
                ("--patience", args.patience is not None), ("--freeze", args.freeze),
                ("--init-encoder-from", args.init_encoder_from is not None),
                ("--transfer-layers", args.transfer_layers is not None)) if given]
            if unused:  # accepted and ignored before: the hook's loop has none of them
                raise AekitError(f"{', '.join(unused)} do not apply to --preset {args.preset} "
                                 "(it trains on random crops in its own loop)")
            if not args.resume:  # (the hook says itself whether it can resume)
                resolve_run_args(args)
            return TRAIN_HOOKS[args.preset](args)
        t0 = time.perf_counter()
        model, out, summary = train_from_args(args)
        if not is_main_process():
            return 0
        data = load_data_for(args, args.data, model)
        held = split_indices(len(data), args.val_fraction, args.seed)[1]  # fit()'s own split
        held_out = held is not None
        metrics = evaluate_model(model, data.subset(held) if held_out else data)
        obj = {"out": str(out), "preset": model.config.preset, "training": summary,
               "metrics": metrics, "metrics_on": "held-out" if held_out else "training",
               "seconds": round(time.perf_counter() - t0, 2)}
        psnr = f", PSNR {metrics['psnr']:.2f} dB" if "psnr" in metrics else ""
        text = (f"trained {model.config.preset} ({model.config.latent_dim}-d code) on {args.data}: "
                f"{plural(summary['epochs'], 'epoch')} in {summary['seconds']:.1f} s; "
                f"{'held-out' if held_out else 'training-set (nothing held out)'} "
                f"SSE/image {metrics['sse_per_image']:.4g}, MSE {metrics['mse']:.4g}{psnr}\n"
                f"saved model to {out}")
        emit(args, obj, text)
        return 0

    return run


@command("evaluate", help="reconstruction metrics of a saved model on data")
def evaluate_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--data", required=True, help="data spec")
    add_data_options(p)
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        model = load_model(args.model)
        data = load_data_for(args, args.data, model)
        m = evaluate_model(model, data)
        rows = [{"metric": k, "value": v} for k, v in m.items()]
        emit(args, {"model": args.model, "data": args.data, **m}, format_table(rows))
        return 0

    return run


@command("encode", help="codes (or any layer's activations) of data, to .npy")
def encode_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--data", required=True, help="data spec (see `aekit datasets`)")
    p.add_argument("--out", required=True, help="output .npy")
    p.add_argument("--layer", default=None, help="layer name, as `aekit info MODEL` lists them (default: code)")
    p.add_argument("--batch-size", type=positive_int, default=1024,
                   help="samples encoded at a time (default 1024)")
    add_data_options(p)
    add_progress_flag(p)
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        if not args.out.endswith(".npy"):
            raise AekitError("--out must end in .npy")
        check_not_data(args.data, args.out)
        model = load_model(args.model)
        data = load_data_for(args, args.data, model)
        shape = encode_to_npy(model, data, args.out, args.layer, args.batch_size,
                              progress=not args.no_progress and sys.stderr.isatty())
        emit(args, {"out": args.out, "shape": list(shape), "layer": args.layer or "code"},
             f"wrote {args.layer or 'code'} of {shape[0]} samples, shape {shape}, to {args.out}")
        return 0

    return run


@command("reconstruct", help="reconstructions of data, to .npy or an image grid .png")
def reconstruct_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--data", required=True, help="data spec (see `aekit datasets`)")
    p.add_argument("--out", required=True, help=".npy (all samples) or .png (grid: originals over reconstructions)")
    p.add_argument("-n", type=positive_int, default=16, help="samples in a .png grid (default 16)")
    p.add_argument("--zoom", type=positive_int, default=1,
                   help="enlarge a .png grid N× (nearest neighbour; default 1)")
    add_data_options(p)
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        check_not_data(args.data, args.out)
        model = load_model(args.model)
        data = load_data_for(args, args.data, model)
        suffix = Path(args.out).suffix.lower()
        if suffix == ".npy":
            from aekit.io import atomic_path

            _, rec = reconstruct_array(model, data)
            with atomic_path(args.out, suffix=".npy") as tmp:
                np.save(tmp, rec)
        elif suffix == ".png":
            if len(model.input_shape) != 3:
                raise AekitError("a .png grid needs image data; use .npy for tabular data")
            from aekit.data.images import write_image

            x, rec = reconstruct_array(model, data, limit=args.n)
            grid = image_grid([x, rec])
            side = max(grid.shape[:2]) * args.zoom
            if side > MAX_GRID_SIDE:  # (--zoom 1000 on the digits asked for a 9-GB image)
                raise AekitError(f"--zoom {args.zoom} makes a grid {side} pixels across; the most "
                                 f"is {MAX_GRID_SIDE} (use a smaller --zoom or -n)")
            if args.zoom > 1:
                grid = grid.repeat(args.zoom, axis=0).repeat(args.zoom, axis=1)
            write_image(args.out, grid)
        else:
            raise AekitError("--out must end in .npy or .png")
        emit(args, {"out": args.out}, f"wrote reconstructions to {args.out}")
        return 0

    return run


@command("info", help="a saved model's preset, shapes, parameters, layers and training summary")
def info_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("model", help="model directory")
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        import torch

        from aekit.models import count_parameters, read_model_meta

        meta = read_model_meta(args.model)
        model = load_model(args.model)
        with torch.no_grad():
            layers = {k: list(v.shape[1:]) for k, v in
                      model.layer_outputs(torch.zeros(1, *model.input_shape)).items()}
        cfg = model.config
        obj = {"preset": cfg.preset, "input_shape": cfg.input_shape, "latent_dim": cfg.latent_dim,
               "parameters": count_parameters(model), "aekit_version": meta.get("aekit_version"),
               "config": cfg.to_dict(), "layers": layers, "training": model.training_summary}
        lines = [f"{args.model}: preset {cfg.preset}, input {tuple(cfg.input_shape)}, "
                 f"{cfg.latent_dim}-d {cfg.code} code, {obj['parameters']:,} parameters",
                 f"parts: arch={cfg.arch} code={cfg.code} penalties={list(cfg.penalties) or '—'} "
                 f"corruption={cfg.corruption or '—'}", "layers:"]
        lines += [f"  {k:<24} {tuple(v)}" for k, v in layers.items()]
        if obj["training"]:
            lines.append("training: " + ", ".join(f"{k}={v}" for k, v in obj["training"].items()))
        emit(args, obj, "\n".join(lines))
        return 0

    return run


@command("presets", help="list the model presets")
def presets_cmd(p: argparse.ArgumentParser) -> Handler:
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        obj = {n: PRESETS.help(n) for n in PRESETS.names()}
        width = max(map(len, obj))
        emit(args, obj, "\n".join(f"{n:<{width}}  {h}" for n, h in obj.items()))
        return 0

    return run


#: what `aekit datasets` says besides the names: every form --data takes
SPEC_FORMS = """besides these names, --data takes:
  a folder of images   photos/ (sub-folders too; class folders give labels; ?stream=1 streams)
  an image file        photo.png
  an array             x.npy (N, D) table, (N, H, W) grey or (N, H, W, C)/(N, C, H, W) images;
                       x.npz with arrays x and y (labels)
  a table              x.csv, x.tsv or x.txt (a header row names columns; a column called
                       label, y, class or target, or --label-col NAME, gives labels)
  a split              any of these with :train or :test (80/20, seeded), e.g. digits:test"""


@command("datasets", help="list the embedded and standard datasets, and the other forms --data takes")
def datasets_cmd(p: argparse.ArgumentParser) -> Handler:
    add_json_flag(p)

    def run(args: argparse.Namespace) -> int:
        obj = list_datasets()
        width = max(map(len, obj))
        emit(args, obj, "\n".join(f"{n:<{width}}  {h}" for n, h in obj.items()) + "\n\n" + SPEC_FORMS)
        return 0

    return run
