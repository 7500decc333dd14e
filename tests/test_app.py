"""The web app: the functions behind each button called directly, then the running app through gradio_client."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import threading
import time
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home
import gradio as gr  # noqa: E402

from chatbot.app import build_app
from chatbot.app.ab_tab import PENDING
from chatbot.app.chat_app import ChatApp
from chatbot.app.controls import parse_seed, ranking_identity, settings_from_panel
from chatbot.app.errors import ui_errors
from chatbot.app.layout import launch_options
from chatbot.app.models import ModelRegistry
from chatbot.app.render import clean_message, messages, render_stream
from chatbot.app.server import config_from_args, parse_args, parse_auth
from chatbot.app.sessions import AppConfig
from chatbot.errors import ChatbotError, ModelLoadError
from chatbot.sampling import FIELD, FIELD_NAMES, FIELDS, PRESETS, SamplingSettings

# one sampling panel's values: a preset, then the fields changed from it (the page sends every field);
# short replies keep the suite fast on 2 shared cores
STREAM = {"preset": "top-p", "strategy": "sample", "max_new_tokens": 12, "num_candidates": 1}  # streams word by word
RANKED = {"preset": "top-p", "strategy": "sample", "max_new_tokens": 12, "num_candidates": 4}  # four, ranked
GREEDY = {"preset": "greedy", "strategy": "greedy", "max_new_tokens": 12}


def by_keyword(values: dict, prefix: str = "") -> dict:
    """A panel's values as the app's API takes them: each control by keyword ("a_" for A/B panel A)."""
    return {prefix + key: value for key, value in values.items()}


def drain(generator) -> list:
    """Run a streaming handler to its end; its yields, in order."""
    return list(generator)


@pytest.fixture
def app(tiny_chatbot, tmp_path) -> ChatApp:
    return ChatApp(AppConfig(model=tiny_chatbot, data_dir=tmp_path / "data", bootstrap_rounds=20))


# -- pure helpers --------------------------------------------------------------------------------


def test_clean_message_strips_cuts_and_says_so():
    assert clean_message("  hi  ", 10) == ("hi", None)
    assert clean_message("   ", 10) == ("", None)
    assert clean_message(None, 10) == ("", None)
    text, notice = clean_message("x" * 25, 10)
    assert text == "x" * 10 and "cut to its first 10 characters (it had 25)" in notice


def test_settings_from_panel_casts_validates_and_applies_implied_values():
    s = settings_from_panel(PRESETS, RANKED)
    assert (s.strategy, s.temperature, s.top_p, s.max_new_tokens, s.num_candidates, s.seed) == (
        "sample",
        0.7,
        0.9,
        12,
        4,
        None,
    )
    greedy = settings_from_panel(PRESETS, RANKED | {"strategy": "greedy"})
    assert greedy.num_candidates == 1  # greedy gives one reply, as on the command line
    # values as the widgets send them: a slider's float for a whole number, text for the seed and word lists
    widgets = {"strategy": "beam", "num_beams": 3.0, "num_candidates": 8, "seed": " 7 ", "avoid_words": "cat, dog"}
    beam = settings_from_panel(PRESETS, {"preset": "top-p", **widgets})
    assert (beam.num_beams, beam.num_candidates, beam.seed, beam.avoid_words) == (3, 3, 7, ("cat", "dog"))
    with pytest.raises(ChatbotError, match="temperature"):
        settings_from_panel(PRESETS, RANKED | {"temperature": 0.0})
    with pytest.raises(ChatbotError, match="unknown preset 'nope'"):
        settings_from_panel(PRESETS, {"preset": "nope"})


def test_seed_box_and_auth_parsing():
    assert parse_seed("") is None and parse_seed(None) is None and parse_seed(" 42 ") == 42 and parse_seed(3.0) == 3
    for bad in ("-1", "abc"):
        with pytest.raises(ChatbotError, match="seed"):
            parse_seed(bad)
    assert parse_auth("me:pa:ss") == ("me", "pa:ss") and parse_auth(None) is None
    with pytest.raises(ChatbotError, match="user:password"):
        parse_auth("nopassword")


def test_serve_flags_defaults_and_presets_file(tmp_path):
    config, auth = config_from_args(parse_args([]))
    assert (config.model, auth, config.concurrency) == (
        None,
        None,
        2,
    ) and config.data_dir.name == "gpt2-dialogue-chatbot"
    args = parse_args(["--host", "0.0.0.0", "--port", "8000", "--share"])
    assert (args.host, args.port, args.share) == ("0.0.0.0", 8000, True)
    assert (parse_args([]).host, parse_args([]).port, parse_args([]).share) == ("127.0.0.1", 7860, False)
    presets = tmp_path / "presets.json"
    presets.write_text('{"warm": {"base": "top-p", "temperature": 1.0}}')
    argv = ["--model", "m", "--auth", "me:pw", "--data-dir", str(tmp_path / "d"), "--presets-file", str(presets)]
    config, auth = config_from_args(parse_args(argv))
    assert auth == ("me", "pw") and config.data_dir == (tmp_path / "d").resolve() and config.model == "m"
    assert config.presets["warm"].temperature == 1.0 and "top-p" in config.presets
    presets.write_text("{broken")
    with pytest.raises(ChatbotError, match="not valid JSON"):
        config_from_args(parse_args(["--presets-file", str(presets)]))


def test_persona_hint_says_what_the_model_does_with_a_persona():
    from chatbot.app.models import persona_hint

    assert "answers in character" in persona_hint(True)
    assert "not trained with personas" in persona_hint(False)
    assert "few-shot examples" in persona_hint(False, dialogue=False)
    assert "system message" in persona_hint(False, dialogue=False, chat_endpoint=True)


def test_model_box_offers_local_checkpoints(tmp_path, tiny_chatbot):
    from chatbot.app.models import local_checkpoints

    for name in ("a", "b/checkpoint-10", "not-a-checkpoint"):
        (tmp_path / "runs" / name).mkdir(parents=True)
    (tmp_path / "runs/a/chatbot.json").write_text("{}")
    (tmp_path / "runs/b/checkpoint-10/chatbot.json").write_text("{}")
    found = local_checkpoints(tmp_path / "runs")
    assert sorted(found) == [str(tmp_path / "runs/a"), str(tmp_path / "runs/b/checkpoint-10")]
    assert local_checkpoints(tmp_path / "nowhere") == []
    app = ChatApp(AppConfig(model=tiny_chatbot, data_dir=tmp_path, checkpoints_dir=tmp_path / "runs"))
    assert app.models.known_models[0] == tiny_chatbot and set(found) < set(app.models.known_models)


def test_ranking_identity_ignores_the_seed():
    top_p = PRESETS["top-p"]
    assert ranking_identity(top_p.replace(seed=3)) == ranking_identity(top_p) == top_p.identity


def test_render_stream_shows_withdrawn_attempts():
    text = render_stream("new words", [("bad words", "profanity")])
    assert text.startswith("~~bad words~~ *(withdrawn: profanity; regenerating)*") and text.endswith("new words ▌")
    assert messages(["hi", "hello"]) == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def test_registry_keeps_nothing_from_a_bad_load_and_evicts_the_oldest():
    loads = []

    def loader(name):
        if name == "bad":
            raise ModelLoadError("bad: no such model folder")
        loads.append(name)
        return object()

    registry = ModelRegistry(capacity=2, loader=loader)
    first = registry.get("a")
    with pytest.raises(ModelLoadError):
        registry.get("bad")
    assert registry.get("a") is first and loads == ["a"]
    registry.get("b"), registry.get("c")  # "a" is the least recently used: unloaded
    registry.get("a")
    assert loads == ["a", "b", "c", "a"]


def test_registry_loads_a_model_once_while_other_models_stay_usable():
    started, release = threading.Event(), threading.Event()
    loads = []

    def loader(name):
        loads.append(name)
        if name == "slow":
            started.set()
            release.wait(10)
        return f"bot {name}"

    registry = ModelRegistry(capacity=3, loader=loader)
    registry.get("fast")
    waiting = [threading.Thread(target=registry.get, args=("slow",)) for _ in range(2)]
    for t in waiting:
        t.start()
    started.wait(10)
    assert registry.get("fast") == "bot fast"  # not blocked by the slow load
    release.set()
    for t in waiting:
        t.join(10)
    assert loads == ["fast", "slow"] and registry.get("slow") == "bot slow"


# -- the handlers, called directly -----------------------------------------------------------------


def test_chat_send_streams_a_reply_with_candidates_and_speed(app, fake, fake_stream):
    fake_stream(["i am ", "fine, ", "thanks."])
    session = app.new_session()
    outputs = drain(app.chat.send(session, "hi, how are you?", "", STREAM))
    assert outputs[0][0] == "" and outputs[0][1][-1] == {"role": "user", "content": "hi, how are you?"}
    # the words as they come, then the finished reply
    shown = [o[1][-1]["content"] for o in outputs[1:] if o[1][-1]["role"] == "assistant"]
    assert shown[:3] == [text + " ▌" for text in ("i am ", "i am fine, ", "i am fine, thanks.")]  # a cursor
    assert shown[-1] == "i am fine, thanks."
    textbox, chat, why, stats, notice = outputs[-1]
    assert chat == [{"role": "user", "content": "hi, how are you?"}, {"role": "assistant", "content": "i am fine, thanks."}]
    assert session.chat.turns == ["hi, how are you?", "i am fine, thanks."]
    assert [[row[0], row[1], row[3], row[4]] for row in why] == [["✔", "i am fine, thanks.", "", 1]]
    assert "tokens/s" in stats and stats.endswith(" · top-p-stream, max_new_tokens=12")  # the nearest preset
    # several candidates: every one is listed, the best passing one marked, rejected ones with their reason;
    # the default preset ranks by MiniLM coherence with the message (cosines 0.38, 0.47, 0.39), not likelihood
    fake([("i like to hike.", -0.2), ("", -0.1), ("i like to hike and swim.", -0.3), ("hiking!", -0.9)])
    outputs = drain(app.chat.send(session, "what do you do for fun?", "i like dogs.", RANKED))
    why = outputs[-1][2]
    assert [(row[0], row[1]) for row in why] == [
        ("", "i like to hike."), ("", ""), ("✔", "i like to hike and swim."), ("", "hiking!")
    ]
    assert [row[3] for row in why] == [c.rejected or "" for c in session.last_reply.candidates]
    assert why[1][3] != "" and why[0][3] == why[2][3] == why[3][3] == ""
    assert "coherence 0.474" in why[2][5]  # the "all scores" column
    assert session.chat.turns[-1] == "i like to hike and swim." and session.chat.persona == ["i like dogs."]


def test_stats_line_says_what_happened_to_the_reply():
    from chatbot.app.render import reply_stats
    from chatbot.conversation import Reply, Timings
    from chatbot.generation import Candidate

    reply = Reply(
        text="fine, thanks.",
        candidates=[
            Candidate("fine, thanks.", n_tokens=4, path="fast"),
            Candidate("a rude word", n_tokens=2, rejected="profanity", path="fast"),
        ],
        chosen=0,
        timings=Timings(generation_ms=500, filter_ms=3, total_ms=520, new_tokens=6),
        user_profanity=True,
        truncated=True,
        kept_utterances=3,
    )
    assert reply_stats(reply, "top-p", "mask") == (
        "**12 tokens/s** (6 tokens over 2 candidates in 0.50 s, decoder: fast) · reply in 0.52 s, filters 3 ms · "
        "2 candidates, 1 rejected · top-p · context cut to the last 3 utterances · "
        "your message had profanity: the model saw it masked"
    )
    assert reply_stats(None) == ""


def test_empty_message_is_ignored_with_a_hint(app):
    session = app.new_session()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs = drain(app.chat.send(session, "   ", "", STREAM))
    assert len(outputs) == 1 and "Type a message" in outputs[0][-1]
    assert any("empty message" in str(w.message) for w in caught)
    assert session.chat is None


def test_missing_model_is_a_one_line_error_before_anything_is_shown(tmp_path):
    app = ChatApp(AppConfig(model=str(tmp_path / "nowhere"), data_dir=tmp_path))
    session = app.new_session()
    with pytest.warns(UserWarning, match="no such model folder"):
        outputs = drain(ui_errors(app.chat.send)(session, "hi", "", STREAM))
    assert outputs == [gr.skip()] and session.chat is None  # a warning; every control keeps its value
    status, *_ = app.models.page_load(session)
    assert status.startswith("**No model loaded:**") and "no such model folder" in status


def test_overlong_message_is_cut_with_a_visible_notice(app):
    app.config.max_message_chars = 30
    session = app.new_session()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outputs = drain(app.chat.send(session, "word " * 20, "", STREAM))
    assert "cut to its first 30 characters" in outputs[0][-1]
    assert len(session.chat.turns[0]) <= 30


def test_retry_undo_clear(app):
    session = app.new_session()
    drain(app.chat.send(session, "hi there", "", STREAM))
    drain(app.chat.retry(session, "", GREEDY))
    assert session.chat.turns[0] == "hi there" and len(session.chat.turns) == 2
    assert session.last_reply.candidates and session.chat.turns[1] == session.last_reply.text
    textbox, chat, why, stats = app.chat.undo(session)
    assert textbox == "hi there" and chat == [] and session.chat.turns == []
    drain(app.chat.send(session, "again", "", STREAM))
    assert app.chat.clear(session)[0] == [] and session.chat.turns == []


def test_stop_ends_the_stream_and_keeps_what_was_shown(app):
    session = app.new_session()
    long_reply = STREAM | {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 100, "seed": "3"}
    stream = app.chat.send(session, "tell me a long story", "", long_reply)
    next(stream)  # the user's message is shown; generation starts on the next step
    app.stop(session)  # Stop pressed before the first word: nothing more is generated
    drain(stream)
    reply = session.last_reply
    assert reply.cancelled and reply.timings.new_tokens <= 1
    assert session.chat.turns == ["tell me a long story"]  # no reply recorded; the next message joins this turn


def test_stop_mid_stream_keeps_the_words_shown(app):
    session = app.new_session()
    # slow the model down (10 ms a token) so Stop lands in the middle of a 100-token reply
    app.bot(session).model.register_forward_hook(lambda *args: time.sleep(0.01))
    long_reply = STREAM | {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 100, "seed": "5"}
    stream = app.chat.send(session, "tell me a long story", "", long_reply)
    next(stream), next(stream)  # the user's message, then the first streamed words
    app.stop(session)
    *_, (_, chat, _, stats, _) = drain(stream)
    reply = session.last_reply
    assert reply.cancelled and reply.timings.new_tokens < 100 and "stopped" in stats
    assert chat[-1]["content"] == reply.text == session.chat.turns[-1]


def test_stopped_ab_turn_leaves_nothing_to_vote_on(app):
    session = app.new_session()
    stream = app.ab.send(session, "hi", "", False, "", STREAM, GREEDY)
    next(stream)
    app.stop(session)
    *_, last = drain(stream)
    assert last[0] == "hi" and "Stopped" in last[NOTICE]  # the message is back in the box
    assert session.ab_turns == [] and session.pair is None and app.votes.store.count() == 0


def test_generations_share_one_bounded_queue(tiny_chatbot, tmp_path):
    demo = build_app(AppConfig(model=tiny_chatbot, data_dir=tmp_path, concurrency=3))
    fns = {fn.api_name: fn for fn in demo.fns.values()}
    for name in ("chat_send", "chat_retry", "ab_send"):
        assert (fns[name].concurrency_id, fns[name].concurrency_limit) == ("generate", 3)
    assert fns["stop"].concurrency_limit is None  # Stop never waits behind what it stops
    assert not list(tmp_path.iterdir())  # building the page created no files


def test_save_and_load_a_conversation(app, tmp_path):
    session = app.new_session()
    drain(app.chat.send(session, "hi, how are you?", "i love hiking.", STREAM))
    file, notice = app.chat.save(session)
    path = file["value"]
    saved = notice.split("`")[1]  # the file in the data folder; the download is a copy outside it
    assert saved.startswith(str(app.config.data_dir / "conversations")) and "Saved to" in notice
    assert not path.startswith(str(app.config.data_dir)) and Path(path).read_bytes() == Path(saved).read_bytes()
    other = app.new_session()
    chat, persona, notice = app.chat.load(other, path)
    assert other.chat.turns == session.chat.turns and persona == "i love hiking."
    assert [m["content"] for m in chat] == session.chat.turns
    with pytest.raises(gr.Error, match="Nothing to save"):
        app.chat.save(app.new_session())


def test_switch_model_keeps_the_current_one_on_a_bad_folder(app, tiny_chatbot, tmp_path):
    session = app.new_session()
    with pytest.warns(UserWarning, match="not a model folder|no such model folder"):
        assert ui_errors(app.models.switch_model)(session, str(tmp_path)) == gr.skip()  # no Error badge
    assert session.model == tiny_chatbot
    copy = shutil.copytree(tiny_chatbot, tmp_path / "copy")
    drain(app.chat.send(session, "hi", "", STREAM))
    dropdown, status, hint, _ = app.models.switch_model(session, str(copy))
    assert session.model == str(copy) and str(copy) in status and "not trained with personas" in hint
    drain(app.chat.send(session, "still there?", "", STREAM))
    assert session.chat.turns[0] == "hi" and session.chat.bot.name == str(copy)  # history moved over


NOTICE = -3  # ABTab.view: ..., notice, settings panel A, settings panel B


def pre_vote_text(output) -> str:
    """Everything a pre-vote output shows: values, labels, and the settings panels' labels."""
    parts = []
    for item in output:
        if isinstance(item, dict):  # an update: every property it sets (value, label, ...)
            parts += [str(value) for value in item.values()]
        elif isinstance(item, gr.components.Component):
            parts += [str(item.label or ""), str(item.value or "")]
        else:
            parts.append(str(item))  # the chat's messages, the notice
    return " ".join(parts)


