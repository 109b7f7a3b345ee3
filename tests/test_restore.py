"""Restoration: corruptions, the U-Net, tiled inference and the four commands end to end
(with the shipped zoo models, on small images the tests make)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aekit.apps.restore import GATE_INFERENCE_THRESHOLD, MIN_TILE, train_restorer
from aekit.cli import main
from aekit.corruptions import CORRUPTIONS
from aekit.corruptions_restore import fill_holes, inpaint_holes, render_watermark, watermark_image
from aekit.data.embedded import photo_collection
from aekit.errors import AekitError
from aekit.imaging import (
    opponent_to_rgb,
    read_picture,
    rgb_to_opponent,
    rgb_to_ycbcr,
    run_image_model,
    tiled_apply,
    ycbcr_to_rgb,
    ycbcr_to_rgb_in_gamut,
)
from aekit.models import Autoencoder, create_model
from aekit.presets_restore import restore_config
from aekit.zoo import available, warm_start, zoo_path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(1 / float(np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 96×128 colour crop of an embedded photo (chelsea the cat), float in [0, 1]."""
    p = photo_collection(3)[3]
    return p[100:196, 150:278].astype(np.float32) / 255


def save(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8), mode).save(path)
    return path


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float32) / 255


# ------------------------------------------------------------------------------ parts
def test_corruptions_registered_and_shapes():
    x = torch.rand(2, 3, 48, 48)
    for name in ("grayscale", "watermark", "downsample", "blur", "holes", "gaussian", "mask"):
        assert name in CORRUPTIONS
    g = CORRUPTIONS.build("grayscale")(x)
    assert torch.allclose(g[:, 0], g[:, 1]) and torch.allclose(g[:, 1], g[:, 2])
    y, m = CORRUPTIONS.build("watermark", bank=4, size=64, p_clean=0.0).apply(x)
    assert y.shape == x.shape and m.shape == (2, 1, 48, 48) and float(m.max()) > 0
    assert torch.allclose(y[m.expand_as(y) == 0], x[m.expand_as(x) == 0])  # only under the mark
    for name, opts in (("downsample", {"scale": [3]}), ("blur", {"sigma": 1.5}), ("holes", {"bank": 4, "size": 48})):
        y = CORRUPTIONS.build(name, **opts)(x)
        assert y.shape == x.shape and float((y - x).abs().mean()) > 1e-3


def test_watermark_test_split_is_held_out():
    rng = np.random.default_rng(0)
    m = render_watermark(120, 160, rng, "test")
    assert m.shape == (120, 160) and 0 <= m.min() and m.max() <= 1
    img = np.full((120, 160, 3), 0.5, np.float32)
    marked, alpha = watermark_image(img, np.random.default_rng(1))
    assert marked.shape == img.shape and alpha.max() > 0
    from aekit.corruptions_restore import TEST_FONTS, TEST_TEXTS, TRAIN_FONTS, TRAIN_TEXTS

    assert not set(TEST_TEXTS) & set(TRAIN_TEXTS) and not set(TEST_FONTS) & set(TRAIN_FONTS)


def test_fill_holes_keeps_known_pixels_and_fills_smoothly():
    x = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).clone()
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 20:40, 20:40] = 1
    y = fill_holes(x * (1 - mask), mask)
    assert torch.equal(y[..., :20, :], x[..., :20, :])
    assert float((y - x).abs()[..., 20:40, 20:40].mean()) < 0.05  # a ramp is filled as a ramp


@pytest.mark.parametrize("channels", [1, 3])
def test_inpaint_holes_biharmonic_for_small_holes_push_pull_for_large(channels):
    """A smooth surface is continued into a user's mask: small holes (biharmonic) almost
    exactly, a hole above the size limit (push–pull) roughly; known pixels never change."""
    yy, xx = np.mgrid[:96, :96] / 95.0
    surface = (0.1 + 0.6 * xx + 0.2 * yy * yy).astype(np.float32)
    x = np.repeat(surface[None], channels, 0)
    mask = np.zeros((96, 96), bool)
    mask[10:16, 10:40] = True  # a stroke: 180 px
    mask[50:90, 40:90] = True  # a blob: 2,000 px
    got = inpaint_holes(np.where(mask[None], 1.0, x).astype(np.float32), mask, max_hole=500)
    assert got.shape == x.shape and got.dtype == np.float32
    assert np.array_equal(got[:, ~mask], x[:, ~mask])
    err = np.abs(got - x)
    assert err[:, 10:16, 10:40].max() < 1e-3  # biharmonic: exact on a quadratic (push–pull: 4e-3)
    assert err[:, 50:90, 40:90].mean() < 0.05  # push–pull: smooth, rough
    assert np.abs(inpaint_holes(x, np.zeros((96, 96), bool)) - x).max() == 0


@pytest.mark.parametrize("opts", [{}, {"skips": False}, {"unshuffle": 3, "widths": [8, 16]},
                                  {"gate": True}])
