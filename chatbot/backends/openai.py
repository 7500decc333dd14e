"""The ``openai`` backend: any OpenAI-compatible server (vLLM, transformers serve, llama.cpp, TGI, OpenAI).

    from chatbot.backends.openai import connect

    remote = connect("http://127.0.0.1:8000/v1")            # detects the kind, picks the only model
    bot = Chatbot(remote.model, backend=remote.backend)     # what Chatbot.load does for --backend openai

**Which endpoint.** A dialogue checkpoint of ours (a local folder with ``chatbot.json``, given with
``--tokenizer`` or served under its own path, as ``transformers serve DIR`` does) goes through
``/v1/completions`` with our own format, so it behaves as it does locally. A model with a chat
template (or any model when no local folder is known) goes through ``/v1/chat/completions``, the
persona as a system message. A plain model without a chat template goes through completions with
the plain format (turns joined by end-of-text).

**Candidates.** ``n`` is sent where the server honours it; elsewhere the client sends one request
per candidate with distinct seeds (``seed + i``, or a random base): one after another where a seed
sets a process-wide generator (transformers serve), in parallel where seeds are per request.
Prompts of different contexts (an evaluation batch) run ``concurrency`` at a time.

**Stops.** Requests carry our end-of-turn strings as ``stop``; the client also cuts the text at the
first of them, for servers that ignore ``stop`` or return special tokens as text.

**Streaming.** One candidate over server-sent events; cancelling closes the connection, which
transformers serve and vLLM take as the signal to stop generating.
"""

# Over 400 lines on purpose: one client for every OpenAI-compatible server (requests, candidates,
# streaming, errors), whose per-server differences live as data in ``capabilities.py``.

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from chatbot.backends.base import CANCELLED, LENGTH, STOP, BackendError, Completion
from chatbot.backends.capabilities import SERVER_KINDS, ServerKind, UnsupportedSettingError, plan_request
from chatbot.backends.http import HttpClient, HttpSettings
from chatbot.backends.prompts import (
    CHARS_PER_TOKEN,
    DIALOGUE_STOPS,
    CharTokenizer,
    cut_at_stop,
    held_back,
    neutralise,
)
from chatbot.format import DialogueFormat
from chatbot.generation import Candidate, GenerationResult, stop_token_ids

logger = logging.getLogger(__name__)

DIALOGUE, CHAT, PLAIN = "dialogue", "chat", "plain"
DEFAULT_CONTEXT = 1024  # tokens, when neither a local folder nor the server says


# -- what the server is -----------------------------------------------------------------------------


def detect_kind(client: HttpClient, models: list[dict]) -> str:
    """The server kind from what it answers: ``/v1/models`` owners and fields, then TGI's ``/info``."""
    owners = {str(m.get("owned_by", "")).lower() for m in models}
    if "vllm" in owners or any("max_model_len" in m for m in models):
        return "vllm"
    if "llamacpp" in owners or any("meta" in m and "n_ctx_train" in (m.get("meta") or {}) for m in models):
        return "llama.cpp"
    # transformers serve lists local folders owned by "local", each with a loading status
    if any(isinstance(m.get("status"), dict) for m in models) or owners == {"local"}:
        return "transformers-serve"
    root = client.base_url.rsplit("/v1", 1)[0]
    info = client.probe(f"{root}/info")
    if info and ("router" in info or "max_input_tokens" in info or "max_input_length" in info):
        return "tgi"
    return "openai-standard"


def list_models(client: HttpClient) -> list[dict]:
    data = client.get_json("models").get("data")
    if not isinstance(data, list) or not all(isinstance(m, dict) and "id" in m for m in data):
        raise BackendError(f"{client.url('models')}: malformed response (no model list in 'data')")
    return data


def choose_model(models: list[dict], requested: str | None, url: str) -> dict:
    """The model to use: the requested one, else the only one the server lists."""
    ids = [str(m["id"]) for m in models]
    if requested:
        for m in models:
            if m["id"] == requested:
                return m
        if not ids:  # some servers list nothing but serve what they are asked for
            return {"id": requested}
        raise BackendError(f"{url} does not serve {requested!r}; it lists: {', '.join(ids)}")
    if len(ids) == 1:
        return models[0]
    if not ids:
        raise BackendError(f"{url} lists no models; name one with --api-model")
    raise BackendError(f"{url} serves {len(ids)} models ({', '.join(ids[:5])}); choose one with --api-model")


# -- the local side of a remote model ---------------------------------------------------------------