def test_ab_turn_vote_and_leaderboard(app, fake, fake_stream):
    fake([("i like to hike.", -0.2)])  # A's candidates (one, so any reranker shows it)
    fake_stream(["i play ", "the guitar."])  # B (greedy, one candidate) streams
    session = app.new_session()
    outputs = drain(app.ab.send(session, "what do you do for fun?", "", True, "11", RANKED, GREEDY))
    pair = session.pair
    assert pair.open and pair.blind and pair.seed == 11 and pair.settings_a.seed == pair.settings_b.seed == 11
    assert (pair.reply_a, pair.reply_b) == ("i like to hike.", "i play the guitar.")
    final = outputs[-1]
    left, right = final[2], final[3]
    assert left["label"] == "Left reply" and right["label"] == "Right reply"
    assert {left["value"], right["value"]} == {"i like to hike.", "i play the guitar."}
    assert final[-2]["label"] == final[-1]["label"] == "Settings (hidden until you vote)" and not final[-1]["open"]
    # a second message before choosing is refused, the history unchanged
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drain(app.ab.send(session, "another", "", True, "", RANKED, GREEDY))
    assert session.ab_turns == ["what do you do for fun?"]

    *view, board, summary, selector, timer = app.ab.vote(session, "left")
    [vote] = app.votes.store.votes()
    assert vote.winner == pair.panel("left") and vote.blind and vote.swapped == pair.swapped
    assert vote.settings_a_id == ranking_identity(pair.settings_a) and '"seed":11' in vote.settings_a_json
    assert (vote.reply_a, vote.reply_b) == (pair.reply_a, pair.reply_b)
    assert vote.conversation == [{"role": "user", "content": "what do you do for fun?"}]
    assert vote.fingerprint == pair.fingerprint.key and vote.fingerprint.startswith(vote.model + "@")
    assert (vote.provenance_a, vote.provenance_b, vote.identical) == ("own", "own", False)
    assert (vote.len_a, vote.len_b) == (4, 4)
    # the winner continues the conversation; labels now say which setting was which, with the diff
    assert session.ab_turns[-1] == pair.reply_of(vote.winner) and not pair.open
    labels = view[1]["label"] + view[2]["label"]
    assert "greedy" in labels and "continues the conversation" in labels
    assert "A vs B:" in view[NOTICE] and "strategy" in view[NOTICE] and view[-1]["label"] == "Settings B"
    # named like the presets they derive from, by what differs (these panels cut max_new_tokens to 12)
    names = ["greedy, max_new_tokens=12", "top-p, max_new_tokens=12"]
    assert sorted(row[1] for row in board) == names and all(row[2] == 1 for row in board)
    assert "of 1 votes rated" in summary


