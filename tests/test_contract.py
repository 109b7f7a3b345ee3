"""One contract, every registered preset: a new preset is tested the moment it is registered."""

import copy
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from aekit.models import PRESETS, AEOutput, Autoencoder, create_model

SHAPE = (1, 8, 8)
#: an example input for presets whose architecture does not take images
SHAPE_BY_ARCH = {"bow": (40,)}


def _shape(preset):
    return SHAPE_BY_ARCH.get(PRESETS.get(preset).get("arch"), SHAPE)


def _batch(n=6, shape=SHAPE):
    return torch.rand(n, *shape)


@pytest.fixture(params=PRESETS.names())
def preset(request):
    return request.param


def test_forward_backward(preset):
    model = create_model(preset, _shape(preset), latent_dim=8).train()
    out = model(_batch(shape=_shape(preset)))
    assert isinstance(out, AEOutput)
    assert out.x_hat.shape == (6, *_shape(preset))
    assert "recon" in out.losses and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_encode_decode_shapes(preset):
    model = create_model(preset, _shape(preset), latent_dim=8).eval()
    z = model.encode(_batch(shape=_shape(preset)))
    # vector codes are (B, latent); spatial codes (codec, image-to-image) are (B, latent, h, w)
    assert z.shape[:2] == (6, 8) and z.dim() in (2, 4)
    assert model.decode(z).shape == (6, *_shape(preset))


def test_encode_is_deterministic(preset):
    model = create_model(preset, _shape(preset), latent_dim=8)
    x = _batch(shape=_shape(preset))
    model.eval()  # at inference: no sampling, corruption or dropout
    assert torch.equal(model.encode(x), model.encode(x))


@pytest.mark.parametrize("name", [n for n in PRESETS.names()  # a U-Net keeps its encoder's
                                  if PRESETS.get(n).get("arch") != "unet"])  # skips by design
def test_encode_in_training_mode_leaves_nothing_on_the_model(name):
    """encode() in train mode (a top-k code kept its pre-activations, with their graph, for
    the auxk penalty) must leave the model copyable."""
    preset = name
    model = create_model(preset, _shape(preset), latent_dim=8).train()
    model.encode(_batch(shape=_shape(preset)))
    copy.deepcopy(model)


def test_save_load_round_trip(preset, tmp_path):
    model = create_model(preset, _shape(preset), latent_dim=8).eval()
    x = _batch(shape=_shape(preset))
    model.save_pretrained(tmp_path / "m", summary={"note": "test"})
    loaded = Autoencoder.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config
    assert torch.equal(loaded.encode(x), model.encode(x))
    assert torch.equal(loaded.reconstruct(x), model.reconstruct(x))
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["config.json", "model.safetensors"]
    # saved with the usual permissions (umask), not the 0600 of a temporary file
    umask = os.umask(0)
    os.umask(umask)
    for f in files:
        assert (tmp_path / "m" / f).stat().st_mode & 0o777 == 0o666 & ~umask, f


def test_a_save_that_fails_part_way_leaves_the_old_model_whole(tmp_path, monkeypatch):
    import aekit.models as models

    old = create_model("vanilla", (1, 8, 8), latent_dim=8).eval()
    old.save_pretrained(tmp_path / "m")
    new = create_model("vanilla", (1, 8, 8), latent_dim=4).eval()

    def disk_full(*_args, **_kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(models, "write_json_atomic", disk_full)  # the config, written second
    with pytest.raises(OSError):
        new.save_pretrained(tmp_path / "m")
    loaded = Autoencoder.from_pretrained(tmp_path / "m")  # not new weights beside old config
    assert loaded.config.latent_dim == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging folder left
    with pytest.raises(OSError):  # a first save that fails leaves no empty folder behind
        new.save_pretrained(tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_ctrl_c_between_the_renames_of_a_save_leaves_a_model_that_loads(tmp_path, monkeypatch):
    """The new config.json was renamed in and the old weights kept: a model that no longer
    loaded (checksum mismatch). The renames now finish before the interrupt is delivered."""
    import signal

    import aekit.io as io

    create_model("vanilla", (1, 8, 8), latent_dim=8).save_pretrained(tmp_path / "m")
    new = create_model("vanilla", (1, 8, 8), latent_dim=4).eval()
    real = os.replace

    def interrupted(src, dst):
        real(src, dst)
        if Path(dst).parent == tmp_path / "m":  # a staged file moving into the folder
            os.kill(os.getpid(), signal.SIGINT)  # right after the first

    monkeypatch.setattr(io.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        new.save_pretrained(tmp_path / "m")
    monkeypatch.setattr(io.os, "replace", real)
    assert Autoencoder.from_pretrained(tmp_path / "m").config.latent_dim == 4


def test_layer_outputs_names_every_layer(preset):
    model = create_model(preset, _shape(preset), latent_dim=8).eval()
    x = _batch(shape=_shape(preset))
    outs = model.layer_outputs(x)
    enc_children = [n for n, _ in model.encoder.named_children()]
    dec_children = [n for n, _ in model.decoder.named_children()]
    assert list(outs) == ([f"encoder.{n}" for n in enc_children] + ["code"] +
                          [f"decoder.{n}" for n in dec_children] + ["output"])
    assert torch.allclose(outs["output"], model.reconstruct(x))
    assert torch.equal(outs["code"], model.encode(x))


@pytest.mark.parametrize("shape", [(3, 16, 24), (1, 28, 28), (3, 32, 32)])
def test_conv_any_divisible_size(shape):
    model = create_model("conv", shape, latent_dim=10).eval()
    x = torch.rand(2, *shape)
    assert model.reconstruct(x).shape == x.shape


def test_conv_transposed_upsampling():
    model = create_model("conv", (3, 16, 16), 10, arch_options={"up": "transposed"}).eval()
    assert model.reconstruct(torch.rand(2, 3, 16, 16)).shape == (2, 3, 16, 16)


def test_tabular_input_standardised():
    model = create_model("deep", (5,), latent_dim=2, normalization="standard")
    x = torch.from_numpy(np.random.default_rng(0).normal(10, 3, (7, 5)).astype(np.float32))
    assert model(x).x_hat.shape == (7, 5)
