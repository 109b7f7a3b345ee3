"""Text: corpora, vocabularies, topic and retrieval measures, and training helpers for the
bag-of-words presets (``topic``, ``prodlda``, ``doc-hash``).

Layering: :mod:`corpus`, :mod:`reuters` and :mod:`vocab` sit with ``data/`` (they turn files
into documents and documents into count matrices); :mod:`measures` with ``metrics``;
:mod:`modelling` with the estimators (it trains through :func:`aekit.training.fit`), and
:mod:`estimator` is its scikit-learn face (``TopicModel``). The
jobs (``aekit topics``, ``aekit docindex``, ``aekit docsearch``) live in
:mod:`aekit.apps.topics`.
"""

from aekit.text.corpus import Corpus, load_corpus
from aekit.text.estimator import TopicModel
from aekit.text.vocab import Vocabulary, build_vocabulary

__all__ = ["Corpus", "TopicModel", "Vocabulary", "build_vocabulary", "load_corpus"]