@pytest.mark.slow
def test_twenty_blind_turns_name_no_side_or_setting_before_the_vote(app):
    session = app.new_session()
    names = [*app.presets, "top-p", "greedy", "max_new_tokens", "temperature", "strategy", "tokens/s"]
    for turn in range(20):
        outputs = drain(app.ab.send(session, f"message {turn}", "", True, "", STREAM, GREEDY))
        pair = session.pair
        for output in outputs:  # every pre-vote output: no side names, no settings, no timings
            text = pre_vote_text(output)
            assert " A " not in f" {text} " and " B " not in f" {text} " and "A and B" not in text
            assert not any(name in text for name in names), text
        # both replies appear in the same update, and not before it
        shown = [(o[2]["value"], o[3]["value"]) for o in outputs]
        assert shown[-1] == (pair.reply_of(pair.panel("left")), pair.reply_of(pair.panel("right")))
        assert all(value == (PENDING, PENDING) for value in shown[:-1])
        app.ab.vote(session, "tie" if turn % 2 else "right")
        if session.pair.open:
            app.ab.continue_with(session, "left")
    assert app.votes.store.count() == 20
    assert {v.swapped for v in app.votes.store.votes()} == {True, False}  # random sides


def test_ab_tie_then_continue_and_open_mode(app):
    session = app.new_session()
    drain(app.ab.send(session, "hi", "", False, "", GREEDY, RANKED))
    assert not session.pair.swapped  # open mode: A on the left
    app.ab.vote(session, "tie")
    assert session.pair.open and session.ab_turns == ["hi"]
    with pytest.warns(UserWarning, match="already voted"):
        view = app.ab.vote(session, "left")
    assert "already voted" in view[:-4][NOTICE] and view[-4:] == (gr.skip(),) * 4  # the leaderboard stays
    view = app.ab.continue_with(session, "right")
    assert session.ab_turns == ["hi", session.pair.reply_b] and "B" in view[NOTICE]
    assert [v.winner for v in app.votes.store.votes()] == ["tie"]
    app.ab.clear(session)
    assert session.ab_turns == [] and session.pair is None


