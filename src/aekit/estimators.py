"""scikit-learn estimators over any aekit preset.

``AutoencoderTransformer`` stands exactly where ``PCA`` stands::

    PCA(n_components=8)                      AutoencoderTransformer(n_components=8, preset="deep")
      transform          = project             transform          = encode
      inverse_transform  = back-project        inverse_transform  = decode
      score_samples      = log-likelihood      score_samples      = − squared error per sample

Inputs are 2-D tabular arrays ``(n_samples, n_features)`` (standardised per feature inside the
model) or image arrays ``(N, H, W)`` / ``(N, C, H, W)`` (kept in [0, 1] with a sigmoid output
when they lie there, standardised otherwise). ``transform`` always returns ``(N, n_components)``
and ``inverse_transform`` returns the input's own shape.

The shared base :class:`AutoencoderEstimatorBase` holds input checking, training, batched
inference and saving, so other estimators (an outlier detector) only add their own API.
Saving uses the core format (``config.json`` + ``model.safetensors``, no pickle); the
estimator's parameters travel in ``config.extra["sklearn"]``.
"""

from __future__ import annotations

import time
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from aekit.data.arrays import FLOAT32_MAX, ArrayData, beyond_float32
from aekit.errors import AekitError
from aekit.models import PRESETS, Autoencoder, preset_config
from aekit.training import fit as fit_model

__all__ = ["AutoencoderEstimatorBase", "AutoencoderTransformer"]

SKLEARN_KEY = "sklearn"
#: the epoch budget when none is given; early stopping (``patience``) ends most fits before
#: it. benchmarks/estimator_budget.py (digits, 8 components, deep, median of 3 seeds): 30
#: epochs gave held-out squared error 376 per image (PCA 402), this budget 232 (114 epochs
#: run, 2.6 s)
DEFAULT_MAX_EPOCHS = 200


#: architectures whose code is not an (N, n_components) feature vector, or whose training
#: needs its job's own steps: the codec (a spatial, quantized latent), the restoration U-Net
#: (a spatial code) and the bag-of-words models (vocabulary, word vectors; ``aekit topics``)
NOT_A_TRANSFORMER = ("codec", "unet", "bow")
#: the presets an estimator takes
TRANSFORMER_PRESETS = tuple(n for n in PRESETS.names()
                            if PRESETS.get(n).get("arch") not in NOT_A_TRANSFORMER)


def json_params(estimator: BaseEstimator) -> dict[str, Any]:
    """``get_params`` in a form JSON holds: a NumPy integer seed (a grid's, ``np.arange``'s)
    as an int; a RandomState object, which has no JSON form, as None."""
    params = estimator.get_params(deep=False)
    seed = params.get("random_state")
    if isinstance(seed, Integral) and not isinstance(seed, bool):
        params["random_state"] = int(seed)
    elif seed is not None:
        params["random_state"] = None
    return params


def forget_fit(estimator: BaseEstimator) -> None:
    """Drop every fitted (``name_``) attribute: a fit that fails leaves the estimator
    unfitted (``NotFittedError``), not a new ``n_features_in_`` beside the old model."""
    for name in [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]:
        delattr(estimator, name)


