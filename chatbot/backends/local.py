"""The ``local`` backend: the model loaded in this process, through :mod:`chatbot.generation` unchanged."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from chatbot.generation import GenerationResult, GenerationStream, generate_candidates


class LocalBackend:
    """Batched candidates and token streams from a model in this process (one ``generate`` call per batch)."""

    name = "local"
    has_logprobs = True

    def __init__(self, model, tokenizer, *, stop_ids: list[int], pad_id: int, model_name: str = ""):
        self.model, self.tokenizer = model, tokenizer
        self.stop_ids, self.pad_id = stop_ids, pad_id
        self.model_name = model_name

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "server_kind": "", "model": self.model_name, "label": self.model_name}

    def prepare_text(self, text: str) -> str:
        return text  # chatbot.format.encode_text already keeps typed special-token text plain

    def warnings(self, settings) -> list[str]:
        return []

    def generate(self, prompts: Sequence, settings, *, attempt: int = 1) -> GenerationResult:
        return generate_candidates(
            self.model, self.tokenizer, [p.input_ids for p in prompts], settings, stop_ids=self.stop_ids, pad_id=self.pad_id,
            attempt=attempt,
        )  # fmt: skip

    def stream(
        self, prompt, settings, *, attempt: int = 1, cancel_event: threading.Event | None = None
    ) -> GenerationStream:
        return GenerationStream(
            self.model, self.tokenizer, prompt.input_ids, settings, stop_ids=self.stop_ids, pad_id=self.pad_id,
            attempt=attempt, cancel_event=cancel_event or threading.Event(),
        )  # fmt: skip