@dataclass
class RemoteModel:
    """What the conversation manager needs to know about a served model (a LoadedModel stand-in).

    ``tokenizer`` is the local tokenizer when a folder is known, else a :class:`CharTokenizer`;
    ``format`` is then in characters (``CHARS_PER_TOKEN`` per token), an approximate budget.
    """

    path: str
    tokenizer: object
    settings: object | None  # ChatbotSettings of a dialogue checkpoint, else None
    format: DialogueFormat
    mode: str  # dialogue, chat or plain
    model: object = None  # no weights in this process
    local_tokenizer: bool = True

    @property
    def is_dialogue_model(self) -> bool:
        return self.mode == DIALOGUE

    @property
    def ids(self):
        from chatbot.format import TokenIds

        return TokenIds.from_tokenizer(self.tokenizer) if self.mode == DIALOGUE else None


def local_folder(tokenizer_dir: str | None, model_id: str) -> Path | None:
    """The checkpoint folder to read the tokenizer and format from: ``--tokenizer``, else the served path."""
    for candidate in (tokenizer_dir, model_id):
        if candidate and (Path(candidate).expanduser() / "config.json").is_file():
            return Path(candidate).expanduser()
    if tokenizer_dir:
        raise BackendError(f"--tokenizer {tokenizer_dir}: not a model folder (no config.json)")
    return None