@pytest.mark.slow
def test_the_trash_icon_resets_the_server_side_history(tiny_chatbot, tmp_path):
    app = ChatApp(AppConfig(model=tiny_chatbot, data_dir=tmp_path))
    demo = build_app(app.config, app)
    clear_fns = [fn for fn in demo.fns.values() if any(t[1] == "clear" for t in fn.targets)]
    assert any(fn.fn.__wrapped__ == app.ab.clear for fn in clear_fns if hasattr(fn.fn, "__wrapped__"))
    session = app.new_session()
    drain(app.ab.send(session, "my name is ann", "", False, "", GREEDY, GREEDY))
    app.ab.continue_with(session, "left")
    app.ab.clear(session)  # what the trash icon calls
    assert session.ab_turns == [] and session.pair is None


def test_ab_says_when_a_and_b_are_the_same_setting_open_mode_now_blind_after_the_vote(app):
    session = app.new_session()
    *_, last = drain(app.ab.send(session, "hi", "", False, "", GREEDY, GREEDY))
    assert "same setting" in last[NOTICE]
    *_, last = drain(app.ab.send(app.new_session(), "hi", "", True, "", GREEDY, GREEDY))
    assert "same setting" not in last[NOTICE]  # blind: it would name the sides before the vote
    blind = app.new_session()
    drain(app.ab.send(blind, "hi", "", True, "", GREEDY, GREEDY))
    view = app.ab.vote(blind, "tie")
    assert "same setting" in view[:-4][NOTICE]