class AutoencoderEstimatorBase(BaseEstimator):
    """Parameters, checks, training and inference shared by the aekit estimators.

    Subclasses list their parameters in ``__init__`` (scikit-learn reads the signature)."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "preset": [StrOptions(set(TRANSFORMER_PRESETS))],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "max_minutes": [Interval(Real, 0, None, closed="neither"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "normalization": [StrOptions({"auto", "unit", "standard"})],
        "loss": [StrOptions({"auto", "mse", "bce"})],
        "model_options": [dict, None],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["boolean"],
    }
    #: checks of ``sklearn.utils.estimator_checks`` expected to fail, with the reason
    #: (pass to ``parametrize_with_checks(expected_failed_checks=...)``); keep it short
    _xfail_checks: ClassVar[dict[str, str]] = {}

    # -- input -----------------------------------------------------------------------------
    def _check_X(self, X: Any, reset: bool) -> np.ndarray:
        """Validated float array; on ``reset`` remember the per-sample shape."""
        X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32], allow_nd=True)
        if X.ndim > 4:
            raise ValueError(f"Expected 2-D (n_samples, n_features), 3-D (N, H, W) or 4-D "
                             f"(N, C, H, W) input, got an array with {X.ndim} dimensions.")
        big = beyond_float32(X)
        if big.any():
            raise ValueError(f"Input X contains values beyond float32's range (±{FLOAT32_MAX:.3g}), "
                             f"in which the model computes (sample {int(np.argmax(big))}); rescale X.")
        if reset:
            self.input_shape_ = tuple(int(s) for s in X.shape[1:])
        elif tuple(X.shape[1:]) != self.input_shape_:
            raise ValueError(f"X has samples of shape {tuple(X.shape[1:])}, but "
                             f"{self.__class__.__name__} was fitted on samples of shape "
                             f"{self.input_shape_}.")
        return X

    def _channels_last(self) -> bool:
        """(N, H, W, C) images, told apart from (N, C, H, W) as ``aekit.data`` does."""
        from aekit.data.arrays import infer_layout

        if len(self.input_shape_) != 3:
            return False
        try:
            return infer_layout((1, *self.input_shape_)) == "NHWC"
        except AekitError:  # no channel-like axis: channels first, as the shape says
            return False

    def _model_shape(self) -> tuple[int, ...]:
        s = self.input_shape_
        if self._channels_last():
            return (s[2], s[0], s[1])
        return (1, *s) if len(s) == 2 else s  # (H, W) → one channel; (D,) and (C, H, W) stay

    def _as_model_input(self, X: np.ndarray) -> np.ndarray:
        if self._channels_last():
            X = X.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(X, dtype=np.float32).reshape(len(X), *self._model_shape())

    def _resolved_normalization(self, X: np.ndarray) -> str:
        if self.normalization != "auto":
            return self.normalization
        if X.ndim >= 3 and float(X.min()) >= 0.0 and float(X.max()) <= 1.0:
            return "unit"
        return "standard"

    # -- training --------------------------------------------------------------------------
    def _fit_autoencoder(self, X: np.ndarray) -> Autoencoder:
        """Build the preset for X's shape and train it; sets the fitted ``*_`` attributes."""
        n_features = int(np.prod(X.shape[1:]))
        if self.n_components > n_features:
            raise ValueError(f"n_components={self.n_components} must be between 1 and "
                             f"n_features={n_features}: an undercomplete code is smaller than "
                             "the input.")
        shape = self._model_shape()
        overrides = dict(self.model_options or {})
        given_elsewhere = {"latent_dim": "n_components", "input_shape": "the shape of X",
                           "preset": "the preset parameter"}
        clash = sorted(given_elsewhere.keys() & overrides.keys())
        if clash:
            raise ValueError(f"model_options cannot set {clash[0]}: it is "
                             f"{given_elsewhere[clash[0]]}")
        overrides.setdefault("normalization", self._resolved_normalization(X))
        if self.loss == "bce" and overrides["normalization"] != "unit":
            raise ValueError("loss='bce' needs data kept in [0, 1] with a sigmoid output (images "
                             "in [0, 1], normalization='unit'); this data is standardised: use "
                             "loss='auto' or 'mse'")
        overrides.setdefault("loss", self.loss)
        if PRESETS.get(self.preset).get("arch") == "conv" and len(shape) != 3:
            raise ValueError(f"preset {self.preset!r} needs image input (N, H, W) or (N, C, H, W); "
                             f"got samples of shape {self.input_shape_}.")
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        # model init and training draw from torch's global generator: seed it for repeatable
        # fits, and leave the caller's generator as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            try:
                config = preset_config(self.preset, shape, self.n_components, **overrides)
                model = Autoencoder(config)
            except (TypeError, ValueError, KeyError, IndexError, AekitError) as e:  # options that build nothing
                raise ValueError(f"preset {self.preset!r} with model_options "
                                 f"{self.model_options!r} does not build a model: "
                                 f"{e.__class__.__name__}: {e}") from None
            data = ArrayData(self._as_model_input(X), layout="ND" if len(shape) == 1 else "NCHW",
                             scale=1.0, name="X")
            epochs = self.max_epochs
            if epochs is None and self.max_minutes is None:
                epochs = DEFAULT_MAX_EPOCHS
            t0 = time.perf_counter()
            result = fit_model(model, data, epochs=epochs, minutes=self.max_minutes,
                               batch_size=self.batch_size, lr=self.learning_rate,
                               weight_decay=self.weight_decay,
                               val_fraction=self.validation_fraction, patience=self.patience,
                               seed=seed, device=self.device, progress=bool(self.verbose))
            self.fit_time_ = time.perf_counter() - t0
        model.eval()
        self.model_ = model
        self.history_ = result.history
        self.n_iter_ = result.epochs
        self.best_epoch_ = result.best_epoch
        return model

    # -- inference -------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return next(self.model_.parameters()).device

    @torch.no_grad()
    def _encode(self, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        xm = self._as_model_input(X)
        out = [self.model_.encode(torch.from_numpy(xm[s:s + batch_size]).to(self._device()))
               .flatten(1).cpu().numpy() for s in range(0, len(xm), batch_size)]
        return np.concatenate(out).astype(X.dtype, copy=False)

    @torch.no_grad()
    def _decode(self, Z: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        zt = np.ascontiguousarray(Z, dtype=np.float32)
        out = [self.model_.decode(torch.from_numpy(zt[s:s + batch_size]).to(self._device()))
               .cpu().numpy() for s in range(0, len(zt), batch_size)]
        rec = np.concatenate(out) if out else np.empty((0, *self._model_shape()), np.float32)
        rec = rec.reshape(len(Z), *self._model_shape())
        if self._channels_last():
            rec = rec.transpose(0, 2, 3, 1)
        return rec.reshape(len(Z), *self.input_shape_).astype(Z.dtype, copy=False)

    def _squared_error(self, X: np.ndarray) -> np.ndarray:
        """Summed squared reconstruction error per sample, in data space."""
        rec = self._decode(self._encode(X))
        diff = rec.astype(np.float64) - X.astype(np.float64)
        return (diff.reshape(len(X), -1) ** 2).sum(1)

    # -- persistence -----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the fitted estimator as an aekit model directory (safetensors + JSON)."""
        check_is_fitted(self)
        params = json_params(self)
        fitted = {"input_shape": list(self.input_shape_), "n_features_in": self.n_features_in_,
                  "n_iter": self.n_iter_, "best_epoch": self.best_epoch_,
                  "fit_time": self.fit_time_}
        if hasattr(self, "feature_names_in_"):  # fitted on a DataFrame: columns checked later
            fitted["feature_names_in"] = [str(c) for c in self.feature_names_in_]
        model = self.model_
        model.config.extra[SKLEARN_KEY] = {"class": self.__class__.__name__, "params": params,
                                           "fitted": fitted, **self._extra_state()}
        try:
            return model.save_pretrained(directory, summary={"history": self.history_})
        finally:
            model.config.extra.pop(SKLEARN_KEY, None)

    @classmethod
    def load(cls, directory: str | Path):
        """Load an estimator written by :meth:`save`."""
        from aekit.errors import ModelFileError

        model = Autoencoder.from_pretrained(directory)
        meta = model.config.extra.pop(SKLEARN_KEY, None)
        if not isinstance(meta, dict) or meta.get("class") != cls.__name__:
            raise ModelFileError(f"{directory} does not hold a saved {cls.__name__}")
        try:
            est = cls(**meta["params"])
            fitted = meta["fitted"]
            est.model_ = model
            est.input_shape_ = tuple(int(v) for v in fitted["input_shape"])
            est.n_features_in_ = int(fitted["n_features_in"])
            est.n_iter_ = fitted["n_iter"]
            est.best_epoch_ = fitted["best_epoch"]
            est.fit_time_ = fitted["fit_time"]
            if "feature_names_in" in fitted:
                est.feature_names_in_ = np.asarray(fitted["feature_names_in"], dtype=object)
            est.history_ = model.training_summary.get("history", [])
            est._load_extra_state(meta)
            if est._model_shape() != model.input_shape:
                raise ValueError(f"input shape {est.input_shape_} does not match the model's "
                                 f"{model.input_shape}")
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # hand-edited, damaged
            raise ModelFileError(f"{directory}: the saved {cls.__name__}'s state is damaged "
                                 f"({e.__class__.__name__}: {e})") from None
        return est

    def _extra_state(self) -> dict[str, Any]:
        """Subclasses: more fitted state to save (JSON-able)."""
        return {}

    def _load_extra_state(self, meta: dict[str, Any]) -> None:
        """Subclasses: restore what :meth:`_extra_state` saved."""


class AutoencoderTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                             AutoencoderEstimatorBase):
    """A scikit-learn transformer whose ``transform`` is an autoencoder's encoder.

    Parameters
    ----------
    n_components : int, default=2
        Code size (``latent_dim``), as in ``PCA(n_components=…)``.
    preset : str, default="deep"
        Any name from ``aekit presets``: ``vanilla`` (one layer each way, PCA's
        non-linear twin), ``deep``, ``conv`` (image input only), ``sparse``, ``variational``, …
    max_epochs : int or None, default=None
        Epoch budget (DEFAULT_MAX_EPOCHS = 200 when neither this nor ``max_minutes`` is
        given; early stopping usually ends training well before).
    max_minutes : float or None, default=None
        Wall-clock budget in minutes.
    batch_size, learning_rate, weight_decay : training settings of :func:`aekit.fit`.
    validation_fraction : float, default=0.1
        Share held out for early stopping (the best epoch's weights are kept).
    patience : int or None, default=20
        Early-stopping patience in epochs (None: off).
    normalization : {"auto", "unit", "standard"}, default="auto"
        "auto": images in [0, 1] keep that range (sigmoid output), anything else is
        standardised per feature.
    loss : {"auto", "mse", "bce"}, default="auto"
        "auto": the preset's own choice, cross-entropy where the output is a sigmoid (images
        kept in [0, 1]), squared error otherwise; "bce" needs such an output.
    model_options : dict or None
        Overrides of the preset's config, e.g. ``{"arch_options": {"hidden": [256, 64]}}``.
    device : str, default="cpu"
        "cpu", "cuda", "mps" or "auto".
    random_state : int, RandomState or None
        Seeds weight initialisation, the validation split and batch order.
    verbose : bool, default=False
        Show a progress bar while fitting.

    Attributes
    ----------
    model_ : aekit.Autoencoder — the trained model (``encode``/``decode``/``layer_outputs``).
    n_features_in_, input_shape_ : what ``fit`` saw (``input_shape_`` is one sample's shape).
    history_ : list of per-epoch metric dicts; n_iter_ : epochs run; best_epoch_; fit_time_.
    """

    _xfail_checks: ClassVar[dict[str, str]] = {}

    def __init__(self, n_components: int = 2, *, preset: str = "deep",
                 max_epochs: int | None = None, max_minutes: float | None = None,
                 batch_size: int = 128, learning_rate: float = 2e-3, weight_decay: float = 1e-4,
                 validation_fraction: float = 0.1, patience: int | None = 20,
                 normalization: str = "auto", loss: str = "auto",
                 model_options: dict[str, Any] | None = None, device: str = "cpu",
                 random_state: Any = None, verbose: bool = False) -> None:
        self.n_components = n_components
        self.preset = preset
        self.max_epochs = max_epochs
        self.max_minutes = max_minutes
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.normalization = normalization
        self.loss = loss
        self.model_options = model_options
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # (N, H, W) and (N, C, H, W) images
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self) -> int:
        # the fitted code's size: set_params(n_components=…) takes effect at the next fit
        check_is_fitted(self)
        return self.model_.config.latent_dim

    def fit(self, X: Any, y: Any = None) -> AutoencoderTransformer:
        """Train the autoencoder to reconstruct X (y is ignored)."""
        self._validate_params()
        try:
            self._fit_autoencoder(self._check_X(X, reset=True))
        except BaseException:
            forget_fit(self)
            raise
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The code of each sample, shape (n_samples, n_components)."""
        check_is_fitted(self)
        return self._encode(self._check_X(X, reset=False))

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Decode codes back to data space, in the shape of the samples ``fit`` saw."""
        check_is_fitted(self)
        Z = check_array(X, dtype=[np.float64, np.float32])
        if Z.shape[1] != self._n_features_out:
            raise ValueError(f"X has {Z.shape[1]} features, but inverse_transform expects the "
                             f"{self._n_features_out} code features of the fitted model.")
        return self._decode(Z)

    def score_samples(self, X: Any) -> np.ndarray:
        """Negative summed squared reconstruction error of each sample (higher is better)."""
        check_is_fitted(self)
        return -self._squared_error(self._check_X(X, reset=False))

    def score(self, X: Any, y: Any = None) -> float:
        """Mean of :meth:`score_samples`: the negative squared error per sample."""
        return float(np.mean(self.score_samples(X)))
