"""The ``binary`` code: semantic hashing (Salakhutdinov & Hinton 2009, "Semantic hashing").

    training:   h ──(+ N(0, σ²) noise)──▶ sigmoid ──▶ z ∈ (0, 1)^bits ──▶ decoder
    inference:  h ──(h > 0)──────────────────────────▶ z ∈ {0, 1}^bits ──▶ decoder / search

Large noise on the logits makes any value near 0.5 useless to the decoder, so training drives
the logits far from 0 and the sigmoid saturates: thresholding at inference then loses little.
``latent_dim`` is the number of bits. :meth:`Autoencoder.encode` returns the bits as a float
tensor of 0s and 1s; :func:`pack_bits` turns them into bytes (8 bits each) for storage and
:func:`hamming_distances` compares packed codes by popcount.

Use from any job::

    model = create_model("deep", (1, 28, 28), 32, code="binary")     # 32-bit codes
    fit(model, x)
    bits = model.encode(x)                        # (N, 32) float, values in {0, 1}
    packed = pack_bits(bits)                      # (N, 4) uint8
    d = hamming_distances(packed[:1], packed)     # (1, N) int, bits that differ
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from aekit.codes import CODES, Code
from aekit.errors import AekitError, nonnegative


@CODES.register("binary", help="semantic hashing: sigmoid + noise in training, bits at inference")
class BinaryCode(Code):
    """``noise`` is the standard deviation σ of the Gaussian added to the logits in training
    (S&H 2009 used noise of this order; on the digits, σ = 2 gave the best precision@10 of
    0, 0.5, 1, 2, 3, 4 after 40 epochs, and σ = 4 from the start can collapse the codes)."""

    sparse = False

    def __init__(self, latent_dim: int, noise: float = 2.0) -> None:
        super().__init__(latent_dim)
        self.noise = nonnegative(noise, "binary code noise")

    def forward(self, h: Tensor, sample: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        if sample:
            return torch.sigmoid(h + self.noise * torch.randn_like(h)), {}
        return (h > 0).to(h.dtype), {}


def pack_bits(bits: Tensor | np.ndarray) -> np.ndarray:
    """(N, bits) array of 0/1 (or booleans, or probabilities thresholded at 0.5) → (N, ⌈bits/8⌉)
    uint8, most significant bit first (``np.packbits`` order)."""
    if isinstance(bits, Tensor):
        bits = bits.detach().cpu().numpy()
    bits = np.asarray(bits)
    if bits.ndim != 2:
        raise AekitError(f"pack_bits needs an (N, bits) array, got shape {bits.shape}")
    return np.packbits(bits > 0.5, axis=1)


def unpack_bits(packed: np.ndarray, n_bits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: (N, bytes) uint8 → (N, n_bits) uint8 of 0/1."""
    return np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=1, count=n_bits)


def hamming_distances(queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Bits that differ between every packed query (Q, B) and every packed code (N, B):
    (Q, N) int32, by XOR and popcount."""
    q = np.asarray(queries, dtype=np.uint8)
    c = np.asarray(codes, dtype=np.uint8)
    if q.shape[1:] != c.shape[1:]:
        raise AekitError(f"packed codes of {q.shape[1]} and {c.shape[1]} bytes cannot be compared")
    if not hasattr(np, "bitwise_count"):  # numpy < 2: a byte lookup table
        out = np.zeros((len(q), len(c)), dtype=np.int32)
        for j in range(q.shape[1]):
            out += _POPCOUNT8[q[:, j, None] ^ c[None, :, j]]
        return out
    # zero-pad to whole 64-bit words (zeros XOR to zeros) and count 8 bytes at a time
    words = -(-q.shape[1] // 8)
    q, c = _as_words(q, words), _as_words(c, words)
    out = np.bitwise_count(q[:, 0, None] ^ c[None, :, 0]).astype(np.int32)
    for j in range(1, words):
        out += np.bitwise_count(q[:, j, None] ^ c[None, :, j])
    return out


def _as_words(packed: np.ndarray, words: int) -> np.ndarray:
    if packed.shape[1] != words * 8:
        padded = np.zeros((len(packed), words * 8), dtype=np.uint8)
        padded[:, : packed.shape[1]] = packed
        packed = padded
    return np.ascontiguousarray(packed).view(np.uint64)


_POPCOUNT8 = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1).astype(np.int32)
