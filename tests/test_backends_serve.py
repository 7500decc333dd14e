"""A real ``transformers serve`` on the tiny test model: chat --once, an A/B turn, streaming and evaluate over HTTP.

Slow (the server takes 20-60 s to start on a shared CPU); needs ``transformers[serving]``.
"""

from __future__ import annotations

import json
import threading

import pytest

from chatbot.backends.options import BackendOptions, load_bot
from chatbot.sampling import SamplingSettings

pytestmark = pytest.mark.slow

pytest.importorskip("fastapi", reason="transformers serve needs pip install 'transformers[serving]'")


@pytest.fixture(scope="module")
def served(tiny_chatbot):
    """The base URL of a transformers serve of the tiny chatbot on a free 127.0.0.1 port, once /health answers."""
    from chatbot.backends.launch import transformers_serve

    with transformers_serve(tiny_chatbot) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def remote_bot(served):
    return load_bot(BackendOptions(base_url=served))


def test_chat_once_through_the_server(served, capsys):
    from chatbot.cli import main

    code = main(["chat", "--backend", "openai", "--base-url", served, "--once", "hi, how are you?", "--seed", "3",
                 "--json"])  # fmt: skip
    assert code == 0
    reply = json.loads(capsys.readouterr().out)
    assert len(reply["candidates"]) >= 4  # n emulated: one request per candidate
    assert reply["text"] == (
        reply["candidates"][reply["chosen"]]["text"] if reply["chosen"] is not None else reply["text"]
    )
    assert any("not ranked by likelihood" in note for note in reply["notes"])


def test_the_server_is_detected_and_described(remote_bot, tiny_chatbot):
    from pathlib import Path

    described = remote_bot.backend.describe()
    assert described["server_kind"] == "transformers-serve"
    assert Path(described["model"]) == Path(tiny_chatbot).resolve()
    assert remote_bot.dialogue  # the served folder exists here: our own format, our tokenizer


def test_greedy_reply_matches_the_local_path(remote_bot, tiny_chatbot):
    from chatbot.conversation import Chatbot

    greedy = SamplingSettings(strategy="greedy", num_candidates=1, max_new_tokens=12)
    history = ["what do you do for fun?"]
    local = Chatbot.load(tiny_chatbot).generate_reply(history, settings=greedy)
    served = remote_bot.generate_reply(history, settings=greedy)
    assert served.candidates[0].text == local.candidates[0].text


def test_ab_turn_two_settings_on_one_server(remote_bot):
    a = SamplingSettings(strategy="greedy", num_candidates=1, max_new_tokens=8)
    b = SamplingSettings(strategy="sample", temperature=1.2, top_p=0.95, num_candidates=2, max_new_tokens=8, seed=1)
    conv_a, conv_b = remote_bot.new_conversation(), remote_bot.new_conversation()
    reply_a, reply_b = conv_a.reply("where are you from?", a), conv_b.reply("where are you from?", b)
    assert reply_a.settings == a.identity and reply_b.settings == b.identity
    assert len(reply_b.candidates) >= 2 and conv_a.turns[0] == conv_b.turns[0] == "where are you from?"


def test_unsupported_setting_is_refused_before_sending(remote_bot):
    from chatbot.backends.capabilities import UnsupportedSettingError

    with pytest.raises(UnsupportedSettingError, match="frequency_penalty=0.5 .*transformers-serve"):
        remote_bot.generate_reply(["hi"], settings=SamplingSettings(frequency_penalty=0.5))


def test_stream_and_cancel_over_sse(remote_bot):
    settings = SamplingSettings(strategy="sample", num_candidates=1, max_new_tokens=40, seed=2)
    events = list(remote_bot.stream_reply(["do you have any pets?"], settings=settings))
    assert events[-1].kind == "final"
    cancel = threading.Event()
    cancel.set()  # Stop pressed before the first word
    final = list(remote_bot.stream_reply(["do you have any pets?"], settings=settings, cancel=cancel))[-1]
    assert final.value.cancelled


def test_small_evaluate_over_http(served, tmp_path, jsonl_file):
    from evaluation.cli import main

    out = tmp_path / "report"
    code = main(["--backend", "openai", "--base_url", served, "--concurrency", "2", "--data", str(jsonl_file),
                 "--limit", "3", "--presets", "greedy,top-p", "--embedder", "hashing", "--no_perplexity",
                 "--no_wordnet_download", "--no_progress", "--bootstrap_rounds", "20", "--output", str(out)])  # fmt: skip
    assert code == 0
    meta = json.loads((out / "metrics.json").read_text())["meta"]
    assert meta["backend"] == "openai" and meta["server_kind"] == "transformers-serve"
    assert meta["model"].endswith("tiny_chatbot0") or "tiny_chatbot" in meta["model"]
