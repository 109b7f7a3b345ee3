#!/usr/bin/env python
"""Fuzz the .aek parser and decoder for longer than the test suite does.

Feeds random files, bit-flipped and truncated valid files, and garbage payloads behind
valid CRCs (so the entropy decoder itself sees garbage) to ``codec.decompress``. Every case
must either decode or raise ``CodecFormatError`` within the time limit; anything else is a
bug and is printed with the input's hex.

    python scripts/codec_fuzz.py --seconds 120 [--model DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aekit import codec, zoo
from aekit.models import Autoencoder
from aekit.rd import synthetic_photo


def mutate(rng: np.random.Generator, valid: list[bytes]) -> bytes:
    base = bytearray(valid[rng.integers(len(valid))])
    kind = rng.integers(6)
    if kind == 0:
        return rng.bytes(int(rng.integers(0, 400)))
    if kind == 1:  # flip bits
        for _ in range(int(rng.integers(1, 8))):
            i = int(rng.integers(len(base) * 8))
            base[i // 8] ^= 1 << (i % 8)
        return bytes(base)
    if kind == 2:  # truncate or extend
        n = int(rng.integers(0, len(base) + 20))
        return bytes(base[:n]) + (rng.bytes(n - len(base)) if n > len(base) else b"")
    h, payload = codec.parse(bytes(base))
    payload = bytearray(payload)
    if kind == 3:  # garbage payload behind valid CRCs
        payload = bytearray(rng.bytes(int(rng.integers(1, 2 * len(payload) + 8))))
    elif kind == 4:  # a few bytes of the payload changed, CRCs recomputed
        for _ in range(int(rng.integers(1, 5))):
            payload[int(rng.integers(len(payload)))] = int(rng.integers(256))
    else:  # header fields changed, CRCs recomputed
        return codec.pack(int(rng.integers(0, 5)), int(rng.integers(0, 9)), h.model_id,
                          int(rng.integers(1, 300)), int(rng.integers(1, 300)), bytes(payload),
                          h.version)
    # the seed's own format version: each format's payload decoder gets garbage (a repack at
    # the default version made nearly every CRC-valid case a format-3 one)
    return codec.pack(h.channels, h.quality, h.model_id, h.width, h.height, bytes(payload),
                      h.version)


def file_of_version(model, img: np.ndarray, quality: int, version: int) -> bytes:
    """A valid file of ``img`` written in one format version (the encoder picks the shortest)."""
    code = codec.check_codec_model(model)
    y = codec.integer_latents(code, codec.analyse(model, img), quality)
    return codec.pack(1 if img.ndim == 2 else 3, quality, codec.model_id(model), img.shape[1],
                      img.shape[0], codec.encode_symbols(code, quality, y, version), version)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--model", default=None, help="a codec model directory (default: the zoo codec)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--case-limit", type=float, default=10.0, help="seconds one case may take")
    args = p.parse_args()
    model = zoo.load("codec") if args.model is None else Autoencoder.from_pretrained(args.model)
    # small files (format 1) and photo-sized ones (the encoder picks format 2 or 3 for those)
    valid = [codec.compress(model, synthetic_photo(h, w, seed=s, grey=g), q)
             for (h, w, s, g, q) in [(40, 56, 1, False, 0), (23, 17, 2, True, 3), (64, 64, 3, False, 5),
                                     (160, 224, 4, False, 2), (128, 96, 5, True, 4)]]
    if codec.check_codec_model(model).adaptive:  # every format the reader knows
        valid += [file_of_version(model, synthetic_photo(96, 128, seed=6 + v), 3, v) for v in (1, 2, 3)]
    print("seed files: format versions", sorted({v[4] for v in valid}))
    rng = np.random.default_rng(args.seed)
    t_end = time.perf_counter() + args.seconds
    counts = {"decoded": 0, "rejected": 0, "bugs": 0}
    slowest = 0.0
    while time.perf_counter() < t_end:
        data = mutate(rng, valid)
        t0 = time.perf_counter()
        try:
            codec.decompress(model, data)
            counts["decoded"] += 1
        except codec.CodecFormatError:
            counts["rejected"] += 1
        except Exception as e:  # noqa: BLE001 — exactly what the fuzzer hunts
            counts["bugs"] += 1
            print(f"BUG {e.__class__.__name__}: {e} on {data[:80].hex()}…", flush=True)
        dt = time.perf_counter() - t0
        slowest = max(slowest, dt)
        if dt > args.case_limit:
            counts["bugs"] += 1
            print(f"SLOW {dt:.1f} s on {data[:80].hex()}…", flush=True)
    print(f"{sum(counts.values())} cases: {counts}; slowest case {slowest * 1000:.0f} ms")
    return 1 if counts["bugs"] else 0


if __name__ == "__main__":
    sys.exit(main())
