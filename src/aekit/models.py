"""The one autoencoder: encoder/decoder + code + penalties + corruption, chosen by name.

    x ──corrupt──▶ x̃ ──normalise──▶ encoder ──▶ h ──code──▶ z ──decoder──▶ out ──act──▶ x̂
    loss = recon(out, x) + Σ code losses (KL, …) + Σ penalties(z)

Every classic type is a *preset*: a dict of config overrides (data, not a subclass). Models
save as ``config.json`` + ``model.safetensors``: loading never unpickles anything, and the
weights' SHA-256 is checked so a truncated or tampered file is refused with a clear message.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

import aekit.codes  # noqa: F401  (registers every code: dense … quantized, doc_binary)
import aekit.corruptions  # noqa: F401  (registers every corruption, the restoration ones too)
import aekit.nn  # noqa: F401  (registers architectures)
import aekit.penalties  # noqa: F401
from aekit.codes import CODES
from aekit.corruptions import CORRUPTIONS
from aekit.errors import AekitError, ModelFileError
from aekit.io import file_digest, json_text, read_json, staged_dir, write_json_atomic
from aekit.nn import ARCHS
from aekit.penalties import PENALTIES
from aekit.registry import Registry

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; saved as ``config.json``."""

    input_shape: list[int]
    latent_dim: int = 32
    preset: str = "custom"
    arch: str = "mlp"
    arch_options: dict[str, Any] = field(default_factory=dict)
    code: str = "dense"
    code_options: dict[str, Any] = field(default_factory=dict)
    # name -> options (each with its "weight"); summed into the loss
    penalties: dict[str, dict[str, Any]] = field(default_factory=dict)
    # training-time corruption of the input (denoising and the restoration jobs); None = none
    corruption: str | None = None
    corruption_options: dict[str, Any] = field(default_factory=dict)
    # "unit": data already in [0, 1] (images) → sigmoid output; "standard": per-feature
    # standardisation learned from the training data → identity output
    normalization: str = "unit"
    # output activation: "auto" = sigmoid for "unit", identity for "standard"; "identity" for
    # residual image-to-image models (the input is added inside the arch, so a sigmoid would
    # squash a value that is already a pixel); "sigmoid" forces it
    output_activation: str = "auto"
    # "mse" (summed squared error per sample), "bce" (for data in [0, 1]) or "multinomial"
    # (bags of words: the decoder's outputs are logits of a softmax over the vocabulary, the
    # target is raw counts, recon = −Σ count·log p; x̂ is the expected counts); "auto" = bce
    # where the output is a sigmoid (data in [0, 1]), else mse
    loss: str = "mse"
    # anything a job needs to keep with the model (task, vocabulary file, labels, …)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ModelFileError(f"config has unknown fields: {', '.join(sorted(unknown))}")
        # the option tables are dicts (a hand-edited list failed later, deep in a .pop or a
        # ** with a TypeError); their contents are checked by the parts they build
        not_dicts = [k for k in ("arch_options", "code_options", "penalties",
                                 "corruption_options", "extra")
                     if k in d and not isinstance(d[k], dict)]
        if not_dicts:
            raise ModelFileError(f"config fields {', '.join(not_dicts)} must be JSON objects")
        return cls(**d)


@dataclass
class AEOutput:
    """What every model's forward returns, so one training loop serves every preset."""

    x_hat: Tensor
    z: Tensor
    losses: dict[str, Tensor]

    @property
    def loss(self) -> Tensor:
        return sum(self.losses.values())  # type: ignore[return-value]


# ------------------------------------------------------------------------------------ presets
PRESETS: Registry = Registry("preset")


#: values in one sample (input_shape): a config asking for more (e.g. a crafted file's
#: [3, 60000, 60000]) is refused before its normalisation buffers would be allocated
MAX_INPUT_NUMEL = 1 << 26


def _preset(name: str, help: str, **overrides: Any) -> None:
    PRESETS.add(name, overrides, help=help)


_preset("vanilla", "shallow undercomplete autoencoder: one layer each way (linear; sigmoid output on [0, 1] data)",
        arch="mlp", arch_options={"hidden": []})