def test_votes_export_and_clear(app):
    session = app.new_session()
    drain(app.ab.send(session, "hi", "", True, "", GREEDY, STREAM))
    app.ab.vote(session, "both-bad")
    csv_file, notice = app.votes.export_votes("csv", session)
    jsonl_file, _ = app.votes.export_votes("jsonl", session)
    assert "Exported 1 votes" in notice
    assert csv_file["value"].endswith(".csv") and jsonl_file["value"].endswith(".jsonl")
    # offered from a fresh temporary folder, never from the data folder
    assert not csv_file["value"].startswith(str(app.config.data_dir)) and csv_file["value"] != jsonl_file["value"]
    with open(csv_file["value"], encoding="utf-8", newline="") as f:
        [row] = list(csv.DictReader(f))
    assert row["winner"] == "both-bad" and row["fingerprint"] == session.pair.fingerprint.key
    with pytest.warns(UserWarning, match="Tick"):
        out = app.votes.clear_votes(session, "loaded model", False, False)
    assert out[0] == gr.skip() and app.votes.store.count() == 1  # the table is kept, never replaced by Error
    board, summary, selector, timer, confirm, notice = app.votes.clear_votes(session, "loaded model", False, True)
    assert board == [] and confirm is False and "Deleted 1 of this model's votes" in notice
    assert app.votes.store.count() == 0


def test_clear_votes_is_refused_when_reachable_without_a_login(app):
    from chatbot.app.access import disk_changes_allowed

    def allowed(host, share=False, auth=None):
        return disk_changes_allowed(AppConfig(host=host, share=share, auth=auth))

    assert allowed("127.0.0.1") and allowed("localhost") and allowed("::1") and allowed("127.0.0.2")
    assert allowed("0.0.0.0", share=True, auth=("u", "p"))
    assert not allowed("0.0.0.0") and not allowed("127.0.0.1", share=True) and not allowed("192.168.1.5")
    assert not allowed("my-host.example")  # a name other than localhost may resolve anywhere
    flags = config_from_args(parse_args(["--host", "0.0.0.0", "--share", "--auth", "me:pw"]))[0]
    assert (flags.host, flags.share, flags.auth) == ("0.0.0.0", True, ("me", "pw")) and "pw" not in repr(flags)
    session = app.new_session()
    drain(app.ab.send(session, "hi", "", True, "", GREEDY, STREAM))
    app.ab.vote(session, "left")
    app.config.host = "0.0.0.0"
    with pytest.warns(UserWarning, match="reachable beyond this machine"):
        out = app.votes.clear_votes(session, "all models", False, True)
    assert "needs --auth" in out[-1] and app.votes.store.count() == 1


def test_leaderboard_is_scoped_by_model_with_all_models_on_request(app, tiny_chatbot, tmp_path):
    session = app.new_session()
    drain(app.ab.send(session, "hi", "", True, "", GREEDY, STREAM))
    app.ab.vote(session, "left")
    copy = shutil.copytree(tiny_chatbot, tmp_path / "copy")
    other = app.new_session()
    app.models.switch_model(other, str(copy))
    assert app.votes.leaderboard_view(other)[0] == []  # the other model has no votes
    rows, summary, selector, _ = app.votes.leaderboard_view(other, "all models", True)  # flagged ones counted
    assert len(rows) == 2 and "1 of 1 votes rated" in summary
    keys = [value for _, value in selector["choices"]]
    assert session.pair.fingerprint.key in keys and len(app.votes.leaderboard_view(session, "loaded model", True)[0]) == 2


