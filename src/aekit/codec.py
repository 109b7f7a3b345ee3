"""The ``.aek`` file format and the entropy coding of a ``codec`` model's latents.

    image ─analysis─▶ h ─× gain[q], round─▶ integer symbols ─rANS (constriction)─▶ .aek
    .aek ─parse + CRC─▶ symbols ─× inv_gain[q]─▶ synthesis ─sigmoid, crop─▶ image

Coding: each latent channel c at quality q has an integer frequency table (``cdf_counts``,
summing to 2¹⁶, computed once by ``QuantizedCode.export_tables`` and stored in the model
file) over the values ``offset … offset+n−1`` plus an escape symbol. Format 2 adds a
per-image choice among stretched versions of that table (or "all zeros"), 4 bits a channel
at the head of the payload (see ``aekit.codes_quantized``). Format 3 adds context: a channel
flagged in the file splits its positions into ``CONTEXT_BINS`` groups by how active the
channels decoded before it are at each position (an integer sum, so the decoder forms the
same groups), and codes each group with its chosen table shifted by a per-image shift of
that group — busy regions get wider tables, flat ones narrower (the job a hyperprior does,
here with integer tables and nothing but integers deciding which). Symbols are coded with
``constriction``'s ANS coder (``constriction.stream.stack.AnsCoder`` with a
``Categorical(perfect=False)`` model built from those integers, so the coder's fixed-point
model is a pure function of integers: bit-exact on every machine). Escaped values go, as
zig-zag varints, into a second stream. The encoder writes whichever format is shortest.

File layout (big-endian integers; see the README):

    offset size field
    0      4    magic b"\\x89AEK"
    4      1    format version (1 own tables, 2 per-image tables, 3 + context)
    5      1    channels: 1 grey, 3 RGB
    6      1    quality index (0-based; the CLI shows it 1-based)
    7      1    reserved, 0
    8      8    model id: first 8 bytes of SHA-256 over the model's tensors
    16     4    width   20 4 height
    24     4    payload length   28 4 payload CRC32   32 4 header CRC32 (bytes 0–31)
    36     …    payload: [formats 2, 3: M table choices, two 4-bit choices a byte, high
                first] [format 3: M context flags, 8 a byte, high first; CONTEXT_BINS
                group shifts + 8, 4 bits each] u32 length of the ANS stream, ANS words
                (u32 LE), escape varints
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from aekit.codes_quantized import ADAPT_CHOICES, PRECISION, QuantizedCode, code_lambda
from aekit.errors import AekitError, ParameterError, is_integer
from aekit.models import Autoencoder
from aekit.nn.codec import STRIDE
from aekit.training import bf16_autocast_pays

MAGIC = b"\x89AEK"
#: the format written by a model with per-image tables; one without them writes version 1
VERSION = 3
VERSIONS = (1, 2, 3)
#: format 3 (context-adaptive tables): a channel flagged for context splits its positions into
#: CONTEXT_BINS groups by the activity there of the channels decoded before it; each group
#: is coded with the channel's chosen table shifted by that group's per-image shift
CONTEXT_BINS = 8
#: a decoded channel adds |ŷ| · (CONTEXT_WEIGHT // (Σ|ŷ| + 1)) to the activity: integers, so
#: encoder and decoder form the same groups on every machine (and it stays < M·2²⁰: no overflow)
CONTEXT_WEIGHT = 1 << 20
#: the largest escaped latent magnitude a decoder accepts
ESCAPE_MAX = 1 << 24
HEADER = struct.Struct(">4sBBBB8sIIII")  # everything before the header CRC
HEADER_SIZE = HEADER.size + 4  # 36
#: the rate point ``aekit compress`` picks by default, in CompressAI's λ units (its quality 4)
DEFAULT_LAMBDA = 0.013
#: refuse (crafted) headers that would make the decoder allocate absurd amounts
MAX_SIDE = 1 << 15
MAX_PIXELS = 1 << 28


class CodecFormatError(AekitError):
    """An ``.aek`` file that cannot be decoded: not one, truncated, corrupt, or foreign."""


@dataclass(frozen=True)
class AekHeader:
    version: int
    channels: int
    quality: int
    model_id: bytes
    width: int
    height: int
    payload_length: int
    payload_crc: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


# ------------------------------------------------------------------------------ the model side
def check_codec_model(model: Autoencoder) -> QuantizedCode:
    code = getattr(model, "code", None)
    if not isinstance(code, QuantizedCode) or not hasattr(model.decoder, "body"):
        raise AekitError(f"model preset {model.config.preset!r} is not a codec (needs the "
                         "`codec` preset: codec arch + quantized code)")
    if int(code.tables_ready) != 1:
        raise AekitError("this codec model has no integer coding tables yet: run "
                         "model.code.export_tables() once and save it (the zoo recipe does)")
    return code


def model_id(model: Autoencoder) -> bytes:
    """8 bytes identifying the exact weights and tables. Cached on the model against every
    tensor's storage and in-place version counter, so a fine-tune, ``load_state_dict`` or
    ``export_tables`` after the first file gives the new weights a new id (a stale id let
    the old model decode the new model's files without a word)."""
    state = sorted(model.state_dict().items())
    key = tuple((k, t.data_ptr(), t._version, tuple(t.shape)) for k, t in state)
    cached = getattr(model, "_aek_model_id", None)
    if cached is not None and getattr(model, "_aek_model_key", None) == key:
        return cached
    h = hashlib.sha256()
    for name, t in state:
        if t.numel() == 0:  # absent per-image tables: a model saved before them keeps its id
            continue
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    model._aek_model_id, model._aek_model_key = h.digest()[:8], key
    return model._aek_model_id


def n_qualities(model: Autoencoder) -> int:
    return check_codec_model(model).n_qualities


def default_quality(model: Autoencoder) -> int:
    """The 0-based quality ``aekit compress`` uses without ``--quality`` or ``--bpp``: the one
    whose λ is nearest CompressAI's quality 4 (λ = 0.013, ~0.5 bpp on photos), so the default
    stays the same rate point whatever ladder a model was trained with."""
    lams = check_codec_model(model).lambdas.double()
    return int((lams.log() - math.log(code_lambda(DEFAULT_LAMBDA))).abs().argmin())


def image_to_tensor(img: np.ndarray, channels: int) -> Tensor:
    """uint8 (H, W) or (H, W, 3) → float (1, channels, H, W) in [0, 1]."""
    x = torch.from_numpy(np.array(img, dtype=np.float32)).div_(255.0)
    x = x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]
    if x.shape[1] != channels:
        x = x.expand(-1, channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
    return x


@torch.no_grad()
def analyse(model: Autoencoder, img: np.ndarray) -> Tensor:
    """The analysis transform's output h (1, M, ⌈H/16⌉, ⌈W/16⌉) before gain and rounding; an
    image larger than :data:`SYNTH_TILE` latent positions a side is analysed in overlapping
    tiles, so memory stays bounded (a 3000×2000 photo peaked at 1.9 GB whole)."""
    check_codec_model(model)
    x = image_to_tensor(img, model.input_shape[0])
    dev = next(model.parameters()).device
    lh, lw = latent_size(*img.shape[:2])
    if lh <= SYNTH_TILE and lw <= SYNTH_TILE:
        return model.encoder(_layout(x.to(dev))).float().cpu()
    # the encoder's own padding (replicate, to a multiple of 16) on the whole image first, so
    # every tile starts on the latent grid and the border tiles see the same pixels
    x = F.pad(x, (0, lw * STRIDE - x.shape[-1], 0, lh * STRIDE - x.shape[-2]), mode="replicate")
    out = None
    for core, ctx in latent_tiles(lh, lw, SYNTH_MARGIN):
        h = model.encoder(_layout(x[..., _px(ctx[0]), _px(ctx[1])].to(dev))).float().cpu()
        if out is None:
            out = torch.empty(1, h.shape[1], lh, lw)
        out[..., core[0], core[1]] = h[..., _within(core[0], ctx[0]), _within(core[1], ctx[1])]
    return out


def _layout(x: Tensor) -> Tensor:
    """``x`` in the memory layout the device's convolutions are fastest in: channels-last on a
    CPU (oneDNN's own layout: the analysis transform of a 768×512 photo takes 0.05 s instead of
    0.10 s on this project's 2-core machine), unchanged elsewhere."""
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


def pixels(model: Autoencoder, z: Tensor, height: int, width: int) -> Tensor:
    """The synthesis transform: latent z (B, M, h, w) → image (B, C, height, width) in [0, 1],
    float32, with gradients (training, refinement); :func:`synthesise` is the decoder's."""
    return torch.sigmoid(model.decoder.body(z).float())[..., :height, :width]


@torch.no_grad()
def synthesise(model: Autoencoder, z: Tensor, height: int, width: int) -> Tensor:
    """Latent z (1, M, h, w) → image (1, C, height, width) in [0, 1], on the CPU."""
    dev = next(model.parameters()).device
    return pixels(model, _layout(z.to(dev)), height, width).cpu()


#: the decoder runs the synthesis on tiles of this many latent positions a side (1024 pixels)
#: when the image is larger, so its memory stays bounded whatever size a file's header claims
#: (a 100-byte file may say 32768×8192: whole, that synthesis needed ~90 GB)
SYNTH_TILE = 64
#: latent positions of context around each tile: an output pixel of the four 5×5 stride-2
#: transposed convolutions depends on latents within ±2 of its own, so the tiles are exact
SYNTH_MARGIN = 4


def latent_tiles(lh: int, lw: int, margin: int, tile: int | None = None):
    """Split an (lh, lw) latent grid into square tiles of ``tile`` positions a side (default
    :data:`SYNTH_TILE`): yields ``(core, context)``, each a pair of row and column slices, the
    context being the core widened by ``margin`` positions where the grid allows."""
    tile = tile or SYNTH_TILE
    for y0 in range(0, lh, tile):
        for x0 in range(0, lw, tile):
            core = (slice(y0, min(y0 + tile, lh)), slice(x0, min(x0 + tile, lw)))
            yield core, widen(core, margin, (lh, lw))


def widen(area: tuple[slice, slice], margin: int, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Row and column slices widened by ``margin`` positions, cut at the grid ``shape``."""
    return tuple(slice(max(0, s.start - margin), min(n, s.stop + margin))
                 for s, n in zip(area, shape))


def _px(s: slice, limit: int | None = None) -> slice:
    """Latent positions → the pixel rows (or columns) they cover, cut at ``limit``."""
    stop = s.stop * STRIDE if limit is None else min(limit, s.stop * STRIDE)
    return slice(s.start * STRIDE, stop)


def _within(inner: slice, outer: slice, scale: int = 1) -> slice:
    """``inner`` as a slice of the array that ``outer`` cut out (both in the same units,
    times ``scale``)."""
    return slice((inner.start - outer.start) * scale, (inner.stop - outer.start) * scale)


@torch.no_grad()
def synthesise_uint8(model: Autoencoder, z: Tensor, height: int, width: int,
                     channels: int) -> np.ndarray:
    """Latent z (1, M, h, w) → uint8 image (H, W) or (H, W, 3), synthesised in overlapping
    tiles (:data:`SYNTH_TILE`); the same pixels as whole-image synthesis."""
    lh, lw = z.shape[-2:]
    if lh <= SYNTH_TILE and lw <= SYNTH_TILE:
        return to_uint8(synthesise(model, z, height, width), channels)
    out = np.empty((height, width) if channels == 1 else (height, width, 3), np.uint8)
    for core, ctx in latent_tiles(lh, lw, SYNTH_MARGIN):
        tile = synthesise(model, z[..., ctx[0], ctx[1]], (ctx[0].stop - ctx[0].start) * STRIDE,
                          (ctx[1].stop - ctx[1].start) * STRIDE)
        rows, cols = _px(core[0], height), _px(core[1], width)
        out[rows, cols] = to_uint8(tile[..., _within(rows, _px(ctx[0])),
                                        _within(cols, _px(ctx[1]))], channels)
    return out


def to_uint8(x: Tensor, channels: int) -> np.ndarray:
    """(1, C, H, W) in [0, 1] → uint8 (H, W) for channels = 1 or (H, W, 3)."""
    x = x[0]
    if channels == 1:
        x = x.mean(0, keepdim=True)
    arr = (x * 255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
    return arr[0] if channels == 1 else np.ascontiguousarray(arr.transpose(1, 2, 0))


# --------------------------------------------------------------------------- entropy coding
def _categorical(counts: np.ndarray):
    import constriction

    probs = counts.astype(np.float64) / float(1 << PRECISION)
    return constriction.stream.model.Categorical(probs, perfect=False)


def _varints(values: np.ndarray) -> bytes:
    out = bytearray()
    for v in values.tolist():
        u = (v << 1) ^ (v >> 63)  # zig-zag
        u &= (1 << 64) - 1
        while True:
            b = u & 0x7F
            u >>= 7
            if u:
                out.append(b | 0x80)
            else:
                out.append(b)
                break
    return bytes(out)


def _read_varints(data: bytes) -> np.ndarray:
    """Every zig-zag varint of an escape stream, in order (values beyond ±ESCAPE_MAX, which
    no latent reaches, mean a corrupt file)."""
    vals = []
    pos = 0
    while pos < len(data):
        u, shift = 0, 0
        while True:
            if pos >= len(data) or shift > 63:
                raise CodecFormatError("the escape stream is truncated or corrupt")
            b = data[pos]
            pos += 1
            u |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        v = (u >> 1) ^ -(u & 1)
        if abs(v) > ESCAPE_MAX:
            raise CodecFormatError("the escape stream is corrupt (a value out of range)")
        vals.append(v)
    return np.asarray(vals, dtype=np.int64)


def _varint_bytes(values: np.ndarray) -> np.ndarray:
    """Bytes each value takes as a zig-zag varint (vectorised :func:`_varints`)."""
    u = np.where(values >= 0, 2 * values, -2 * values - 1).astype(np.float64)
    return np.maximum(1, np.ceil(np.log2(u + 1) / 7.0))


def _symbols(vals: np.ndarray, offset, n) -> tuple[np.ndarray, np.ndarray]:
    """Latent values → table indices (``n``, the table's last index, for a value outside
    ``offset … offset+n−1``: the escape) and which were escaped; offset/n broadcast."""
    idx = vals - offset
    escaped = (idx < 0) | (idx >= n)
    return np.where(escaped, n, idx), escaped


def _element_bits(code: QuantizedCode, q: int, flat: np.ndarray) -> np.ndarray:
    """(ADAPT_CHOICES, M, N): the bits of each integer latent of ``flat`` (M, N) under each
    stretched table of its channel, by the tables' own integers (escapes at their varint
    size); choice 0 ("all zeros") is inf here."""
    m = flat.shape[0]
    allc = code.adapt_counts.numpy().astype(np.float64)
    start, offset, length = (t[q].numpy().astype(np.int64) for t in (
        code.adapt_start, code.adapt_offset, code.adapt_length))
    escape_bits = 8.0 * _varint_bytes(flat)
    bits = np.full((ADAPT_CHOICES, *flat.shape), np.inf)
    rows = np.arange(m)[:, None]
    for j in range(1, ADAPT_CHOICES):
        n = length[:, j] - 1  # regular symbols; index n is the escape
        at = start[:, j, None] + np.arange(int(length[:, j].max()))
        inside = at < (start[:, j] + length[:, j])[:, None]
        cost = np.where(inside, -np.log2(np.maximum(allc[np.minimum(at, len(allc) - 1)], 1)
                                         / float(1 << PRECISION)), np.inf)  # (M, L) bits
        idx, escaped = _symbols(flat, offset[:, j, None], n[:, None])
        bits[j] = cost[rows, idx] + np.where(escaped, escape_bits, 0.0)
    return bits


def choose_tables(code: QuantizedCode, q: int, flat: np.ndarray,
                  bits: np.ndarray | None = None) -> np.ndarray:
    """Format 2: per channel of the integer latents ``flat`` (M, N), the table choice that
    codes it in the fewest bits: (M,) in ``0 … ADAPT_CHOICES−1``, 0 for an all-zero channel.
    ``bits``: :func:`_element_bits` of ``flat`` if already computed."""
    bits = (_element_bits(code, q, flat) if bits is None else bits).sum(2)
    bits[0] = np.where((flat == 0).all(1), 0.0, np.inf)
    return bits.argmin(0)


def _activity_steps(flat: np.ndarray) -> np.ndarray:
    """What each channel of ``flat`` (M, N) adds to the context activity: |ŷ| scaled by an
    integer weight that gives every channel the same total, so each counts equally."""
    a = np.abs(flat)
    return (CONTEXT_WEIGHT // (a.sum(-1, keepdims=True) + 1)) * a


def _activity(flat: np.ndarray) -> np.ndarray:
    """(M, N): at each position, the activity of the channels before each channel (what a
    decoder has summed when it reaches that channel)."""
    steps = _activity_steps(flat)
    return np.cumsum(steps, 0) - steps


def _shifted(choice, shift) -> np.ndarray:
    """A context group's table: the channel's choice moved by the group's shift, kept to the
    stretched tables (1 … ADAPT_CHOICES−1)."""
    return np.clip(choice + shift, 1, ADAPT_CHOICES - 1)


def _context_bins(act: np.ndarray) -> np.ndarray:
    """Group of each position (N,) by its activity: edges at the activity's own
    1/CONTEXT_BINS quantiles (ties go up), so a decoder that has the activity has the groups."""
    s = np.sort(act)
    edges = s[(np.arange(1, CONTEXT_BINS) * len(s)) // CONTEXT_BINS]
    return np.searchsorted(edges, act, side="right")


def plan_context(code: QuantizedCode, q: int, flat: np.ndarray, bits: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Format 3's choices for the integer latents ``flat`` (M, N): each channel's table (0 = all
    zeros), whether it uses the context, and the per-group table shifts (CONTEXT_BINS,) in
    −8 … 7, chosen (shifts by coordinate descent) to code the image in the fewest bits.
    ``bits``: :func:`_element_bits` of ``flat`` if already computed."""
    bits = (_element_bits(code, q, flat) if bits is None else bits)[1:]  # (J−1, M, N)
    m = flat.shape[0]
    key = (np.arange(m)[:, None] * CONTEXT_BINS
           + np.stack([_context_bins(a) for a in _activity(flat)])).ravel()
    per_bin = np.stack([np.bincount(key, weights=b.ravel(), minlength=m * CONTEXT_BINS)
                        for b in bits]).reshape(-1, m, CONTEXT_BINS).transpose(2, 0, 1)
    js = np.arange(1, ADAPT_CHOICES)
    whole = per_bin.sum(0)  # (J−1, M): without context
    zero = (flat == 0).all(1)

    def with_context(shift: np.ndarray) -> np.ndarray:  # (J−1, M)
        return sum(per_bin[k][_shifted(js, shift[k]) - 1] for k in range(CONTEXT_BINS))

    def total(shift: np.ndarray) -> float:
        return float(np.where(zero, 0.0, np.minimum(whole.min(0), with_context(shift).min(0))).sum())

    shift = np.zeros(CONTEXT_BINS, np.int64)
    best = total(shift)
    for _ in range(3):
        before = best
        for k in range(CONTEXT_BINS):
            for v in range(-8, 8):
                trial = shift.copy()
                trial[k] = v
                t = total(trial)
                if t < best:
                    best, shift = t, trial
        if best >= before:
            break
    ctx = with_context(shift)
    use = (ctx.min(0) < whole.min(0)) & ~zero
    base = np.where(use, js[ctx.argmin(0)], js[whole.argmin(0)])
    base[zero] = 0
    return base, use, shift


def _pack_choices(choices: np.ndarray) -> bytes:
    c = np.r_[choices, np.zeros(len(choices) % 2, np.int64)].astype(np.uint8)
    return bytes((c[0::2] << 4) | c[1::2])


def _unpack_choices(data: bytes, count: int) -> np.ndarray:
    packed = np.frombuffer(data, np.uint8)
    if count % 2 and packed[-1] & 15:
        raise CodecFormatError("the table choices are corrupt")
    return np.stack([packed >> 4, packed & 15], 1).reshape(-1)[:count].astype(np.int64)


def _side_info_size(m: int, version: int) -> int:
    """Bytes of per-image choices at the head of a payload of this format version."""
    if version == 1:
        return 0
    size = (m + 1) // 2  # a 4-bit table choice per channel
    if version >= 3:
        size += (m + 7) // 8 + CONTEXT_BINS // 2  # context flags, 4-bit group shifts
    return size


class _Plan:
    """Which table codes which positions of each channel, for one payload: format 1 (each
    channel's own table), 2 (a chosen table per channel) or 3 (chosen tables, and for the
    channels flagged so, one shifted table per context group)."""

    def __init__(self, code: QuantizedCode, q: int, version: int, base: np.ndarray | None = None,
                 use: np.ndarray | None = None, shift: np.ndarray | None = None) -> None:
        """``base``: each channel's table choice (formats 2, 3); ``use``, ``shift``: the
        context flags and group shifts (format 3)."""
        self.version, self.base, self.use, self.shift = version, base, use, shift
        if version == 1:
            counts, offsets, lengths = (t[q].numpy() for t in (
                code.cdf_counts, code.cdf_offset, code.cdf_length))
            self.own = [(counts[c, : lengths[c]], int(offsets[c])) for c in range(len(lengths))]
        else:
            self.allc = code.adapt_counts.numpy()
            self.start, self.offset, self.length = (t[q].numpy() for t in (
                code.adapt_start, code.adapt_offset, code.adapt_length))

    def table(self, c: int, j: int) -> tuple[np.ndarray, int]:
        s = int(self.start[c, j])
        return self.allc[s: s + int(self.length[c, j])], int(self.offset[c, j])

    def groups(self, c: int, act: np.ndarray | None) -> list[tuple[np.ndarray | None, tuple]]:
        """(positions, or None for all; (counts, first value)) of channel c, in coding order;
        ``act``: the activity of the channels before c (format 3)."""
        if self.version == 1:
            return [(None, self.own[c])]
        j = int(self.base[c])
        if j == 0:
            return []
        if self.version == 2 or not self.use[c]:
            return [(None, self.table(c, j))]
        bins = _context_bins(act)
        return [(np.flatnonzero(bins == k), self.table(c, int(_shifted(j, self.shift[k]))))
                for k in range(CONTEXT_BINS)]


def encode_symbols(code: QuantizedCode, q: int, y: np.ndarray, version: int = VERSION,
                   bits: np.ndarray | None = None) -> bytes:
    """Integer latents y (M, h, w) at quality q → the payload of a file of this format version
    (2 and 3 need a model with per-image tables; ``bits``: their :func:`_element_bits`, if
    already computed)."""
    import constriction

    m = y.shape[0]
    flat = y.reshape(m, -1).astype(np.int64)
    head = b""
    act = None
    if version == 1:
        plan = _Plan(code, q, version)
    elif version == 2:
        plan = _Plan(code, q, version, choose_tables(code, q, flat, bits))
        head = _pack_choices(plan.base)
    else:
        plan = _Plan(code, q, version, *plan_context(code, q, flat, bits))
        head = (_pack_choices(plan.base) + np.packbits(plan.use).tobytes()
                + _pack_choices(plan.shift + 8))
        act = _activity(flat)
    enc = constriction.stream.stack.AnsCoder()
    escaped_values = []
    for c in reversed(range(m)):  # a stack: the last group pushed is decoded first
        for pos, (counts, offset) in reversed(plan.groups(c, None if act is None else act[c])):
            vals = flat[c] if pos is None else flat[c, pos]
            if not len(vals):
                continue
            idx, escaped = _symbols(vals, offset, len(counts) - 1)
            enc.encode_reverse(idx.astype(np.int32), _categorical(counts))
            escaped_values.append(vals[escaped])
    words = enc.get_compressed().astype("<u4").tobytes()
    escapes = np.concatenate(escaped_values[::-1]) if escaped_values else np.zeros(0, np.int64)
    if len(escapes) and np.abs(escapes).max() > ESCAPE_MAX:  # the reader refuses such a file
        raise AekitError(f"a latent value ({int(np.abs(escapes).max())}) is beyond the format's "
                         f"±{ESCAPE_MAX}: this model's analysis output is out of range")
    return head + struct.pack(">I", len(words)) + words + _varints(escapes)


def decode_symbols(code: QuantizedCode, q: int, payload: bytes, h: int, w: int,
                   version: int = VERSION) -> np.ndarray:
    """Payload bytes → integer latents (M, h, w); raises CodecFormatError if inconsistent."""
    import constriction

    m = code.latent_dim
    base = use = shift = None
    if version >= 2:
        if not code.adaptive:
            raise CodecFormatError(f"the file uses per-image tables (format {version}), which "
                                   "this codec model was exported without")
        k = _side_info_size(m, version)
        if len(payload) < k:
            raise CodecFormatError("the payload is truncated")
        base = _unpack_choices(payload[: (m + 1) // 2], m)
        if version >= 3:
            flags = np.unpackbits(np.frombuffer(payload[(m + 1) // 2: k - CONTEXT_BINS // 2],
                                                np.uint8))
            if flags[m:].any():
                raise CodecFormatError("the context flags are corrupt")
            use = flags[:m].astype(bool)
            shift = _unpack_choices(payload[k - CONTEXT_BINS // 2: k], CONTEXT_BINS) - 8
        payload = payload[k:]
    plan = _Plan(code, q, version, base, use, shift)
    if len(payload) < 4:
        raise CodecFormatError("the payload is truncated")
    (n_words_bytes,) = struct.unpack(">I", payload[:4])
    if n_words_bytes % 4 or 4 + n_words_bytes > len(payload):
        raise CodecFormatError("the payload's stream lengths are inconsistent: the file is corrupt")
    words = np.frombuffer(payload[4: 4 + n_words_bytes], dtype="<u4").astype(np.uint32)
    escapes = _read_varints(payload[4 + n_words_bytes:])
    used = 0
    n = h * w
    out = np.zeros((m, n), np.int64)
    act = np.zeros(n, np.int64)
    try:
        dec = constriction.stream.stack.AnsCoder(words)
        for c in range(m):
            for pos, (counts, offset) in plan.groups(c, act):
                count = n if pos is None else len(pos)
                if not count:
                    continue
                sym = dec.decode(_categorical(counts), count).astype(np.int64)
                escaped = sym == len(counts) - 1
                vals = sym + offset
                k = int(escaped.sum())
                if used + k > len(escapes):
                    raise CodecFormatError("the escape stream is truncated or corrupt")
                vals[escaped] = escapes[used: used + k]
                used += k
                if pos is None:
                    out[c] = vals
                else:
                    out[c, pos] = vals
            if version >= 3:
                act += _activity_steps(out[c])
        clean = dec.is_empty()
    except (ValueError, RuntimeError, AssertionError) as e:
        raise CodecFormatError(f"the coded stream is corrupt ({e})") from None
    if not clean:
        raise CodecFormatError("the coded stream has data left over: the file is corrupt")
    if used != len(escapes):
        raise CodecFormatError("the escape stream has trailing values: the file is corrupt")
    return out.reshape(m, h, w)


# ---------------------------------------------------------------------------- file format
def pack(channels: int, quality: int, mid: bytes, width: int, height: int, payload: bytes,
         version: int = VERSION) -> bytes:
    head = HEADER.pack(MAGIC, version, channels, quality, 0, mid, width, height, len(payload),
                       zlib.crc32(payload))
    return head + struct.pack(">I", zlib.crc32(head)) + payload


def as_bytes(data: Any) -> bytes:
    """The bytes of a bytes-like object (bytes, bytearray, memoryview, a uint8 array)."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ParameterError(f"an .aek file is bytes; got a {data.dtype} array")
        return data.tobytes()
    try:
        return bytes(memoryview(data).cast("B"))
    except TypeError:
        raise ParameterError(f"an .aek file is bytes; got {type(data).__name__}") from None


def parse(data: bytes) -> tuple[AekHeader, bytes]:
    """Check and split an ``.aek`` file; every failure is one CodecFormatError line."""
    if not data:
        raise CodecFormatError("the file is empty")
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise CodecFormatError("not an .aek file (bad magic bytes)")
    if len(data) < HEADER_SIZE:
        raise CodecFormatError(f"the file is truncated ({len(data)} bytes, the header alone "
                               f"is {HEADER_SIZE})")
    _, version, channels, quality, reserved, mid, width, height, plen, pcrc = \
        HEADER.unpack_from(data)
    (hcrc,) = struct.unpack_from(">I", data, HEADER.size)
    header_ok = zlib.crc32(data[: HEADER.size]) == hcrc
    if version not in VERSIONS:  # a damaged byte is not a newer format: say which it is
        why = ("from a newer aekit?" if header_ok else
               "the header is also corrupt (CRC mismatch), so the file is damaged")
        raise CodecFormatError(f"unsupported .aek format version {version} (this aekit reads "
                               f"versions {VERSIONS[0]}–{VERSIONS[-1]}; {why})")
    if not header_ok:
        raise CodecFormatError("the header is corrupt (CRC mismatch)")
    if channels not in (1, 3):
        raise CodecFormatError(f"the header has an invalid mode ({channels} channels)")
    if reserved != 0:
        raise CodecFormatError(f"the header's reserved byte is {reserved}, not 0")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE and width * height <= MAX_PIXELS):
        raise CodecFormatError(f"the header has an invalid image size {width}×{height}")
    payload = data[HEADER_SIZE:]
    if len(payload) < plen:
        raise CodecFormatError(f"the file is truncated ({len(payload)} of {plen} payload bytes)")
    if len(payload) > plen:
        extra = len(payload) - plen
        raise CodecFormatError(f"the file has {extra} unexpected trailing "
                               f"byte{'s' if extra > 1 else ''}")
    if zlib.crc32(payload) != pcrc:
        raise CodecFormatError("the payload is corrupt (CRC mismatch)")
    return AekHeader(version, channels, quality, mid, width, height, plen, pcrc), payload


# -------------------------------------------------------------------------- image ↔ bytes
def latent_size(height: int, width: int) -> tuple[int, int]:
    return -(-height // STRIDE), -(-width // STRIDE)


def check_image(img: Any) -> np.ndarray:
    """An image for the codec: a uint8 array, grey (H, W) or (H, W, 1), or RGB (H, W, 3), or a
    PIL image of mode L or RGB; anything else is one ParameterError naming what it got."""
    if isinstance(img, Image.Image):
        if img.mode not in ("L", "RGB"):
            raise ParameterError(f"the codec takes grey (L) or RGB images, not mode {img.mode!r} "
                                 "(convert first, e.g. img.convert('RGB'); alpha is not stored)")
        img = np.asarray(img)
    if not isinstance(img, np.ndarray):
        raise ParameterError("the codec takes a uint8 NumPy array or a PIL image, got "
                             f"{type(img).__name__}")
    shape_ok = img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3))
    if img.dtype != np.uint8 or not shape_ok:
        hint = " (RGBA: drop the alpha, img[..., :3]; .aek stores no alpha)" \
            if img.ndim == 3 and img.shape[-1] == 4 else ""
        raise ParameterError("the codec takes uint8 images, grey (H, W) or RGB (H, W, 3), got "
                             f"{img.dtype} {tuple(img.shape)}{hint}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    h, w = img.shape[:2]
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and h * w <= MAX_PIXELS):
        raise ParameterError(f"image size {w}×{h} is outside what .aek stores "
                             f"(1–{MAX_SIDE} a side)")
    return img


def check_steps(steps: Any) -> int:
    """A count of refinement steps: an integer ≥ 0."""
    if not is_integer(steps, 0):
        raise ParameterError(f"refine_steps is a count of gradient steps, an integer ≥ 0, got "
                             f"{steps!r}")
    return int(steps)


def integer_latents(code: QuantizedCode, h: Tensor, quality: int) -> np.ndarray:
    """The analysis output ``h`` (1, M, h, w) → the integer latents (M, h, w) coded at a
    0-based quality."""
    y = torch.round(h * code.gain(quality).detach().cpu())[0]
    if not torch.isfinite(y).all():  # a broken model: NaN would cast to an arbitrary integer
        raise AekitError("the codec's analysis output holds NaN or infinite values")
    return y.numpy().astype(np.int64)


def encode_at(model: Autoencoder, img: np.ndarray, h: Tensor, quality: int) -> bytes:
    """An ``.aek`` file of ``img`` whose analysis output is ``h``, at a 0-based quality."""
    code = check_codec_model(model)
    quality = check_quality(model, quality)
    y = integer_latents(code, h, quality)
    channels = 1 if img.ndim == 2 else 3
    # the choices cost 4 (format 2) or 4.6 (format 3) bits a channel, which a small image
    # may not win back: the shortest file wins (same latents, same pixels)
    bits = _element_bits(code, quality, y.reshape(len(y), -1)) if code.adaptive else None
    payload, version = min(((encode_symbols(code, quality, y, v, bits), v)
                            for v in ((1, 2, 3) if code.adaptive else (1,))),
                           key=lambda pv: len(pv[0]))
    return pack(channels, quality, model_id(model), img.shape[1], img.shape[0], payload,
                version)


#: step size and momentum of :func:`refine`: SGD with Nesterov momentum on the per-image loss
#: in bits, so one step size serves every image size. Chosen on CBSD68 images 9–20 (BD-rate
#: against the plain encoder, 3 / 6 / 10 steps): Nesterov at 2.6e-4 gives −5.4 / −7.4 / −7.6 %,
#: where heavy-ball momentum at 1.3e-4 gave −2.5 / −5.6 / −7.1 % (2e-4: −6.6 % at 6 steps;
#: 3.5e-4 Nesterov −7.5 % at 6; momentum 0.95 −7.3 %)
REFINE_LR = 2.6e-4
REFINE_MOMENTUM = 0.9
#: above the code's λ' at :data:`REFINE_LAMBDA_REF` (the shipped ladder's 4th quality), the
#: step grows as (λ'/λ'_ref)^REFINE_LR_EXPONENT: the SSE term, and with it the gradient's
#: scale, grows with λ', yet at the top qualities a step of REFINE_LR moved the latents too
#: little to change their rounding. CBSD68 images 8–20, 3 steps, against the fixed step:
#: exponent 0.6 / 0.8 / 1.0 BD-rate −1.9 / −2.2 / −2.1 % (0.8: +0.42 dB at the 8th quality
#: for +4 % bits, +0.58 dB at the 9th for +8 %); the lower qualities gain nothing from a
#: larger step, so they keep REFINE_LR. All 68 photos: +0.31 dB at 1.0 bpp (benchmarks/codec.py)
REFINE_LAMBDA_REF = 0.0067
REFINE_LR_EXPONENT = 0.8
#: refinement steps when none are asked for (`aekit compress`, :func:`compress`): the
#: smallest count that gave BD-rate ≤ −30 % against JPEG on all 68 CBSD68 photos with the
#: shipped model while a 768×512 photo encodes + decodes well inside 1.5 s here
#: (benchmarks/codec.py); 0 is the plain, fastest encoder
DEFAULT_REFINE_STEPS = 3


def refine_lr(lam: float) -> float:
    """:func:`refine`'s step size at the code's λ' (see :data:`REFINE_LAMBDA_REF`)."""
    return REFINE_LR * max(1.0, float(lam) / code_lambda(REFINE_LAMBDA_REF)) ** REFINE_LR_EXPONENT


def refine(model: Autoencoder, img: np.ndarray, h: Tensor, quality: int, steps: int) -> Tensor:
    """Encoder-side latent refinement: ``steps`` gradient steps on this image's own
    rate–distortion loss ``bits + λ'_q·SSE`` over the latent, starting at the analysis output
    ``h``; returns the best latent seen (judged on the rounded latent, so it is never worse than
    ``h`` by the model's own rate and distortion).

    The amortised encoder is one network for all images; optimising each image's latent
    closes part of its "amortisation gap" (Campos et al. 2019, "Content adaptive optimization
    for neural image compression"; Yang et al. 2020, "Improving inference for neural image
    compression"). Gradients: the distortion through the rounded latent (straight-through),
    the rate through the density at the unrounded latent, which pulls values towards the
    likely ones. Only the encoder does more work: the decoder and the file format are
    unchanged, so files stay decodable by any aekit with the same model."""
    code = check_codec_model(model)
    if steps <= 0:
        return h
    dev = next(model.parameters()).device
    x = image_to_tensor(img, model.input_shape[0]).to(dev)
    hh, ww = img.shape[:2]
    g, ig = code.gain(quality).detach(), code.inv_gain(quality).detach()
    lam = code.lambdas[quality].detach()
    lr = refine_lr(lam)
    sl = code._channels(quality)
    y = _layout((h.to(dev) * g).detach())
    velocity = torch.zeros_like(y)
    best_loss, best = math.inf, y
    # the synthesis transform in bfloat16 where the device multiplies it natively: with the
    # channels-last layout, a step of a 768×512 photo took 0.19 s instead of 0.28 s (float32,
    # default layout) on this project's 2-core AVX512-BF16 CPU, bf16's own share ~15 % (A/B in
    # one process); the files' BD-rate moves by under 0.05 % (CBSD68 images 9–20, 3 and 10
    # heavy-ball steps, before the switch to Nesterov). The rate terms and the pick of the
    # best latent stay float32
    amp = bf16_autocast_pays(dev)
    tiled = y.shape[-2] > SYNTH_TILE or y.shape[-1] > SYNTH_TILE
    with torch.enable_grad():
        for step in range(steps + 1):
            y.requires_grad_(True)
            if tiled:
                sse, sse_grad = _tiled_sse(model, y.detach(), ig, x, amp, step < steps)
            else:
                y_hat = y + (torch.round(y) - y).detach()
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                    x_hat = pixels(model, y_hat * ig, hh, ww)
                sse = (x_hat - x).pow(2).sum()
            with torch.no_grad():  # the loss the file will have (rate from the model's density)
                bits = -torch.log2(code.density.likelihood(torch.round(y), sl)).sum()
                loss = float(bits + lam * sse)
            if loss < best_loss:
                best_loss, best = loss, y.detach()
            if step == steps:
                break
            soft_bits = -torch.log2(code.density.likelihood(y, sl)).sum()
            if tiled:
                (grad,) = torch.autograd.grad(soft_bits, y)
                grad = grad + lam * sse_grad
            else:
                (grad,) = torch.autograd.grad(soft_bits + lam * sse, y)
            with torch.no_grad():  # Nesterov: step along the gradient plus the look-ahead
                velocity = REFINE_MOMENTUM * velocity + grad
                y = y.detach() - lr * (grad + REFINE_MOMENTUM * velocity)
    return (best / g).cpu().contiguous()


def _tiled_sse(model: Autoencoder, y: Tensor, ig: Tensor, x: Tensor, amp: bool,
               with_grad: bool) -> tuple[float, Tensor | None]:
    """:func:`refine`'s distortion for a latent larger than :data:`SYNTH_TILE` positions a
    side, one tile at a time so memory stays bounded (whole, a 3000×2000 photo peaked at
    4.1 GB): the squared error of the rounded latent's image and its straight-through
    gradient. A pixel depends on latents within ±2 of its own (:data:`SYNTH_MARGIN` = 4 is
    safe), so a tile's gradient sums the error over its pixels widened by one margin,
    synthesised from latents widened by two; each pixel's error is counted once, in its own
    tile. The same values as whole-image synthesis up to float rounding."""
    lh, lw = y.shape[-2:]
    hh, ww = x.shape[-2:]
    m = SYNTH_MARGIN
    total, grad = 0.0, (torch.zeros_like(y) if with_grad else None)
    for core, near in latent_tiles(lh, lw, m):
        ctx = widen(near, m, (lh, lw))
        z = y[..., ctx[0], ctx[1]].detach().requires_grad_(with_grad)
        z_hat = z + (torch.round(z) - z).detach()
        rows, cols = _px(ctx[0], hh), _px(ctx[1], ww)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            x_hat = pixels(model, z_hat * ig, rows.stop - rows.start, cols.stop - cols.start)
        err = (x_hat - x[..., rows, cols]).pow(2)
        own_r, own_c = _px(core[0], hh), _px(core[1], ww)
        total += float(err.detach()[..., _within(own_r, rows), _within(own_c, cols)].sum())
        if with_grad:
            near_r, near_c = _px(near[0], hh), _px(near[1], ww)
            (g,) = torch.autograd.grad(err[..., _within(near_r, rows), _within(near_c, cols)].sum(), z)
            grad[..., core[0], core[1]] = g[..., _within(core[0], ctx[0]), _within(core[1], ctx[1])]
    return total, grad


def compress(model: Autoencoder, img: np.ndarray, quality: int,
             refine_steps: int = DEFAULT_REFINE_STEPS) -> bytes:
    """uint8 image → ``.aek`` bytes at a 0-based quality index; ``refine_steps`` > 0 spends
    that many gradient steps per image on a better latent (:func:`refine`; slower encoder)."""
    img = check_image(img)
    quality = check_quality(model, quality)
    refine_steps = check_steps(refine_steps)
    h = refine(model, img, analyse(model, img), quality, refine_steps)
    return encode_at(model, img, h, quality)


def check_quality(model: Autoencoder, quality: Any) -> int:
    """A 0-based quality index of this model (the CLI's --quality counts from 1)."""
    n = check_codec_model(model).n_qualities
    if not is_integer(quality, 0, n - 1):
        raise ParameterError(f"quality is a 0-based index, an integer 0–{n - 1}, got {quality!r} "
                             f"(the CLI's --quality 1–{n} counts from 1)")
    return int(quality)


def compress_ladder(model: Autoencoder, img: np.ndarray,
                    refine_steps: int = DEFAULT_REFINE_STEPS) -> list[bytes]:
    """The image at every quality (one analysis transform for all, refined per quality)."""
    img = check_image(img)
    refine_steps = check_steps(refine_steps)
    h = analyse(model, img)
    return [encode_at(model, img, refine(model, img, h, q, refine_steps), q)
            for q in range(n_qualities(model))]


def compress_to_bpp(model: Autoencoder, img: np.ndarray, bpp: float,
                    refine_steps: int = DEFAULT_REFINE_STEPS) -> tuple[bytes, int]:
    """The quality whose file is nearest ``bpp`` (bits per pixel, from file bytes). With
    ``refine_steps`` the quality is chosen on the plain files and only its file is refined
    (refinement shaves a few per cent off every quality's size, rarely enough to change
    which is nearest, and refining all of them would cost n_qualities times as much)."""
    img = check_image(img)
    refine_steps = check_steps(refine_steps)
    if isinstance(bpp, bool) or not isinstance(bpp, (int, float, np.integer, np.floating)) \
            or not math.isfinite(bpp) or bpp <= 0:
        raise ParameterError(f"bpp is a positive number of bits per pixel, got {bpp!r}")
    h = analyse(model, img)
    files = [encode_at(model, img, h, q) for q in range(n_qualities(model))]
    pixels = img.shape[0] * img.shape[1]
    q = min(range(len(files)), key=lambda i: abs(8 * len(files[i]) / pixels - bpp))
    if refine_steps > 0:
        return encode_at(model, img, refine(model, img, h, q, refine_steps), q), q
    return files[q], q


def decompress(model: Autoencoder, data: bytes) -> np.ndarray:
    """``.aek`` bytes (or any bytes-like object: bytearray, memoryview, a uint8 array) → uint8
    image (H, W) or (H, W, 3)."""
    header, payload = parse(as_bytes(data))
    code = check_codec_model(model)
    if header.model_id != model_id(model):
        raise CodecFormatError(f"the file was made by codec model {header.model_id.hex()}, not by "
                               f"the loaded model {model_id(model).hex()} (pass the right --model)")
    if header.quality >= code.n_qualities:
        raise CodecFormatError(f"the file's quality index {header.quality} is outside this model's "
                               f"{code.n_qualities} qualities")
    lh, lw = latent_size(header.height, header.width)
    y = decode_symbols(code, header.quality, payload, lh, lw, header.version)
    z = torch.from_numpy(y).float()[None] * code.inv_gain(header.quality).detach().cpu()
    return synthesise_uint8(model, z, header.height, header.width, header.channels)


def bpp_of(data: bytes, width: int, height: int) -> float:
    """Bits per pixel counted from the bytes of a whole file."""
    return 8.0 * len(data) / (width * height)


def rd_loss(model: Autoencoder, x: Tensor, quality: int) -> tuple[Tensor, Tensor, Tensor]:
    """Training objective at one quality for a batch of crops x (B, C, H, W) in [0, 1]:
    ``(λ·255²·MSE + bpp)`` averaged — CompressAI's units — with the (bpp, mse) per image."""
    code = model.code
    _, c, hh, ww = x.shape
    h = model.encoder(x)
    z, bits = code.quantize(h, quality, sample=model.training)
    x_hat = pixels(model, z.to(h.dtype), hh, ww)
    mse = (x_hat - x.float()).pow(2).mean((1, 2, 3))
    bpp = bits / (hh * ww)
    # λ' (per-image SSE units) · C = λ·255² (per-pixel MSE units, RGB)
    loss = (code.lambdas[quality] * c * mse + bpp).mean()
    return loss, bpp.detach(), mse.detach()