# deep and conv train on cross-entropy for [0, 1] data, as Hinton & Salakhutdinov did: on 28×28
# digits (benchmarks/reconstruction.py, 2 minutes) it reached a held-out SSE of 2.79 against
# 3.55 with squared error (PCA-30: 4.38); the reported metrics stay squared error
_preset("deep", "stacked symmetric MLP (Hinton & Salakhutdinov 2006 widths for large inputs)",
        arch="mlp", arch_options={"hidden": "auto"}, loss="auto")
_preset("conv", "convolutional: strided conv down, resize-conv up, vector code",
        arch="conv", loss="auto")
_preset("sparse", "sparse (L1 activity penalty on a ReLU code), one hidden layer",
        arch="mlp", arch_options={"hidden": [256]}, code_options={"activation": "relu"},
        penalties={"l1": {"weight": 0.05}})
_preset("sparse-kl", "sparse (KL to a target activation ρ = 0.05 on a sigmoid code)",
        arch="mlp", arch_options={"hidden": [256]}, code_options={"activation": "sigmoid"},
        penalties={"kl_sparsity": {"weight": 1.0, "rho": 0.05}})
_preset("sparse-topk", "k-sparse: keep the top k = latent_dim/8 units (Makhzani & Frey 2013), "
        "AuxK for dead units",
        arch="mlp", arch_options={"hidden": [256]}, code="topk",
        penalties={"auxk": {"weight": 0.25}})
_preset("denoising", "denoising: trained to undo Gaussian noise σ = 0.25 on the input",
        arch="mlp", arch_options={"hidden": [256]},
        corruption="gaussian", corruption_options={"sigma": 0.25})
# contractive weight 0.1: on digits (16-d, 30 epochs) it halves ‖J‖²_F (3.31 → 1.55) and keeps
# most of the explained variance (0.40 → 0.35); at the former 3.0 the code collapsed to a
# constant (explained variance 0.00, the data mean reconstructed)
_preset("contractive", "contractive: penalises ‖∂z/∂x‖²_F (Rifai et al. 2011), sigmoid code",
        arch="mlp", arch_options={"hidden": []}, code_options={"activation": "sigmoid"},
        penalties={"contractive": {"weight": 0.1}})
# variational: a Bernoulli likelihood (cross-entropy) for [0, 1] data, as Kingma & Welling;
# with squared error (a unit-variance Gaussian in pixel units) the reconstruction term was so
# small beside the KL that the code nearly collapsed (digits, 16-d, 100 epochs: 5 active
# units, explained variance 0.22; with cross-entropy 0.68)
_preset("variational", "variational (VAE): Gaussian code, KL to N(0, I), samples from the prior",
        arch="mlp", arch_options={"hidden": [256, 128]}, code="gaussian", loss="auto")
# topic: dropout 0.4 on θ (decoder_dropout; the encoder keeps 0.2) raised the mean NPMI of 50
# Reuters topics from 0.158 to 0.21 (0.2 → 0.4; 0.6 gave 0.23 but many duplicate topics,
# diversity 0.37), benchmarks/text.py
_preset("topic", "ProdLDA-style topic model with embedding clustering (ECRTM, Wu et al. 2023): "
        "word counts in, logistic-normal code, product-of-experts decoder whose topics are "
        "vectors among the corpus's word vectors, kept apart by the ecr penalty",
        arch="bow", arch_options={"hidden": [200, 200], "input": "counts", "act": "softplus",
                                  "dropout": 0.2, "decoder_dropout": 0.4, "batchnorm": True,
                                  "decoder": "ecr", "embed_dim": 50, "tau": 0.2},
        code="logistic_normal", loss="multinomial", normalization="unit",
        penalties={"ecr": {"weight": 250.0, "alpha": 20.0}})
_preset("prodlda", "ProdLDA topic model (Srivastava & Sutton 2017): word counts in, "
        "logistic-normal code, product-of-experts decoder whose rows are topics",
        arch="bow", arch_options={"hidden": [200, 200], "input": "counts", "act": "softplus",
                                  "dropout": 0.2, "decoder_dropout": 0.4, "batchnorm": True,
                                  "decoder": "prodlda"},
        code="logistic_normal", loss="multinomial", normalization="unit")
