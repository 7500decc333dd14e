"""Generation: candidates in one batched ``generate`` call, scored, and a cancellable token stream.

API (used by :mod:`chatbot.conversation`; the web app and the evaluator go through that module)::

    from chatbot.generation import Candidate, generate_candidates, GenerationStream, stop_token_ids

    result = generate_candidates(model, tokenizer, [prompt_ids, ...], settings, stop_ids=..., pad_id=...)
    result.candidates[i]          # settings.num_candidates Candidate values for prompt i, in output order
    stream = GenerationStream(model, tokenizer, prompt_ids, settings, stop_ids=..., pad_id=...)
    for piece in stream: ...      # decoded text as it is generated; stream.cancel() stops within one token
    stream.result                 # the finished Candidate (None when cancelled before a token)

GPT-2 models decode through :mod:`chatbot.fastdecode`, a lean loop over the same weights that
runs generate's own processors and draws generate's random numbers, wherever it reproduces the
settings (greedy, temperature, top-k, top-p); everything else goes through transformers'
``generate`` with its KV cache. Either way several prompts share one batch and every prompt gets
``num_candidates`` sequences, so N candidates cost one call, not N. Each candidate names the path
that made it (``path``: "fast" or "generate"). A candidate's score is its
length-normalised log-probability under the model (mean log-prob per token, end-of-turn included),
computed from the raw logits, so a temperature or a top-p cut does not change how candidates rank.

Generation calls take a process-wide lock: a seed is the global torch generator's state, and a
second generation running at the same time would draw from it. On a CPU two concurrent calls are
not faster than two consecutive ones anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from chatbot.fastdecode import FAST, GENERATE, DecodePlan, decode_plan, fast_decode
from chatbot.rerankers import RANK, mean_logprob
from chatbot.sampling import SamplingSettings

logger = logging.getLogger(__name__)

_GENERATE_LOCK = threading.Lock()


class _FinishedRowsPadding(logging.Filter):
    """Drops transformers' "We strongly recommend passing in an `attention_mask`" inside our ``generate`` calls.

    We always pass a mask, but ``generate`` (transformers 5) drops one that is all ones (unpadded
    prompts) and then feeds each finished row the pad token; GPT2Model sees a pad id without a mask
    and warns. Those rows' outputs are discarded, so here the warning is a false alarm. Only records
    logged in a thread inside such a call are dropped (transformers logs this one once per process).
    """

    active = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        quiet = getattr(self.active, "on", False)
        return not (quiet and "passing in an `attention_mask`" in record.getMessage())


_PADDING_FILTER = _FinishedRowsPadding()
logging.getLogger("transformers.modeling_utils").addFilter(_PADDING_FILTER)


@contextmanager
def _finished_rows_padding_quiet():
    """Within this thread's generate call, the false padding warning above is not logged."""
    _PADDING_FILTER.active.on = True
    try:
        yield
    finally:
        _PADDING_FILTER.active.on = False


@dataclass
class Candidate:
    """One generated reply with its score; ``rejected`` is the filter's reason (None: it passed)."""

    text: str
    token_ids: tuple[int, ...] = ()
    logprob: float = 0.0  # sum of the model's log-probabilities of the reply's tokens (nats)
    n_tokens: int = 0  # tokens scored, end-of-turn included
    finished: bool = True  # ended with a stop token, not cut at max_new_tokens
    raw_text: str = ""  # decoded with special tokens kept (the "only special tokens" check needs it)
    stop_id: int | None = None  # the stop token that ended it (scored, not part of token_ids)
    rejected: str | None = None
    attempt: int = 1
    path: str = GENERATE  # the decoder that made it: FAST (chatbot.fastdecode) or GENERATE (transformers)
    # every reranker score (chatbot.rerankers), for "why this reply"; "rank" is the chosen reranker's
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """The ranking key (higher is better): the reranker's score, else length-normalised log-probability."""
        return self.scores.get(RANK, mean_logprob(self.logprob, self.n_tokens))

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "score": round(self.score, 4),
            "logprob": round(self.logprob, 4),
            "n_tokens": self.n_tokens,
            "finished": self.finished,
            "rejected": self.rejected,
            "attempt": self.attempt,
            "path": self.path,
            "scores": {name: round(value, 4) for name, value in self.scores.items()},
        }


@dataclass
class GenerationResult:
    candidates: list[list[Candidate]]  # [prompt][candidate]
    seconds: float
    new_tokens: int  # tokens generated over every sequence (the tokens/s numerator)
    prompt_tokens: int = 0  # longest prompt of the batch
    extra: dict = field(default_factory=dict)


