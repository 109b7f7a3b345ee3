"""User-facing errors: the CLI prints ``aekit: error: <message>`` and exits non-zero; and
the one-line warning form, ``aekit: warning: <message>``."""

import math
import sys
from numbers import Integral, Real


def warn(message: str) -> None:
    """A one-line warning on stderr (the CLI's ``aekit: warning: …`` form)."""
    sys.stderr.write(f"aekit: warning: {message}\n")


def is_integer(value: object, least: int | None = None, most: int | None = None) -> bool:
    """Whether ``value`` is an integer (a Python or NumPy one, not a bool) within
    [``least``, ``most``] (either bound may be left out): the test behind the library's
    "… is an integer ≥ n" parameter errors."""
    return (isinstance(value, Integral) and not isinstance(value, bool)
            and (least is None or value >= least) and (most is None or value <= most))


class AekitError(Exception):
    """An error caused by the user's input or files, reported as one line, never a traceback."""


class DataError(AekitError, ValueError):
    """Data that cannot be used: missing, empty, NaN/inf, wrong shape or format."""


class ParameterError(AekitError, ValueError):
    """A parameter out of its range or of the wrong kind (a ValueError, as scikit-learn's)."""


class ModelFileError(AekitError):
    """A model directory or weights file that is missing, truncated or tampered with."""


def nonnegative(value: object, what: str) -> float:
    """``value`` as a float if it is a finite number ≥ 0 (a loss weight, a noise scale, a KL
    factor), else one ParameterError naming ``what``: a negative weight rewards what it
    should penalise, and a NaN or a string only failed at the first training step."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) \
            or value < 0:
        raise ParameterError(f"{what} is a finite number ≥ 0, got {value!r}")
    return float(value)
