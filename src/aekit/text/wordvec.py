"""Word vectors from a corpus's own document co-occurrence: positive PMI, factorised.

    counts (N, V) ─(> 0)─▶ D ─DᵀD─▶ co-document counts C (V, V)
    PPMI(i, j) = max(0, log(C_ij · N / (df_i · df_j))), 0 on the diagonal
    PPMI ≈ U Λ Uᵀ (top ``dim`` eigenpairs) ─▶ U·√Λ, each row scaled to unit length

Levy & Goldberg (2014) showed that skip-gram word2vec implicitly factorises a shifted PMI
matrix; here the context is the whole document, which is what NPMI coherence counts, and no
pretrained embeddings (a download) are needed. The embedding-clustering topic decoder
(:class:`aekit.nn.bow.EmbeddingTopics`) places its topics among these vectors.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

#: vocabularies up to this size are factorised with a dense eigensolver
DENSE_EIGH_MAX = 256


def ppmi_vectors(counts, dim: int = 50) -> np.ndarray:
    """Unit word vectors (V, dim) float32 from the document co-occurrence of a (N, V) count
    matrix (dense or sparse). A word in no document gets the zero vector."""
    d = sp.csr_matrix(counts, dtype=np.float64)
    d.data = (d.data > 0).astype(np.float64)
    n, v = d.shape
    co = (d.T @ d).toarray()
    df = np.diag(co).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(co * n / np.outer(df, df))
    ppmi = np.nan_to_num(np.maximum(pmi, 0.0), nan=0.0, posinf=0.0)
    np.fill_diagonal(ppmi, 0.0)
    if not ppmi.any():  # no two words ever share a document: nothing to place them by
        return np.zeros((v, dim), np.float32)
    if v <= DENSE_EIGH_MAX:  # a small vocabulary: all eigenpairs, exactly (ARPACK needs k < V)
        vals, vecs = np.linalg.eigh(ppmi)
        top = np.argsort(vals)[::-1][:dim]
        vals, vecs = vals[top], vecs[:, top]
    else:
        # the top eigenpairs of the symmetric PPMI; a fixed start vector keeps them
        # reproducible (PPMI ≥ 0 and not all 0, so it does not map this one to 0)
        vals, vecs = eigsh(ppmi, k=min(dim, v - 1), which="LA", v0=np.ones(v))
    vecs = vecs * np.sqrt(np.maximum(vals, 0.0))
    norm = np.linalg.norm(vecs, axis=1, keepdims=True)
    out = np.divide(vecs, norm, out=np.zeros_like(vecs), where=norm > 1e-12)
    if out.shape[1] < dim:  # a vocabulary smaller than dim: pad with zeros
        out = np.pad(out, ((0, 0), (0, dim - out.shape[1])))
    return out.astype(np.float32)
