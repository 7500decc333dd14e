"""Chatbot checkpoints: the settings file next to the weights, and loading a model by name.

A chatbot checkpoint is an ordinary Hugging Face model folder (safetensors weights, tokenizer,
generation config) plus ``chatbot.json``, which records the dialogue format it was trained with
and the defaults of the reply filters. Any other causal LM folder or hub id loads too, as a
"plain" model whose turns are joined with its end-of-text token (as DialoGPT does).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chatbot.errors import ModelLoadError
from chatbot.format import DialogueFormat, TokenIds

logger = logging.getLogger(__name__)

SETTINGS_FILE = "chatbot.json"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"


@dataclass
class ChatbotSettings:
    """What ``chatbot.json`` holds; written by ``chatbot train``, read by every consumer."""

    format: DialogueFormat = field(default_factory=DialogueFormat)
    persona_trained: bool = field(default=False, metadata={"help": "the training data carried personas"})
    loss: str = field(default="reply", metadata={"help": "training loss mode: reply or all-turns"})
    base_model: str | None = field(default=None, metadata={"help": "what training started from"})
    filters: dict = field(default_factory=dict, metadata={"help": "reply-filter defaults (chatbot.filters)"})
    extra: dict = field(default_factory=dict, metadata={"help": "anything else, kept as is"})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ChatbotSettings:
        known = {f for f in cls.__dataclass_fields__}
        data = dict(data)
        fmt = DialogueFormat(**data.pop("format", {}))
        extra = {k: data.pop(k) for k in list(data) if k not in known}
        settings = cls(format=fmt, **data)
        settings.extra.update(extra)
        return settings

    def save(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / SETTINGS_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written settings file
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> ChatbotSettings | None:
        path = Path(folder) / SETTINGS_FILE
        if not path.is_file():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{path}: broken chatbot settings file ({exc}); retrain or fix the file") from exc


def model_context(model) -> int:
    """The longest input a causal LM accepts, in tokens (GPT-2 names it n_positions)."""
    config = model.config
    return int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 1024))


@dataclass
class LoadedModel:
    """A model ready for generation, with what the reply path needs to know about it."""

    model: object
    tokenizer: object
    path: str
    settings: ChatbotSettings | None  # None for a plain causal LM

    @property
    def is_dialogue_model(self) -> bool:
        return self.settings is not None

    @property
    def ids(self) -> TokenIds | None:
        return TokenIds.from_tokenizer(self.tokenizer) if self.settings is not None else None

    @property
    def format(self) -> DialogueFormat:
        if self.settings is not None:
            return self.settings.format
        return DialogueFormat(max_history=5, max_length=min(model_context(self.model), 1024))


def resolve_model(name: str | os.PathLike | None) -> str:
    """The folder or hub id to load: ``None`` means the default chatbot embedded in this package."""
    if name is None or str(name) == "":
        if not (DEFAULT_MODEL_DIR / "config.json").is_file():
            raise ModelLoadError(
                f"no model given and the embedded default model is missing from {DEFAULT_MODEL_DIR}; "
                "pass --model with a checkpoint folder or hub id"
            )
        return str(DEFAULT_MODEL_DIR)
    text = str(name)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ModelLoadError(f"{path}: not a model folder (no config.json); pass a chatbot checkpoint folder")
        return str(path)
    if text.startswith((".", "/", "~")) or os.sep in text and text.count("/") > 1:
        raise ModelLoadError(f"{text}: no such model folder")
    return text  # a hub id such as "gpt2" or "microsoft/DialoGPT-small"


def load_chatbot(name: str | os.PathLike | None = None, device: str | None = None) -> LoadedModel:
    """Load a chatbot checkpoint, any causal LM folder, or a hub id (``None``: the embedded default)."""
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name)
    settings = ChatbotSettings.load(path) if Path(path).is_dir() else None
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        # float32 on the CPU: fp16 weights on disk are upcast, CPU kernels for fp16 are slow
        dtype = torch.float32 if (device or "cpu") == "cpu" else "auto"
        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, dtype=dtype)
    except (OSError, ValueError, KeyError, SafetensorError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load model {path!r}: {first}") from exc
    if device:
        model.to(device)
    model.eval()
    if settings is None:
        logger.warning(
            "%s has no %s: loading it as a plain causal LM, turns joined by its end-of-text token",
            path,
            SETTINGS_FILE,
        )
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=model, tokenizer=tokenizer, path=path, settings=settings)
