"""The learned image codec: round trips, the .aek format's robustness, the golden file,
BD-rate and MS-SSIM, and the CLI (compress / decompress / codec-eval)."""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aekit import codec, zoo
from aekit.cli import main
from aekit.codec import CodecFormatError
from aekit.errors import AekitError
from aekit.models import Autoencoder, create_model
from aekit.rd import PSNR_CAP, bd_rate, ms_ssim, psnr255, synthetic_photo

GOLDEN = Path(__file__).parent / "expected" / "codec_golden.json"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Autoencoder, Path]:
    """A small untrained codec with exported tables (fast; for format tests)."""
    torch.manual_seed(0)
    model = create_model("codec", (3, 32, 32), 8, arch_options={"channels": 8}).eval()
    model.code.export_tables()
    path = tmp_path_factory.mktemp("tiny") / "codec"
    model.save_pretrained(path)
    return model, path


@pytest.fixture(scope="module")
def shipped() -> Autoencoder:
    return zoo.load("codec")


def test_codec_is_a_preset_and_saves_loads_with_its_tables(tiny, tmp_path):
    model, path = tiny
    loaded = Autoencoder.from_pretrained(path)
    assert codec.model_id(loaded) == codec.model_id(model)
    assert torch.equal(loaded.code.cdf_counts, model.code.cdf_counts)
    assert int(loaded.code.cdf_counts[0, 0].sum()) == 1 << 16
    # the generic contract (nominal shape, grey, odd size) still holds
    g = create_model("codec", (1, 28, 28), 8, arch_options={"channels": 8})
    out = g(torch.rand(2, 1, 28, 28))
    assert out.x_hat.shape == (2, 1, 28, 28) and set(out.losses) == {"recon", "rate"}
    out.loss.backward()


@pytest.mark.parametrize("shape", [(1, 1), (17, 33), (40, 23, 3), (5, 70, 3), (33, 17)])
def test_round_trip_any_size_grey_and_colour(tiny, shape):
    model, _ = tiny
    img = synthetic_photo(shape[0], shape[1], seed=1, grey=len(shape) == 2)
    data = codec.compress(model, img, 2)
    out = codec.decompress(model, data)
    assert out.shape == img.shape and out.dtype == np.uint8
    header, _ = codec.parse(data)
    assert (header.width, header.height, header.channels) == (shape[1], shape[0], 1 if len(shape) == 2 else 3)
    # determinism: same image → same bytes, decoding twice → same pixels
    assert codec.compress(model, img, 2) == data
    assert np.array_equal(codec.decompress(model, data), out)


@pytest.mark.parametrize("shape", [(70, 101, 3), (83, 50)])
def test_tiled_synthesis_gives_the_whole_images_pixels(tiny, monkeypatch, shape):
    """Large images are decoded in tiles (bounded memory whatever the header claims); with
    tiles of 2 latent positions (32 pixels) the pixels match whole-image synthesis up to
    float rounding (a level, rarely)."""
    model, _ = tiny
    img = synthetic_photo(shape[0], shape[1], seed=4, grey=len(shape) == 2)
    data = codec.compress(model, img, 2)
    whole = codec.decompress(model, data)
    monkeypatch.setattr(codec, "SYNTH_TILE", 2)
    tiled = codec.decompress(model, data)
    diff = np.abs(tiled.astype(int) - whole)
    assert tiled.shape == whole.shape and diff.max() <= 1 and (diff > 0).mean() < 1e-3


@pytest.mark.parametrize("shape", [(70, 101, 3), (83, 50)])
def test_tiled_analysis_and_refinement_match_whole_image(tiny, monkeypatch, shape):
    """Large images are analysed and refined in tiles (bounded memory: a 3000×2000 photo
    peaked at 4.1 GB whole). With tiles of 2 latent positions the analysis output, the
    refinement's squared error and its gradient equal the whole image's up to float
    rounding, and the refined file decodes as well as the whole-image one."""
    model, _ = tiny
    img = synthetic_photo(shape[0], shape[1], seed=5, grey=len(shape) == 2)
    code = codec.check_codec_model(model)
    h = codec.analyse(model, img)
    g, ig = code.gain(2).detach(), code.inv_gain(2).detach()
    y = (h * g).requires_grad_(True)
    x = codec.image_to_tensor(img, 3)
    y_hat = y + (torch.round(y) - y).detach()
    sse = (codec.pixels(model, y_hat * ig, *img.shape[:2]) - x).pow(2).sum()
    (grad,) = torch.autograd.grad(sse, y)
    whole = codec.compress(model, img, 2, refine_steps=2)
    monkeypatch.setattr(codec, "SYNTH_TILE", 2)
    torch.testing.assert_close(codec.analyse(model, img), h, atol=1e-5, rtol=1e-5)
    tiled_sse, tiled_grad = codec._tiled_sse(model, y.detach(), ig, x, False, True)
    assert tiled_sse == pytest.approx(sse.item(), rel=1e-5)
    torch.testing.assert_close(tiled_grad, grad, atol=1e-4, rtol=1e-4)
    tiled = codec.compress(model, img, 2, refine_steps=2)
    quality = [psnr255(img, codec.decompress(model, d)) for d in (whole, tiled)]
    assert abs(len(tiled) - len(whole)) <= 0.02 * len(whole) + 2
    assert quality[1] == pytest.approx(quality[0], abs=0.05)