def test_unet_contract(opts, tmp_path):
    shape = (3, 48, 48)
    model = Autoencoder(restore_config("denoise", shape, 8, arch_options={"widths": [8, 16, 32],
                                                                          **opts}))
    x = torch.rand(2, *shape)
    out = model(x)
    out.loss.backward()
    assert out.x_hat.shape == x.shape
    model.eval()
    assert model.reconstruct(x).shape == x.shape
    assert "encoder.stem" in model.layer_outputs(x)
    model.save_pretrained(tmp_path / "m")
    again = Autoencoder.from_pretrained(tmp_path / "m")
    assert torch.allclose(run_image_model(again, x[:1, :, :40, :44]),
                          run_image_model(model, x[:1, :, :40, :44]), atol=1e-6)


def test_gated_unet_acts_only_where_its_gate_opens():
    model = Autoencoder(restore_config("unwatermark", (3, 32, 32), 8,
                                       arch_options={"widths": [8, 16]})).eval()
    last = model.decoder.to_pixels
    torch.nn.init.normal_(last.weight, std=0.1)  # a non-zero correction Δ
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        last.bias[3 * 4:] = -40.0  # gate shut (its 4 sub-pixel channels follow the 3·4 of Δ)
        assert torch.equal(model.reconstruct(x), x)
        assert model.decoder.gate_logits.shape == (2, 1, 32, 32)
        last.bias[3 * 4:] = 40.0  # gate open: the correction applies
        assert float((model.reconstruct(x) - x).abs().mean()) > 1e-3
        last.bias[3 * 4:] = 0.0  # gate half open (σ = 0.5): acts only without a threshold
        model.decoder.gate_threshold = 0.9
        assert torch.equal(model.reconstruct(x), x)
        model.decoder.gate_threshold = 0.0
        assert float((model.reconstruct(x) - x).abs().mean()) > 1e-4
    with pytest.raises(AekitError, match="residual"):
        create_model("restore", (3, 32, 32), 8, arch_options={"gate": True, "residual": False})


def test_gate_learns_the_watermark_mask(photo, one_torch_thread):
    """A few steps of training with the mark as the gate's target: the gate opens more on
    marked pixels than on clean ones (the supervision reaches it)."""
    torch.manual_seed(0)
    model = Autoencoder(restore_config("unwatermark", (3, 32, 32), 8,
                                       arch_options={"widths": [8, 16]},
                                       corruption_options={"split": "train", "bank": 8,
                                                           "size": 64, "p_clean": 0.0}))
    pic = (photo * 255).astype(np.uint8)
    train_restorer(model, [pic], steps=300, batch_size=8, patch=32, lr=3e-3, device="cpu",
                   gate_weight=1.0)
    torch.manual_seed(1)
    x = torch.from_numpy(photo.transpose(2, 0, 1).copy())[None, :, :64, :64]
    xc, where = model.corruption.apply(x.repeat(4, 1, 1, 1))
    run_image_model(model, xc)
    gate = torch.sigmoid(model.decoder.gate_logits)
    marked = where > 0.01
    assert float(gate[marked].mean()) > float(gate[~marked].mean()) + 0.03


def test_relative_objective_trains_a_denoiser(photo, one_torch_thread):
    """objective='relative' (each crop's MSE over its input's) trains as the MSE does: a tiny
    blind denoiser raises the PSNR of a noisy crop; the summary says which objective ran."""
    model = Autoencoder(restore_config("denoise", (1, 32, 32), 8,
                                       arch_options={"widths": [8, 16], "unshuffle": 1}))
    grey = (photo @ np.array([0.299, 0.587, 0.114], np.float32) * 255).astype(np.uint8)
    summary = train_restorer(model, [grey], steps=200, batch_size=8, patch=32, lr=3e-3,
                             device="cpu", objective="relative")
    assert summary["objective"] == "relative" and math.isfinite(summary["final_loss"])
    assert summary["train_crops_psnr"] > summary["train_crops_psnr_input"] + 1.0
    with pytest.raises(AekitError, match="objective"):
        train_restorer(model, [grey], steps=1, objective="l1")
    # no objective given: the task's (denoise: relative; a deblurrer: plain MSE)
    assert train_restorer(model, [grey], steps=1, patch=32, device="cpu")["objective"] == "relative"
    blur = Autoencoder(restore_config("deblur", (1, 32, 32), 8,
                                      arch_options={"widths": [8, 16], "unshuffle": 1}))
    assert "final_mse" in train_restorer(blur, [grey], steps=1, patch=32, device="cpu")


def test_warm_start_copies_weights_and_widens_the_last_layer(tmp_path):
    plain = Autoencoder(restore_config("denoise", (3, 32, 32), 8, arch_options={"widths": [8, 16]}))
    torch.nn.init.normal_(plain.decoder.to_pixels.weight)
    plain.save_pretrained(tmp_path / "plain")
    gated = Autoencoder(restore_config("unwatermark", (3, 32, 32), 8,
                                       arch_options={"widths": [8, 16]}))
    record = warm_start(gated, tmp_path / "plain")
    assert record["init"] == str(tmp_path / "plain") and len(record["init_weights_sha256"]) == 64
    assert record["init_widened"] == ["decoder.to_pixels.bias", "decoder.to_pixels.weight"]
    assert record["init_fresh"] == [] and record["earlier_runs"] == []
    assert torch.equal(gated.encoder.stem[0].weight, plain.encoder.stem[0].weight)
    w = gated.decoder.to_pixels.weight
    assert w.shape[0] == plain.decoder.to_pixels.weight.shape[0] + 4
    assert torch.equal(w[:12], plain.decoder.to_pixels.weight)


