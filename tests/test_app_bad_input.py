"""Bad input to the web app and to ``chatbot serve`` ends in one clear line: a taken or impossible
port, a data folder that is a file, a seed box given "1e30" or "inf", a conversation file that is not UTF-8."""

from __future__ import annotations

import socket

import pytest

from chatbot.app import ChatApp
from chatbot.app.controls import parse_seed
from chatbot.app.errors import ui_errors
from chatbot.app.sessions import AppConfig
from chatbot.cli import main
from chatbot.errors import ChatbotError
from chatbot.sampling import SEED_MAX

SEED_RANGE = f"seed must be a whole number from 0 to {SEED_MAX}, or blank for a random one"


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("value", ["1e30", "inf", "-inf", "nan", "1.5", "-1", "seven", str(SEED_MAX + 1), 1e30])
def test_seed_box_refuses_what_is_no_seed_in_one_line(value):
    with pytest.raises(ChatbotError) as info:
        parse_seed(value)
    assert str(info.value) == f"{SEED_RANGE} (got {str(value).strip()})"


def test_seed_box_reads_whole_numbers_exactly():
    assert [parse_seed(v) for v in ("", None, " 42 ", 42.0, "7.0", str(SEED_MAX))] == [None, None, 42, 42, 7, SEED_MAX]


def test_serve_on_a_port_in_use_is_one_line_before_the_model_loads(free_port, tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port))
        taken.listen()
        # --model names nothing: the port is refused before any model would be loaded
        code = main(["serve", "--port", str(free_port), "--model", str(tmp_path / "none"), "--data-dir", str(tmp_path)])
    assert code == 2
    assert error_line(capsys) == (
        f"error: port {free_port} on 127.0.0.1 is in use; choose another with --port, or stop the program using it"
    )


@pytest.mark.parametrize("port", ["99999", "0", "-5"])
def test_serve_port_out_of_range(port, tmp_path, capsys):
    assert main(["serve", "--port", port, "--data-dir", str(tmp_path)]) == 2
    assert error_line(capsys) == f"error: --port must be between 1 and 65535 (got {port})"


def test_serve_data_dir_that_is_a_file(free_port, tmp_path, capsys):
    a_file = tmp_path / "votes.txt"
    a_file.write_text("not a folder", encoding="utf-8")
    assert main(["serve", "--port", str(free_port), "--data-dir", str(a_file), "--model", str(tmp_path)]) == 2
    assert error_line(capsys) == f"error: --data-dir {a_file} is a file; give a folder (it is created if missing)"


def test_uploaded_latin1_conversation_is_one_line_naming_the_file(tiny_chatbot, tmp_path):
    app = ChatApp(AppConfig(model=tiny_chatbot, data_dir=tmp_path / "data"))
    upload = tmp_path / "gradio-upload-3f2a" / "chat.jsonl"  # gradio hands over a file under a temporary folder
    upload.parent.mkdir()
    upload.write_bytes('{"turns": ["café", "oui"]}\n'.encode("latin-1"))
    session = app.new_session()
    message = "chat.jsonl:1: not UTF-8 text (byte 0xe9 at offset 15); re-save the file as UTF-8"
    with pytest.warns(UserWarning) as toasts:  # gr.Warning: a toast on the page, not a traceback
        ui_errors(app.chat.load)(session, str(upload))
    assert [str(t.message) for t in toasts] == [message]
    assert session.chat is None  # nothing half-loaded
