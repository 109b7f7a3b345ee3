"""Anomaly detection by reconstruction error, in PyOD's manner.

    x ──autoencoder trained on (mostly) normal data──▶ x̂      score(x) = mean((x̂ − x)²)

in data space by default (``score_space="data"``: images in [0, 1], tables in their units);
``"normalized"`` scores in the model's standardised space instead, so no feature's units
dominate (better when features have unrelated units; on ECG5000, whose samples share one
unit, the data-space score ranked better: ROC-AUC 0.999 vs 0.988). As in PyOD (``pyod.models.auto_encoder``):

* ``fit(X)`` trains and sets ``decision_scores_`` (the training samples' scores, higher = more
  abnormal), ``threshold_`` (the ``1 − contamination`` quantile of them) and ``labels_`` (0
  inlier, 1 outlier);
* ``decision_function(X)`` scores new samples, ``predict(X)`` gives 0/1 and
  ``predict_proba(X)`` the outlier probability (linear through the threshold, or "unify",
  Kriegel et al. 2011).

Inputs: tabular rows (N, D); images (N, H, W) or (N, C, H, W) (uint8/uint16, or floats in [0, 1]
or [0, 255]; scored later as 8/16-bit or as the same kind of floats as at fit); time
series (T,) or (T, C) with ``window=W``: each sliding window of W steps is one sample
(:func:`sliding_windows`), and :func:`window_scores_to_points` maps window scores back to time
steps.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin

from aekit.data.arrays import ArrayData, dtype_scale
from aekit.errors import AekitError, DataError, ModelFileError, ParameterError, is_integer
from aekit.estimators import TRANSFORMER_PRESETS, forget_fit
from aekit.models import Autoencoder, create_model
from aekit.training import fit, split_indices

#: where ``threshold_`` comes from (see the class docstring)
THRESHOLD_ON = ("train", "held-out")
#: samples from which fit() holds out ``val_fraction`` (early stopping, a held-out threshold)
MIN_HELD_OUT_SAMPLES = 50
#: held-out scores a ``threshold_on="held-out"`` quantile needs (the 0.9 quantile of 5 scores,
#: what 50 samples gave, is mostly noise)
MIN_THRESHOLD_SCORES = 20


def window_starts(n_points: int, window: int, stride: int = 1) -> np.ndarray:
    """First time step of each window of a series of ``n_points`` steps: every ``stride``-th,
    plus one that ends on the last step when the stride does not land there (so with a stride
    up to the window every step is covered and scored; a longer stride leaves gaps, NaN in
    :func:`window_scores_to_points`)."""
    for name, v in (("n_points", n_points), ("window", window), ("stride", stride)):
        if not is_integer(v, 1):
            raise DataError(f"{name} must be an integer ≥ 1, got {v!r}")
    if n_points < window:
        raise DataError(f"the series has {n_points} steps, fewer than the window of {window}")
    starts = np.arange(0, n_points - window + 1, stride)
    if starts[-1] != n_points - window:
        starts = np.append(starts, n_points - window)
    return starts


def sliding_windows(series: np.ndarray, window: int, stride: int = 1) -> np.ndarray:
    """(T,) or (T, C) series → (n, window) or (n, window·C) windows (a copy, C-contiguous),
    starting at :func:`window_starts`."""
    s = np.asarray(series)
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2:
        raise DataError(f"a time series must be (T,) or (T, C), got shape {np.shape(series)}")
    starts = window_starts(len(s), window, stride)
    w = np.lib.stride_tricks.sliding_window_view(s, window, axis=0)[starts]  # (n, C, window)
    return np.ascontiguousarray(w.transpose(0, 2, 1).reshape(len(w), -1))


def window_scores_to_points(scores: np.ndarray, n_points: int, window: int,
                            stride: int = 1) -> np.ndarray:
    """Score of each time step: the highest score among the windows that cover it (the
    windows of :func:`sliding_windows` with the same ``window`` and ``stride``)."""
    starts = window_starts(n_points, window, stride)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != starts.shape:
        raise DataError(f"{n_points} steps in windows of {window} every {stride} make "
                        f"{len(starts)} windows, but {scores.size} scores were given "
                        f"(shape {scores.shape})")
    out = np.full(n_points, -np.inf)
    for s, sc in zip(starts, scores):
        np.maximum(out[s:s + window], sc, out=out[s:s + window])
    out[np.isinf(out)] = np.nan  # a stride longer than the window leaves steps no window covers
    return out


def tie_aware_threshold(scores: np.ndarray, contamination: float) -> float:
    """The (1 − contamination) quantile of ``scores``, moved below a run of equal scores at
    it when flagging the whole run (``score > threshold``) comes closer to the contamination
    share than flagging none of it: tied top scores (duplicated rows, a saturated score) were
    all left unflagged by a threshold equal to their value."""
    q = float(np.quantile(scores, 1.0 - contamination))
    if not np.any(scores == q):
        return q
    below = scores[scores < q]
    if len(below) == 0:  # every score is equal: nothing stands out
        return q
    target = contamination * len(scores)
    above, with_ties = int((scores > q).sum()), int((scores >= q).sum())
    if abs(with_ties - target) <= abs(above - target):
        return float((below.max() + q) / 2)
    return q


class AutoencoderOutlierDetector(OutlierMixin, BaseEstimator):
    """Outliers are what an autoencoder trained on the data reconstructs worst.

    Parameters are stored unchanged (scikit-learn manners); ``fit`` does the work.

    Parameters
    ----------
    preset : str, default="deep"
        The autoencoder (``aekit presets``; one whose output reconstructs the input:
        ``vanilla``, ``deep``, ``conv`` for images, ``sparse``, ``variational``, …).
    latent_dim : int, default=8
        Code size; must be smaller than the number of features.
    contamination : float in (0, 0.5], default=0.1
        Expected share of outliers: ``threshold_`` is the (1 − contamination) quantile of
        the scores named by ``threshold_on``.
    threshold_on : {"train", "held-out"}, default="train"
        ``"train"`` (PyOD's way): the training samples' scores, so ``labels_`` flags that
        share of them. New samples from the same distribution score higher than the ones
        the model was fitted on, so more of them are flagged (digits, 200 epochs: 10 % of
        the training set, 36 % of held-out digits). ``"held-out"``: the scores of the
        ``val_fraction`` of samples that training kept aside (at least 20 of them), so about
        that share of *new* data is flagged and fewer training samples are.
    epochs, batch_size, lr : training budget, batch and AdamW learning rate.
    window, stride : int or None
        Time series (T,) or (T, C): every ``window`` steps (every ``stride``-th window) is a
        sample.
    val_fraction : float, default=0.1
        Share held out for early stopping (``patience`` epochs without improvement), used
        when there are at least 50 samples.
    model_options : dict or None
        Overrides of the preset's config, e.g. ``{"arch_options": {"hidden": [64]}}``.
    score_space : {"data", "normalized"}, default="data"
        Where the squared error is measured (see the module docstring).
    seed : int, default=0
        Weights, split and batches follow it.
    device, verbose : where to train, and whether to show progress.

    Attributes
    ----------
    decision_scores_ : ndarray (N,) — the training samples' scores (higher = more abnormal).
    threshold_ : float — the (1 − contamination) quantile of ``decision_scores_`` (of the
        held-out samples' among them with ``threshold_on="held-out"``); where equal scores
        sit at it, just below them if flagging them all comes closer to ``contamination``
        (:func:`tie_aware_threshold`).
    labels_ : ndarray (N,) of 0 (inlier) / 1 (outlier) — PyOD's convention, not
        scikit-learn's +1 / −1: ``predict`` returns the same 0/1.
    model_ : the trained :class:`aekit.models.Autoencoder`.
    n_features_in_, feature_names_in_ (DataFrames), fit_summary_.
    """

    def __init__(self, preset: str = "deep", latent_dim: int = 8, contamination: float = 0.1,
                 epochs: int = 100, batch_size: int = 64, lr: float = 1e-3,
                 window: int | None = None, stride: int = 1, val_fraction: float = 0.1,
                 patience: int | None = 20, model_options: dict[str, Any] | None = None,
                 score_space: str = "data", seed: int = 0, device: str = "cpu", verbose: bool = False,
                 threshold_on: str = "train") -> None:
        self.preset = preset
        self.latent_dim = latent_dim
        self.contamination = contamination
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.window = window
        self.stride = stride
        self.val_fraction = val_fraction
        self.patience = patience
        self.model_options = model_options
        self.score_space = score_space
        self.seed = seed
        self.device = device
        self.verbose = verbose
        self.threshold_on = threshold_on

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # taken, densified (an autoencoder's input is dense)
        return tags

    # -- inputs ----------------------------------------------------------------------------
    def _samples(self, X: Any, fitting: bool = False) -> ArrayData:
        if isinstance(X, ArrayData):
            if self.window:
                return self._samples(X.x, fitting)
            scale = None if fitting else self._scale_for(X.x)
            if scale is None or scale == X.scale:
                return X
            # the scale fixed at fit, not the one guessed from the data being scored (the
            # CLI passes ArrayData: `anomaly score` used the file's own guess)
            return ArrayData(X.x, X.y, name=X.name, layout=X.layout, scale=scale, index=X.index)
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        names = getattr(X, "columns", None)
        if names is not None:  # a DataFrame: its columns must be the ones seen at fit
            names = [str(c) for c in names]
            if fitting:
                self.feature_names_in_ = np.asarray(names, dtype=object)
            elif getattr(self, "feature_names_in_", None) is not None \
                    and list(self.feature_names_in_) != names:
                raise DataError(f"X's columns {names[:5]}… are not the "
                                f"{len(self.feature_names_in_)} columns the detector was "
                                "fitted on, in that order")
        if hasattr(X, "to_numpy"):  # pandas' nullable dtypes (Float64 with NA) → NaN
            X = X.to_numpy(dtype=np.float64, na_value=np.nan)
        elif hasattr(X, "toarray"):  # a scipy sparse matrix
            X = X.toarray()
        X = np.asarray(X)
        if X.dtype == object:  # numbers held as Python objects: taken if they all convert
            try:
                X = X.astype(np.float64)
            except (TypeError, ValueError):
                raise DataError("X must be numeric; it holds objects that are not numbers") from None
        if np.iscomplexobj(X):
            raise DataError("X is complex; give real features (e.g. np.abs(X), or the real "
                            "and imaginary parts as separate columns)")
        if not np.issubdtype(X.dtype, np.number):
            raise DataError(f"X must be numeric, got dtype {X.dtype}")
        if X.ndim == 1 and not self.window:
            raise DataError("X is 1-D: give (n_samples, n_features), or set window= for a series")
        if len(X) == 0:
            raise DataError(f"X has 0 samples (shape {X.shape}); at least 1 is needed")
        # NaN, inf, float64 beyond float32: the sample (for a series, the time step) named
        ArrayData(X if X.ndim > 1 else X[:, None], name="X").validate()
        if self.window:
            X = sliding_windows(X, int(self.window), int(self.stride))
        if X.dtype != np.uint8:
            X = X.astype(np.float32, copy=False)
        # the scale of image-shaped data is fixed at fit: guessed per call from the call's own
        # maximum, one sample's score depended on what else was in the batch
        return ArrayData(X, name="X", scale=None if fitting else self._scale_for(X))

    def _scale_for(self, x: np.ndarray) -> float | None:
        """The factor to data space of samples scored after fit: the fit's, except that 8- and
        16-bit images in pixel units are exact by their dtype (a detector fitted on [0, 1]
        floats scores PNGs right); float images given to one fitted on integer images are
        ambiguous ([0, 1] or [0, 255]?) and refused."""
        fixed = getattr(self, "data_scale_", None)
        if fixed is None or x.ndim < 3 or self.model_.config.normalization != "unit":
            return fixed
        exact = dtype_scale(x.dtype)
        if exact is not None:
            return exact
        if getattr(self, "input_integer_", False):
            raise DataError(f"the detector was fitted on integer (8/16-bit) images; X is "
                            f"{x.dtype}: give it as at fit, e.g. (X * 255).round()"
                            ".astype(np.uint8) for [0, 1] floats")
        return fixed

    def _check_params(self) -> None:
        for name in ("contamination", "lr", "val_fraction"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
                raise ParameterError(f"{name} must be a number, got {v!r}")
        for name in ("latent_dim", "epochs", "batch_size", "stride", "seed"):
            v = getattr(self, name)
            if not is_integer(v):
                raise ParameterError(f"{name} must be an integer, got {v!r}")
        if not 0 < self.contamination <= 0.5:
            raise ParameterError(f"contamination must be in (0, 0.5], got {self.contamination}")
        if self.preset not in TRANSFORMER_PRESETS:  # its reconstruction must score a sample
            raise ParameterError(f"preset must be one of {', '.join(TRANSFORMER_PRESETS)}, got "
                                 f"{self.preset!r}")
        if self.threshold_on not in THRESHOLD_ON:
            raise ParameterError(f"threshold_on must be one of {', '.join(THRESHOLD_ON)}, got "
                                 f"{self.threshold_on!r}")
        if self.score_space not in ("data", "normalized"):
            raise ParameterError(f"score_space must be 'data' or 'normalized', got {self.score_space!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.latent_dim < 1:
            raise ParameterError("epochs, batch_size and latent_dim must be ≥ 1")

    def _check_fitted(self) -> None:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, ["model_", "threshold_"])

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> AutoencoderOutlierDetector:
        """Train on X (unsupervised; ``y`` is ignored) and set the attributes above."""
        try:
            return self._fit(X)
        except BaseException:
            forget_fit(self)  # unfitted, not a new n_features_in_ beside the old model
            raise

    def _fit(self, X: Any) -> AutoencoderOutlierDetector:
        self._check_params()
        for name in ("data_scale_", "feature_names_in_", "input_integer_"):
            self.__dict__.pop(name, None)  # a refit starts afresh
        data = self._samples(X, fitting=True)
        if len(data) < 2:  # the threshold is a quantile of the training scores: one says nothing
            raise DataError(f"X has {len(data)} sample{'s' if len(data) != 1 else ''}; a detector "
                            "needs at least 2 to learn what is normal and set its threshold")
        # fit() holds out val_fraction for early stopping from 50 samples on (below, a
        # handful of samples would decide when to stop)
        val_fraction = self.val_fraction if len(data) >= MIN_HELD_OUT_SAMPLES else 0.0
        held_out = split_indices(len(data), val_fraction, int(self.seed))[1]
        n_held = 0 if held_out is None else len(held_out)
        if self.threshold_on == "held-out" and n_held < MIN_THRESHOLD_SCORES:
            raise ParameterError(
                f"a held-out threshold needs at least {MIN_THRESHOLD_SCORES} held-out samples "
                f"(a quantile of fewer is mostly noise); {len(data)} samples with a held-out "
                f"share of {self.val_fraction:g} give {n_held}: give more samples")
        overrides: dict[str, Any] = dict(self.model_options or {})
        unit = data.is_image and data.in_unit_range()
        if not unit:  # tables, and image-shaped data that is not in [0, 1] (a sigmoid output
            data.scale = 1.0  # could not reproduce negatives): standardised, in its own units
            overrides.setdefault("normalization", "standard")
        if self.latent_dim >= math.prod(data.input_shape):
            raise ParameterError(f"latent_dim={self.latent_dim} must be smaller than the "
                                 f"{math.prod(data.input_shape)} features: a code as large as "
                                 "the input can copy it, and every sample would score low")
        self.data_scale_ = data.scale
        self.input_integer_ = bool(data.is_image and np.issubdtype(data.x.dtype, np.integer))
        # the weights follow ``seed`` too (they were drawn before fit() seeded), and the
        # caller's global torch generator is left as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seed))
            model = create_model(self.preset, data.input_shape, self.latent_dim, **overrides)
            result = fit(model, data, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                         val_fraction=val_fraction,
                         patience=self.patience, seed=self.seed, device=self.device,
                         progress=self.verbose)
        self.model_ = model.cpu().eval()
        self.fit_summary_ = result.summary()
        self.n_features_in_ = self._n_features(model)
        self.decision_scores_ = self._scores(data)
        self._set_threshold(held_out if self.threshold_on == "held-out" else None)
        return self

    def _n_features(self, model: Autoencoder) -> int:
        """scikit-learn's ``n_features_in_``: the columns of the X given to fit (for a series,
        its channels, not the window's values)."""
        return math.prod(model.input_shape) // (int(self.window) if self.window else 1)

    def _set_threshold(self, among: np.ndarray | None = None) -> None:
        """``threshold_`` from the scores of the samples ``among`` (default all), ``labels_``
        and the score statistics ``predict_proba`` scales by."""
        s = self.decision_scores_
        self.threshold_ = tie_aware_threshold(s if among is None else s[among], self.contamination)
        self.labels_ = (s > self.threshold_).astype(np.int64)
        self._score_stats = (float(s.min()), float(s.max()), float(s.mean()), float(s.std()))

    @torch.no_grad()
    def _scores(self, data: ArrayData, batch_size: int = 1024) -> np.ndarray:
        model = self.model_
        if tuple(data.input_shape) != model.input_shape:
            raise DataError(f"samples have shape {tuple(data.input_shape)} but the detector was "
                            f"fitted on {model.input_shape}")
        out = []
        space = model.normalize if self.score_space == "normalized" else (lambda t: t)
        for xb in data.iter_batches(batch_size):
            err = space(model.reconstruct(xb)) - space(xb)
            out.append(err.pow(2).flatten(1).mean(1).double().numpy())
        return np.concatenate(out)

    # -- scoring ---------------------------------------------------------------------------
    def decision_function(self, X: Any) -> np.ndarray:
        """Outlier score of each sample (mean squared reconstruction error); higher = worse."""
        self._check_fitted()
        return self._scores(self._samples(X))

    def score_samples(self, X: Any) -> np.ndarray:
        """scikit-learn's sign convention: higher = more normal (the negated score)."""
        return -self.decision_function(X)

    def predict(self, X: Any) -> np.ndarray:
        """0 for inliers, 1 for outliers (score above ``threshold_``)."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X).labels_

    def predict_proba(self, X: Any, method: str = "linear") -> np.ndarray:
        """(N, 2): probability of inlier, outlier. ``linear`` scales the score linearly
        from the training scores' minimum (0) to ``threshold_`` (0.5) and on to their maximum
        (1), so the more probable class is what :meth:`predict` says (PyOD's min–max scaling
        put 0.5 midway between the extremes, far from the threshold, and disagreed with its
        own predict); ``unify`` is the Gaussian-scaled score of Kriegel et al. (2011), as in
        PyOD, which knows nothing of the threshold."""
        scores = self.decision_function(X)
        lo, hi, mean, std = self._score_stats
        if method == "linear":
            t = self.threshold_
            below, above = t - lo, hi - t  # (a zero width only when every score is equal)
            p = np.where(scores <= t, 0.5 * (scores - lo) / (below if below > 0 else 1.0),
                         0.5 + 0.5 * (scores - t) / (above if above > 0 else 1.0))
            p = np.clip(p, 0, 1)
        elif method == "unify":
            from scipy.special import erf

            p = np.clip(erf((scores - mean) / (max(std, 1e-12) * math.sqrt(2))), 0, 1)
        else:
            raise ParameterError(f"method must be 'linear' or 'unify', got {method!r}")
        return np.stack([1 - p, p], axis=1)

    # -- files -----------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """The model plus the detector's state (in the model config's ``extra``)."""
        self._check_fitted()
        self.model_.config.extra["detector"] = {
            "params": {k: v for k, v in self.get_params().items()},
            "threshold": self.threshold_, "score_stats": list(self._score_stats),
            "n_train": len(self.decision_scores_), "data_scale": self.data_scale_,
            "input_integer": self.input_integer_,
            "feature_names_in": (None if getattr(self, "feature_names_in_", None) is None
                                 else [str(c) for c in self.feature_names_in_])}
        return self.model_.save_pretrained(directory, summary=self.fit_summary_)

    @classmethod
    def load(cls, directory: str | Path) -> AutoencoderOutlierDetector:
        """A detector saved by :meth:`save` (weights checked against their digest, state
        checked; nothing is unpickled): it scores new data exactly as the saved one did."""
        model = Autoencoder.from_pretrained(directory)
        state = model.config.extra.get("detector")
        if not state:
            raise AekitError(f"{directory} is a model but not an anomaly detector "
                             "(train one with `aekit anomaly fit`)")
        try:
            det = cls(**state["params"])
            det._check_params()
            det.model_ = model
            det.threshold_ = float(state["threshold"])
            det._score_stats = tuple(float(v) for v in state["score_stats"])
            if not math.isfinite(det.threshold_) or len(det._score_stats) != 4 \
                    or not all(map(math.isfinite, det._score_stats)):
                raise ValueError("threshold and the four score_stats must be finite numbers")
            if state.get("data_scale") is not None:  # (saved before it was kept: None)
                det.data_scale_ = float(state["data_scale"])
            det.input_integer_ = bool(state.get("input_integer", False))
            if state.get("feature_names_in"):
                det.feature_names_in_ = np.asarray(state["feature_names_in"], dtype=object)
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # hand-edited, damaged
            raise ModelFileError(f"{directory}: the saved detector's state is damaged "
                                 f"({e.__class__.__name__}: {e})") from None
        det.fit_summary_ = getattr(model, "training_summary", {})
        det.n_features_in_ = det._n_features(model)
        return det