def test_restore_preset_builds_for_small_grey_images():
    m = create_model("restore", (1, 28, 28), 16)
    assert m.config.arch == "unet" and m.config.corruption == "gaussian"
    assert m(torch.rand(3, 1, 28, 28)).x_hat.shape == (3, 1, 28, 28)


def test_ycbcr_roundtrip():
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-5)


def test_opponent_planes_roundtrip_in_range_and_keep_noise_white():
    """Colour photos are denoised by the grey model on these planes: they must invert
    exactly, stay in [0, 1], and turn i.i.d. RGB noise of σ into i.i.d. noise of σ/√3."""
    x = torch.rand(2, 3, 8, 8)
    planes = rgb_to_opponent(x)
    assert torch.allclose(opponent_to_rgb(planes), x, atol=1e-6)
    corners = torch.tensor([[[[a]], [[b]], [[c]]] for a in (0., 1.) for b in (0., 1.) for c in (0., 1.)])
    p = rgb_to_opponent(corners)
    assert float(p.min()) >= 0 and float(p.max()) <= 1
    torch.manual_seed(0)
    n = rgb_to_opponent(0.1 * torch.randn(1, 3, 256, 256)) - rgb_to_opponent(torch.zeros(1, 3, 1, 1))
    assert torch.allclose(n.std(dim=(0, 2, 3)), torch.full((3,), 0.1 / 3 ** 0.5), rtol=0.02)
    c = torch.corrcoef(n[0].flatten(1))
    assert float((c - torch.eye(3)).abs().max()) < 0.02


@pytest.mark.parametrize("scale", [1, 3])
def test_tiled_apply_blends_exactly(scale):
    """A pointwise function gives the same result tiled as whole: blending weights sum to 1."""
    img = np.random.default_rng(0).random((2, 150, 211)).astype(np.float32)

    def fn(x):
        return torch.nn.functional.interpolate(x * 0.5 + 0.1, scale_factor=scale, mode="nearest")

    whole = tiled_apply(fn, img, scale=scale, tile=1024, overlap=16)
    tiled = tiled_apply(fn, img, scale=scale, tile=64, overlap=16)
    assert tiled.shape == (2, 150 * scale, 211 * scale)
    np.testing.assert_allclose(tiled, whole, atol=1e-6)


# ----------------------------------------------------------------------------- commands
needs_zoo = pytest.mark.skipif(
    not {"denoise-grey", "denoise-chroma", "colorize", "unwatermark", "upscale-x2",
         "upscale-x3", "upscale-x4"} <= set(available()), reason="zoo weights not built")


@needs_zoo
def test_denoise_raises_psnr_colour_and_grey(photo, tmp_path):
    rng = np.random.default_rng(0)
    noisy = photo + rng.normal(0, 25 / 255, photo.shape)
    for grey in (False, True):
        clean = photo @ np.array([0.299, 0.587, 0.114]) if grey else photo
        n = noisy @ np.array([0.299, 0.587, 0.114]) if grey else noisy
        src = save(tmp_path / f"noisy{grey}.png", n)
        assert main(["denoise", str(src), str(tmp_path / f"out{grey}.png"), "--no-progress"]) == 0
        out = load(tmp_path / f"out{grey}.png")
        assert out.shape == clean.shape
        assert psnr(out, clean) > psnr(np.clip(n, 0, 1), clean) + 1
    # a grey photo stored as RGB comes back exactly grey, as the grey file does
    grey = np.clip(noisy @ np.array([0.299, 0.587, 0.114]), 0, 1)
    src = save(tmp_path / "grey_rgb.png", np.repeat(grey[..., None], 3, axis=2))
    assert main(["denoise", str(src), str(tmp_path / "grey_rgb_out.png")]) == 0
    out = np.asarray(Image.open(tmp_path / "grey_rgb_out.png"))
    assert out.ndim == 3 and (out == out[..., :1]).all()
    assert np.array_equal(out[..., 0], np.asarray(Image.open(tmp_path / "outTrue.png")))


@needs_zoo
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upscale_size_is_exact(photo, tmp_path, scale):
    src = save(tmp_path / "small.png", photo[:29, :37])
    out = tmp_path / "big.png"
    assert main(["upscale", str(src), str(out), "--scale", str(scale)]) == 0
    assert Image.open(out).size == (37 * scale, 29 * scale)


@needs_zoo
def test_upscale_self_ensemble_keeps_size_and_quality(photo, tmp_path):
    """--ensemble 8 runs the model on rotated (sides swapped) and flipped tiles and maps each
    result back: the size stays exact on an odd, non-square image, and the average is at
    least as close to the truth as one pass."""
    from aekit.corruptions_restore import resize

    hr = photo[:87, :111]  # odd sides, divisible by 3
    lr = resize(torch.from_numpy(hr.transpose(2, 0, 1))[None], (29, 37))[0].numpy()
    src = save(tmp_path / "small.png", lr.transpose(1, 2, 0))
    outs = {}
    for n in (1, 8):
        outs[n] = tmp_path / f"big{n}.png"
        assert main(["upscale", str(src), str(outs[n]), "--scale", "3", "--ensemble", str(n)]) == 0
        assert Image.open(outs[n]).size == (111, 87)
    one, eight = load(outs[1]), load(outs[8])
    assert 0 < np.abs(one - eight).mean() < 0.02  # different passes, same picture
    assert psnr(eight, hr) > psnr(one, hr) - 0.05


