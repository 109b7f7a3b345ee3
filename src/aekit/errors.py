"""User-facing errors: the CLI prints ``aekit: error: <message>`` and exits non-zero; and
the one-line warning form, ``aekit: warning: <message>``."""

import sys


def warn(message: str) -> None:
    """A one-line warning on stderr (the CLI's ``aekit: warning: …`` form)."""
    sys.stderr.write(f"aekit: warning: {message}\n")


class AekitError(Exception):
    """An error caused by the user's input or files, reported as one line, never a traceback."""


class DataError(AekitError, ValueError):
    """Data that cannot be used: missing, empty, NaN/inf, wrong shape or format."""


class ParameterError(AekitError, ValueError):
    """A parameter out of its range or of the wrong kind (a ValueError, as scikit-learn's)."""


class ModelFileError(AekitError):
    """A model directory or weights file that is missing, truncated or tampered with."""
