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
import socket
import threading
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chatbot.errors import ModelLoadError, SettingsError
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


def check_device(name: str) -> str:
    """The torch device name, or a SettingsError saying why it cannot be used here and what to pass instead."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise SettingsError(f"unknown device {name!r}; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise SettingsError(f"device {name!r}: no CUDA GPU is visible to torch here; use cpu")
        if device.index is not None and device.index >= count:
            raise SettingsError(f"device {name!r}: only {count} CUDA GPU(s) here (cuda:0 to cuda:{count - 1})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SettingsError(f"device {name!r}: Apple's MPS backend is not available here; use cpu")
    return name


HUB_PROBE_TIMEOUT_S = 1.0  # a connect to the hub takes well under this where it is reachable


def hub_address() -> tuple[str, int]:
    """Where a hub download connects first: the HTTPS proxy if one is set, else the hub's host (HF_ENDPOINT)."""
    from huggingface_hub import constants

    url = urllib.parse.urlsplit(urllib.request.getproxies().get("https") or constants.ENDPOINT)
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """One TCP connect to the hub, bounded by ``timeout`` even when name resolution hangs."""
    answer: list[bool] = []

    def probe():
        try:
            socket.create_connection(hub_address(), timeout=timeout).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # a stuck DNS lookup is left behind, not waited for
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])


def hub_offline_mode() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return constants.HF_HUB_OFFLINE or flag.upper() in ("1", "ON", "YES", "TRUE")


def in_hub_cache(hub_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


def hub_load_options(name: str) -> dict:
    """``from_pretrained`` options for a model name, failing fast when it is a hub id the hub cannot serve.

    Without a reachable hub, transformers spends about a minute in retries before its error; a one-second
    probe decides instead: a cached model loads from the cache, any other hub id is a one-line error.
    """
    if Path(name).expanduser().exists() or hub_offline_mode():
        return {}  # a local folder, or the user already chose the cache (transformers answers at once)
    if hub_reachable():
        return {}
    if in_hub_cache(name):
        logger.info("the Hugging Face hub is unreachable: loading %s from the local cache", name)
        return {"local_files_only": True}
    host, port = hub_address()
    raise ModelLoadError(
        f"cannot download {name!r}: the Hugging Face hub ({host}:{port}) is unreachable and the model is not in the "
        "local cache; pass a local model folder instead, or set HF_HUB_OFFLINE=1 to use only cached models"
    )


def load_chatbot(name: str | os.PathLike | None = None, device: str | None = None) -> LoadedModel:
    """Load a chatbot checkpoint, any causal LM folder, or a hub id (``None``: the embedded default)."""
    if device:
        check_device(device)
    path = resolve_model(name)
    settings = ChatbotSettings.load(path) if Path(path).is_dir() else None
    hub = hub_load_options(path)  # before the slow imports: an unreachable hub is an error within a second

    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **hub)
        # float32 on the CPU: fp16 weights on disk are upcast, CPU kernels for fp16 are slow
        dtype = torch.float32 if (device or "cpu") == "cpu" else "auto"
        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, dtype=dtype, **hub)
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