@needs_zoo
def test_colorize_grey_in_rgb_out_keeps_luma(photo, tmp_path):
    grey = photo @ np.array([0.299, 0.587, 0.114])
    src = save(tmp_path / "grey.png", grey)
    out = tmp_path / "colour.png"
    assert main(["colorize", str(src), str(out)]) == 0
    im = Image.open(out)
    assert im.mode == "RGB" and im.size == (128, 96)
    rgb = np.asarray(im, dtype=np.float32) / 255
    assert np.abs(rgb @ np.array([0.299, 0.587, 0.114]) - grey).mean() < 0.01


@needs_zoo
def test_colorize_saturation_scales_the_colour_about_grey(photo, tmp_path):
    """The zoo model's stored chroma gain is applied by default; --saturation overrides it
    (0 = grey, 1 = the network's raw colour), and a negative one is a one-line error."""
    src = save(tmp_path / "grey.png", photo @ np.array([0.299, 0.587, 0.114]))
    chroma = {}
    for s in (None, "0", "1"):
        out = tmp_path / f"c{s}.png"
        assert main(["colorize", str(src), str(out), *(["--saturation", s] if s else [])]) == 0
        ycc = rgb_to_ycbcr(torch.from_numpy(load(out).transpose(2, 0, 1).copy())[None])
        chroma[s] = ycc[0, 1:] - 0.5
    gain = Autoencoder.from_pretrained(str(zoo_path("colorize"))).config.extra["chroma_gain"]
    assert 0 < gain < 1
    assert float(chroma["0"].abs().max()) < 2 / 255  # grey, up to 8-bit rounding
    raw = chroma["1"]
    assert float(raw.abs().mean()) > 0.01  # the network does colour
    assert float((chroma[None] - gain * raw).abs().mean()) < 1.5 / 255
    assert main(["colorize", str(src), str(tmp_path / "x.png"), "--saturation", "-1"]) == 2
    # strong saturation: colours leave the RGB cube; shrunk towards grey, not clipped per
    # channel, so the luma is still the input's (clipping was up to 60 grey levels off)
    out = tmp_path / "s4.png"
    assert main(["colorize", str(src), str(out), "--saturation", "4"]) == 0
    luma = load(out) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(luma - load(src)).max() < 1.5 / 255  # 8-bit rounding of three channels


def test_in_gamut_conversion_keeps_luma_and_range():
    rng = np.random.default_rng(0)
    ycc = torch.from_numpy(rng.random((1, 3, 16, 16), dtype=np.float32))  # many out of gamut
    rgb = ycbcr_to_rgb_in_gamut(ycc)
    assert float(rgb.min()) >= -1e-6 and float(rgb.max()) <= 1 + 1e-6
    assert torch.allclose(rgb_to_ycbcr(rgb)[:, :1], ycc[:, :1], atol=1e-5)  # luma exact
    inside = rgb_to_ycbcr(torch.from_numpy(rng.random((1, 3, 8, 8), dtype=np.float32)))
    assert torch.allclose(ycbcr_to_rgb_in_gamut(inside), ycbcr_to_rgb(inside), atol=1e-5)


@needs_zoo
def test_unwatermark_blind_and_with_mask(photo, tmp_path):
    marked, alpha = watermark_image(photo, np.random.default_rng(3))
    src = save(tmp_path / "marked.png", marked)
    assert main(["unwatermark", str(src), str(tmp_path / "blind.png")]) == 0
    mask = alpha > 0.01
    save(tmp_path / "mask.png", mask.astype(np.float32))
    out = tmp_path / "masked.png"
    assert main(["unwatermark", str(src), str(out), "--mask", str(tmp_path / "mask.png")]) == 0
    got, before = load(out), load(src)
    assert np.array_equal(got[~mask], before[~mask])  # outside the mask: untouched
    assert psnr(got, photo) > psnr(before, photo)


@pytest.mark.parametrize("kind", ["white", "zero-one", "soft-edge", "alpha-layer"])
def test_mask_forms_a_user_saves(photo, tmp_path, kind):
    """0/255, a 0/1 array saved as it is, anti-aliased strokes, strokes on a transparent layer."""
    marked, alpha = watermark_image(photo, np.random.default_rng(3))
    src = save(tmp_path / "marked.png", marked)
    mask = alpha > 0.01
    m8 = {"white": mask * 255, "zero-one": mask * 1, "soft-edge": alpha * 60,
          "alpha-layer": mask * 255}[kind].astype(np.uint8)
    if kind == "alpha-layer":  # black strokes, drawn opaque on a transparent layer
        Image.fromarray(np.dstack([np.zeros_like(m8)] * 3 + [m8]), "RGBA").save(tmp_path / "m.png")
    else:
        Image.fromarray(m8).save(tmp_path / "m.png")
    out = tmp_path / "o.png"
    assert main(["unwatermark", str(src), str(out), "--mask", str(tmp_path / "m.png")]) == 0
    got, before = load(out), load(src)
    changed = np.abs(got - before).max(2) > 0
    assert changed.any() and not changed[~mask].any()
    assert psnr(got, photo) > psnr(before, photo) + 3