# -- the sampling panel ------------------------------------------------------------------------------


def built_panels(app: ChatApp) -> dict[str, dict]:
    """Each panel's controls by field name, as the page passes them to chat_send and ab_send."""
    demo = build_app(app.config, app)
    fns = {fn.api_name: fn for fn in demo.fns.values()}
    out = {}
    for api, prefix in (("chat_send", ""), ("ab_send", "a_"), ("ab_send", "b_")):
        named = dict(zip(fns[api].input_parameter_names, fns[api].inputs, strict=True))
        out[prefix or "chat"] = {name: named.get(prefix + name) for name in ["preset", *FIELD_NAMES]}
    return out


@pytest.mark.slow
def test_every_field_has_a_control_in_the_chat_panel_and_both_ab_panels(app):
    from chatbot.app.controls import control_help, slider_range

    for panel, controls in built_panels(app).items():
        assert isinstance(controls["preset"], gr.Dropdown), panel
        for spec in FIELDS:
            control = controls[spec.name]
            assert control is not None, f"{spec.name} has no control in the {panel} panel"
            assert (control.label, control.info) == (spec.label, control_help(spec))
            if isinstance(control, gr.Slider):
                low, high = slider_range(spec)
                assert (control.minimum, control.maximum, control.step) == (low, high, spec.step)
    # a slider's range is the metadata's UI range, widened for a preset that goes beyond it
    assert slider_range(FIELD["min_p"]) == (0.0, 0.5) and slider_range(FIELD["min_p"], 0.8) == (0.0, 0.8)
    assert slider_range(FIELD["temperature"]) == (0.05, 2.0)
    assert control_help(FIELD["min_p"]).endswith("; 0 = off")


def test_panel_reads_back_every_preset_it_shows():
    from chatbot.app.controls import panel_values

    for name, preset in PRESETS.items():
        assert settings_from_panel(PRESETS, {"preset": name, **panel_values(preset)}) == preset, name


def test_fields_the_strategy_or_a_switch_leaves_unused_are_hidden(app):
    from chatbot.app.controls import sampling_panel, visibility_updates

    with gr.Blocks():
        panel = sampling_panel(app, "top-p", "Chat")
    assert panel.controls["min_p"].visible and not panel.controls["num_beams"].visible
    assert not panel.groups["beam"].visible and panel.groups["truncation"].visible
    # the groups the preset uses start open; the others closed, so min_p is one click away at most
    assert panel.groups["truncation"].open and not panel.groups["dry"].open

    def shown(**changes) -> set[str]:
        updates = visibility_updates(panel, settings_from_panel(PRESETS, {"preset": "top-p", **changes}))
        return {name for name, control in panel.controls.items() if updates[control]["visible"]}

    sample, beam, greedy = shown(), shown(strategy="beam"), shown(strategy="greedy")
    assert {"min_p", "temperature", "xtc_probability", "seed"} <= sample and "num_beams" not in sample
    assert {"num_beams", "length_penalty", "dry_multiplier"} <= beam and "min_p" not in beam
    assert greedy == {"strategy", "repetition_penalty", "presence_penalty", "frequency_penalty"} | {
        "no_repeat_ngram_size", "dry_multiplier", "avoid_words", "keywords", "max_new_tokens", "num_candidates",
        "min_new_tokens",
    }  # fmt: skip
    # a switch shows the fields it turns on: DRY's base and allowed length, mirostat's tau and eta
    assert "dry_base" not in sample and {"dry_base", "dry_allowed_length"} <= shown(dry_multiplier=0.8)
    assert {"mirostat_tau", "mirostat_eta"} <= shown(mirostat_mode=2) - sample
    updates = visibility_updates(panel, settings_from_panel(PRESETS, GREEDY))
    assert not updates[panel.groups["truncation"]]["visible"] and updates[panel.groups["penalties"]]["visible"]


def test_picking_a_preset_fills_every_control_and_opens_the_groups_it_uses(app):
    from chatbot.app.controls import preset_updates, sampling_panel

    with gr.Blocks():
        panel = sampling_panel(app, "top-p", "Chat")
    for name, preset in PRESETS.items():
        updates = preset_updates(app, panel, name)
        values = {field: updates[control]["value"] for field, control in panel.controls.items()}
        assert settings_from_panel(PRESETS, {"preset": name, **values}) == preset, name
        for control in panel.controls.values():  # gradio rebuilds each control from its update
            type(control)(**{key: value for key, value in updates[control].items() if key != "__type__"})
    dry = preset_updates(app, panel, "dry")
    assert dry[panel.groups["dry"]]["open"] and dry[panel.controls["dry_base"]]["visible"]
    assert dry[panel.preset]["info"].startswith("top-p plus DRY")  # where the preset comes from
    top_p = preset_updates(app, panel, "top-p")
    assert not top_p[panel.groups["dry"]]["open"] and not top_p[panel.controls["dry_base"]]["visible"]


