import numpy as np
import pytest
import torch

from aekit import create_model
from aekit.codes import CODES
from aekit.codes_binary import hamming_distances, pack_bits, unpack_bits
from aekit.errors import AekitError


def test_binary_code_is_registered_and_gives_bits_at_inference():
    assert "binary" in CODES
    model = create_model("deep", (1, 8, 8), 12, code="binary").eval()
    z = model.encode(torch.rand(5, 1, 8, 8))
    assert z.shape == (5, 12)
    assert set(z.unique().tolist()) <= {0.0, 1.0}


def test_binary_code_is_noisy_sigmoid_in_training():
    model = create_model("deep", (1, 8, 8), 12, code="binary").train()
    out = model(torch.rand(64, 1, 8, 8))
    assert ((out.z > 0) & (out.z < 1)).float().mean() > 0.5
    out.loss.backward()  # gradients flow through the sigmoid
    assert all(p.grad is not None for p in model.encoder.parameters())


def test_negative_noise_refused():
    with pytest.raises(AekitError, match="noise"):
        create_model("deep", (4,), 8, code="binary", code_options={"noise": -1})


@pytest.mark.parametrize("n_bits", [1, 7, 8, 20, 64, 100])
def test_pack_unpack_and_hamming_match_brute_force(n_bits):
    rng = np.random.default_rng(n_bits)
    a = rng.random((9, n_bits)) > 0.5
    b = rng.random((13, n_bits)) > 0.5
    pa, pb = pack_bits(a), pack_bits(torch.as_tensor(b, dtype=torch.float32))
    assert pa.dtype == np.uint8 and pa.shape == (9, (n_bits + 7) // 8)
    np.testing.assert_array_equal(unpack_bits(pa, n_bits), a)
    want = (a[:, None, :] != b[None, :, :]).sum(2)
    np.testing.assert_array_equal(hamming_distances(pa, pb), want)


def test_hamming_refuses_different_widths():
    with pytest.raises(AekitError):
        hamming_distances(np.zeros((1, 2), np.uint8), np.zeros((1, 3), np.uint8))