def test_a_mask_that_marks_nothing_is_one_line(photo, tmp_path, capsys):
    src = save(tmp_path / "p.png", photo)
    Image.fromarray(np.full(photo.shape[:2], 3, np.uint8)).save(tmp_path / "m.png")  # near black
    out = tmp_path / "o.png"
    assert main(["unwatermark", str(src), str(out), "--mask", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "marks no pixel" in err and "\n" not in err and not out.exists()


@needs_zoo
def test_unwatermark_leaves_an_unmarked_photo_as_it_was(photo, tmp_path):
    """The shipped model is gated: where it sees no mark it does not touch a pixel."""
    src = save(tmp_path / "clean.png", photo)
    assert main(["unwatermark", str(src), str(tmp_path / "out.png")]) == 0
    assert np.array_equal(load(tmp_path / "out.png"), load(src))


@needs_zoo
def test_rgba_alpha_and_16bit_grey_are_kept(photo, tmp_path):
    rgba = np.dstack([photo, np.linspace(0, 1, photo.shape[1])[None].repeat(96, 0)])
    src = save(tmp_path / "rgba.png", rgba, "RGBA")
    assert main(["denoise", str(src), str(tmp_path / "o.png")]) == 0
    out = Image.open(tmp_path / "o.png")
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], np.asarray(Image.open(src))[..., 3])
    g16 = (photo[..., 1] * 65535).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    assert main(["upscale", str(tmp_path / "g16.png"), str(tmp_path / "g16x2.png")]) == 0
    pic = read_picture(tmp_path / "g16x2.png")
    assert pic.bits == 16 and pic.pixels.shape == (1, 192, 256)