def remote_model(folder: Path | None, model_entry: dict) -> RemoteModel:
    """The prompt side of a served model: its tokenizer, format and endpoint mode."""
    from chatbot.checkpoint import ChatbotSettings

    name = str(model_entry["id"])
    context = int(model_entry.get("max_model_len") or DEFAULT_CONTEXT)
    if folder is None:
        fmt = DialogueFormat(max_history=5, max_length=context * CHARS_PER_TOKEN)
        return RemoteModel(name, CharTokenizer(), None, fmt, CHAT, local_tokenizer=False)
    from transformers import AutoConfig, AutoTokenizer

    settings = ChatbotSettings.load(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if settings is not None:
        return RemoteModel(name, tokenizer, settings, settings.format, DIALOGUE)
    config = AutoConfig.from_pretrained(folder)
    context = int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", context))
    fmt = DialogueFormat(max_history=5, max_length=min(context, 1024))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return RemoteModel(name, tokenizer, None, fmt, CHAT if getattr(tokenizer, "chat_template", None) else PLAIN)


# -- the backend ------------------------------------------------------------------------------------


@dataclass
class OpenAIBackend:
    """Candidates and streams from an OpenAI-compatible server, with settings mapped by its kind."""

    client: HttpClient
    kind: ServerKind
    model: RemoteModel
    allow_unsupported: bool = False
    concurrency: int = 1
    name: str = field(default="openai", init=False)

    @property
    def has_logprobs(self) -> bool:
        return self.kind.logprobs

    @property
    def sends_token_ids(self) -> bool:
        return self.kind.token_prompts and self.model.local_tokenizer and self.model.mode != CHAT

    @property
    def stops(self) -> list[str]:
        stops = list(DIALOGUE_STOPS) if self.model.mode == DIALOGUE else []
        return stops[: self.kind.max_stops] if self.kind.max_stops else stops

    def describe(self) -> dict[str, str]:
        label = f"{self.model.path} (served by a {self.kind.name} server at {self.client.base_url})"
        return {"backend": self.name, "server_kind": self.kind.name, "model": self.model.path,
                "base_url": self.client.base_url, "label": label}  # fmt: skip

    def prepare_text(self, text: str) -> str:
        if self.sends_token_ids:
            return text  # ids encoded with split_special_tokens: typed text stays text
        return neutralise(text, getattr(self.model.tokenizer, "all_special_tokens", ()))

    def warnings(self, settings) -> list[str]:
        return plan_request(settings, self.kind, allow_unsupported=True).warnings if self.allow_unsupported else []

    # -- requests --

    def request_body(self, prompt, settings, *, n: int, seed: int | None, stream: bool = False) -> tuple[str, dict]:
        """(endpoint, JSON body) for one request; UnsupportedSettingError before anything is sent."""
        plan = plan_request(settings, self.kind, allow_unsupported=self.allow_unsupported)
        if self.kind.uses_generation_config and self.model.local_tokenizer:
            # the generation_config replaces the model's own: it must say where a reply ends
            plan.generation_config |= {
                "eos_token_id": stop_token_ids(self.model.tokenizer, self.model.is_dialogue_model),
                "pad_token_id": self.model.tokenizer.pad_token_id,
            }
        body = {"model": self.model.path} | plan.body()
        body.pop("seed", None)
        if seed is not None and settings.strategy == "sample" and "seed" in self.kind.routes:
            body["seed"] = seed
        if n > 1:
            body["n"] = n
        if stream:
            body["stream"] = True
        if self.model.mode == CHAT:
            if self.kind.logprobs:
                body["logprobs"] = True
            return "chat/completions", body | {"messages": list(prompt.messages)}
        if self.kind.logprobs:
            body["logprobs"] = 1
        if self.stops:
            body["stop"] = self.stops
        ids = list(prompt.input_ids)
        text = ids if self.sends_token_ids else self.model.tokenizer.decode(ids, skip_special_tokens=False)
        return "completions", body | {"prompt": text}

    def _completions(self, data: dict, expected: int, url: str) -> list[Completion]:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise BackendError(f"{url}: malformed response (no choices)")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        out = []
        for choice in sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)[:expected]:
            text = _choice_text(choice, url)
            logprobs = _choice_logprobs(choice)
            tokens = len(logprobs) if logprobs else None
            if tokens is None and len(choices) == 1:
                tokens = usage.get("completion_tokens")
            out.append(self._completion(text, choice.get("finish_reason"), logprobs, tokens))
        return out

    def _completion(self, text: str, finish: str | None, logprobs: list[float] | None, tokens: int | None):
        text, cut = cut_at_stop(text, self.stops)
        if tokens is None:
            tokens = self.count_tokens(text) + (1 if finish != LENGTH else 0)
        return Completion(
            text=text.strip(),
            n_tokens=int(tokens),
            logprob=sum(logprobs) if logprobs else None,
            finish_reason=STOP if cut or finish != LENGTH else LENGTH,
        )

    def count_tokens(self, text: str) -> int:
        if self.model.local_tokenizer:
            return len(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])
        return max(1, round(len(text) / CHARS_PER_TOKEN))

    def complete(self, prompt, settings, *, n: int, seed: int | None) -> list[Completion]:
        """``n`` completions of one prompt in one request."""
        endpoint, body = self.request_body(prompt, settings, n=n, seed=seed)
        data = self.client.post_json(endpoint, body)
        completions = self._completions(data, n, self.client.url(endpoint))
        if len(completions) < n:
            raise BackendError(f"{self.client.url(endpoint)}: malformed response ({len(completions)} of {n} choices)")
        return completions

    def candidates(self, prompt, settings) -> list[Completion]:
        """``settings.num_candidates`` completions: ``n`` in one request, or one request per distinct seed."""
        n = settings.num_candidates
        if n == 1 or self.kind.n:
            return self.complete(prompt, settings, n=n, seed=settings.seed)
        base = settings.seed if settings.seed is not None else random.randrange(2**31 - n)
        seeds = [base + i for i in range(n)]
        workers = min(n, self.concurrency) if self.kind.seeds_per_request else 1
        if workers == 1:
            return [c for s in seeds for c in self.complete(prompt, settings, n=1, seed=s)]
        with ThreadPoolExecutor(workers) as pool:
            return [c for cs in pool.map(lambda s: self.complete(prompt, settings, n=1, seed=s), seeds) for c in cs]

    def generate(self, prompts: Sequence, settings, *, attempt: int = 1) -> GenerationResult:
        """Candidates for every prompt; prompts run ``concurrency`` at a time."""
        plan_request(settings, self.kind, allow_unsupported=self.allow_unsupported)  # refuse before sending
        refuse_model_rerankers(settings)
        start = time.perf_counter()
        if self.concurrency > 1 and len(prompts) > 1:
            with ThreadPoolExecutor(min(self.concurrency, len(prompts))) as pool:
                per_prompt = list(pool.map(lambda p: self.candidates(p, settings), prompts))
        else:
            per_prompt = [self.candidates(p, settings) for p in prompts]
        seconds = time.perf_counter() - start
        candidates = [[c.to_candidate(attempt) for c in cs] for cs in per_prompt]
        total = sum(c.n_tokens for cs in candidates for c in cs)
        longest = max((len(p.input_ids) for p in prompts), default=0)
        return GenerationResult(candidates, seconds, total, prompt_tokens=longest)

    def stream(self, prompt, settings, *, attempt: int = 1, cancel_event: threading.Event | None = None):
        return ServerStream(self, prompt, settings.replace(num_candidates=1), attempt, cancel_event)


def refuse_model_rerankers(settings) -> None:
    """Rerankers that score other text with the model (MMI's reply-without-context pass) need its weights here.

    The one place reranker mmi is refused over HTTP: the conversation manager scores the candidates under the
    settings' reranker and has no model to score with. One candidate is not ranked, so it needs nothing.
    """
    from chatbot.rerankers import RerankConfig

    if "mmi" in RerankConfig.from_settings(settings).needs():
        raise UnsupportedSettingError(
            "reranker=mmi scores each reply without its context, which needs log-probabilities of text the "
            "server did not generate; a server cannot give them. Use reranker=logprob or coherence"
        )


