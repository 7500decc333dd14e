"""Shared fixtures: a handful of dialogues written for the tests and a tiny chatbot built from them.

Nothing here reaches the network: the tiny model is a GPT-2 built from a config, with a BPE
tokenizer trained on the fixture dialogues, saved the way ``chatbot train`` saves a checkpoint.
"""

from __future__ import annotations

import json

import pytest
import torch

from chatbot.checkpoint import ChatbotSettings
from chatbot.format import DialogueFormat

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