def stop_token_ids(tokenizer, dialogue: bool) -> list[int]:
    """Tokens that end a reply: end-of-turn and end-of-text, and any speaker token of ours.

    A dialogue model that starts a new speaker block without closing its turn has finished its
    reply as far as the reader is concerned; stopping there keeps the other speaker's words out.
    """
    from chatbot.format import BOT, EOT, PERSONA, USER

    names = (EOT, USER, BOT, PERSONA) if dialogue else ()
    # a missing token converts to the unknown id, which is end-of-text in our tokenizers: harmless here
    ids = {tokenizer.convert_tokens_to_ids(n) for n in names} | {tokenizer.eos_token_id}
    return sorted(i for i in ids if i is not None)


@contextmanager
def generation_lock(seed: int | None):
    """Hold the generation lock; seed the global torch generator while it is held."""
    with _GENERATE_LOCK:
        if seed is not None:
            torch.manual_seed(seed)
        yield


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (B, T_max), prompts aligned on the right so generation continues them."""
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
    return input_ids, mask


def reply_length(tokens: list[int], stop_ids: set[int]) -> tuple[int, bool]:
    """(tokens that belong to the reply, stop token included; whether a stop token ended it)."""
    for i, token in enumerate(tokens):
        if token in stop_ids:
            return i + 1, True
    return len(tokens), False


def make_candidate(tokenizer, tokens: list[int], logprobs: torch.Tensor, stops: set[int], attempt: int) -> Candidate:
    """A Candidate from one generated row: its tokens up to the first stop token and their (T,) log-probs."""
    length, finished = reply_length(tokens, stops)
    reply_tokens = tokens[: length - 1] if finished else tokens[:length]
    return Candidate(
        text=tokenizer.decode(reply_tokens, skip_special_tokens=True).strip(),
        raw_text=tokenizer.decode(reply_tokens, skip_special_tokens=False).strip(),
        token_ids=tuple(reply_tokens),
        # the stop token is scored too: ending the reply there is part of what the model proposed
        logprob=float(logprobs[:length].float().sum()),
        n_tokens=length,
        finished=finished,
        stop_id=tokens[length - 1] if finished else None,
        attempt=attempt,
    )


def _generate_kwargs(settings: SamplingSettings, tokenizer, stop_ids: list[int], pad_id: int) -> dict:
    """generate's keywords; the stop tokens are also the ones XTC must never remove (a reply must be able to end)."""
    kwargs = settings.to_generation_kwargs(tokenizer, end_token_ids=stop_ids)
    return kwargs | {"eos_token_id": stop_ids, "pad_token_id": pad_id, "use_cache": True}


def generate_candidates(
    model,
    tokenizer,
    prompts: list[list[int]],
    settings: SamplingSettings,
    *,
    stop_ids: list[int],
    pad_id: int,
    attempt: int = 1,
) -> GenerationResult:
    """``settings.num_candidates`` scored candidates for every prompt, in one fast-loop or ``generate`` call."""
    input_ids, attention_mask = left_pad(prompts, pad_id)
    input_ids, attention_mask = input_ids.to(model.device), attention_mask.to(model.device)
    kwargs = _generate_kwargs(settings, tokenizer, stop_ids, pad_id)
    plan = decode_plan(model, kwargs, [len(p) for p in prompts])
    with generation_lock(settings.seed):
        start = time.perf_counter()  # after the lock: another conversation's turn is not our cost
        if isinstance(plan, DecodePlan):
            decoded = fast_decode(model, prompts, plan)
            rows, path = zip(decoded.tokens, decoded.logprobs, strict=True), FAST
        else:
            logger.debug("generate serves %s: %s", settings.describe(), plan)
            rows, path = _generate_rows(model, input_ids, attention_mask, kwargs), GENERATE
        seconds = time.perf_counter() - start
    stops = set(stop_ids)
    per_prompt: list[list[Candidate]] = [[] for _ in prompts]
    for row, (tokens, logprobs) in enumerate(rows):
        candidate = make_candidate(tokenizer, tokens, logprobs, stops, attempt)
        candidate.path = path
        per_prompt[row // settings.num_candidates].append(candidate)
    total = sum(c.n_tokens for cs in per_prompt for c in cs)
    logger.debug("generated %d tokens for %d prompts in %.3fs (%s)", total, len(prompts), seconds, path)
    return GenerationResult(per_prompt, seconds, total, prompt_tokens=input_ids.shape[1])


def _generate_rows(model, input_ids, attention_mask, kwargs: dict):
    """generate's (new tokens, (T,) log-probs) per row."""
    with torch.inference_mode(), _finished_rows_padding_quiet():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            return_dict_in_generate=True,
            output_logits=True,  # raw logits: scores are the model's, not the temperature-warped ones
            **kwargs,
        )
        # (B * n, new_tokens): log p(token) at each step, following each sequence's beam
        logprobs = model.compute_transition_scores(
            out.sequences, out.logits, beam_indices=getattr(out, "beam_indices", None), normalize_logits=True
        )
    new = out.sequences[:, input_ids.shape[1] :].tolist()
    return zip(new, logprobs.cpu(), strict=True)


