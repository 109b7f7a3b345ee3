"""aekit: every kind of autoencoder, and every job autoencoders do, one command away."""

__version__ = "0.1.0"

from aekit import _runtime  # noqa: E402,F401  (before torch loads: OpenMP defaults)
from aekit.errors import AekitError  # noqa: E402
from aekit.models import AEOutput, Autoencoder, ModelConfig, create_model  # noqa: E402
from aekit.training import fit  # noqa: E402

__all__ = ["AEOutput", "AekitError", "Autoencoder", "ModelConfig", "create_model", "fit",
           "__version__"]


def __getattr__(name: str):
    # heavier, optional parts load on first use
    if name == "AutoencoderTransformer":
        from aekit.estimators import AutoencoderTransformer

        return AutoencoderTransformer
    if name == "AutoencoderOutlierDetector":
        from aekit.detectors import AutoencoderOutlierDetector

        return AutoencoderOutlierDetector
    raise AttributeError(f"module 'aekit' has no attribute {name!r}")
