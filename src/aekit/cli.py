"""``aekit <command> …``: a thin layer over :mod:`aekit.apps`.

Errors a user can fix print one line, ``aekit: error: …``, on stderr and exit 2; anything
else prints one line and exits 1 (``AEKIT_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from aekit import __version__
from aekit.apps import APP_MODULES, COMMANDS
from aekit.errors import AekitError


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's time limit, ``kill``, torchrun stopping its workers) raised in
    the main thread like Ctrl-C, so the cleanup a command does on the way out runs: a run
    stopped before its first checkpoint leaves no half-made folder, a staged file is removed."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def _quiet_rank() -> bool:
    """torchrun's ranks above 0 fail with the same error as rank 0, which says it once (their
    exit status still tells torchrun which failed)."""
    try:
        world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
        return 0 < rank < world  # a rank outside the world is an error rank 0 cannot see
    except ValueError:
        return False


def _say(line: str) -> None:
    if not _quiet_rank():
        sys.stderr.write(line + "\n")


class _HelpFormatter(argparse.HelpFormatter):
    """Shows an option's default where its help does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        silent = (default is None or isinstance(default, bool) or default == argparse.SUPPRESS
                  or default in ([], ""))
        if action.option_strings and not silent and "default" not in text:
            text += " (default %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, not usage + error
        sys.stderr.write(f"aekit: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    for mod in APP_MODULES:
        importlib.import_module(mod)
    parser = _Parser(prog="aekit", description="Autoencoders for every job, one command each.")
    parser.add_argument("-V", "--version", action="version", version=f"aekit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    for name in COMMANDS._items:  # registration order = the order of APP_MODULES
        p = sub.add_parser(name, help=COMMANDS.help(name), description=COMMANDS.help(name))
        p.set_defaults(handler=COMMANDS.get(name)(p), _parser=p)
    return parser


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{e.__class__.__name__}: {text.splitlines()[0] if text else ''}"


def debugging() -> bool:
    """AEKIT_DEBUG=1 (or yes/true/on) shows the traceback of an internal error; 0, no, false,
    off or unset keep the one line."""
    return os.environ.get("AEKIT_DEBUG", "").strip().lower() not in ("", "0", "no", "false", "off")


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        # a terminal or pipe that cannot show σ, ×, – or a document's own letters (ASCII,
        # PYTHONIOENCODING=ascii) gets escapes, not a UnicodeEncodeError after the work is done
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # pragma: no cover - a stream that refuses
                pass
    if (sys.argv[1:] if argv is None else argv) in (["--version"], ["-V"]):
        # before the commands load torch (seconds): a version check is instant
        sys.stdout.write(f"aekit {__version__}\n")
        return 0
    try:
        parser = build_parser()
    except Exception as e:  # noqa: BLE001 — a broken install (a dependency that fails to import)
        if debugging():
            raise
        sys.stderr.write(f"aekit: internal error: cannot load the commands: {_one_line(e)} "
                         "(set AEKIT_DEBUG=1 for the traceback)\n")
        return 1
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the parser that takes the arguments there: its --help lists them
        given = sys.argv[1:] if argv is None else list(argv)
        command = getattr(args, "command", None)
        before = command in given and extra[0] in given and \
            given.index(extra[0]) < given.index(command)
        where = parser if before else getattr(args, "_parser", parser)
        where.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return int(args.handler(args) or 0)
    except AekitError as e:
        from aekit.apps.common import FilesFailed, emit

        if isinstance(e, FilesFailed):  # --json still says what was written and what failed
            if getattr(args, "json", False):
                emit(args, {"files": e.done, "failed": e.failed, "error": str(e)}, "")
        _say(f"aekit: error: {e}")
        return 2
    except Terminated:
        _say("aekit: terminated")
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        _say("aekit: interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # the machine's, not aekit's: a full disk, a file too large, no access
        where = f": {e.filename}" if e.filename else ""
        _say(f"aekit: error: {e.strerror or e}{where}")
        return 1
    except Exception as e:  # noqa: BLE001 — the promise is one line, never a traceback
        if debugging():
            raise
        _say(f"aekit: internal error: {_one_line(e)} (set AEKIT_DEBUG=1 for the traceback)")
        return 1
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


if __name__ == "__main__":
    sys.exit(main())