def test_per_image_tables_pick_zeros_and_stretched_tables_and_save_bits(tiny):
    """Format 2: an all-zero channel costs nothing, a channel wider than its density gets a
    stretched table, the payload is smaller than with the channels' own tables (format 1),
    and both decode to the same latents."""
    from aekit.codes_quantized import ADAPT_CHOICES, ADAPT_UNIT

    code = tiny[0].code
    q = 2
    # the s = 1 table of the per-image set is the channel's own table
    for c in range(code.latent_dim):
        start, n = int(code.adapt_start[q, c, ADAPT_UNIT]), int(code.adapt_length[q, c, ADAPT_UNIT])
        assert torch.equal(code.adapt_counts[start: start + n], code.cdf_counts[q, c, :n])
    rng = np.random.default_rng(0)
    y = np.zeros((code.latent_dim, 6, 9), np.int64)
    tab = code.cdf_counts[q, 1, : int(code.cdf_length[q, 1])].numpy()
    first = int(code.cdf_offset[q, 1])
    probs = tab[:-1] / tab[:-1].sum()
    for c in range(1, code.latent_dim):  # each channel drawn from its own table, c = 1 widened
        y[c] = rng.choice(np.arange(first, first + len(probs)), size=(6, 9), p=probs) \
            if c != 1 else rng.normal(0, 3 * max(1.0, np.sqrt(probs @ np.arange(len(probs)) ** 2)), (6, 9)).round()
    choices = codec.choose_tables(code, q, y.reshape(len(y), -1))
    assert choices.shape == (code.latent_dim,) and choices.max() < ADAPT_CHOICES
    assert choices[0] == 0 and choices[1] > ADAPT_UNIT
    v2 = codec.encode_symbols(code, q, y, version=2)
    v1 = codec.encode_symbols(code, q, y, version=1)
    assert np.array_equal(codec.decode_symbols(code, q, v1, 6, 9, version=1), y)
    assert len(v2) < len(v1)
    assert np.array_equal(codec.decode_symbols(code, q, v2, 6, 9, version=2), y)
    v3 = codec.encode_symbols(code, q, y, version=3)
    assert np.array_equal(codec.decode_symbols(code, q, v3, 6, 9, version=3), y)


