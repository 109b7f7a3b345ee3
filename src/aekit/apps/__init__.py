"""One module per job. Each registers its CLI commands in :data:`COMMANDS`; ``aekit.cli``
builds the command line from this registry, so adding a job never edits a dispatch chain.

A command is registered as a function that adds its arguments to an ``argparse`` parser
and returns the handler ``run(args) -> int`` (the exit code).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from aekit.registry import Registry

Handler = Callable[[argparse.Namespace], int]
COMMANDS: Registry = Registry("command")

#: the job modules whose commands make up the CLI, in the order ``aekit --help`` lists them
APP_MODULES = (
    "aekit.apps.basic",
    "aekit.apps.reduce",
    "aekit.apps.restore",
    "aekit.apps.codec",
    "aekit.apps.search",
    "aekit.apps.cluster",
    "aekit.apps.anomaly",
    "aekit.apps.topics",
    "aekit.apps.export",
)


def command(name: str, help: str) -> Callable[[Callable[[argparse.ArgumentParser], Handler]],
                                             Callable[[argparse.ArgumentParser], Handler]]:
    return COMMANDS.register(name, help=help)