def test_differs_line_names_what_the_panel_changed_from_its_preset():
    from chatbot.app.controls import differs_text, panel_values

    top_p = {"preset": "top-p", **panel_values(PRESETS["top-p"])}
    assert differs_text(PRESETS, top_p) == "**Preset** top-p (unchanged)"
    changed = top_p | {"min_p": 0.05, "temperature": 1.0}
    assert differs_text(PRESETS, changed) == "**Preset** top-p, changed: T 0.7 -> 1, min_p 0 -> 0.05"
    # fields greedy decoding ignores are not listed; what the strategy implies is
    greedy = differs_text(PRESETS, changed | {"strategy": "greedy"})
    assert greedy == "**Preset** top-p, changed: strategy sample -> greedy, num_candidates 4 -> 1"
    assert differs_text(PRESETS, top_p | {"temperature": 0}).startswith("⚠️ sampling setting temperature=0.0")


def test_save_as_preset_then_other_tabs_see_it_after_a_reload(app, tiny_chatbot):
    from chatbot.app.controls import reload_presets, save_panel_preset

    name, saved = save_panel_preset(app, " my-min-p ", STREAM | {"min_p": 0.07})
    assert name == "my-min-p" and app.presets[name] == saved and saved.min_p == 0.07
    assert json.loads((app.config.data_dir / "presets.json").read_text())[name]["min_p"] == 0.07
    # another page (a fresh app on the same data folder, as after a restart) lists it on load
    other = ChatApp(AppConfig(model=tiny_chatbot, data_dir=app.config.data_dir))
    assert "my-min-p" not in other.presets and "my-min-p" in reload_presets(other)
    assert other.presets["my-min-p"].identity == saved.identity
    with pytest.raises(ChatbotError, match="built-in preset"):
        save_panel_preset(app, "greedy", GREEDY)
    with pytest.raises(ChatbotError, match="needs a name"):
        save_panel_preset(app, "  ", GREEDY)


def test_save_as_preset_is_refused_when_reachable_without_a_login(app):
    from chatbot.app.controls import SAVE_REFUSED, save_panel_preset

    app.config.host = "0.0.0.0"
    with pytest.raises(ChatbotError) as info:
        save_panel_preset(app, "mine", STREAM)
    assert str(info.value) == SAVE_REFUSED and "--auth" in SAVE_REFUSED
    assert not (app.config.data_dir / "presets.json").exists() and "mine" not in app.presets
    app.config.auth = ("me", "secret")  # with a login, the same request is allowed
    assert save_panel_preset(app, "mine", STREAM)[0] == "mine"


def test_ab_turn_with_dry_on_one_side_and_min_p_on_the_other(app):
    session = app.new_session()
    dry = {"preset": "dry", "max_new_tokens": 8, "num_candidates": 2}
    min_p = {"preset": "min-p", "max_new_tokens": 8, "num_candidates": 2}
    drain(app.ab.send(session, "do you like dogs?", "", False, "3", dry, min_p))
    pair = session.pair
    assert (pair.settings_a.dry_multiplier, pair.settings_b.min_p) == (0.8, 0.05)
    app.ab.vote(session, "left")
    [vote] = app.votes.store.votes()
    a, b = json.loads(vote.settings_a_id), json.loads(vote.settings_b_id)
    assert a["dry_multiplier"] == 0.8 and "min_p" not in a
    assert b["min_p"] == 0.05 and "dry_multiplier" not in b
    assert vote.reply_a == pair.reply_a and vote.winner == "A"


# -- the running app, through gradio_client ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_chatbot, tmp_path_factory):
    """The app on 127.0.0.1 and a free port, in this process; yields (url, ChatApp)."""
    data = tmp_path_factory.mktemp("served")
    config = AppConfig(model=tiny_chatbot, data_dir=data, bootstrap_rounds=20, concurrency=2)
    app = ChatApp(config)
    demo = build_app(config, app)
    # as chatbot serve launches it (chatbot.app.layout.launch_options): no data folder in allowed_paths
    _, url, _ = demo.launch(server_port=free_port(), prevent_thread_lock=True, quiet=True, **launch_options(config))
    yield url, app
    demo.close()


def text_of(message: dict) -> str:
    """A chat message's text as gradio_client returns it: a string, or a list of typed parts."""
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def client(url):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


@pytest.mark.slow
def test_served_chat_and_ab_vote(served):
    url, app = served
    c = client(url)
    textbox, chat, why, stats, notice = c.predict("hi, how are you?", "", **by_keyword(RANKED), api_name="/chat_send")
    assert [m["role"] for m in chat] == ["user", "assistant"] and "tokens/s" in stats
    assert len(why["data"]) >= 4

    before = app.votes.store.count()
    panels = by_keyword(RANKED, "a_") | by_keyword(GREEDY, "b_")
    out = c.predict("what do you do for fun?", "", True, "", **panels, api_name="/ab_send")
    assert out[2] and out[3]  # both replies shown (the last stream step leaves the textbox as it was)
    *view, board, summary, selector, timer = c.predict("loaded model", True, api_name="/ab_vote_right")
    assert app.votes.store.count() == before + 1
    vote = app.votes.store.votes()[-1]
    # the replies shown are the ones voted on
    assert {out[2]["value"], out[3]["value"]} == {vote.reply_a, vote.reply_b}
    assert "greedy, max_new_tokens=12" in {row[1] for row in board["data"]}
    assert c.predict("loaded model", True, api_name="/leaderboard")[0]["data"] == board["data"]


