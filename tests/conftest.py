"""Shared fixtures: a handful of dialogues written for the tests and a tiny chatbot built from them.

Nothing here reaches the network: the tiny model is a GPT-2 built from a config, with a BPE
tokenizer trained on the fixture dialogues, saved the way ``chatbot train`` saves a checkpoint.
"""

from __future__ import annotations

import json
import threading

import pytest
import torch

import chatbot.backends.local as local_backend_module
from chatbot.checkpoint import ChatbotSettings
from chatbot.format import DialogueFormat
from chatbot.generation import Candidate, GenerationResult

torch.set_num_threads(1)  # the suite shares 2 cores; tiny models gain nothing from more threads

DIALOGUES = [
    ["hi, how are you?", "i am good, thanks. how about you?", "pretty good. i just got back from a trip."],
    ["what do you do for fun?", "i like to play the guitar and hike.", "nice, where do you hike?", "in the mountains."],
    ["do you have any pets?", "yes, a dog named max.", "what breed is he?", "a golden retriever. he is very friendly."],
    ["where are you from?", "i am from a small town.", "do you like it there?", "yes, it is quiet and pretty."],
    ["what is your favorite food?", "pizza, for sure.", "me too! what toppings?", "pepperoni and mushrooms."],
    ["are you a student?", "yes, i study biology.", "that sounds hard.", "it is, but i love it."],
]


@pytest.fixture(scope="session")
def dialogues() -> list[list[str]]:
    return [list(d) for d in DIALOGUES]


def write_jsonl(path, dialogues, persona=None):
    with open(path, "w", encoding="utf-8") as f:
        for turns in dialogues:
            f.write(json.dumps({"persona": persona or [], "turns": turns}) + "\n")
    return path


@pytest.fixture
def jsonl_file(tmp_path, dialogues):
    return write_jsonl(tmp_path / "dialogues.jsonl", dialogues * 3)


def build_tiny_chatbot(folder, texts, n_layer=2, n_embd=32, context=128, seed=0):
    """A randomly initialised tiny GPT-2 chatbot checkpoint (what ``chatbot train`` writes, untrained)."""
    from training.model import new_gpt2
    from training.tokenizer import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(texts, vocab_size=400)
    model = new_gpt2(tokenizer, n_layer=n_layer, n_embd=n_embd, n_head=2, context=context, seed=seed)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    ChatbotSettings(format=DialogueFormat(max_history=5, max_length=context), loss="reply").save(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_chatbot(tmp_path_factory) -> str:
    """Path to a tiny (untrained, ~60k parameters) chatbot checkpoint folder; load it with load_chatbot."""
    folder = tmp_path_factory.mktemp("tiny_chatbot")
    texts = [u for d in DIALOGUES for u in d] * 4
    return str(build_tiny_chatbot(folder, texts))


# -- a fake model: canned candidates and streams with exact, known text ----------------------------
# The tiny random model's replies are bytes of partial UTF-8 that the filters reject; tests about what
# the conversation manager or the app does with a reply install these instead and assert exact text.


class FakeGenerator:
    """Stands in for generate_candidates: canned (text, score) candidates per attempt, calls recorded."""

    def __init__(self, *attempts):
        self.attempts = list(attempts)
        self.calls = []

    def __call__(self, model, tokenizer, prompts, settings, *, stop_ids, pad_id, attempt=1):
        self.calls.append({"prompts": prompts, "settings": settings, "attempt": attempt})
        canned = self.attempts[min(attempt, len(self.attempts)) - 1]
        per_prompt = [
            [Candidate(text=t, logprob=s * 4, n_tokens=4, attempt=attempt) for t, s in canned] for _ in prompts
        ]
        return GenerationResult(per_prompt, seconds=0.01, new_tokens=4 * len(canned) * len(prompts))


@pytest.fixture
def fake(monkeypatch):
    """``fake([("text", score), ...], [second attempt's], ...)``: every prompt gets exactly these candidates
    (log-prob ``4 * score`` over 4 tokens); returns the generator, whose ``calls`` record each request."""

    def install(*attempts):
        generator = FakeGenerator(*attempts)
        monkeypatch.setattr(local_backend_module, "generate_candidates", generator)  # the local backend's call
        return generator

    return install


class FakeStream:
    """Stands in for GenerationStream: canned pieces per attempt; records how far it was consumed."""

    script: list[list[str]] = []
    consumed: list[int] = []

    def __init__(self, model, tokenizer, prompt, settings, *, stop_ids, pad_id, attempt=1, cancel_event=None):
        self.pieces = FakeStream.script[attempt - 1]
        self.cancel_event = cancel_event or threading.Event()
        self._stop = threading.Event()
        self.attempt = attempt
        self.result = None
        self.seconds, self.new_tokens = 0.01, 0

    def __iter__(self):
        for piece in self.pieces:
            if self._stop.is_set() or self.cancel_event.is_set():
                break
            FakeStream.consumed.append(1)
            self.new_tokens += 1
            yield piece
        shown = "".join(self.pieces[: self.new_tokens])
        self.result = Candidate(text=shown.strip(), logprob=-1.0, n_tokens=max(self.new_tokens, 1))

    def cancel(self):
        self._stop.set()


@pytest.fixture
def fake_stream(monkeypatch):
    """``fake_stream(["nice ", "day"], [second attempt's pieces], ...)``: a streamed reply yields exactly
    these pieces; ``FakeStream.consumed`` counts the pieces taken."""

    def install(*attempts):
        FakeStream.script, FakeStream.consumed = list(attempts), []
        monkeypatch.setattr(local_backend_module, "GenerationStream", FakeStream)  # the local backend's stream

    return install