@needs_zoo
def test_exif_orientation_is_applied(photo, tmp_path):
    im = Image.fromarray((photo * 255).astype(np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    im.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    assert main(["denoise", str(tmp_path / "rot.jpg"), str(tmp_path / "out.jpg")]) == 0
    out = Image.open(tmp_path / "out.jpg")
    assert out.size == (96, 128) and out.getexif().get(0x0112, 1) == 1


@needs_zoo
def test_tiles_leave_no_seam(photo):
    from aekit.apps.restore import Restorer
    from aekit.imaging import Picture

    big = np.concatenate([photo, photo[::-1]], 0).transpose(2, 0, 1)[:, :, :]  # 192×128
    pic = Picture(np.ascontiguousarray(big))
    whole, _ = Restorer.load("denoise", tile=0).apply(pic)
    tiled, _ = Restorer.load("denoise", tile=MIN_TILE).apply(pic)
    # the smallest tile allowed (128 px) is narrower than the U-Net's receptive field, so the
    # two differ a little, but by well under one grey level on average and nowhere visibly
    assert np.abs(whole - tiled).max() < 0.02
    assert np.abs(whole - tiled).mean() < 1.5e-3


@needs_zoo
def test_folder_in_folder_out_and_a_bad_file(photo, tmp_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    save(src / "a.png", photo)
    save(src / "sub" / "b.jpg", photo[:64, :64])
    assert main(["denoise", str(src), str(tmp_path / "out"), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert len(obj["files"]) == 2
    assert (tmp_path / "out" / "sub" / "b.jpg").is_file()
    (src / "c.png").write_bytes(b"not an image")
    assert main(["denoise", str(src), str(tmp_path / "out2"), "--json"]) == 2
    assert not (tmp_path / "out2" / "c.png").exists()
    # --json still says what was written and what failed
    obj = json.loads(capsys.readouterr().out)
    assert sorted(Path(f["out"]).name for f in obj["files"]) == ["a.png", "b.jpg"]
    assert [Path(f["in"]).name for f in obj["failed"]] == ["c.png"]
    assert (tmp_path / "out2" / "a.png").is_file()


def test_a_model_that_cannot_restore_is_one_error_before_any_photo(photo, tmp_path, capsys):
    mlp = tmp_path / "mlp"  # the core's digits model: (1, 8, 8) images, so it looked like one
    create_model("vanilla", (1, 8, 8), 4).save_pretrained(mlp)
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        save(src / name, photo)
    assert main(["denoise", str(src), str(tmp_path / "out"), "--model", str(mlp)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a restoration model" in err[0], err
    assert not (tmp_path / "out").exists()


@needs_zoo
@pytest.mark.parametrize("cmd", [["denoise"], ["colorize"], ["unwatermark"],
                                 ["upscale", "--scale", "3"]])
def test_corrupt_input_one_line_no_output(cmd, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out.png"
    assert main([cmd[0], str(bad), str(out), *cmd[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aekit: error:") and "\n" not in err and "bad.png" in err
    assert not out.exists() and not list(tmp_path.glob(".out.png*"))


def test_missing_input_and_bad_output_suffix(tmp_path, capsys):
    assert main(["denoise", str(tmp_path / "nope.png"), str(tmp_path / "o.png")]) == 2
    save(tmp_path / "x.png", np.zeros((8, 8)))
    assert main(["denoise", str(tmp_path / "x.png"), str(tmp_path / "o.xyz")]) == 2
    # a folder IN with an OUT named like an image: an error, not a folder called "o.png"
    assert main(["denoise", str(tmp_path), str(tmp_path / "o.png")]) == 2
    assert capsys.readouterr().err.count("aekit: error:") == 3
    assert not (tmp_path / "o.png").exists()



@needs_zoo
def test_16bit_float_and_grey_alpha_inputs_to_any_format(photo, tmp_path):
    luma = photo[..., 1]
    Image.fromarray((luma * 65535).astype(np.uint16)).save(tmp_path / "g16.png")
    for out in ("d.jpg", "d.bmp"):  # 8-bit files from a 16-bit photo keep its tones
        assert main(["denoise", str(tmp_path / "g16.png"), str(tmp_path / out)]) == 0
        assert psnr(load(tmp_path / out), luma) > 28
    assert main(["colorize", str(tmp_path / "g16.png"), str(tmp_path / "c.png")]) == 0
    assert abs(load(tmp_path / "c.png").mean() - luma.mean()) < 0.03
    Image.fromarray(luma.astype(np.float32)).save(tmp_path / "f.tif")  # mode F, in [0, 1]
    assert main(["denoise", str(tmp_path / "f.tif"), str(tmp_path / "f.png")]) == 0
    pic = read_picture(tmp_path / "f.png")
    assert pic.pixels.shape[0] == 1 and psnr(pic.pixels[0], luma) > 28
    # TIFF back out: the input's layout tags (SampleFormat = float) are not copied over
    assert main(["denoise", str(tmp_path / "f.tif"), str(tmp_path / "f_out.tif")]) == 0
    assert Image.open(tmp_path / "f_out.tif").mode == "I;16"
    assert psnr(read_picture(tmp_path / "f_out.tif").pixels[0], luma) > 28
    la = np.dstack([luma, np.ones_like(luma)])
    save(tmp_path / "la.png", la, "LA")
    assert main(["denoise", str(tmp_path / "la.png"), str(tmp_path / "la.bmp")]) == 0  # no alpha


def test_out_that_would_replace_the_input_is_refused(photo, tmp_path, capsys):
    src = save(tmp_path / "p.png", photo)
    before = src.read_bytes()
    assert main(["denoise", str(src), str(src)]) == 2
    (tmp_path / "d").mkdir()
    save(tmp_path / "d" / "a.png", photo)
    assert main(["denoise", str(tmp_path / "d"), str(tmp_path / "d")]) == 2
    assert main(["denoise", str(src), str(src / "x.png")]) == 2  # a file where a folder goes
    white = save(tmp_path / "white.png", np.ones(photo.shape[:2]))
    assert main(["unwatermark", str(src), str(tmp_path / "o.png"), "--mask", str(white)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(e.startswith("aekit: error:") for e in err)
    assert "OUT is the input" in err[0] and "folder IN" in err[1] and "whole image" in err[3]
    assert src.read_bytes() == before and not (tmp_path / "o.png").exists()
    # OUT inside IN, where an input's result would land on another input (d/a.png → d/keep/a.png)
    (tmp_path / "d" / "keep").mkdir()
    kept = save(tmp_path / "d" / "keep" / "a.png", photo * 0.5)
    kept_bytes = kept.read_bytes()
    assert main(["denoise", str(tmp_path / "d"), str(tmp_path / "d" / "keep")]) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    assert kept.read_bytes() == kept_bytes and not (tmp_path / "d" / "keep" / "keep").exists()

def train_tiny(task: str, photo: np.ndarray, tmp_path: Path, minutes: float) -> tuple[Path, dict]:
    """``aekit train --preset restore --task TASK`` on one photo with a tiny U-Net: (model
    folder, its config)."""
    data = tmp_path / "photos"
    data.mkdir()
    save(data / "a.png", photo)
    out = tmp_path / "model"
    assert main(["train", "--preset", "restore", "--task", task, "--data", str(data),
                 "--minutes", str(minutes), "--image-size", "48x48", "--batch-size", "2",
                 "--option", 'arch_options={"widths": [8, 16]}', "--out", str(out),
                 "--no-progress"]) == 0
    return out, json.loads((out / "config.json").read_text())["config"]


def test_train_restore_takes_any_lr_and_needs_no_batch_size(photo, tmp_path):
    (tmp_path / "photos").mkdir()
    save(tmp_path / "photos" / "a.png", photo)
    for lr, expect in ((None, 1e-3), ("0.002", 2e-3)):  # 0.002 was taken for "not given"
        out = tmp_path / f"m{lr}"
        assert main(["train", "--preset", "restore", "--task", "denoise", "--data",
                     str(tmp_path / "photos"), "--epochs", "1", "--image-size", "32x32",
                     "--option", 'arch_options={"widths": [8, 16]}', "--out", str(out),
                     "--no-progress", *(["--lr", lr] if lr else [])]) == 0
        summary = json.loads((out / "config.json").read_text())["training"]
        assert summary["lr"] == expect and summary["batch_size"] == 16


def test_train_restore_preset_then_use_it(photo, tmp_path, capsys):
    out, cfg = train_tiny("upscale-x3", photo, tmp_path, 0.03)
    assert cfg["extra"]["task"] == "upscale" and cfg["extra"]["scale"] == 3
    src = save(tmp_path / "s.png", photo[:20, :30])
    assert main(["upscale", str(src), str(tmp_path / "b.png"), "--scale", "3",
                 "--model", str(out)]) == 0
    assert Image.open(tmp_path / "b.png").size == (90, 60)
    # the model knows its factor: --scale may be left out
    assert main(["upscale", str(src), str(tmp_path / "c.png"), "--model", str(out)]) == 0
    assert Image.open(tmp_path / "c.png").size == (90, 60)
    assert main(["upscale", str(src), str(tmp_path / "d2.png"), "--scale", "2",
                 "--model", str(out)]) == 2
    assert main(["denoise", str(src), str(tmp_path / "d.png"), "--model", str(out)]) == 2
    assert "trained to upscale" in capsys.readouterr().err


def test_train_own_unwatermark_model_is_gated_like_the_zoos(photo, tmp_path):
    out, cfg = train_tiny("unwatermark", photo, tmp_path, 0.02)
    assert cfg["arch_options"]["gate"] is True and cfg["extra"]["gate_threshold"] == GATE_INFERENCE_THRESHOLD
    src = save(tmp_path / "s.png", photo[:40, :56])
    assert main(["unwatermark", str(src), str(tmp_path / "o.png"), "--model", str(out)]) == 0
    assert Image.open(tmp_path / "o.png").size == (56, 40)


@needs_zoo
def test_colour_planes_go_to_the_chroma_model_and_luminance_to_the_grey_one(photo):
    from aekit.apps.restore import Restorer, chroma_planes
    from aekit.imaging import Picture

    r = Restorer.load("denoise")
    assert r.chroma is not None and r.chroma.input_shape[0] == 1
    noisy = np.clip(photo + np.random.default_rng(1).normal(0, 25 / 255, photo.shape), 0, 1)
    pic = Picture(noisy.transpose(2, 0, 1).astype(np.float32))
    with_chroma = r.apply(pic)[0]
    grey_only = Restorer(r.model, "denoise", tile=r.tile).apply(pic)[0]
    same = Restorer(r.model, "denoise", tile=r.tile, chroma=r.model).apply(pic)[0]
    np.testing.assert_allclose(same, grey_only, atol=1e-5)  # the split path is the same path
    # the opponent luminance plane (the RGB mean) is the grey model's either way, wherever the
    # output was not clipped to [0, 1]
    inside = ((with_chroma > 0) & (with_chroma < 1) & (grey_only > 0) & (grey_only < 1)).all(0)
    assert inside.mean() > 0.9
    np.testing.assert_allclose(with_chroma.mean(0)[inside], grey_only.mean(0)[inside], atol=1e-4)
    assert np.abs(with_chroma - grey_only).max() > 1e-3  # and the colour planes did change
    # its training data: two planes per colour photo, none from a grey one
    rgb = (photo * 255).astype(np.uint8)
    grey = np.repeat(rgb[..., :1], 3, axis=2)
    planes = chroma_planes([rgb, grey])
    assert len(planes) == 2 and all(p.dtype == np.uint8 and p.shape == rgb.shape[:2] for p in planes)


@needs_zoo
def test_zoo_lists_the_shipped_models(capsys):
    assert main(["zoo", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["models"]}
    names = ["denoise-grey", "denoise-chroma", "colorize", "unwatermark", "upscale-x2",
             "upscale-x3", "upscale-x4"]
    assert all(rows[n]["shipped"] for n in names)
    assert sum(rows[n]["mb"] for n in names) < 25
    # a fine-tuned model counts every run it came from (the config's earlier_runs)
    meta = json.loads((zoo_path("denoise-grey") / "config.json").read_text())["training"]
    runs = [*meta.get("earlier_runs", []), meta]
    assert rows["denoise-grey"]["runs"] == len(runs) > 1
    assert rows["denoise-grey"]["minutes"] == pytest.approx(sum(r["minutes"] for r in runs), abs=0.1)
    # each says what it was trained on and with which seed (package photos, never test sets)
    assert all(rows[n]["seed"] is not None and "photo" in rows[n]["data"] for n in names)


def test_train_restore_repeats_with_the_same_seed_and_says_what_is_wrong(photo, tmp_path, capsys):
    from safetensors.numpy import load_file

    data = tmp_path / "photos"
    data.mkdir()
    save(data / "a.png", photo)
    base = ["train", "--preset", "restore", "--data", str(data), "--image-size", "48x48",
            "--batch-size", "2", "--option", 'arch_options={"widths": [8, 16]}', "--no-progress"]
    for run in ("a", "b"):  # the weights were drawn before --seed was applied
        assert main([*base, "--task", "upscale", "--epochs", "1", "--seed", "3",
                     "--out", str(tmp_path / run)]) == 0
    a, b = (load_file(tmp_path / run / "model.safetensors") for run in ("a", "b"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    capsys.readouterr()
    for flags, words in ((["--task", "upscale-xx"], "bad task"),
                         (["--task", "colorize", "--channels", "1"], "colour photos"),
                         (["--task", "denoise", "--epochs", "0"], "--epochs must be at least 1")):
        assert main([*base, *flags, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "bad").exists()


def test_an_inpaint_model_refines_unwatermark_mask_fills(photo, tmp_path, capsys):
    out, cfg = train_tiny("inpaint", photo, tmp_path, 0.02)
    marked, alpha = watermark_image(photo, np.random.default_rng(3))
    src = save(tmp_path / "marked.png", marked)
    save(tmp_path / "m.png", (alpha > 0.01).astype(np.float32))
    assert main(["unwatermark", str(src), str(tmp_path / "o.png"), "--model", str(out),
                 "--mask", str(tmp_path / "m.png")]) == 0
    assert main(["unwatermark", str(src), str(tmp_path / "o2.png"), "--model", str(out)]) == 2
    assert "needs one" in capsys.readouterr().err


@needs_zoo
def test_the_python_api_refuses_pixels_and_settings_it_would_misread():
    """A uint8 array or 0–255 floats were restored to a white picture without a word; (H, W)
    grey is taken; channels-last, NaN, a bad task, ensemble, sigma or mask size are one
    clear ValueError each."""
    from aekit.apps.restore import Restorer
    from aekit.errors import DataError, ParameterError
    from aekit.imaging import Picture

    rgb = np.random.default_rng(0).random((3, 24, 20))
    with pytest.raises(DataError, match="floats in \\[0, 1\\], got uint8"):
        Picture((rgb * 255).astype(np.uint8))
    with pytest.raises(DataError, match="0–1 scale, got values up to 25"):
        Picture(rgb * 255)
    with pytest.raises(DataError, match="channels last"):
        Picture(rgb.transpose(1, 2, 0))
    with pytest.raises(DataError, match="NaN"):
        Picture(np.full((1, 4, 4), np.nan))
    grey = Picture(rgb[0])  # float64 (H, W) → float32 (1, H, W)
    assert grey.pixels.shape == (1, 24, 20) and grey.pixels.dtype == np.float32
    r = Restorer.load("denoise")
    out, _ = r.apply(grey)
    assert out.shape == (1, 24, 20) and np.abs(out - rgb[0]).mean() < 0.3
    with pytest.raises(ParameterError, match="known: denoise, colorize"):
        Restorer.load("sharpen")
    for bad in (0, 9, 2.0):
        with pytest.raises(ParameterError, match="ensemble"):
            Restorer.load("denoise", ensemble=bad)
    with pytest.raises(ParameterError, match="sigma"):
        r.apply(grey, sigma=-5)
    with pytest.raises(ParameterError, match="mask"):
        Restorer.load("unwatermark").apply(grey, mask=np.ones((5, 5), bool))


def test_the_python_api_checks_masks_alpha_saturation_and_scale_like_the_cli():
    """A whole-image or NaN mask ended in scikit-image's own error; an empty mask silently
    returned the input (the CLI refuses both); a mask was silently applied to denoise; a NaN
    saturation made the colours NaN; a wrong alpha came back unchanged; ×5 was said to be
    a missing model; a plain array was an AttributeError."""
    from aekit.apps.restore import Restorer
    from aekit.errors import DataError, ParameterError
    from aekit.imaging import Picture, save_picture

    x = np.random.default_rng(0).random((3, 20, 24)).astype(np.float32)
    unmark = Restorer.load("unwatermark")
    for bad, why in ((np.ones((20, 24), bool), "whole image"), (np.zeros((20, 24)), "no pixel"),
                     (np.full((20, 24), np.nan), "NaN"), (np.full((20, 24), "a"), "numbers")):
        with pytest.raises(ParameterError, match=why):
            unmark.apply(Picture(x), mask=bad)
    mask = np.zeros((20, 24), np.uint8)
    mask[5:9, 6:12] = 1
    out, _ = unmark.apply(x, mask=mask)  # a (C, H, W) array is taken as a Picture
    assert out.shape == x.shape and np.array_equal(out[:, mask == 0], x[:, mask == 0])
    assert not np.array_equal(out[:, mask == 1], x[:, mask == 1])
    with pytest.raises(ParameterError, match="denoise takes none"):
        Restorer.load("denoise").apply(Picture(x), mask=mask)
    with pytest.raises(ParameterError, match="Picture"):
        unmark.apply([[0.5]])
    for bad in (float("nan"), -1.0, "1"):
        with pytest.raises(ParameterError, match="saturation"):
            Restorer.load("colorize", saturation=bad)
    with pytest.raises(ParameterError, match="one of 2, 3, 4, got 5"):
        Restorer.load("upscale", scale=5)
    for alpha in (np.ones((3, 3), np.float32), np.full((20, 24), 255, np.uint8),
                  np.full((20, 24), 7.0)):
        with pytest.raises(DataError, match="alpha"):
            Picture(x, alpha=alpha)
    with pytest.raises(DataError, match="channels last"):
        save_picture("never.png", x.transpose(1, 2, 0))