@pytest.mark.slow
def test_served_errors_are_warnings_that_leave_every_control_as_it_was(served, tmp_path, caplog):
    url, app = served
    c = client(url)
    job = c.submit(str(tmp_path), api_name="/switch_model")  # not a model folder: a warning, no Error badge
    job.result(timeout=60)
    assert job.status().success and app.registry.get(app.config.model) is not None
    assert "Traceback" not in caplog.text  # an expected failure prints no traceback
    out = c.predict("", "", **by_keyword(STREAM), api_name="/chat_send")
    assert "Type a message" in out[-1]
    assert app.votes.leaderboard_rows() is not None  # the server is still fine


def test_an_unexpected_failure_is_logged_once_and_shown_in_one_line(caplog):
    def broken(session):
        raise KeyError("boom")

    with pytest.raises(gr.Error) as info:
        ui_errors(broken)(None)
    assert info.value.message == "Something went wrong (KeyError); the server log has the details."
    assert info.value.print_exception is False  # gradio does not print it a second time
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.exc_info is not None and "broken" in record.getMessage()

    def expected(session):
        raise ChatbotError("no such model folder: x; pass a checkpoint folder")

    with pytest.warns(UserWarning, match="no such model folder"):
        assert ui_errors(expected)(None) == gr.skip()


@pytest.mark.slow
def test_the_vote_store_and_saved_chats_are_not_served_by_url(served):
    import httpx

    url, app = served
    session = app.new_session()
    drain(app.chat.send(session, "hi", "", STREAM))
    offered_chat, notice = app.chat.save(session)
    saved = notice.split("`")[1]  # the chat as written into the data folder
    drain(app.ab.send(session, "hi", "", True, "", STREAM, GREEDY))
    app.ab.vote(session, "left")
    exported = app.votes.export_votes("csv", session)[0]["value"]
    data = app.config.data_dir
    assert saved.startswith(str(data)) and app.votes.store.path.is_file()
    private = [app.votes.store.path, saved, *sorted((data / "exports").iterdir())]
    for path in private:
        response = httpx.get(f"{url}gradio_api/file={path}", timeout=30)
        assert response.status_code == 403, path
    # what is offered for download is a copy outside the data folder, served once the page asks for it
    assert not exported.startswith(str(data)) and not offered_chat["value"].startswith(str(data))
    c = client(url)
    offered = c.predict("loaded model", api_name="/export_csv")[0]["value"]
    copy = httpx.get(offered["url"], timeout=30)
    assert copy.status_code == 200 and copy.text.startswith("id,")


@pytest.mark.slow
def test_four_concurrent_sessions_never_see_each_other(served):
    url, _ = served
    clients = [client(url) for _ in range(4)]
    chats: dict[int, list] = {}
    ab_chats: dict[int, list] = {}
    errors = []

    def talk(k):
        try:
            for turn in range(2):
                message = f"session {k} message {turn}"
                chats[k] = clients[k].predict(message, "", **by_keyword(STREAM), api_name="/chat_send")[1]
            panels = by_keyword(STREAM, "a_") | by_keyword(GREEDY, "b_")
            out = clients[k].predict(f"session {k} ab", "", False, "", **panels, api_name="/ab_send")
            ab_chats[k] = out[1]
        except Exception as exc:  # surfaced below: an assert in a thread would be lost
            errors.append(exc)

    threads = [threading.Thread(target=talk, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert len(chats) == len(ab_chats) == 4
    for k in range(4):
        assert [text_of(m) for m in chats[k] if m["role"] == "user"] == [f"session {k} message {t}" for t in (0, 1)]
        assert [text_of(m) for m in ab_chats[k]] == [f"session {k} ab"]


@pytest.mark.slow
def test_settings_json_round_trip_in_votes_names_presets(served):
    # a vote's settings JSON is the full settings value: it rebuilds the same setting
    url, app = served
    c = client(url)
    panels = by_keyword(RANKED, "a_") | by_keyword(GREEDY, "b_")
    c.predict("do you have any pets?", "", True, "", **panels, api_name="/ab_send")
    c.predict("loaded model", True, api_name="/ab_vote_left")
    votes = app.votes.store.votes()
    assert votes  # at least the vote just cast
    for vote in votes:
        for json_text, identity in (
            (vote.settings_a_json, vote.settings_a_id),
            (vote.settings_b_json, vote.settings_b_id),
        ):
            assert ranking_identity(SamplingSettings.from_json(json_text)) == identity


def change_cycle(demo: gr.Blocks) -> list[str] | None:
    """A chain of events where each one's outputs fire the next one's ``.change``, back to the first; None if none.

    A value or visibility sent to a component fires its ``.change`` in the browser, so such a cycle keeps the
    page sending events without end (``.input`` fires only for the user's own edits, and ends a chain)."""
    fns = list(demo.fns.values())
    listeners = {}  # component id -> the events its .change starts
    for fn in fns:
        for block_id, event in fn.targets:
            if event == "change":
                listeners.setdefault(block_id, []).append(fn)

    def follow(fn, path):
        for output in fn.outputs:
            for nxt in listeners.get(output._id, []):
                if nxt is path[0]:
                    return [f.name for f in [*path, nxt]]
                if nxt not in path and (found := follow(nxt, [*path, nxt])):
                    return found
        return None

    return next((cycle for fn in fns if (cycle := follow(fn, [fn]))), None)


@pytest.mark.slow
def test_no_event_restarts_itself_through_change(app):
    demo = build_app(app.config, app)
    assert change_cycle(demo) is None
    # the check finds such a cycle: a handler that writes the box whose .change starts it
    with gr.Blocks() as looped:
        box = gr.Textbox()
        box.change(lambda text: text, box, box)
    assert change_cycle(looped) is not None
