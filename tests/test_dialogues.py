"""The JSONL dialogue reader and writer shared by the chat, the app and training."""

from __future__ import annotations

import json

import pytest

from chatbot.dialogues import iter_jsonl, load_conversations, save_conversations
from chatbot.errors import DataError


def test_round_trip_keeps_unicode_and_skips_blank_lines(tmp_path):
    path = save_conversations([{"persona": ["p"], "turns": ["hi\u2028there", "héllo"]}], tmp_path / "c.jsonl")
    with path.open("a", encoding="utf-8") as f:
        f.write("\n" + json.dumps({"turns": ["a", "b"]}) + "\n")
    assert load_conversations(path) == [
        {"persona": ["p"], "turns": ["hi\u2028there", "héllo"]},
        {"persona": [], "turns": ["a", "b"]},
    ]
    assert [line.where for line in iter_jsonl(path)] == [f"{path}:1", f"{path}:3"]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "c.jsonl: the file is empty"),
        (b'{"turns": ["caf\xe9"]}\n', r"c.jsonl:1: not UTF-8 text \(byte 0xe9 at offset 15\); re-save the file as UTF-8"),
        (b'{"turns": "hi"}\n', "c.jsonl:1: 'turns' must be a list of strings, got str"),
        (b'{"turns": ["a"], "persona": "p"}\n', "c.jsonl:1: 'persona' must be a list of strings"),
        (b'{"turns": ["a", 3]}\n', "c.jsonl:1: utterance 2 is int, expected text"),
        (b'{"turns": ["a"]}\n[1]\n', 'c.jsonl:2: expected an object with "turns"'),
    ],
)
def test_bad_files_name_the_line_and_the_fix(tmp_path, content, message):
    path = tmp_path / "c.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_conversations(path)


def test_on_error_skips_bad_lines_and_hands_them_over(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"turns": ["a"]}\nnot json\n{"turns": ["b"]}\n', encoding="utf-8")
    errors: list[str] = []
    assert [line.turns for line in iter_jsonl(path, on_error=lambda e: errors.append(str(e)))] == [["a"], ["b"]]
    assert errors == [f"{path}:2: bad JSON (Expecting value at column 1)"]
