"""aekit: every kind of autoencoder, and every job autoencoders do, one command away."""

__version__ = "0.1.0"

from aekit import _runtime  # noqa: E402,F401  (before torch loads: OpenMP defaults)
from aekit.errors import AekitError  # noqa: E402

__all__ = ["AEOutput", "AekitError", "Autoencoder", "AutoencoderOutlierDetector",
           "AutoencoderTransformer", "ModelConfig", "TopicModel", "create_model", "fit",
           "__version__"]

#: public names → the module that defines them, imported on first use: ``import aekit`` (and
#: ``aekit --version``) does not load torch; ``from aekit import Autoencoder`` does
_LAZY = {"AEOutput": "aekit.models", "Autoencoder": "aekit.models",
         "ModelConfig": "aekit.models", "create_model": "aekit.models",
         "fit": "aekit.training", "AutoencoderTransformer": "aekit.estimators",
         "AutoencoderOutlierDetector": "aekit.detectors", "TopicModel": "aekit.text.estimator"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'aekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
