"""Argument types the benchmark scripts share: a bad value is one usage line, not a
ZeroDivisionError or a KeyError part-way through a table."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from pathlib import Path


def bench_data(*parts: str) -> Path:
    """Where a benchmark's data is by default: ``$AEKIT_BENCH_DATA``, else ``../shared/data``
    beside the checkout (the layout the README's "Benchmark data" table gives)."""
    root = os.environ.get("AEKIT_BENCH_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(root).joinpath(*parts)


def at_least(low: int) -> Callable[[str], int]:
    """An int argument type that refuses values under ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def at_least_real(low: float) -> Callable[[str], float]:
    """A float argument type that refuses NaN, infinities and values under ``low``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value >= low and value < float("inf")):
            raise argparse.ArgumentTypeError(f"must be a finite number ≥ {low:g}, got {text}")
        return value

    return parse


def names(known: Iterable[str], allow_empty: bool = False) -> Callable[[str], list[str]]:
    """A comma-list argument type whose items must all be in ``known``."""
    known = list(known)

    def parse(text: str) -> list[str]:
        items = [t for t in text.split(",") if t]
        bad = [t for t in items if t not in known]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad)}; known: {', '.join(known)}")
        if not items and not allow_empty:
            raise argparse.ArgumentTypeError(f"name at least one of: {', '.join(known)}")
        return items

    return parse


def int_list(low: int) -> Callable[[str], list[int]]:
    """A comma-list argument type of whole numbers, each at least ``low``."""
    one = at_least(low)

    def parse(text: str) -> list[int]:
        items = [t for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("give at least one number")
        return [one(t.strip()) for t in items]

    return parse
