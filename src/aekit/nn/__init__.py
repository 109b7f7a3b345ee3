"""Encoder/decoder builders, registered by name in :data:`ARCHS`.

A builder is ``build(input_shape, latent_dim, code_width, **options) -> (encoder, decoder)``:

* ``encoder`` maps a normalised batch ``(B, *input_shape)`` to the code's input ``h`` of
  shape ``(B, code_width)`` (or ``(B, code_width, h, w)`` for spatial codes);
* ``decoder`` maps a code ``z`` of shape ``(B, latent_dim)`` back to *pre-activation*
  outputs of shape ``(B, *input_shape)``; the model applies the output activation.

``code_width`` is ``latent_dim`` times the code's expansion (a Gaussian code needs a mean and
a log-variance per latent). Encoders and decoders are ``nn.Sequential`` of named children
where possible, so :meth:`Autoencoder.layer_outputs` can name every layer.
"""

from __future__ import annotations

from aekit.registry import Registry

ARCHS: Registry = Registry("architecture")

ACTIVATIONS = {
    "relu": "ReLU",
    "gelu": "GELU",
    "silu": "SiLU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
}


def activation(name: str):
    import torch.nn as nn

    from aekit.errors import AekitError

    if name not in ACTIVATIONS:
        raise AekitError(f"unknown activation {name!r}; known: {', '.join(sorted(ACTIVATIONS))}")
    return getattr(nn, ACTIVATIONS[name])()


def layer_widths(value: object, what: str) -> list[int]:
    """A list of layer widths, each an integer ≥ 1 (a string such as "64" is refused: it
    was read as the widths [6, 4])."""
    from collections.abc import Sequence

    from aekit.errors import AekitError, is_integer

    if (isinstance(value, (str, bytes)) or not isinstance(value, Sequence)
            or not all(is_integer(w, 1) for w in value)):
        raise AekitError(f"{what} is a list of layer widths (integers ≥ 1, e.g. [256, 64]), "
                         f"got {value!r}")
    return [int(w) for w in value]


# Importing the modules registers their builders.
from aekit.nn import bow, codec, conv, mlp, unet  # noqa: E402,F401