_preset("doc-hash", "semantic hashing (Salakhutdinov & Hinton 2009): TF-IDF in, binary code "
        "(Hamming search), softmax over the vocabulary out",
        arch="bow", arch_options={"hidden": [500], "input": "tfidf", "act": "relu"},
        code="doc_binary", code_options={"kl_weight": 1.0}, loss="multinomial",
        normalization="unit")
_preset("codec", "learned image codec: GDN transforms, rounded code, factorized entropy model "
        "with per-image table choice, a ladder of qualities in one model (`aekit compress`)",
        arch="codec", arch_options={"channels": 128}, code="quantized", code_options={},
        normalization="unit", loss="mse")


def preset_config(preset: str, input_shape: Sequence[int], latent_dim: int = 32,
                  **overrides: Any) -> ModelConfig:
    """A preset's config for this input, with per-field overrides (dicts are merged)."""
    if isinstance(latent_dim, bool) or not float(latent_dim).is_integer():
        raise AekitError(f"latent_dim must be a whole number, got {latent_dim}")
    base = copy.deepcopy(PRESETS.get(preset))
    cfg: dict[str, Any] = {"input_shape": [int(s) for s in input_shape],
                           "latent_dim": int(latent_dim), "preset": preset}
    for key, val in list(base.items()) + list(overrides.items()):
        # *_options dicts merge key by key; everything else (penalties included) replaces
        if key.endswith("_options") and isinstance(val, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **val}
        else:
            cfg[key] = copy.deepcopy(val)
    if cfg.get("code") == "topk":
        cfg.setdefault("code_options", {}).setdefault("k", max(1, int(latent_dim) // 8))
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    bad = set(cfg) - names
    if bad:
        raise AekitError(f"unknown model option(s): {', '.join(sorted(bad))}")
    return ModelConfig(**cfg)


def create_model(preset: str, input_shape: Sequence[int], latent_dim: int = 32, *,
                 seed: int | None = None, **overrides: Any) -> Autoencoder:
    """Build a model from a preset name: ``create_model("deep", (1, 28, 28), 30)``.

    ``seed``: the initial weights drawn from it (repeatable; torch's global generator is
    left as it was); None draws them from the global generator."""
    config = preset_config(preset, input_shape, latent_dim, **overrides)
    return Autoencoder(config) if seed is None else seeded_model(config, seed)


def seeded_model(config: ModelConfig, seed: int) -> Autoencoder:
    """The model with initial weights drawn from ``seed``; torch's global generator is left
    as it was (the same seed and config give the same weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return Autoencoder(config)


# ------------------------------------------------------------------------------------- model
class Autoencoder(nn.Module):
    """One module for every preset. See the module docstring for the data flow."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        shape = tuple(config.input_shape)
        if not shape or any(s <= 0 for s in shape):
            raise AekitError(f"bad input shape {shape}")
        if math.prod(shape) > MAX_INPUT_NUMEL:  # before any buffer of this size is made
            raise AekitError(f"input shape {shape} has {math.prod(shape):,} values per sample, "
                             f"over aekit's limit of {MAX_INPUT_NUMEL:,}")
        if config.latent_dim <= 0:
            raise AekitError(f"latent_dim must be positive, got {config.latent_dim}")
        if config.normalization not in ("unit", "standard"):
            raise AekitError(f"normalization must be 'unit' or 'standard', got {config.normalization!r}")
        if config.output_activation not in ("auto", "sigmoid", "identity"):
            raise AekitError("output_activation must be 'auto', 'sigmoid' or 'identity', got "
                             f"{config.output_activation!r}")
        if config.loss not in ("mse", "bce", "multinomial", "auto"):
            raise AekitError(f"loss must be 'mse', 'bce', 'multinomial' or 'auto', got {config.loss!r}")
        sigmoid_out = config.output_activation == "sigmoid" or (
            config.output_activation == "auto" and config.normalization == "unit")
        #: the loss actually used ("auto" resolved)
        #: the output is squashed into [0, 1] (fit() refuses data a sigmoid cannot reproduce)
        self.sigmoid_output = sigmoid_out and config.loss != "multinomial"
        self.loss_kind = ("bce" if sigmoid_out else "mse") if config.loss == "auto" else config.loss
        if self.loss_kind == "bce" and not sigmoid_out:
            raise AekitError("loss 'bce' needs data and outputs in [0, 1] (normalization 'unit', "
                             "sigmoid output); standardised data (tables) trains with 'mse'")
        code_cls = CODES.get(config.code)
        self.code = CODES.build(config.code, config.latent_dim, **config.code_options)
        self.encoder, self.decoder = ARCHS.build(
            config.arch, shape, config.latent_dim, config.latent_dim * code_cls.expand,
            **config.arch_options)
        if not isinstance(config.penalties, dict) or not all(
                isinstance(o, dict) for o in config.penalties.values()):
            raise AekitError("penalties map each name to its options, e.g. "
                             f'{{"l1": {{"weight": 0.1}}}}, got {config.penalties!r}')
        self.penalties = {name: PENALTIES.build(name, **opts)
                          for name, opts in config.penalties.items()}
        if "kl_sparsity" in self.penalties and not (
                config.code == "dense" and config.code_options.get("activation") == "sigmoid"):
            raise AekitError("kl_sparsity needs a code in (0, 1): code 'dense' with "
                             "code_options={\"activation\": \"sigmoid\"} (as preset sparse-kl)")
        if "auxk" in self.penalties:
            if config.code != "topk":
                raise AekitError(f"the auxk penalty trains dead units of a topk code; this "
                                 f"model's code is {config.code!r} (use code='topk', as preset "
                                 "sparse-topk)")
            self.code.keep_pre_activation = True
        if config.corruption is None and config.corruption_options:
            raise AekitError(f"corruption_options {config.corruption_options} without a "
                             "corruption: set corruption= too (e.g. gaussian)")
        self.corruption = (CORRUPTIONS.build(config.corruption, **config.corruption_options)
                           if config.corruption else None)
        # data-space normalisation; "standard" statistics are set by fit() from training data
        self.register_buffer("norm_shift", torch.zeros(shape))
        self.register_buffer("norm_scale", torch.ones(shape))

    # -- normalisation -------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.config.input_shape)

    def set_normalization(self, shift: Tensor, scale: Tensor) -> None:
        self.norm_shift.copy_(torch.as_tensor(shift).expand(self.input_shape))
        self.norm_scale.copy_(torch.as_tensor(scale).clamp_min(1e-8).expand(self.input_shape))

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.norm_shift) / self.norm_scale

    def denormalize(self, xn: Tensor) -> Tensor:
        return xn * self.norm_scale + self.norm_shift

    def _output(self, out: Tensor) -> Tensor:
        if self.config.loss == "multinomial":  # word probabilities (B, V)
            return torch.softmax(out.flatten(1), 1).view_as(out)
        act = self.config.output_activation
        if act == "auto":
            act = "sigmoid" if self.config.normalization == "unit" else "identity"
        return torch.sigmoid(out) if act == "sigmoid" else out

    # -- the contract ----------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            raise AekitError(f"data has shape {tuple(x.shape[1:])} per sample but the model "
                             f"expects {self.input_shape}")

    def code_of_normalized(self, xn: Tensor) -> Tensor:
        """Deterministic code of a normalised input (used by the contractive penalty)."""
        z, _ = self.code(self.encoder(xn), sample=False)
        return z

    def as_batch(self, x: Any) -> Tensor:
        """A batch as a tensor on the model's device; NumPy arrays are converted and floats
        take the model's dtype (float64 data would not multiply float32 weights). 8- and
        16-bit integers are scaled to [0, 1] by their range, as :func:`aekit.fit` scales them
        (``aekit.data.dtype_scale``), except for a count model's word counts."""
        from aekit.data.arrays import dtype_scale

        p = next(self.parameters(), None)
        dtype = p.dtype if p is not None else torch.float32
        scale = None
        if not isinstance(x, Tensor):
            arr = np.asarray(x)
            scale = dtype_scale(arr.dtype)
            x = torch.as_tensor(arr.astype(np.float32) if scale is not None else arr)
        elif x.dtype == torch.uint8:
            scale = 1 / 255
        if scale is not None and self.config.loss != "multinomial":
            x = x.to(dtype) * scale
        elif not x.is_floating_point():
            x = x.to(dtype)
        return x.to(p.device, dtype=p.dtype) if p is not None else x

    def encode(self, x: Tensor) -> Tensor:
        """Data-space batch (B, *input_shape) → code z, deterministic (a VAE gives its mean)."""
        x = self.as_batch(x)
        self.check_input(x)
        return self.code_of_normalized(self.normalize(x))

    def decode(self, z: Tensor) -> Tensor:
        """Code → reconstruction in data space (a multinomial model: word probabilities)."""
        z = self.as_batch(z)
        if z.dim() < 2 or z.shape[1] != self.config.latent_dim:
            raise AekitError(f"codes have shape {tuple(z.shape)}; the model decodes "
                             f"(batch, {self.config.latent_dim}) codes")
        if self.config.loss == "multinomial":
            return self._output(self.decoder(z))
        return self.denormalize(self._output(self.decoder(z)))

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def forward(self, x: Tensor, target: Tensor | None = None, *, corrupt: bool | None = None,
                sample: bool | None = None) -> AEOutput:
        """Corrupt (in training), encode, decode; ``losses`` holds every term of the loss.

        ``target`` defaults to ``x`` (an autoencoder reconstructs its clean input).
        ``corrupt`` and ``sample`` (a stochastic code draws its code) default to
        ``self.training``. ``fit``'s validation passes ``corrupt=True`` (a denoiser is judged
        on denoising) but does not sample: it decodes the deterministic code (a variational
        code's mean), so a VAE's ``val_loss`` is the plug-in bound, below the sampled
        −ELBO that ``aekit evaluate`` (``evaluation.evaluate_model``) reports."""
        corrupt = self.training if corrupt is None else corrupt
        sample = self.training if sample is None else sample
        x = self.as_batch(x)
        target = None if target is None else self.as_batch(target)
        self.check_input(x)
        target = x if target is None else target
        # corrupted after normalising: noise σ is in the units the model sees (standard
        # deviations of standardised tables; for images in [0, 1] normalising is the identity)
        xn = self.normalize(x)
        if corrupt and self.corruption is not None:
            xn = self.corruption(xn)
        z, losses = self.code(self.encoder(xn), sample=sample)
        out = self.decoder(z)
        tn = self.normalize(target)
        if self.config.loss == "multinomial":
            # counts stay raw whatever the input normalisation; x̂ = expected counts
            counts = target.flatten(1)
            logp = torch.log_softmax(out.flatten(1).float(), 1)
            recon = -(counts * logp)
            x_hat = (logp.exp() * counts.sum(1, keepdim=True)).view_as(out)
        else:
            if self.loss_kind == "bce":
                recon = F.binary_cross_entropy_with_logits(out, tn.clamp(0, 1), reduction="none")
            else:
                recon = (self._output(out) - tn).pow(2)
            x_hat = self.denormalize(self._output(out))
        losses = {"recon": recon.flatten(1).sum(1).mean(), **losses}
        for name, pen in self.penalties.items():
            losses[name] = pen(self, xn, z)
        return AEOutput(x_hat=x_hat, z=z, losses=losses)

    def layer_outputs(self, x: Tensor) -> dict[str, Tensor]:
        """Every named layer's activation for a batch: ``encoder.<name>``, ``code``,
        ``decoder.<name>`` and ``output`` (deterministic, as at inference)."""
        x = self.as_batch(x)
        self.check_input(x)
        outputs: dict[str, Tensor] = {}
        hooks = []
        for part_name in ("encoder", "decoder"):
            part = getattr(self, part_name)
            for name, child in part.named_children():
                hooks.append(child.register_forward_hook(
                    lambda m, i, o, key=f"{part_name}.{name}": outputs.__setitem__(key, o)))
        try:
            z = self.encode(x)
            outputs["code"] = z
            x_hat = self.decode(z)
        finally:
            for h in hooks:
                h.remove()
        ordered = {k: v for k, v in outputs.items() if k.startswith("encoder.")}
        ordered["code"] = outputs["code"]
        ordered.update({k: v for k, v in outputs.items() if k.startswith("decoder.")})
        ordered["output"] = x_hat
        return ordered

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Decode draws from the prior N(0, I) (meaningful for the variational code)."""
        p = next(self.parameters())
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=p.device)
        return self.decode(z)

    # -- transfer --------------------------------------------------------------------------
    def parametrised_encoder_layers(self) -> list[str]:
        return [name for name, m in self.encoder.named_children()
                if any(True for _ in m.parameters(recurse=True))]

    def load_encoder_from(self, source: Autoencoder | str | Path, n_layers: int | None = None,
                          freeze: bool = False) -> list[str]:
        """Copy the first ``n_layers`` parametrised encoder layers (all if None) of another
        model (or a saved model directory) into this one; ``freeze`` stops their training.
        Returns the names of the layers copied."""
        if not isinstance(source, Autoencoder):
            source = Autoencoder.from_pretrained(source)
        src_layers = source.parametrised_encoder_layers()
        dst_layers = self.parametrised_encoder_layers()
        n = len(src_layers) if n_layers is None else int(n_layers)
        if n < 1 or n > min(len(src_layers), len(dst_layers)):
            raise AekitError(f"cannot transfer {n} layers: the source encoder has "
                             f"{len(src_layers)} and this one {len(dst_layers)}")
        if source.input_shape != self.input_shape:
            raise AekitError(f"source model input {source.input_shape} differs from {self.input_shape}")
        if source.config.normalization != self.config.normalization:
            # its statistics come with its layers (below): a "standard" shift and scale in a
            # "unit" model would keep its sigmoid output above the per-pixel mean
            raise AekitError(f"the source model normalises its input {source.config.normalization!r} "
                             f"and this one {self.config.normalization!r}: the copied layers would "
                             f"read input scaled otherwise (make this model with normalization="
                             f"{source.config.normalization!r}; aekit train: --option "
                             f"normalization={source.config.normalization})")
        pairs = [(getattr(source.encoder, s), getattr(self.encoder, d), s, d)
                 for s, d in zip(src_layers[:n], dst_layers[:n])]
        for s_mod, d_mod, s_name, d_name in pairs:  # every layer checked before any is copied
            s_shapes = {k: v.shape for k, v in s_mod.state_dict().items()}
            if s_shapes != {k: v.shape for k, v in d_mod.state_dict().items()}:
                raise AekitError(f"encoder layer {s_name} of the source ({source.config.preset}, "
                                 f"{source.config.arch}) does not fit layer {d_name} of this "
                                 f"model ({self.config.preset}, {self.config.arch}): other shapes")
        copied = []
        for s_mod, d_mod, _, d_name in pairs:
            d_mod.load_state_dict(s_mod.state_dict())
            if freeze:
                for p in d_mod.parameters():
                    p.requires_grad_(False)
            copied.append(d_name)
        # the source's normalisation comes with its layers, and fit() keeps it: the
        # transferred (maybe frozen) layers were trained on inputs scaled this way
        self.norm_shift.copy_(source.norm_shift)
        self.norm_scale.copy_(source.norm_scale)
        self.normalization_transferred = True
        return copied

    # -- persistence -----------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, summary: dict[str, Any] | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` atomically (temp file + rename)."""
        from safetensors.torch import save_file

        from aekit import __version__

        directory = Path(directory)
        meta = {"aekit_version": __version__, "config": self.config.to_dict(),
                "weights_sha256": "", "training": summary or {}}
        json_text(meta)  # a config or summary JSON cannot hold fails here, before any write
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        # both files are written in a staging folder and only then renamed in: a failure
        # while writing the second left new weights beside the old config before, a model
        # that no longer loaded (its checksum no longer matched). staged_dir makes the folder
        # (a file standing there is one clear error) and removes it again if the save fails
        with staged_dir(directory) as stage:
            # one metadata key: safetensors writes them in hash order, so two keys made the
            # bytes (and weights_sha256) of identical weights differ from save to save
            save_file(state, str(stage / WEIGHTS_NAME), metadata={"format": "pt"})
            meta["weights_sha256"] = sha256_file(stage / WEIGHTS_NAME)
            write_json_atomic(stage / CONFIG_NAME, meta)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> Autoencoder:
        """Load a saved model; refuses missing, truncated or tampered files with one message."""
        from safetensors.torch import load_file

        meta = read_model_meta(directory)
        weights = Path(directory) / WEIGHTS_NAME
        if not weights.is_file():
            raise ModelFileError(f"{weights} is missing")
        if meta.get("weights_sha256") and sha256_file(weights) != meta["weights_sha256"]:
            raise ModelFileError(f"{weights} does not match the checksum in {CONFIG_NAME}: "
                                 "the file is truncated or has been modified")
        from aekit.training import pick_device

        pick_device(map_location)  # a device that is not here: say so, not blame the file
        try:
            state = load_file(str(weights), device=map_location)
        except Exception as e:  # safetensors raises its own error types for bad headers
            raise ModelFileError(f"{weights} is not a valid safetensors file ({e})") from None
        try:
            model = cls(ModelConfig.from_dict(meta["config"]))
        except (TypeError, ValueError, KeyError, AekitError) as e:  # hand-edited or damaged
            detail = str(e) if isinstance(e, AekitError) else f"{e.__class__.__name__}: {e}"
            raise ModelFileError(f"{Path(directory) / CONFIG_NAME} does not describe a model "
                                 f"this aekit can build ({detail})") from None
        own = model.state_dict()
        # load_state_dict casts: weights rewritten as integers loaded truncated, and NaN
        # weights made every output NaN without a word
        for name, tensor in state.items():
            if name in own and own[name].is_floating_point() and (
                    not tensor.is_floating_point() or not torch.isfinite(tensor).all()):
                raise ModelFileError(f"{weights} does not fit its config: {name} is "
                                     + (f"{tensor.dtype}, not floating point"
                                        if not tensor.is_floating_point()
                                        else "not finite (NaN or inf)"))
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ModelFileError(f"{weights} does not fit its config: "
                                 f"{state_dict_mismatch(e)}") from None
        training = meta.get("training", {})
        model.training_summary = training if isinstance(training, dict) else {}
        return model.eval()


