"""The vocabulary: scikit-learn's ``CountVectorizer`` settings and its word list, saved
with a model as JSON (``vocab.json``) so new text is tokenised exactly as the training
corpus was."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from aekit.errors import DataError, ModelFileError, ParameterError, is_integer
from aekit.io import read_json, write_json_atomic

VOCAB_NAME = "vocab.json"
#: the CountVectorizer settings a vocabulary file may carry
TOKENIZER_KEYS = {"lowercase", "token_pattern", "stop_words"}
#: words of two or more letters: numbers and codes say little about a topic
TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W\d_]+\b"
#: the token patterns a vocabulary may use: aekit's and scikit-learn's default (words of
#: two or more word characters). A pattern read from a stranger's vocab.json is never
#: compiled: a crafted one, (\w+\s?)+$, took forever on an ordinary sentence
TOKEN_PATTERNS = (TOKEN_PATTERN, r"(?u)\b\w\w+\b")


@dataclass
class Vocabulary:
    words: list[str]
    # CountVectorizer arguments that decide tokenisation (lowercase, token_pattern, stop_words)
    tokenizer: dict[str, Any] = field(default_factory=dict)
    # how the word list was chosen (for the record: min_df, max_df, size, documents)
    selection: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.words)

    def vectorizer(self):
        from sklearn.feature_extraction.text import CountVectorizer

        return CountVectorizer(vocabulary=self.words, **self.tokenizer)

    def counts(self, texts: list[str]) -> sp.csr_matrix:
        """Word counts (N, V) of documents, in this vocabulary's order."""
        texts = check_texts(texts)
        return self.vectorizer().fit_transform(texts).astype(np.float32).tocsr()

    def to_json(self) -> dict[str, Any]:
        return {"words": self.words, "tokenizer": self.tokenizer, "selection": self.selection}

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / VOCAB_NAME
        write_json_atomic(path, self.to_json())
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Vocabulary:
        path = Path(directory) / VOCAB_NAME
        d = read_json(path, "vocabulary file", error=ModelFileError,
                      missing=f"{path} is missing: not a text model directory")
        try:
            words = [str(w) for w in d["words"]]
            tokenizer = dict(d.get("tokenizer", {}))
            selection = dict(d.get("selection", {}))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"{path} is not a valid vocabulary file ({e})") from None
        bad = (f"{len(words)} words" if len(words) < 2 else
               "a word listed twice" if len(set(words)) < len(words) else
               f"tokenizer options {sorted(set(tokenizer) - TOKENIZER_KEYS)}"
               if set(tokenizer) - TOKENIZER_KEYS else
               f"token_pattern {tokenizer['token_pattern']!r} (only aekit's and scikit-learn's "
               "default are read from a file)"
               if tokenizer.get("token_pattern", TOKEN_PATTERN) not in TOKEN_PATTERNS else
               f"stop_words {tokenizer['stop_words']!r}"
               if tokenizer.get("stop_words") not in (None, "english") else
               f"lowercase {tokenizer['lowercase']!r}"
               if not isinstance(tokenizer.get("lowercase", True), bool) else None)
        if bad:
            raise ModelFileError(f"{path} is not a valid vocabulary file ({bad})")
        return cls(words, tokenizer, selection)


def check_texts(texts: Any) -> list[str]:
    """Documents as a list of strings (from any iterable of them): a single string would be
    read as one document per character, and None or a number fails deep in scikit-learn."""
    if isinstance(texts, (str, bytes)):
        raise DataError("texts must be a list of documents, got a single string (wrap it: [text])")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise DataError(f"document {i} (counting from 0) is {type(t).__name__}, not text")
    return texts


def build_vocabulary(texts: list[str], size: int = 2000, min_df: float = 2, max_df: float = 0.5,
                     stop_words: str | None = "english", lowercase: bool = True,
                     token_pattern: str = TOKEN_PATTERN) -> Vocabulary:
    """The ``size`` most frequent words (after stop words and document-frequency limits)."""
    from sklearn.feature_extraction.text import CountVectorizer

    texts = check_texts(texts)
    if not is_integer(size, 2):
        raise ParameterError(f"the vocabulary size is an integer ≥ 2 (words), got {size!r}")
    if stop_words not in (None, "", "none", "english"):  # what scikit-learn ships
        raise DataError(f"stop words must be 'english' or 'none', got {stop_words!r}")
    if token_pattern not in TOKEN_PATTERNS:  # (a saved vocabulary could not be read back)
        raise ParameterError(f"token_pattern must be one of {TOKEN_PATTERNS} (aekit's: words "
                             f"of two or more letters; scikit-learn's default), got "
                             f"{token_pattern!r}")
    # a count (a whole number ≥ 1) or a share of the documents (< 1), as --help says
    if not (0 <= min_df < 1 or (min_df >= 1 and float(min_df).is_integer())):
        raise DataError(f"--min-df is a share of the documents (0 to < 1) or a whole count "
                        f"(≥ 1), got {min_df}")
    if not (0 < max_df <= 1 or (max_df > 1 and float(max_df).is_integer()
                                 and max_df < float("inf"))):
        raise DataError(f"--max-df is a share of the documents (> 0 to 1) or a whole count "
                        f"(> 1), got {max_df}")
    tokenizer = {"lowercase": lowercase, "token_pattern": token_pattern,
                 "stop_words": stop_words if stop_words not in ("none", "") else None}
    if isinstance(min_df, float) and min_df.is_integer() and min_df >= 1:
        min_df = int(min_df)
    if isinstance(max_df, float) and max_df.is_integer() and max_df > 1:
        max_df = int(max_df)
    if max_df == 1:  # all documents, as the message above says (an int 1 is scikit-learn's
        max_df = 1.0  # "in at most one document", which left no word)
    vec = CountVectorizer(min_df=min_df, max_df=max_df, max_features=size, **tokenizer)
    try:
        vec.fit(texts)
    except ValueError as e:  # "empty vocabulary; perhaps the documents only contain stop words"
        # the cause first: no word at all, or words the frequency limits removed
        tokens = CountVectorizer(**tokenizer).build_analyzer()
        if not any(tokens(t) for t in texts):
            raise DataError(f"no vocabulary could be built from {len(texts)} documents: they "
                            "hold no word of two or more letters that is not a stop word "
                            "(--stop-words none keeps stop words)") from None
        raise DataError(f"no vocabulary could be built from {len(texts)} documents ({e}); "
                        "lower --min-df or raise --max-df") from None
    words = [str(w) for w in vec.get_feature_names_out()]
    if len(words) < 2:
        raise DataError(f"the vocabulary has {len(words)} word ({', '.join(words)}) after "
                        "stop words and the --min-df/--max-df limits; a model needs at least 2")
    return Vocabulary(words, tokenizer, {"size": size, "min_df": min_df, "max_df": max_df,
                                         "documents": len(texts)})
