"""Training throughput of ``aekit.fit()`` against a minimal hand-written PyTorch loop on the
same model and data (and, where installed, Keras 3 on TensorFlow with the same architecture).

Each contender trains the same model (same preset, same random 28×28 data, batch 128, AdamW)
for a few epochs after a warm-up; images/s are medians over ``--repeats`` runs taken in
turn, so a busy machine slows every contender alike and the ratio stays meaningful.

    python benchmarks/train_throughput.py [--presets deep,conv,variational,denoising]
                                          [--n 4096] [--epochs 2] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _args import at_least

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

# aekit before torch, as the `aekit` command does: on small CPUs it sets OpenMP's
# passive waiting, which torch reads when it loads (see aekit/_runtime.py)
import aekit  # noqa: F401, I001
import torch

from aekit.models import create_model
from aekit.training import fit

BATCH = 128
SHAPE = (1, 28, 28)
LATENT = 16


def make_data(n: int, seed: int = 0) -> np.ndarray:
    """Smooth random 28×28 images in [0, 1] (blurred noise: something to reconstruct)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, 7, 7)).astype(np.float32)
    return np.repeat(np.repeat(x, 4, axis=2), 4, axis=3)


def model_for(preset: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(preset, SHAPE, LATENT)


# ----------------------------------------------------------------------------- contenders
def run_fit(preset: str, x: np.ndarray, epochs: int, amp: bool = True) -> float:
    """images/s of fit(): wall clock of the whole call (setup, shuffles, logging included);
    no validation split, so every sample trains, like the loops below. ``amp=True`` is fit's
    default (bf16 autocast on a CPU with native bf16, see aekit.training.cpu_has_native_bf16);
    ``amp=False`` is float32 throughout, like the hand loop and Keras."""
    model = model_for(preset)
    t0 = time.perf_counter()
    res = fit(model, x, epochs=epochs, batch_size=BATCH, val_fraction=0, patience=None,
              progress=False, device="cpu", amp=amp)
    return res.steps * BATCH / (time.perf_counter() - t0)


def run_loop(preset: str, x: np.ndarray, epochs: int, channels_last: bool = False) -> float:
    """The loop a PyTorch user writes by hand: shuffle, slice, forward, backward, step."""
    model = model_for(preset).train()
    data = torch.from_numpy(x)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = len(data) // BATCH
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(data))
        for b in range(steps):
            xb = data[perm[b * BATCH:(b + 1) * BATCH]]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            loss = model(xb).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return epochs * steps * BATCH / (time.perf_counter() - t0)


def keras_available() -> bool:
    try:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def keras_model(preset: str):
    """The same architecture as aekit's preset for 1×28×28 input, in Keras 3 (channels last)."""
    import keras
    from keras import layers

    inp = keras.Input((28, 28, 1))
    if preset in ("deep", "denoising", "variational"):
        hidden = {"deep": [1000, 500, 250], "denoising": [256], "variational": [256, 128]}[preset]
        h = layers.Flatten()(inp)
        if preset == "denoising":
            h = layers.GaussianNoise(0.25)(h)
        for w in hidden:
            h = layers.Dense(w, activation="gelu")(h)
        z = layers.Dense(LATENT * (2 if preset == "variational" else 1))(h)
        if preset == "variational":  # reparameterised sample; KL added as a loss
            z = _Sampling()(z)
        for w in reversed(hidden):
            z = layers.Dense(w, activation="gelu")(z)
        out = layers.Reshape((28, 28, 1))(layers.Dense(784, activation="sigmoid")(z))
        return keras.Model(inp, out)
    if preset == "conv":  # aekit conv for 28×28: 2 levels, 32-64 channels, resize-conv up
        h = layers.Conv2D(32, 3, strides=2, padding="same", activation="gelu")(inp)
        h = layers.Conv2D(64, 3, strides=2, padding="same", activation="gelu")(h)
        z = layers.Dense(LATENT)(layers.Flatten()(h))
        h = layers.Reshape((7, 7, 64))(layers.Dense(7 * 7 * 64, activation="gelu")(z))
        h = layers.Conv2D(32, 3, padding="same", activation="gelu")(layers.UpSampling2D(2)(h))
        h = layers.Conv2D(16, 3, padding="same", activation="gelu")(layers.UpSampling2D(2)(h))
        out = layers.Conv2D(1, 3, padding="same", activation="sigmoid")(h)
        return keras.Model(inp, out)
    raise ValueError(f"no Keras twin for preset {preset!r}")


def _Sampling():  # a function: the class needs keras, which is optional
    import keras

    class Sampling(keras.layers.Layer):
        """z = μ + σ·ε from the concatenated (μ, log σ²); adds the KL to N(0, I) as a loss."""

        def __init__(self) -> None:
            super().__init__()
            self.seeds = keras.random.SeedGenerator(0)

        def call(self, h):
            ops = keras.ops
            mu, logvar = h[:, :LATENT], h[:, LATENT:]
            self.add_loss(-0.5 * ops.mean(ops.sum(1 + logvar - mu**2 - ops.exp(logvar), axis=1)))
            eps = keras.random.normal(ops.shape(mu), seed=self.seeds)
            return mu + ops.exp(0.5 * logvar) * eps

    return Sampling()


