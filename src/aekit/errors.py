"""User-facing errors: the CLI prints ``aekit: error: <message>`` and exits non-zero; and
the one-line warning form, ``aekit: warning: <message>``."""

import sys
from numbers import Integral


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
