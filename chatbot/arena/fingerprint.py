"""Which model made a pair of replies: a fingerprint stored with every vote, so votes are scoped by model.

A path alone cannot tell a model retrained into the same folder from the old one, so a local
model's fingerprint hashes its folder, its config and the size and modification time of every
weights file; a hub id hashes the id and the config the hub served (with its commit when known);
a model behind a serving engine hashes the engine's URL and the served model name::

    fp = folder_fingerprint("runs/x")       # ModelFingerprint(source="runs/x", digest="3f2a...")
    fp.key                                  # "runs/x@3f2a9c1b0d4e" (what the votes table stores)
    engine_fingerprint("http://127.0.0.1:8000/v1", "chatbot")

Take the fingerprint when the model is loaded: the weights on disk may change while the loaded
model keeps answering.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
DIGEST_CHARS = 12  # 48 bits: collisions between the models of one data folder are out of reach


@dataclass(frozen=True)
class ModelFingerprint:
    """A model's source (folder, hub id or engine) and a digest of what it was when loaded."""

    source: str
    digest: str

    @property
    def key(self) -> str:
        """The one string stored per vote and used to scope the leaderboard."""
        return f"{self.source}@{self.digest}"

    @classmethod
    def from_key(cls, key: str) -> ModelFingerprint:
        """The fingerprint a stored key names (a vote from before fingerprints has an empty digest)."""
        source, _, digest = key.rpartition("@")
        return cls(source, digest)

    @property
    def label(self) -> str:
        return f"{self.source or 'unknown model'} · {self.digest[:8] or 'before fingerprints'}"


def _digest(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()[:DIGEST_CHARS]


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def folder_fingerprint(folder: str | os.PathLike) -> ModelFingerprint:
    """A local model folder: its resolved path, config hash, and each weights file's size and mtime."""
    path = Path(folder).expanduser().resolve()
    weights = sorted(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns)
        for p in path.iterdir()
        if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)
    )
    parts = {"source": str(path), "config": _file_sha256(path / "config.json"), "weights": weights}
    return ModelFingerprint(source=str(path), digest=_digest(parts))


def hub_fingerprint(hub_id: str, config_json: str, commit: str | None = None) -> ModelFingerprint:
    """A hub model: its id, the config it was loaded with and, when known, the hub commit."""
    return ModelFingerprint(
        source=hub_id, digest=_digest({"source": hub_id, "config": config_json, "commit": commit or ""})
    )


def engine_fingerprint(url: str, served_model: str) -> ModelFingerprint:
    """A model behind a serving engine, known only by the engine's URL and the model name it serves."""
    source = f"{url.rstrip('/')}#{served_model}"
    return ModelFingerprint(source=source, digest=_digest({"url": url.rstrip("/"), "model": served_model}))


def model_fingerprint(name: str, model=None) -> ModelFingerprint:
    """The fingerprint of a loaded model: a folder when ``name`` is one, else a hub id (``model``'s config)."""
    if Path(name).expanduser().is_dir():
        return folder_fingerprint(name)
    config = getattr(model, "config", None)
    config_json = config.to_json_string(use_diff=False) if config is not None else ""
    return hub_fingerprint(name, config_json, getattr(config, "_commit_hash", None))
