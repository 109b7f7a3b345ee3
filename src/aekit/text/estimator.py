"""``TopicModel``: aekit's topic models behind scikit-learn's ``LatentDirichletAllocation`` API.

    LatentDirichletAllocation(n_components=20)     TopicModel(n_components=20)
      fit(counts)                                     fit(texts)  or  fit(counts)
      transform(counts) → (N, K) topic mixtures       transform(texts | counts) → θ (N, K)
      components_ (K, V) topic–word weights           components_ (K, V), rows sum to 1

It trains what ``aekit topics`` trains (:func:`aekit.text.modelling.train_topic_model`), and
fitted on texts it keeps its vocabulary, so new texts are counted as the training texts were.
``save``/``load`` use the folder ``aekit topics --out`` writes (``config.json``,
``model.safetensors``, ``vocab.json``; no pickle): ``TopicModel.load`` opens such a run too.
"""

from __future__ import annotations

import time
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

from aekit.errors import DataError, ModelFileError
from aekit.text.vocab import VOCAB_NAME, Vocabulary, build_vocabulary, check_texts

__all__ = ["TopicModel"]

SKLEARN_KEY = "sklearn"


def _is_texts(X: Any) -> bool:
    """Documents (strings) rather than a count matrix."""
    if isinstance(X, (str, bytes)):
        return True  # check_texts refuses a single string with a hint
    if sp.issparse(X):
        return False
    if isinstance(X, np.ndarray):  # a column of strings; a 2-D object array is counts
        return X.ndim == 1 and X.dtype.kind in "OUS"
    if hasattr(X, "dtype") and hasattr(X, "to_numpy"):  # a pandas Series or frame
        return getattr(X, "ndim", 1) == 1
    if isinstance(X, (list, tuple)) and not X:
        return True  # no documents: (0, K) from transform, "no vocabulary" from fit
    try:
        first = next(iter(X))
    except (TypeError, StopIteration):
        return False
    return isinstance(first, str)