def test_context_tables_follow_the_activity_of_earlier_channels(tiny):
    """Format 3: where the channels decoded before have large values, a channel flagged for
    context codes with a wider table, so latents whose spread varies across the image (as a
    photo's do: texture here, sky there) take fewer bytes than with one table per channel
    (format 2); the decoder forms the same groups from what it has decoded and gets every
    value back, escapes included."""
    code = tiny[0].code
    q = 2
    rng = np.random.default_rng(4)
    m, h, w = code.latent_dim, 24, 32
    # calm | busy (the untrained tables are wide: a spread of 2 is calm for them)
    spread = np.where(np.arange(w) < w // 2, 2.0, 30.0)[None, None, :].repeat(h, 1)
    y = rng.laplace(0.0, spread, (m, h, w)).round().astype(np.int64)
    y[3] = 0
    y[5, 0, 0] = 5000  # far outside every table: an escape
    flat = y.reshape(m, -1)
    base, use, shift = codec.plan_context(code, q, flat)
    assert base[3] == 0 and not use[3]
    assert use[1:].mean() > 0.5 and shift.max() > shift.min()
    v2 = codec.encode_symbols(code, q, y, version=2)
    v3 = codec.encode_symbols(code, q, y, version=3)
    assert len(v3) < 0.95 * len(v2)
    assert np.array_equal(codec.decode_symbols(code, q, v3, h, w, version=3), y)
    # the same latents, with the channels' groups taken from other (wrong) activities, do not
    # come back: the groups really are the decoder's own
    k = codec._side_info_size(m, 3)
    flipped = v3[: k - 5] + bytes([v3[k - 5] ^ 0xFF]) + v3[k - 4:]
    try:
        wrong = codec.decode_symbols(code, q, flipped, h, w, version=3)
        assert not np.array_equal(wrong, y)
    except CodecFormatError:
        pass


def test_table_choices_of_an_odd_channel_count_round_trip_and_refuse_a_set_pad_nibble():
    torch.manual_seed(1)
    model = create_model("codec", (3, 32, 32), 7, arch_options={"channels": 8}).eval()
    model.code.export_tables()
    y = np.random.default_rng(3).integers(-2, 3, size=(7, 4, 5))
    payload = codec.encode_symbols(model.code, 1, y, version=2)
    assert np.array_equal(codec.decode_symbols(model.code, 1, payload, 4, 5, version=2), y)
    bad = payload[:3] + bytes([payload[3] | 1]) + payload[4:]  # the 8th nibble pads 7 choices
    with pytest.raises(CodecFormatError, match="choices"):
        codec.decode_symbols(model.code, 1, bad, 4, 5, version=2)
    payload = codec.encode_symbols(model.code, 1, y, version=3)
    assert np.array_equal(codec.decode_symbols(model.code, 1, payload, 4, 5, version=3), y)
    bad = payload[:4] + bytes([payload[4] | 1]) + payload[5:]  # the 8th bit pads 7 flags
    with pytest.raises(CodecFormatError, match="context flags"):
        codec.decode_symbols(model.code, 1, bad, 4, 5, version=3)


def test_a_codec_saved_without_per_image_tables_still_loads_and_writes_format_1(tiny):
    model, _ = tiny
    state = {k: v for k, v in model.state_dict().items() if ".adapt_" not in k}
    old = create_model("codec", (3, 32, 32), 8, arch_options={"channels": 8}).eval()
    old.load_state_dict(state, strict=True)
    assert not old.code.adaptive and codec.model_id(old) != codec.model_id(model)
    img = synthetic_photo(21, 35, seed=9)
    data = codec.compress(old, img, 1)
    assert data[4] == 1
    # same latents, so the same pixels as the model with the tables, in a file no longer
    new = codec.compress(model, img, 1)
    assert np.array_equal(codec.decompress(old, data), codec.decompress(model, new))
    assert len(new) <= len(data)


def test_shipped_codec_writes_the_shortest_format(shipped):
    """The per-image and context tables pay on a photo; on a thumbnail their 64–84 bytes do
    not, and the encoder keeps the format-1 file."""
    for shape, version in (((160, 224), 3), ((16, 16), 1)):
        img = synthetic_photo(*shape, seed=11)
        data = codec.compress(shipped, img, 2, refine_steps=0)
        y = codec.integer_latents(shipped.code, codec.analyse(shipped, img), 2)
        sizes = [len(codec.encode_symbols(shipped.code, 2, y, version=v)) for v in (1, 2, 3)]
        assert data[4] == version
        assert len(data) - codec.HEADER_SIZE == min(sizes) == sizes[version - 1]
        assert np.array_equal(codec.decompress(shipped, data).shape[:2], shape)


def test_shipped_codec_quality_ladder(shipped):
    img = synthetic_photo(96, 128, seed=3)
    files = codec.compress_ladder(shipped, img)
    assert len(files) >= 5
    sizes = [len(f) for f in files]
    psnrs = [psnr255(codec.decompress(shipped, f), img) for f in files]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert psnrs[-1] > psnrs[0] and psnrs[-1] > 20
    data, q = codec.compress_to_bpp(shipped, img, 8 * sizes[2] / img[..., 0].size)
    assert q == 2 and data == files[2]
    # with refinement only the chosen quality's file is refined: the same as compressing it
    data, q = codec.compress_to_bpp(shipped, img, 8 * sizes[2] / img[..., 0].size, refine_steps=2)
    assert q == 2 and data == codec.compress(shipped, img, 2, refine_steps=2)


@pytest.mark.parametrize("bf16", ["0", "1"], ids=["float32", "bfloat16"])
def test_refinement_lowers_the_files_real_rd_cost_and_stays_deterministic(shipped, bf16,
                                                                           monkeypatch):
    """Encoder-side refinement: the file's own cost (bits from its bytes + λ'·SSE of what the
    unchanged decoder makes of it) goes down, the same image gives the same bytes, and an
    unrefined decoder reads it — with the synthesis steps in float32 and in bfloat16 (which
    refine uses where the CPU has it natively; forced here either way)."""
    monkeypatch.setenv("AEKIT_CPU_AMP", bf16)
    img = synthetic_photo(64, 96, seed=7)
    q = codec.default_quality(shipped) - 1  # λ 0.0067 on the zoo ladder: ~0.3 bpp on photos
    lam = float(shipped.code.lambdas[q])

    def cost(data: bytes) -> float:
        out = codec.decompress(shipped, data).astype(np.float64) / 255.0
        return 8 * len(data) + lam * float(((out - img / 255.0) ** 2).sum())

    plain = codec.compress(shipped, img, q, refine_steps=0)
    refined = codec.compress(shipped, img, q, refine_steps=10)
    assert refined != plain
    assert cost(refined) < 0.97 * cost(plain)
    assert codec.compress(shipped, img, q, refine_steps=10) == refined
    assert codec.compress(shipped, img, q, refine_steps=0) == plain


def test_golden_file(shipped):
    """A silent change of the format or the shipped model fails here; after retraining the
    zoo codec, regenerate with `python scripts/codec_golden.py`."""
    g = json.loads(GOLDEN.read_text())
    img = synthetic_photo(g["height"], g["width"], seed=g["seed"])
    data = codec.compress(shipped, img, g["quality"] - 1, refine_steps=0)
    assert codec.model_id(shipped).hex() == g["model_id"]
    assert len(data) == g["bytes"]
    assert zlib.crc32(data) == g["crc32"]
    assert psnr255(codec.decompress(shipped, data), img) == pytest.approx(g["psnr"], abs=0.01)


# ------------------------------------------------------------------------------ robustness
_VALID: dict[tuple[int, int | None], bytes] = {}


def _valid(tiny, version: int | None = None) -> bytes:
    """A valid file of the tiny model: as ``compress`` writes it, or in one format version."""
    key = (id(tiny[0]), version)
    if key not in _VALID:
        img = synthetic_photo(40, 56, seed=2)
        data = codec.compress(tiny[0], img, 3)
        if version is not None:
            code, h = tiny[0].code, codec.parse(data)[0]
            y = codec.integer_latents(code, codec.analyse(tiny[0], img), 3)
            data = codec.pack(h.channels, h.quality, h.model_id, h.width, h.height,
                              codec.encode_symbols(code, 3, y, version), version)
            assert np.array_equal(codec.decompress(tiny[0], data), codec.decompress(tiny[0], _valid(tiny)))
        _VALID[key] = data
    return _VALID[key]


def test_truncated_flipped_magic_version_unknown_model(tiny):
    model, _ = tiny
    data = _valid(tiny)
    for n in (0, 3, 10, 35, 36, 40, len(data) - 1):
        with pytest.raises(CodecFormatError, match="truncated|magic|empty"):
            codec.decompress(model, data[:n])
    for bit in range(0, 8 * len(data), 37):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(CodecFormatError):
            codec.decompress(model, bytes(bad))
    with pytest.raises(CodecFormatError, match="magic"):
        codec.decompress(model, b"GIF89a" + data[6:])
    head = bytearray(data[:32])
    head[4] = 9
    with pytest.raises(CodecFormatError, match="version 9"):
        codec.decompress(model, bytes(head) + struct.pack(">I", zlib.crc32(head)) + data[36:])
    torch.manual_seed(1)
    other = create_model("codec", (3, 32, 32), 8, arch_options={"channels": 8}).eval()
    other.code.export_tables()
    with pytest.raises(CodecFormatError, match="made by codec model"):
        codec.decompress(other, data)
    with pytest.raises(CodecFormatError, match="1 unexpected trailing byte$"):
        codec.decompress(model, data + b"\0")
    with pytest.raises(CodecFormatError, match="empty"):
        codec.decompress(model, b"")
    # a damaged version byte (header CRC left as it was) is damage, not a newer format
    head = bytearray(data[:32])
    head[4] = 9
    with pytest.raises(CodecFormatError, match="version 9.*damaged"):
        codec.decompress(model, bytes(head) + data[32:])
    head = bytearray(data[:32])
    head[7] = 1  # the reserved byte, CRC made valid
    with pytest.raises(CodecFormatError, match="reserved byte is 1"):
        codec.decompress(model, bytes(head) + struct.pack(">I", zlib.crc32(head)) + data[36:])


def _repack(data: bytes, payload: bytes) -> bytes:
    """Same header, new payload, CRCs made valid (to reach the entropy decoder)."""
    h = codec.parse(data)[0]
    return codec.pack(h.channels, h.quality, h.model_id, h.width, h.height, payload, h.version)


@settings(max_examples=90, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=300), cut=st.integers(0, 400), pos=st.integers(0, 10_000),
       val=st.integers(0, 255), mode=st.sampled_from(["random", "mutate", "payload", "header"]),
       version=st.sampled_from(codec.VERSIONS))