def state_dict_mismatch(e: RuntimeError) -> str:
    """One line from ``load_state_dict``'s error ("Error(s) in loading state_dict for …:"
    then a line per mismatch): the first mismatch, and how many more."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    first = lines[1] if len(lines) > 1 else lines[0] if lines else "unknown mismatch"
    more = f" (and {len(lines) - 2} more)" if len(lines) > 2 else ""
    return f"{first[:300]}{more}"


def read_model_meta(directory: str | Path) -> dict[str, Any]:
    folder = Path(directory)
    path = folder / CONFIG_NAME
    if not folder.is_dir():
        raise ModelFileError(f"{directory} is a file, not a model folder" if folder.exists()
                             else f"model directory {directory} does not exist")
    if not path.exists():
        from aekit.training import CHECKPOINT_NAME

        if (folder / CHECKPOINT_NAME).is_file():  # stopped before its model was saved
            raise ModelFileError(f"{directory} holds an unfinished training run (a checkpoint, no "
                                 f"saved model yet): continue it with `aekit train --resume "
                                 f"--out {directory}` and the same data and options")
    meta = read_json(path, "aekit config", error=ModelFileError,
                     missing=f"{path} is missing: not an aekit model directory")
    try:
        meta["config"]["input_shape"]
    except (KeyError, TypeError) as e:
        raise ModelFileError(f"{path} is not a valid aekit config ({e})") from None
    return meta


def sha256_file(path: str | Path) -> str:
    return file_digest(path, "sha256")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def input_numel(model: Autoencoder) -> int:
    return math.prod(model.input_shape)


# the restoration preset (`restore`) and its per-task overrides need PRESETS defined above
import aekit.presets_restore  # noqa: E402,F401