def run_keras(preset: str, x: np.ndarray, epochs: int) -> float:
    """Keras 3 / TensorFlow: model.fit with the same batch, AdamW and summed squared error."""
    import keras

    xk = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    model = keras_model(preset)

    def sse(y, y_hat):  # aekit's loss: squared error summed per image, mean over the batch
        return keras.ops.sum(keras.ops.square(y - y_hat), axis=(1, 2, 3))

    model.compile(optimizer=keras.optimizers.AdamW(2e-3, weight_decay=1e-4), loss=sse)
    model.fit(xk, xk, batch_size=BATCH, epochs=1, verbose=0)  # trace the graph
    steps = len(xk) // BATCH
    t0 = time.perf_counter()
    model.fit(xk[: steps * BATCH], xk[: steps * BATCH], batch_size=BATCH, epochs=epochs,
              shuffle=True, verbose=0)
    return epochs * steps * BATCH / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------- reporting
def median_rates(contenders: dict, repeats: int) -> dict[str, float]:
    """Each contender once per round, ``repeats`` rounds; the median images/s of each."""
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            rates[name].append(fn())
    return {k: statistics.median(v) for k, v in rates.items()}


def conditions() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{os.cpu_count()} CPUs, load average {load:.1f} at start")


def throughput_table(presets: list[str], n: int, epochs: int, repeats: int,
                     with_keras: bool = True) -> list[dict]:
    x = make_data(n)
    keras_ok = with_keras and keras_available()
    rows = []
    for preset in presets:
        run_fit(preset, x[: BATCH * 4], 1)  # warm-up (first-call allocations, oneDNN kernels)
        run_loop(preset, x[: BATCH * 4], 1)
        contenders = {"fit": lambda p=preset: run_fit(p, x, epochs),
                      "fit32": lambda p=preset: run_fit(p, x, epochs, amp=False),
                      "loop": lambda p=preset: run_loop(p, x, epochs)}
        if keras_ok:
            contenders["keras"] = lambda p=preset: run_keras(p, x, epochs)
        r = median_rates(contenders, repeats)
        rows.append({"preset": preset, **r})
    return rows


def print_table(rows: list[dict]) -> None:
    has_keras = any("keras" in r for r in rows)
    head = ("| preset | fit() img/s | fit() fp32 img/s | hand loop (fp32) img/s | fit fp32 / loop "
            "| fit / loop |")
    sep = "|---|---|---|---|---|---|"
    if has_keras:
        head += " Keras 3 (TF) img/s | fit / Keras |"
        sep += "---|---|"
    print(head)
    print(sep)
    for r in rows:
        line = (f"| {r['preset']} | {r['fit']:,.0f} | {r['fit32']:,.0f} | {r['loop']:,.0f} "
                f"| {r['fit32'] / r['loop']:.2f}× | {r['fit'] / r['loop']:.2f}× |")
        if has_keras:
            line += (f" {r['keras']:,.0f} | {r['fit'] / r['keras']:.2f}× |" if "keras" in r
                     else " — | — |")
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="deep,conv,variational,denoising")
    ap.add_argument("--n", type=at_least(BATCH), default=4096,
                    help=f"training images (at least one batch, {BATCH})")
    ap.add_argument("--epochs", type=at_least(1), default=2)
    ap.add_argument("--repeats", type=at_least(1), default=3)
    ap.add_argument("--threads", type=at_least(1), default=None, help="torch threads (default: torch's)")
    ap.add_argument("--no-keras", action="store_true")
    args = ap.parse_args()
    from aekit.models import PRESETS

    unknown = [n for n in args.presets.split(",") if n not in PRESETS.names()]
    if unknown:
        ap.error(f"unknown preset(s) {', '.join(unknown)}; known: {', '.join(PRESETS.names())}")
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(args.threads))
    if not args.no_keras and not keras_available():
        print("(Keras 3 / TensorFlow not installed: skipping that column; "
              "pip install tensorflow-cpu keras to compare)")
    from aekit.training import cpu_has_native_bf16

    amp = "bf16 autocast (native bf16 CPU)" if cpu_has_native_bf16() else "float32 (no native bf16)"
    print(f"fit() default precision here: {amp}")
    print(f"conditions: {conditions()}; {args.n} images 1×28×28, batch {BATCH}, "
          f"{args.epochs} epochs, median of {args.repeats}\n")
    print_table(throughput_table(args.presets.split(","), args.n, args.epochs, args.repeats,
                                 not args.no_keras))


if __name__ == "__main__":
    main()