def _choice_text(choice, url: str) -> str:
    if not isinstance(choice, dict):
        raise BackendError(f"{url}: malformed response (a choice is not an object)")
    if "text" in choice:
        text = choice["text"]
    else:
        text = (choice.get("message") or choice.get("delta") or {}).get("content")
    if not isinstance(text, str):
        if choice.get("delta") is not None:
            return ""
        raise BackendError(f"{url}: malformed response (a choice has no text)")
    return text


def _choice_logprobs(choice: dict) -> list[float] | None:
    """The generated tokens' log-probabilities: completions' ``token_logprobs`` or chat's ``content``."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return None
    values = logprobs.get("token_logprobs")
    if values is None and isinstance(logprobs.get("content"), list):
        values = [t.get("logprob") for t in logprobs["content"] if isinstance(t, dict)]
    if not values or not all(isinstance(v, int | float) for v in values):
        return None
    return [float(v) for v in values]


class ServerStream:
    """One reply streamed over server-sent events; the GenerationStream interface for the conversation.

    Pieces are shown only once they cannot be the start of a stop string; ``cancel()`` or the
    caller's event stops iteration at the next piece and closes the connection.
    """

    def __init__(self, backend: OpenAIBackend, prompt, settings, attempt: int, cancel_event):
        self.backend, self.settings, self.attempt = backend, settings, attempt
        self.cancel_event = cancel_event or threading.Event()
        self._stop = threading.Event()
        self.endpoint, self.body = backend.request_body(prompt, settings, n=1, seed=settings.seed, stream=True)
        self.result: Candidate | None = None
        self.seconds = 0.0
        self.new_tokens = 0

    def cancel(self) -> None:
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set() or self.cancel_event.is_set()

    def __iter__(self) -> Iterator[str]:
        stops = self.backend.stops
        url = self.backend.client.url(self.endpoint)
        text, shown, finish, logprobs, tokens = "", 0, None, [], None
        start = time.perf_counter()
        events = self.backend.client.stream_events(self.endpoint, self.body)
        try:
            for event in events:
                if self.cancelled:
                    break
                for choice in event.get("choices") or []:
                    text += _choice_text(choice, url)
                    finish = choice.get("finish_reason") or finish
                    logprobs += _choice_logprobs(choice) or []
                usage = event.get("usage")
                if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
                    tokens = usage["completion_tokens"]
                visible, cut = cut_at_stop(text, stops)
                end = len(visible) if cut else len(visible) - held_back(visible, stops)
                if end > shown:
                    yield visible[shown:end]
                    shown = end
                if cut:
                    break
        finally:  # also when the consumer stops early: the reply so far is still the candidate
            events.close()
            self.seconds = time.perf_counter() - start
            self._finish(text, finish, logprobs, tokens)

    def _finish(self, text: str, finish: str | None, logprobs: list[float], tokens: int | None) -> None:
        if not text.strip():
            return  # nothing generated (or cancelled before the first piece)
        completion = self.backend._completion(text, finish, logprobs or None, tokens)
        if self.cancelled or finish is None and not cut_at_stop(text, self.backend.stops)[1]:
            completion.finish_reason = CANCELLED  # stopped before the server said why it ended
        self.result = completion.to_candidate(self.attempt)
        self.new_tokens = completion.n_tokens


# -- connecting -------------------------------------------------------------------------------------


@dataclass
class Remote:
    """A connected server: the backend and the model description the conversation manager uses."""

    backend: OpenAIBackend
    model: RemoteModel


def connect(
    base_url: str,
    *,
    api_model: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    server_kind: str | None = None,
    tokenizer: str | None = None,
    allow_unsupported: bool = False,
    concurrency: int = 1,
    http: HttpSettings | None = None,
    transport=None,
) -> Remote:
    """Reach the server, detect its kind (unless given), choose the model and its prompt format."""
    if not base_url.startswith(("http://", "https://")):
        raise BackendError(f"--base-url {base_url!r}: give an http:// or https:// URL, e.g. http://127.0.0.1:8000/v1")
    if server_kind is not None and server_kind not in SERVER_KINDS:
        raise BackendError(f"--server-kind {server_kind!r}: choose one of {', '.join(SERVER_KINDS)}")
    client = HttpClient(base_url, os.environ.get(api_key_env) or None, http, transport)
    models = list_models(client)
    kind_name = server_kind or detect_kind(client, models)
    entry = choose_model(models, api_model, client.url("models"))
    model = remote_model(local_folder(tokenizer, str(entry["id"])), entry)
    logger.info("%s: a %s server, model %s, %s prompts", base_url, kind_name, model.path, model.mode)
    kind = SERVER_KINDS[kind_name]
    backend = OpenAIBackend(client, kind, model, allow_unsupported=allow_unsupported, concurrency=concurrency)
    return Remote(backend, model)