def test_parser_never_crashes(tiny, blob, cut, pos, val, mode, version):
    model, _ = tiny
    data = _valid(tiny, version)
    if mode == "random":
        candidate = blob
    elif mode == "mutate":
        b = bytearray(data[:cut] + blob if cut < len(data) else data + blob)
        if b:
            b[pos % len(b)] = val
        candidate = bytes(b)
    elif mode == "payload":  # garbage payload with valid CRCs: the coder itself must cope
        payload = bytearray(codec.parse(data)[1] + blob)
        payload[pos % len(payload)] = val
        candidate = _repack(data, bytes(payload[: max(cut, 1)]))
    else:  # a valid-CRC header with random fields
        fields = list(codec.HEADER.unpack_from(data))
        fields[1 + pos % 4] = val  # version, channels, quality or reserved
        head = codec.HEADER.pack(*fields)
        candidate = head + struct.pack(">I", zlib.crc32(head)) + data[36:]
    try:
        out = codec.decompress(model, candidate)
    except CodecFormatError as e:
        assert "\n" not in str(e) and str(e)
    else:
        assert out.dtype == np.uint8


def test_cli_errors_are_one_line(tiny, tmp_path, capsys):
    _, path = tiny
    bad = tmp_path / "bad.aek"
    bad.write_bytes(_valid(tiny)[:-3])
    assert main(["decompress", str(bad), str(tmp_path / "o.png"), "--model", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aekit: error:") and "truncated" in err and "\n" not in err
    assert not (tmp_path / "o.png").exists()
    assert main(["compress", str(tmp_path / "missing.png"), str(bad), "--model", str(path)]) == 2
    assert main(["compress", str(bad), str(tmp_path / "x.aek"), "--model", str(path)]) == 2
    assert "not a readable image" in capsys.readouterr().err


# --------------------------------------------------------------------------------- the CLI
def test_cli_compress_reads_16_bit_exif_and_alpha_like_every_command(tiny, tmp_path, capsys):
    """16-bit PNGs are scaled to 8 bits (not clipped to white), EXIF orientation is applied and
    a dropped alpha channel is said on stderr and in the JSON."""
    from PIL import Image

    model, path = tiny
    grey = synthetic_photo(30, 41, seed=7, grey=True)
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    assert main(["compress", str(tmp_path / "g16.png"), str(tmp_path / "g16.aek"),
                 "--refine", "0", "--model", str(path)]) == 0
    assert (tmp_path / "g16.aek").read_bytes() == codec.compress(model, grey, 3, refine_steps=0)
    rgb = synthetic_photo(30, 41, seed=8)
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    capsys.readouterr()
    assert main(["compress", str(tmp_path / "rot.jpg"), str(tmp_path / "rot.aek"),
                 "--refine", "0", "--model", str(path), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["files"][0]
    assert (row["width"], row["height"], row["alpha_dropped"]) == (30, 41, False)
    assert codec.decompress(model, (tmp_path / "rot.aek").read_bytes()).shape == (41, 30, 3)
    assert main(["compress", str(tmp_path / "rgba.png"), str(tmp_path / "rgba.aek"),
                 "--refine", "0", "--model", str(path), "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["files"][0]["alpha_dropped"] is True
    assert out.err.strip().startswith("aekit: warning:") and "alpha" in out.err
    assert (tmp_path / "rgba.aek").read_bytes() == codec.compress(model, rgb, 3, refine_steps=0)


def test_cli_compress_decompress_files_and_folders(tiny, tmp_path, capsys):
    from PIL import Image

    _, path = tiny
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(synthetic_photo(30, 41, seed=5)).save(src / "a.png")
    Image.fromarray(synthetic_photo(19, 24, seed=6, grey=True)).save(src / "b.png")
    (src / "sub").mkdir()
    Image.fromarray(synthetic_photo(17, 16, seed=7)).save(src / "sub" / "c.png")
    assert main(["compress", str(src / "a.png"), str(tmp_path / "a.aek"), "--quality", "2",
                 "--model", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["files"][0]
    size = (tmp_path / "a.aek").stat().st_size
    assert info["bytes"] == size and info["bpp"] == pytest.approx(8 * size / (30 * 41))
    assert info["format"] == (tmp_path / "a.aek").read_bytes()[4] in codec.VERSIONS
    assert main(["decompress", str(tmp_path / "a.aek"), str(tmp_path / "a.png"),
                 "--model", str(path)]) == 0
    assert np.asarray(Image.open(tmp_path / "a.png")).shape == (30, 41, 3)
    assert main(["compress", str(src), str(tmp_path / "aek"), "--bpp", "1.0",
                 "--model", str(path), "--no-progress"]) == 0
    assert main(["decompress", str(tmp_path / "aek"), str(tmp_path / "png"),
                 "--model", str(path), "--no-progress"]) == 0
    assert np.asarray(Image.open(tmp_path / "png" / "b.png")).shape == (19, 24)
    # subfolders are kept, as the restoration commands keep them
    assert np.asarray(Image.open(tmp_path / "png" / "sub" / "c.png")).shape == (17, 16, 3)
    # a folder IN with an OUT named like a file: an error, not a folder called "x.aek"
    assert main(["compress", str(src), str(tmp_path / "x.aek"), "--model", str(path)]) == 2
    assert main(["decompress", str(tmp_path / "aek"), str(tmp_path / "x.png"),
                 "--model", str(path)]) == 2
    assert not (tmp_path / "x.aek").exists() and not (tmp_path / "x.png").exists()
    assert main(["compress", str(src / "a.png"), str(tmp_path / "c.aek"), "--quality", "9",
                 "--model", str(path)]) == 2
    with pytest.raises(SystemExit) as exit_:
        main(["compress", str(src / "a.png"), str(tmp_path / "c.aek"), "--refine", "-3",
              "--model", str(path)])
    assert exit_.value.code == 2
    assert "--refine" in capsys.readouterr().err
    assert main(["compress", str(src / "a.png"), str(tmp_path / "r.aek"), "--refine", "5",
                 "--model", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["files"][0]["refine_steps"] == 5
    # no --refine: the codec's default, the same file as the library's compress() makes
    assert main(["compress", str(src / "a.png"), str(tmp_path / "d.aek"), "--quality", "2",
                 "--model", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["files"][0]["refine_steps"] == \
        codec.DEFAULT_REFINE_STEPS > 0
    img = np.asarray(Image.open(src / "a.png").convert("RGB"))
    assert (tmp_path / "d.aek").read_bytes() == codec.compress(tiny[0], img, 1)
    assert codec.decompress(tiny[0], (tmp_path / "r.aek").read_bytes()).shape == (30, 41, 3)



def test_cli_refuses_outputs_that_would_lose_a_file(tiny, tmp_path, capsys):
    from PIL import Image

    _, path = tiny
    m = ["--model", str(path), "--refine", "0"]
    photo = tmp_path / "p.png"
    Image.fromarray(synthetic_photo(20, 24, seed=8)).save(photo)
    before = photo.read_bytes()
    assert main(["compress", str(photo), str(photo), *m]) == 2  # .aek bytes over the photo
    assert main(["compress", str(photo), str(tmp_path / "p.aek"), "--bpp", "inf", *m]) == 2
    pair = tmp_path / "pair"
    pair.mkdir()
    Image.fromarray(synthetic_photo(20, 24, seed=9)).save(pair / "a.png")
    Image.fromarray(synthetic_photo(20, 24, seed=10)).save(pair / "a.jpg")
    assert main(["compress", str(pair), str(tmp_path / "out"), *m]) == 2  # both → a.aek
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "must end in .aek" in err[0] and "positive" in err[1]
    assert "would both be written" in err[2] and not (tmp_path / "out").exists()
    assert photo.read_bytes() == before
    # a folder OUT (existing, or named with a trailing /) gets IN's name with the new suffix
    (tmp_path / "dir").mkdir()
    assert main(["compress", str(photo), str(tmp_path / "dir"), *m]) == 0
    assert main(["decompress", str(tmp_path / "dir" / "p.aek"), str(tmp_path / "new") + "/",
                 "--model", str(path)]) == 0
    assert (tmp_path / "new" / "p.png").is_file()
    assert main(["decompress", str(tmp_path / "dir" / "p.aek"), str(tmp_path / "p.jpg"),
                 "--model", str(path)]) == 2
    # a folder run goes on past a bad file and says how many failed
    (pair / "a.jpg").unlink()
    (pair / "zz.png").write_bytes(b"not an image")
    capsys.readouterr()
    assert main(["compress", str(pair), str(tmp_path / "out"), *m]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "zz.png" in err[0] and "1 of 2 files failed" in err[1]
    assert (tmp_path / "out" / "a.aek").is_file()

def test_decompress_beside_the_inputs_never_replaces_a_photo(tiny, tmp_path, capsys):
    from PIL import Image

    _, path = tiny
    m = ["--model", str(path)]
    f = tmp_path / "f"
    (f / "sub").mkdir(parents=True)
    Image.fromarray(synthetic_photo(20, 24, seed=8)).save(f / "a.png")
    Image.fromarray(synthetic_photo(20, 24, seed=9)).save(f / "sub" / "b.png")
    before = {p: p.read_bytes() for p in f.rglob("*.png")}
    assert main(["compress", str(f), str(f), *m, "--refine", "0"]) == 0  # .aek beside each
    assert (f / "a.aek").is_file() and (f / "sub" / "b.aek").is_file()
    capsys.readouterr()
    assert main(["decompress", str(f), str(f), *m]) == 2  # a.aek → over the photo a.png
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already in the folder IN" in err[0], err
    assert {p: p.read_bytes() for p in f.rglob("*.png")} == before
    # the upper-case suffix compress accepts is found in a folder too
    (f / "a.aek").rename(f / "A2.AEK")
    assert main(["decompress", str(f), str(tmp_path / "o"), *m, "--json"]) == 0
    names = sorted(Path(r["out"]).name for r in json.loads(capsys.readouterr().out)["files"])
    assert names == ["A2.png", "b.png"]


def test_bpp_out_of_reach_is_said(tiny, tmp_path, capsys):
    from PIL import Image

    _, path = tiny
    Image.fromarray(synthetic_photo(32, 40, seed=8)).save(tmp_path / "p.png")
    for bpp, words in (("0.0001", "lowest"), ("60", "highest")):
        assert main(["compress", str(tmp_path / "p.png"), str(tmp_path / "p.aek"), "--bpp", bpp,
                     "--model", str(path), "--refine", "0"]) == 0
        err = capsys.readouterr().err
        assert "out of the codec's reach" in err and words in err, err


def test_psnr_of_an_exact_copy_is_capped():
    img = np.full((8, 8, 3), 128, np.uint8)
    assert psnr255(img, img) == PSNR_CAP  # an infinite term would make a curve's mean infinite
    assert psnr255(img, img + 1) == pytest.approx(48.13, abs=0.01)


def test_codec_eval_refuses_a_bad_file_or_out_before_evaluating(tmp_path, capsys, monkeypatch):
    from PIL import Image

    import aekit.rd

    def never(*a, **k):
        raise AssertionError("evaluated before the inputs were checked")

    monkeypatch.setattr(aekit.rd, "evaluate_folder", never)
    src = tmp_path / "imgs"
    src.mkdir()
    Image.fromarray(synthetic_photo(32, 40, seed=1)).save(src / "a.png")
    (tmp_path / "file").write_text("x")
    assert main(["codec-eval", str(src), "--out", str(tmp_path / "file" / "sub")]) == 2
    (src / "z.png").write_bytes(b"not an image")
    assert main(["codec-eval", str(src)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "is a file" in err[0] and "z.png" in err[1], err


def test_codec_eval_cli(tmp_path, capsys):
    from PIL import Image

    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(2):
        Image.fromarray(synthetic_photo(64, 80, seed=10 + i)).save(src / f"{i}.png")
    out = tmp_path / "report"
    assert main(["codec-eval", str(src), "--out", str(out), "--json", "--no-progress"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["curves"]) == {"aekit", "JPEG", "WebP"}
    assert set(res["bd_rate"]) == {"JPEG", "WebP"}
    assert res["refine_steps"] == codec.DEFAULT_REFINE_STEPS  # the default encoder's table
    assert (out / "rd.png").stat().st_size > 1000 and (out / "rd.json").is_file()
    # without --no-progress, piped output gets no progress bar (it did)
    assert main(["codec-eval", str(src), "--json", "--limit", "1", "--refine", "0",
                 "--no-msssim"]) == 0
    assert capsys.readouterr().err == ""

    def strict(token):
        raise ValueError(f"{token} is not JSON")

    # rd.json is strict JSON: null (not NaN) where JPEG/WebP have no point at a rate
    saved = json.loads((out / "rd.json").read_text(), parse_constant=strict)
    assert any(v is None for row in saved["psnr_at"].values() for v in row.values())


# ------------------------------------------------------------------------------- metrics
def test_bd_rate_and_ms_ssim():
    curve = [(0.2, 28.0), (0.4, 31.0), (0.8, 34.0), (1.6, 37.0)]
    assert bd_rate(curve, curve) == pytest.approx(0.0, abs=1e-9)
    half = [(r / 2, p) for r, p in curve]
    assert bd_rate(curve, half) == pytest.approx(-50.0, abs=1e-6)
    assert math.isnan(bd_rate(curve, [(1, 50), (2, 51), (3, 52), (4, 53)]))
    img = synthetic_photo(200, 200, seed=4)
    assert ms_ssim(img, img) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noisy = [np.clip(img + rng.normal(0, s, img.shape), 0, 255).astype(np.uint8) for s in (3, 15)]
    a, b = ms_ssim(noisy[0], img), ms_ssim(noisy[1], img)
    assert 1.0 > a > b > 0.3
    assert 0 < ms_ssim(img[:20, :20], noisy[1][:20, :20]) < 1  # small images: fewer scales


def test_codec_recipe_fine_tunes_from_a_saved_codec(tmp_path):
    """``init=`` starts from the saved weights as they are (no fresh gain scaling) and keeps
    the source's training record; with no budget the weights come back unchanged."""
    from aekit.codec_train import codec_recipe

    torch.manual_seed(0)
    source = create_model("codec", (3, 64, 64), 8, arch_options={"channels": 8}).eval()
    with torch.no_grad():
        source.code.log_gain.add_(0.5)
    source.code.export_tables()
    source.save_pretrained(tmp_path / "src", summary={"steps": 5, "device": "cuda"})
    summary = codec_recipe(tmp_path / "ft", minutes=0.0, channels=8, latent=8,
                           init=str(tmp_path / "src"), log=None)
    tuned = Autoencoder.from_pretrained(tmp_path / "ft")
    for (name, a), b in zip(source.state_dict().items(), tuned.state_dict().values()):
        assert torch.equal(a, b), name
    meta = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert meta["training"]["init"] == str(tmp_path / "src")
    assert meta["training"]["init_weights_sha256"] == json.loads(
        (tmp_path / "src" / "config.json").read_text())["weights_sha256"]
    assert summary["earlier_runs"] == [{"steps": 5, "device": "cuda"}]
    assert summary["init_fresh"] == [] and summary["init_widened"] == []
    # a fine-tune of the fine-tune keeps the whole lineage, oldest first
    again = codec_recipe(tmp_path / "ft2", minutes=0.0, channels=8, latent=8,
                         init=str(tmp_path / "ft"), log=None)
    assert [r.get("init") for r in again["earlier_runs"]] == [None, str(tmp_path / "src")]
    # a codec of another size cannot be warm-started (its gains would be half fresh)
    with pytest.raises(AekitError, match="not a codec of this size"):
        codec_recipe(tmp_path / "ft3", minutes=0.0, channels=8, latent=16,
                     init=str(tmp_path / "src"), log=None)


def test_refine_help_states_the_codecs_default(capsys):
    """The CLI's --refine default is the codec's, and its help says which."""
    with pytest.raises(SystemExit):
        main(["compress", "--help"])
    assert f"(default {codec.DEFAULT_REFINE_STEPS})" in " ".join(capsys.readouterr().out.split())


def test_a_fine_tune_can_change_the_ladder_and_keeps_every_shared_quality(tmp_path):
    """``lambdas`` with ``init``: qualities the source has come over by λ (not by position),
    new ones start from gains extrapolated in log λ and the nearest density rescaled to them
    exactly (c'(x) = c(x / r)), and the model's λ buffer is the new ladder."""
    from aekit.codec_train import codec_model, codec_recipe

    torch.manual_seed(0)
    source = codec_model(8, 8).eval()
    with torch.no_grad():
        source.code.log_gain.add_(torch.randn_like(source.code.log_gain) * 0.1)
    source.code.export_tables()
    source.save_pretrained(tmp_path / "src")
    ladder = [0.0009, 0.0035, 0.0130, 0.0483, 0.0932]
    summary = codec_recipe(tmp_path / "ft", minutes=0.0, channels=8, latent=8, lambdas=ladder,
                           init=str(tmp_path / "src"), log=None)
    assert summary["ladder"] == {"copied": [1, 2, 3], "new": [0, 4]}
    tuned = Autoencoder.from_pretrained(tmp_path / "ft")
    new, old = tuned.code, source.code
    assert torch.allclose(new.lambdas, torch.tensor([v * 255**2 / 3 for v in ladder]))
    for q_new, q_old in ((1, 1), (2, 3), (3, 5)):  # 0.0035, 0.0130, 0.0483 of bmshj2018's six
        assert torch.equal(new.log_gain[q_new], old.log_gain[q_old])
        assert torch.equal(new.density.biases[0][new._channels(q_new)],
                           old.density.biases[0][old._channels(q_old)])
    # the top quality: one octave of λ above the source's top, on the line through its last two
    lam = torch.log(torch.tensor([0.0250, 0.0483, 0.0932], dtype=torch.float64))
    t = float((lam[2] - lam[0]) / (lam[1] - lam[0]))
    expect = old.log_gain[4] + t * (old.log_gain[5] - old.log_gain[4])
    assert torch.allclose(new.log_gain[4], expect, atol=1e-6)
    r = (new.log_gain[4] - old.log_gain[5]).exp().double().view(-1, 1, 1)
    x = torch.linspace(-6, 6, 25, dtype=torch.float64).view(1, 1, -1).expand(8, 1, -1)
    with torch.no_grad():
        a = new.density._logits_double(x * r, new._channels(4))
        b = old.density._logits_double(x, old._channels(5))
    assert torch.allclose(a, b, atol=1e-6)
    # the default rate point follows λ, not the position in the ladder
    assert codec.default_quality(tuned) == 2 and codec.default_quality(source) == 3
    # a fine-tune of that model without a ladder keeps its ladder, weights unchanged
    again = codec_recipe(tmp_path / "ft2", minutes=0.0, channels=8, latent=8,
                         init=str(tmp_path / "ft"), log=None)
    assert "ladder" not in again
    kept = Autoencoder.from_pretrained(tmp_path / "ft2")
    assert torch.equal(kept.code.lambdas, tuned.code.lambdas)
    assert torch.equal(kept.code.log_gain, tuned.code.log_gain)


def test_python_quality_is_a_checked_zero_based_index(tiny):
    from aekit.errors import ParameterError

    model, _ = tiny
    img = synthetic_photo(24, 24, seed=3)
    n = codec.n_qualities(model)
    for bad in (n, -1, 2.0, True):
        with pytest.raises(ParameterError, match=f"0-based index, an integer 0–{n - 1}"):
            codec.compress(model, img, bad, refine_steps=0)
    assert codec.decompress(model, codec.compress(model, img, n - 1, refine_steps=0)).shape == img.shape


def test_the_jpeg_and_webp_baselines_run_at_their_best_settings():
    # optimised Huffman tables are lossless: the same pixels in fewer bytes than Pillow's
    # default (the unoptimised default made aekit's BD-rate against JPEG read 9 points better)
    from aekit.rd import pillow_codec

    rng = np.random.default_rng(0)
    img = (np.clip(rng.normal(128, 40, (64, 96, 3)).cumsum(1) / 8, 0, 255)).astype(np.uint8)
    best, plain = pillow_codec("JPEG")(img, 30), pillow_codec("JPEG", optimize=False)(img, 30)
    assert len(best[0]) < len(plain[0]) and np.array_equal(best[1], plain[1])
    slow, default = pillow_codec("WEBP")(img, 50), pillow_codec("WEBP", method=4)(img, 50)
    assert slow[0] != default[0]  # method 6, not Pillow's default 4


def test_the_model_id_follows_weights_changed_in_place(tmp_path):
    torch.manual_seed(0)
    model = create_model("codec", (3, 32, 32), 8, arch_options={"channels": 8}).eval()
    model.code.export_tables()
    img = synthetic_photo(32, 32, seed=1)
    first = codec.compress(model, img, 0, refine_steps=0)
    assert codec.model_id(model) == codec.model_id(model)  # cached while nothing changes
    with torch.no_grad():
        next(model.decoder.parameters()).add_(0.01)  # a fine-tune step, in place
    second = codec.compress(model, img, 0, refine_steps=0)
    assert codec.parse(second)[0].model_id != codec.parse(first)[0].model_id
    with pytest.raises(CodecFormatError, match="model"):  # the new weights refuse the old file
        codec.decompress(model, first)
    # and weights loaded over the model (a fine-tune's result, another checkpoint)
    before = codec.model_id(model)
    other = create_model("codec", (3, 32, 32), 8, arch_options={"channels": 8}, seed=5).eval()
    other.code.export_tables()
    model.load_state_dict(other.state_dict())
    assert codec.model_id(model) != before and codec.model_id(model) == codec.model_id(other)


def test_ms_ssim_is_nan_where_no_structure_can_be_seen():
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 3), (2, 2), (1, 600, 3)]:
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        assert math.isnan(ms_ssim(x, 255 - x))  # a 1×1 window compared brightness only
    x = rng.integers(0, 256, (5, 5), dtype=np.uint8)
    assert ms_ssim(x, 255 - x) < 0.1


def test_the_writer_refuses_latents_its_reader_would_refuse(tiny):
    model = tiny[0]
    y = np.zeros((model.config.latent_dim, 2, 2), np.int64)
    y[0, 0, 0] = codec.ESCAPE_MAX + 1
    with pytest.raises(AekitError, match="beyond the format"):
        codec.encode_symbols(model.code, 0, y, version=1)
    y[0, 0, 0] = codec.ESCAPE_MAX  # the largest the reader takes: a round trip
    payload = codec.encode_symbols(model.code, 0, y, version=1)
    assert np.array_equal(codec.decode_symbols(model.code, 0, payload, 2, 2, version=1), y)


def test_a_table_too_narrow_for_its_channel_keeps_the_window_with_most_mass():
    # a skewed density whose tails are further apart than a table holds: the regular values
    # are the 127 that carry the most probability (the window centred between the tail
    # points kept far less, and the rest went through the escape)
    from aekit.codes_quantized import _table

    grid = torch.arange(-300, 301)
    x = grid.numpy().astype(np.float64)
    cdf = lambda v: 1 - np.exp(-np.clip(v + 60, 0, None) / 40)  # noqa: E731 — exponential from −60
    upper, lower = cdf(x + 0.5), cdf(x - 0.5)
    counts, offset = _table(upper, lower, grid, 128)
    assert len(counts) == 128 and counts.sum() == 1 << 16 and counts.min() >= 1
    kept = cdf(offset + 126 + 0.5) - cdf(offset - 0.5)
    best = max(cdf(s + 126 + 0.5) - cdf(s - 0.5) for s in range(-300, 175))
    assert kept == pytest.approx(best)


def test_python_inputs_are_taken_or_refused_in_one_line(tiny):
    """A PIL image and a bytes-like file are taken; a wrong image names what it got; refine
    steps and a target bpp are checked (−1 steps meant 0, a NaN bpp picked quality 0)."""
    from PIL import Image

    from aekit.errors import ParameterError

    model, _ = tiny
    img = synthetic_photo(20, 28, seed=4)
    data = codec.compress(model, img, 0, refine_steps=0)
    assert codec.compress(model, Image.fromarray(img), 0, refine_steps=0) == data
    for blob in (bytearray(data), memoryview(data), np.frombuffer(data, np.uint8)):
        assert np.array_equal(codec.decompress(model, blob), codec.decompress(model, data))
    with pytest.raises(ParameterError, match="bytes; got a int64 array"):
        codec.decompress(model, np.frombuffer(data, np.uint8).astype(np.int64))
    rgba = np.dstack([img, img[..., :1]])
    for bad, why in ((rgba, "drop the alpha"), (img.astype(np.float32), "got float32"),
                     (Image.fromarray(rgba), "mode 'RGBA'"), (img.tolist(), "got list")):
        with pytest.raises(ParameterError, match=why):
            codec.compress(model, bad, 0, refine_steps=0)
    for steps in (-1, 1.5, None):
        with pytest.raises(ParameterError, match="refine_steps"):
            codec.compress(model, img, 0, refine_steps=steps)
    for bpp in (-1, float("nan"), "0.5", 0):
        with pytest.raises(ParameterError, match="bpp is a positive number"):
            codec.compress_to_bpp(model, img, bpp, refine_steps=0)
