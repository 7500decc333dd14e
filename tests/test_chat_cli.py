"""``chatbot chat`` through the real entry point: --once on the tiny model, errors as one line, the loop."""

from __future__ import annotations

import json
import os
import sys

import pytest

import chatbot.checkpoint as checkpoint
from chatbot.chat import parse_assignments
from chatbot.cli import main
from chatbot.errors import SettingsError
from chatbot.sampling import PRESETS

FAST = ["--max-new-tokens", "6", "--seed", "1"]


def test_once_prints_one_reply(tiny_chatbot, capsys):
    assert main(["chat", "--model", tiny_chatbot, "--once", "hi", *FAST]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1 and out.strip()
    # seeded: the same command prints the same reply
    assert main(["chat", "--model", tiny_chatbot, "--once", "hi", *FAST]) == 0
    assert capsys.readouterr().out == out


def test_once_json_carries_candidates_and_timings(tiny_chatbot, capsys):
    argv = ["chat", "--model", tiny_chatbot, "--once", "hi", "--json", "--preset", "diverse", *FAST]
    assert main(argv) == 0
    reply = json.loads(capsys.readouterr().out)
    assert len(reply["candidates"]) >= 4 and "tokens_per_s" in reply["timings"]
    assert json.loads(reply["settings"])["temperature"] == 1.2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "/no/such/folder"], "/no/such/folder: no such model folder"),
        (["--temperature", "0"], "temperature"),
        (["--preset", "nucleus"], "unknown preset 'nucleus'"),
    ],
)
def test_user_errors_are_one_line(argv, message, capsys):
    assert main(["chat", *argv, "--once", "hi"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_broken_model_folder_is_named(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{not json")
    assert main(["chat", "--model", str(tmp_path), "--once", "hi"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(tmp_path) in err and len(err.splitlines()) == 1


def test_without_a_model_the_missing_default_is_explained(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(checkpoint, "DEFAULT_MODEL_DIR", tmp_path / "default_model")
    assert main(["chat", "--once", "hi"]) == 2
    assert "embedded default model is missing" in capsys.readouterr().err


def test_interactive_commands(tiny_chatbot, tmp_path, monkeypatch, capsys):
    saved = tmp_path / "chat.jsonl"
    lines = iter(
        [
            "hello",
            "/settings temperature=0",
            "/settings temperature=0.9 num_candidates=1",
            "how are you?",
            f"/save {saved}",
            "/save",
            "/reset",
            "/bogus",
        ]
    )
    monkeypatch.setattr("builtins.input", _feed(lines))
    assert main(["chat", "--model", tiny_chatbot, "--persona", "i like dogs.", *FAST]) == 0
    out = capsys.readouterr().out
    assert out.count("bot> ") >= 2
    assert "sample T=0.9 top_p=0.9 max=6 x1" in out
    assert "[conversation reset]" in out and "unknown command /bogus" in out
    assert "error: sampling setting temperature=0" in out and "is invalid: must be > 0" in out  # 0 or 0.0
    assert "error: /save needs a file path" in out
    record = json.loads(saved.read_text())
    assert record["persona"] == ["i like dogs."] and record["turns"][0] == "hello" and len(record["turns"]) == 4


def _feed(lines):
    def fake_input(prompt=""):
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    return fake_input


def test_resume_continues_a_saved_conversation(tiny_chatbot, tmp_path, capsys):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"persona": ["p."], "turns": ["hi", "hello!"]}) + "\n")
    argv = ["chat", "--model", tiny_chatbot, "--resume", str(path), "--once", "how are you?", "--json", *FAST]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["prompt_tokens"] > 0


def test_parse_assignments():
    settings = parse_assignments(["strategy=greedy", "num_candidates=1", "seed=none"], PRESETS["top-p"])
    assert settings.strategy == "greedy" and settings.seed is None
    with pytest.raises(SettingsError, match="field=value"):
        parse_assignments(["colour=red"], PRESETS["top-p"])


def test_parse_assignments_casts_by_field_type_and_keeps_word_lists_whole():
    settings = parse_assignments("avoid_words=cat,dog min-p=0.05 top_k=20".split(), PRESETS["top-p"])
    assert (settings.avoid_words, settings.min_p, settings.top_k) == (("cat", "dog"), 0.05, 20)
    spaced = parse_assignments("avoid_words=cat, big dog temperature=0.9".split(), PRESETS["top-p"])
    assert spaced.avoid_words == ("cat", "big dog") and spaced.temperature == 0.9
    # greedy implies one reply, as the --strategy flag does
    assert parse_assignments(["strategy=greedy"], PRESETS["top-p"]).num_candidates == 1
    with pytest.raises(SettingsError, match="temperature='hot' is invalid: expected a number"):
        parse_assignments(["temperature=hot"], PRESETS["top-p"])


def test_terminal_rendering_of_a_withdrawn_reply():
    import io

    from chatbot.chat import render_event
    from chatbot.conversation import Reply, StreamEvent

    out = io.StringIO()
    shown = ""
    for event in [
        StreamEvent("delta", "you "),
        StreamEvent("withdraw", "profanity (b****)"),
        StreamEvent("delta", "sorry."),
        StreamEvent("final", Reply(text="sorry.")),
    ]:
        shown = render_event(event, shown, out)
    assert out.getvalue() == "you \n     [withdrawn: profanity (b****); regenerating]\nbot> sorry.\n"


def test_presets_file_flag(tiny_chatbot, tmp_path, capsys):
    presets = tmp_path / "presets.json"
    presets.write_text(json.dumps({"warm": {"base": "top-p", "temperature": 0.95, "num_candidates": 2}}))
    argv = ["chat", "--model", tiny_chatbot, "--presets-file", str(presets), "--preset", "warm", "--once", "hi"]
    assert main([*argv, "--json", *FAST]) == 0
    settings = json.loads(json.loads(capsys.readouterr().out)["settings"])
    assert settings["temperature"] == 0.95 and settings["num_candidates"] == 2 and settings["max_new_tokens"] == 6


def test_calm_cpu_threads_only_before_torch_loads(monkeypatch):
    from chatbot.chat import calm_cpu_threads

    monkeypatch.setenv("OMP_WAIT_POLICY", "unset")  # so that monkeypatch restores the original afterwards
    monkeypatch.delenv("OMP_WAIT_POLICY")
    calm_cpu_threads()  # torch is loaded in this process: too late, so nothing is set
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.delitem(sys.modules, "torch")
    calm_cpu_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
