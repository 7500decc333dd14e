"""Bad input at the command line ends in one clear line (exit code 2), never a traceback or a long wait:
an unreachable hub, an unusable --device, a file that is not UTF-8, a /save that cannot write."""

from __future__ import annotations

import json
import socket
import time

import pytest

import chatbot.checkpoint as checkpoint
from chatbot.cli import main

FAST = ["--max-new-tokens", "4", "--seed", "1"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def hub_down(monkeypatch):
    """A machine without network: the probe fails and the hub id is not in the local cache."""
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(checkpoint, "hub_reachable", lambda timeout=1.0: False)
    monkeypatch.setattr(checkpoint, "in_hub_cache", lambda name: False)


@pytest.mark.parametrize(
    "argv",
    [
        ["chat", "--model", "gpt2", "--once", "hi"],
        ["train", "--base-model", "gpt2", "--data", "DATA", "--output", "OUT"],
    ],
)
def test_an_unreachable_hub_fails_in_under_two_seconds(argv, hub_down, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, Trainer  # noqa: F401 - imports are not what the 2 s are about

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"turns": ["hi", "hello"]}) + "\n")
    argv = [str(data) if a == "DATA" else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    started = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - started < 2.0
    err = one_error_line(capsys)
    assert "cannot download 'gpt2'" in err and "unreachable" in err
    assert "local model folder" in err and "HF_HUB_OFFLINE=1" in err


def test_hub_load_options(hub_down, monkeypatch, tmp_path):
    assert checkpoint.hub_load_options(str(tmp_path)) == {}  # a local folder: no probe, no error
    monkeypatch.setattr(checkpoint, "in_hub_cache", lambda name: name == "gpt2")
    assert checkpoint.hub_load_options("gpt2") == {"local_files_only": True}  # cached: no retries
    with pytest.raises(checkpoint.ModelLoadError, match="not in the local cache"):
        checkpoint.hub_load_options("someone/uncached")
    monkeypatch.setattr(checkpoint, "hub_reachable", lambda timeout=1.0: True)
    assert checkpoint.hub_load_options("someone/uncached") == {}
    monkeypatch.setattr(checkpoint, "hub_reachable", lambda timeout=1.0: pytest.fail("probed"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the user chose the cache: transformers answers at once
    assert checkpoint.hub_load_options("someone/uncached") == {}


def test_hub_probe_is_one_bounded_connect(monkeypatch):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    monkeypatch.setattr(checkpoint, "hub_address", lambda: ("127.0.0.1", port))
    assert checkpoint.hub_reachable() is True
    server.close()
    assert checkpoint.hub_reachable() is False  # connection refused

    def hanging(address, timeout=None):  # a name lookup that takes far longer than the probe waits
        time.sleep(3)
        raise OSError("timed out")

    monkeypatch.setattr(checkpoint.socket, "create_connection", hanging)
    started = time.perf_counter()
    assert checkpoint.hub_reachable(timeout=0.2) is False
    assert time.perf_counter() - started < 1.0


def test_hub_address_follows_a_proxy_and_hf_endpoint(monkeypatch):
    from huggingface_hub import constants

    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://hf-mirror.example:8443")
    assert checkpoint.hub_address() == ("hf-mirror.example", 8443)
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert checkpoint.hub_address() == ("proxy.example", 3128)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("bogus", "error: unknown device 'bogus'; use cpu, cuda, cuda:N or mps"),
        ("cuda", "error: device 'cuda': no CUDA GPU is visible to torch here; use cpu"),
    ],
)
def test_an_unusable_device_is_one_line(device, message, tiny_chatbot, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU machine, wherever the test runs
    assert main(["chat", "--model", tiny_chatbot, "--device", device, "--once", "hi", *FAST]) == 2
    assert one_error_line(capsys) == message


def test_latin1_files_are_named_not_tracebacks(tiny_chatbot, tmp_path, capsys):
    latin1 = tmp_path / "chats.jsonl"
    latin1.write_bytes(json.dumps({"turns": ["hi", "CAFE"]}).replace("CAFE", "caf\xe9").encode("latin-1") + b"\n")
    assert main(["chat", "--model", tiny_chatbot, "--resume", str(latin1), "--once", "hi", *FAST]) == 2
    assert "not UTF-8 text" in one_error_line(capsys)
    assert main(["train", "--from-scratch", "--data", str(latin1), "--output", str(tmp_path / "o")]) == 2
    err = one_error_line(capsys)
    assert f"{latin1}:1: not UTF-8 text" in err and "re-save the file as UTF-8" in err


def test_a_failed_save_keeps_the_chat_and_the_conversation(tiny_chatbot, tmp_path, monkeypatch, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    good = tmp_path / "saved.jsonl"
    lines = iter(["hello", f"/save {tmp_path}", f"/save {a_file}/inside.jsonl", "and you?", f"/save {good}"])

    def fake_input(prompt=""):
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    assert main(["chat", "--model", tiny_chatbot, "--num-candidates", "1", *FAST]) == 0
    out = capsys.readouterr().out
    assert f"error: /save {tmp_path}: that is a folder; give a file path, e.g. /save {tmp_path}/chats.jsonl" in out
    assert f"error: /save {a_file}/inside.jsonl: cannot write there (" in out
    assert "the conversation is kept, try another path" in out
    record = json.loads(good.read_text())
    assert record["turns"][0] == "hello" and record["turns"][2] == "and you?" and len(record["turns"]) == 4