class TopicModel(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """A neural topic model (``topic``: ProdLDA with embedding clustering, or ``prodlda``)
    with scikit-learn's transformer API.

    Parameters
    ----------
    n_components : int, default=10
        Number of topics K (≥ 2), as in ``LatentDirichletAllocation(n_components=…)``; like
        it, more topics than words are allowed (``aekit topics`` refuses them: they repeat).
    preset : {"topic", "prodlda"}, default="topic"
    vocab_size, min_df, max_df, stop_words
        The vocabulary built when ``fit`` is given texts (``aekit topics``'s ``--vocab-size``,
        ``--min-df``, ``--max-df``, ``--stop-words``). Unused when it is given counts.
    max_epochs : int or None, default=None
        Epochs (None: 100, the ``aekit topics`` default, unless ``max_minutes`` is given).
    max_minutes : float or None, default=None
        Wall-clock budget in minutes.
    restarts : int, default=1
        Train this many models and keep the one whose topics are the most coherent on the
        training documents (``aekit topics --restarts``).
    device : str, default="cpu"
    random_state : int, RandomState or None
        Seeds the model's initialisation and training; an int is the seed of
        ``aekit topics --seed`` (the same texts and settings give the same topics).
    verbose : bool, default=False
        Show a progress bar while fitting.

    Attributes
    ----------
    model_ : aekit.Autoencoder — the trained model (its encoder gives θ).
    vocabulary_ : aekit.text.Vocabulary or None — the words (None when fitted on counts).
    components_ : (K, V) array — each topic's word distribution (rows sum to 1).
    n_features_in_ : V, the vocabulary's size. n_iter_ : epochs run. fit_time_ : seconds.
    """

    #: scikit-learn checks (``parametrize_with_checks``) expected to fail, and why
    _xfail_checks: ClassVar[dict[str, str]] = dict.fromkeys(
        ("check_dont_overwrite_parameters", "check_methods_sample_order_invariance",
         "check_methods_subset_invariance", "check_fit2d_1sample", "check_fit2d_1feature",
         "check_fit2d_predict1d"),
        "the check sets n_components=1; a topic model needs 2 or more topics (θ = softmax of "
        "one value is constant, and the logistic-normal prior has zero variance at K = 1)")

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_components": [Interval(Integral, 2, None, closed="left")],
        "preset": [StrOptions({"topic", "prodlda"})],
        "vocab_size": [Interval(Integral, 2, None, closed="left")],
        "min_df": [Interval(Real, 0, None, closed="left")],
        "max_df": [Interval(Real, 0, None, closed="neither")],
        "stop_words": [StrOptions({"english"}), None],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "max_minutes": [Interval(Real, 0, None, closed="neither"), None],
        "restarts": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["boolean"],
    }

    def __init__(self, n_components: int = 10, *, preset: str = "topic", vocab_size: int = 2000,
                 min_df: float = 2, max_df: float = 0.5, stop_words: str | None = "english",
                 max_epochs: int | None = None, max_minutes: float | None = None,
                 restarts: int = 1, device: str = "cpu", random_state: Any = None,
                 verbose: bool = False) -> None:
        self.n_components = n_components
        self.preset = preset
        self.vocab_size = vocab_size
        self.min_df = min_df
        self.max_df = max_df
        self.stop_words = stop_words
        self.max_epochs = max_epochs
        self.max_minutes = max_minutes
        self.restarts = restarts
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- input -----------------------------------------------------------------------------
    def _counts(self, X: Any, fitting: bool = False):
        """X as a (N, V) count matrix in the model's vocabulary: texts are counted with it."""
        from aekit.text.modelling import as_counts

        if _is_texts(X):
            texts = check_texts(X.tolist() if hasattr(X, "tolist") else X)
            if fitting:
                self.vocabulary_ = build_vocabulary(texts, self.vocab_size, self.min_df,
                                                    self.max_df, self.stop_words)
            elif self.vocabulary_ is None:
                raise DataError("this TopicModel was fitted on counts and has no vocabulary: "
                                "give it counts in the same columns")
            return self.vocabulary_.counts(texts)
        if fitting:
            self.vocabulary_ = None
        # scikit-learn's own checks and messages (and n_features_in_); then finite and ≥ 0
        X = validate_data(self, X, accept_sparse="csr", reset=fitting,
                          dtype=[np.float64, np.float32])
        check_non_negative(X, type(self).__name__)
        return as_counts(X)

    # -- sklearn API -----------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> TopicModel:
        """Learn K topics from documents (a list of texts) or a (N, V) count matrix."""
        self._validate_params()
        try:
            return self._fit(X)
        except BaseException:  # unfitted, not a new vocabulary beside the old model
            from aekit.estimators import forget_fit

            forget_fit(self)
            raise

    def _fit(self, X: Any) -> TopicModel:
        from aekit.text.modelling import train_topic_model

        counts = self._counts(X, fitting=True)
        rs = self.random_state  # an int is the seed itself: the model `aekit topics --seed` trains
        seed = (int(rs) if isinstance(rs, Integral) and not isinstance(rs, bool)
                else int(check_random_state(rs).randint(np.iinfo(np.int32).max)))
        fit_args: dict[str, Any] = {"minutes": self.max_minutes, "device": self.device,
                                    "progress": bool(self.verbose)}
        if self.max_epochs is not None:
            fit_args["epochs"] = self.max_epochs
        t0 = time.perf_counter()
        model, result = train_topic_model(counts, self.n_components, seed=seed,
                                          restarts=self.restarts, preset=self.preset,
                                          **fit_args)
        self.fit_time_ = time.perf_counter() - t0
        self._set_model(model, int(counts.shape[1]))
        self.n_iter_ = result.epochs
        self.history_ = result.history
        return self

    def _set_model(self, model, n_features: int) -> None:
        from aekit.text.modelling import topic_word

        model.eval()
        self.model_ = model
        self.n_features_in_ = n_features
        tw = topic_word(model)
        p = np.exp(tw - tw.max(1, keepdims=True))
        self.components_ = p / p.sum(1, keepdims=True)

    def transform(self, X: Any) -> np.ndarray:
        """Each document's topic mixture θ, (N, K), rows summing to 1."""
        from aekit.text.modelling import encode_counts

        check_is_fitted(self)
        counts = self._counts(X)
        theta = encode_counts(self.model_, counts)
        return theta.astype(counts.dtype) if counts.dtype == np.float64 else theta

    @property
    def _n_features_out(self) -> int:
        check_is_fitted(self)
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # -- topics ----------------------------------------------------------------------------
    def top_words(self, n: int = 10) -> list[list[str]]:
        """Each topic's ``n`` top words, ranked as ``aekit topics`` ranks them (relevance;
        word indices as strings when fitted on counts)."""
        from aekit.text.measures import top_words
        from aekit.text.modelling import topic_ranking

        check_is_fitted(self)
        top = top_words(topic_ranking(self.model_), n)
        names = self.vocabulary_.words if self.vocabulary_ is not None else None
        return [[names[i] if names else str(i) for i in row] for row in top]

    def coherence(self, X: Any, n: int = 10) -> np.ndarray:
        """NPMI (K,) of each topic's ``n`` top words, from document co-occurrence in the
        reference corpus X (texts or counts; the training corpus or a held-out one)."""
        from aekit.text.measures import npmi_per_topic, top_words
        from aekit.text.modelling import topic_ranking

        check_is_fitted(self)
        return npmi_per_topic(top_words(topic_ranking(self.model_), n), self._counts(X))

    def diversity(self, n: int = 25) -> float:
        """Share of distinct words among all topics' top-``n`` lists (1 = no word shared)."""
        from aekit.text.measures import top_words, topic_diversity
        from aekit.text.modelling import topic_ranking

        check_is_fitted(self)
        return topic_diversity(top_words(topic_ranking(self.model_), n))

    # -- persistence -----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the model and its vocabulary as the folder ``aekit topics`` writes."""
        from aekit.estimators import json_params
        from aekit.io import staged_dir

        check_is_fitted(self)
        self._check_save_target(Path(directory))
        params = json_params(self)
        extra = self.model_.config.extra
        extra[SKLEARN_KEY] = {"class": type(self).__name__, "params": params,
                              "fitted": {"n_iter": self.n_iter_, "fit_time": self.fit_time_}}
        if self.vocabulary_ is not None:
            extra["vocabulary"] = VOCAB_NAME
        try:
            with staged_dir(directory) as stage:  # model and vocabulary land together
                self.model_.save_pretrained(stage, summary={"history": self.history_})
                if self.vocabulary_ is not None:
                    self.vocabulary_.save(stage)
        finally:
            extra.pop(SKLEARN_KEY, None)
        return Path(directory)

    @staticmethod
    def _check_save_target(d: Path) -> None:
        """A folder another model, or an indexed corpus, lives in is not written over: its
        document codes (``aekit topics``) would stay behind, stale, for docsearch."""
        from aekit.errors import AekitError
        from aekit.models import CONFIG_NAME, read_model_meta

        if (d / "documents.json").exists():
            raise AekitError(f"{d} holds an indexed corpus (documents.json) whose codes would "
                             "go stale: save to another folder")
        if (d / CONFIG_NAME).exists():
            try:
                code = read_model_meta(d)["config"]["code"]
            except (AekitError, KeyError, TypeError):
                code = None
            if code != "logistic_normal":
                raise AekitError(f"{d} holds another model: save to another folder")

    @classmethod
    def load(cls, directory: str | Path) -> TopicModel:
        """A TopicModel saved by :meth:`save`, or the run folder of ``aekit topics``."""
        from aekit.models import Autoencoder
        from aekit.text.modelling import TOPIC_PRESETS, _topic_layer

        model = Autoencoder.from_pretrained(directory)
        meta = model.config.extra.pop(SKLEARN_KEY, None) or {}
        if not isinstance(meta, dict) or meta.get("class", cls.__name__) != cls.__name__ \
                or model.config.code != "logistic_normal":
            raise ModelFileError(f"{directory} does not hold a topic model")
        _topic_layer(model)  # a bag-of-words decoder
        try:
            params = dict(meta.get("params") or {})
            preset = model.config.preset if model.config.preset in TOPIC_PRESETS else "prodlda"
            params.setdefault("preset", preset)
            est = cls(**params)
            est.set_params(n_components=model.config.latent_dim)
            fitted = meta.get("fitted", {})
            est.n_iter_ = int(fitted.get("n_iter", model.training_summary.get("epochs", 0)))
            est.fit_time_ = float(fitted.get("fit_time", model.training_summary.get("seconds",
                                                                                    0.0)))
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # hand-edited, damaged
            raise ModelFileError(f"{directory}: the saved {cls.__name__}'s state is damaged "
                                 f"({e.__class__.__name__}: {e})") from None
        est.history_ = model.training_summary.get("history", [])
        est.vocabulary_ = (Vocabulary.load(directory)
                           if (Path(directory) / VOCAB_NAME).is_file() else None)
        n_features = int(model.input_shape[0])
        if est.vocabulary_ is not None and len(est.vocabulary_) != n_features:
            raise ModelFileError(f"{directory}: {VOCAB_NAME} has {len(est.vocabulary_)} words "
                                 f"but the model reads {n_features}")
        est._set_model(model, n_features)
        return est
