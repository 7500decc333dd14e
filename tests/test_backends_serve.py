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


def test_ab_turn_in_the_app_with_the_server_in_the_model_box(served, tmp_path):
    """The app's model box takes the base URL; an A/B turn compares two settings on the server, then a vote."""
    from chatbot.app.chat_app import ChatApp
    from chatbot.app.sessions import AppConfig

    app = ChatApp(AppConfig(model=served, data_dir=tmp_path / "data", bootstrap_rounds=20))
    session = app.new_session()
    greedy = {"preset": "greedy", "strategy": "greedy", "max_new_tokens": 8}
    ranked = {"preset": "top-p", "strategy": "sample", "max_new_tokens": 8, "num_candidates": 2}
    list(app.ab.send(session, "where are you from?", "", False, "5", greedy, ranked))
    pair = session.pair
    assert pair.open and pair.settings_a.strategy == "greedy" and pair.settings_b.num_candidates == 2
    assert app.registry.get(served).backend.describe()["server_kind"] == "transformers-serve"
    app.ab.vote(session, "left")
    assert app.votes.store.count() == 1 and session.ab_turns[0] == "where are you from?"


def test_unsupported_setting_is_refused_before_sending(remote_bot):
    from chatbot.backends.capabilities import UnsupportedSettingError

    with pytest.raises(UnsupportedSettingError, match="frequency_penalty=0.5 .*transformers-serve"):
        remote_bot.generate_reply(["hi"], settings=SamplingSettings(frequency_penalty=0.5))


def test_stream_and_cancel_over_sse(remote_bot):
    """Stop after the first streamed piece: the HTTP stream closes long before the 40 tokens it had to make."""
    settings = SamplingSettings(strategy="sample", num_candidates=1, min_new_tokens=40, max_new_tokens=40, seed=2)
    prompt = remote_bot.build_prompt(["do you have any pets?"], settings=settings)
    cancel = threading.Event()
    stream = remote_bot.backend.stream(prompt, settings, cancel_event=cancel)
    pieces = []
    for piece in stream:
        pieces.append(piece)
        cancel.set()  # the Stop button
    assert len(pieces) == 1 and stream.result is not None and not stream.result.finished
    assert 0 < stream.new_tokens < 40
    # through the conversation manager: Stop pressed at once gives a cancelled reply, not an error
    final = list(remote_bot.stream_reply(["do you have any pets?"], settings=settings, cancel=cancel))[-1]
    assert final.kind == "final" and final.value.cancelled


def test_small_evaluate_over_http(served, tmp_path, jsonl_file):
    from evaluation.cli import main

    out = tmp_path / "report"
    argv = ["--backend", "openai", "--base_url", served, "--concurrency", "2", "--data", str(jsonl_file),
            "--split", "all", "--limit", "3", "--multiturn_dialogues", "1", "--multiturn_turns", "2",
            "--presets", "greedy,top-p", "--embedder", "hashing", "--no_perplexity", "--no_wordnet_download",
            "--no_progress", "--bootstrap_rounds", "20", "--output", str(out)]  # fmt: skip
    code = main(argv)
    assert code == 0
    meta = json.loads((out / "metrics.json").read_text())["meta"]
    assert meta["backend"] == "openai" and meta["server_kind"] == "transformers-serve"
    assert "tiny_chatbot" in meta["model"] and "served by a transformers-serve server at" in meta["model"]
    assert "served by a transformers-serve server" in (out / "report.md").read_text()