class _CancelFlag:
    """A StoppingCriteria that ends every sequence once one of its events is set: checked after each token."""

    def __init__(self, *events: threading.Event):
        self.events = events

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.BoolTensor:
        stop = any(e.is_set() for e in self.events)
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class GenerationStream:
    """One sampled or greedy reply, streamed as text while it is generated; cancellable.

    Iterating yields decoded pieces (transformers' TextIteratorStreamer emits whole words, up to the
    last space). ``cancel()``, or setting the caller's ``cancel_event`` (a Stop button), sets a flag
    that a StoppingCriteria reads after every token, so the generating thread stops within one
    token; iteration ends right away. ``result`` is the Candidate generated so far, with its score,
    once iteration is over.
    """

    def __init__(
        self,
        model,
        tokenizer,
        prompt: list[int],
        settings: SamplingSettings,
        *,
        stop_ids: list[int],
        pad_id: int,
        attempt: int = 1,
        cancel_event: threading.Event | None = None,
    ):
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        if settings.strategy == "beam":
            raise ValueError("beam search cannot stream; use the batched path (generate_candidates)")
        self.settings = settings.replace(num_candidates=1)
        self.cancel_event = cancel_event or threading.Event()  # the caller's (user's) stop request
        self._stop = threading.Event()  # ours: cancel() stops this stream only
        self.result: Candidate | None = None
        self.error: BaseException | None = None
        self.new_tokens = 0
        self.seconds = 0.0
        self._tokenizer = tokenizer
        self._stop_ids = stop_ids
        self.attempt = attempt
        self._streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        input_ids = torch.tensor([prompt], dtype=torch.long, device=model.device)
        # built once (bad-word ids, the processor list with its seeded generator): only one of the two paths runs
        sampling = _generate_kwargs(self.settings, tokenizer, stop_ids, pad_id)
        self._kwargs = dict(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            streamer=self._streamer,
            stopping_criteria=StoppingCriteriaList([_CancelFlag(self.cancel_event, self._stop)]),
            return_dict_in_generate=True,
            output_logits=True,
            **sampling,
        )
        self._model = model
        self._prompt = prompt
        self._prompt_len = len(prompt)
        # the fast loop serves the stream where it reproduces the settings (the cancel flag is its should_stop)
        self._plan = decode_plan(model, sampling, [len(prompt)])
        self.path = FAST if isinstance(self._plan, DecodePlan) else GENERATE
        self._thread = threading.Thread(target=self._run, name="chatbot-generate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with generation_lock(self.settings.seed), torch.inference_mode():
                start = time.perf_counter()
                tokens, logprobs = self._fast() if self.path == FAST else self._generate()
            self.seconds = time.perf_counter() - start
            candidate = make_candidate(self._tokenizer, tokens, logprobs, set(self._stop_ids), self.attempt)
            candidate.path = self.path
            candidate.finished = candidate.finished and not self.cancelled
            self.new_tokens = candidate.n_tokens
            self.result = candidate
        except BaseException as exc:  # re-raised in the consuming thread
            self.error = exc
            self._streamer.end()  # unblock the consumer; without it the iterator waits forever

    def _generate(self) -> tuple[list[int], torch.Tensor]:
        with _finished_rows_padding_quiet():
            out = self._model.generate(**self._kwargs)
        logprobs = self._model.compute_transition_scores(out.sequences, out.logits, normalize_logits=True)
        return out.sequences[0, self._prompt_len :].tolist(), logprobs[0].cpu()

    def _fast(self) -> tuple[list[int], torch.Tensor]:
        self._streamer.put(self._kwargs["input_ids"].cpu())  # the prompt first, as generate does (skip_prompt drops it)
        decoded = fast_decode(
            self._model,
            [self._prompt],
            self._plan,
            should_stop=lambda: self.cancelled,
            on_tokens=lambda tokens: self._streamer.put(tokens.cpu()),
        )
        self._streamer.end()
        return decoded.tokens[0], decoded.logprobs[0]

    def __iter__(self) -> Iterator[str]:
        exhausted = False
        try:
            for piece in self._streamer:
                if self.cancelled:
                    break
                if piece:
                    yield piece
            else:
                exhausted = True
        finally:
            if not exhausted:  # cancelled, or the consumer stopped listening: stop generating too
                self.cancel()
            self._thread.join()
        if self.error is not None:
            raise self.error

    def cancel(self) -> None:
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set() or self.cancel_event.is_set()
