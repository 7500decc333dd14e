"""``chatbot serve`` on a serving engine: the backend flags reach the app, and its model box loads engines
with them. The engine is the recorded-response fake server of test_backends, behind a real localhost
socket, so the command line's own HTTP client talks to it."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from test_backends import FakeServer

from chatbot.backends.base import UNRANKED_NOTE

RANKED = {"preset": "top-p", "strategy": "sample", "max_new_tokens": 8, "num_candidates": 2}


def serve_fake(server: FakeServer, headers: list[dict]) -> ThreadingHTTPServer:
    """``server`` on 127.0.0.1 at a free port; every request's headers are appended to ``headers``."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers.append(dict(self.headers))
            request = httpx.Request(self.command, f"http://fake{self.path}", content=body)
            response = server(request)
            self.send_response(response.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        do_GET = do_POST = _answer

        def log_message(self, *args):  # keep the test output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture
def engine(tiny_chatbot):
    """A fake transformers serve (no log-probabilities) serving the tiny checkpoint: (base URL, fake, headers)."""
    fake = FakeServer(models=[{"id": tiny_chatbot, "owned_by": "local", "status": {"value": "loaded"}}])
    headers: list[dict] = []
    httpd = serve_fake(fake, headers)
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", fake, headers
    httpd.shutdown()
    httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drain(generator):
    return list(generator)


def test_serve_with_base_url_starts_the_app_on_the_engine(engine, tmp_path, monkeypatch):
    from chatbot.app import server

    url, fake, headers = engine
    launched = {}

    class Page:
        def launch(self, **kwargs):
            launched.update(kwargs)

    def build_app(config, app):
        launched["config"], launched["app"] = config, app
        return Page()

    monkeypatch.setattr(server, "build_app", build_app)
    monkeypatch.setenv("ENGINE_KEY", "sk-test")
    argv = ["--backend", "openai", "--base-url", url, "--api-key-env", "ENGINE_KEY", "--timeout", "7",
            "--port", str(free_port()), "--data-dir", str(tmp_path / "data")]  # fmt: skip
    assert server.main(argv) == 0
    config, app = launched["config"], launched["app"]
    assert config.model == url and launched["server_port"] == int(argv[-3])
    assert (config.engine.api_key_env, config.engine.timeout, config.engine.concurrency) == ("ENGINE_KEY", 7.0, 2)
    bot = app.registry.get(config.model)  # loaded by main before the page was built
    assert bot.backend.describe()["server_kind"] == "transformers-serve"
    assert headers[-1]["Authorization"] == "Bearer sk-test"  # the key from the variable --api-key-env names
    # a chat turn goes to the engine, and the stats line says the candidates were not ranked by likelihood
    session = app.new_session()
    textbox, chat, why, stats, notice = drain(app.chat.send(session, "hi, how are you?", "", RANKED))[-1]
    assert fake.bodies and fake.bodies[-1]["prompt"].endswith("<|bot|>")
    assert chat[-1] == {"role": "assistant", "content": session.chat.turns[-1]} and len(why) == 2
    assert UNRANKED_NOTE in stats


def test_model_box_engine_uses_the_serve_flags_and_drops_per_server_ones_for_another_url(engine, tmp_path,
                                                                                        monkeypatch):  # fmt: skip
    from chatbot.app.chat_app import ChatApp
    from chatbot.app.models import engine_options
    from chatbot.app.server import config_from_args, parse_args

    url, fake, headers = engine
    monkeypatch.setenv("ENGINE_KEY", "sk-box")
    config, _ = config_from_args(parse_args(["--api-key-env", "ENGINE_KEY", "--retries", "0",
                                             "--data-dir", str(tmp_path / "data")]))  # fmt: skip
    assert config.model is None and config.engine.backend == "local"  # no --base-url: the local model first
    app = ChatApp(config)
    session = app.new_session()
    app.models.switch_model(session, url)  # typed into the model box
    assert session.model == url and headers[-1]["Authorization"] == "Bearer sk-box"
    assert app.registry.get(url).backend.describe()["server_kind"] == "transformers-serve"
    # --api-model, --server-kind and --tokenizer describe the --base-url server only
    given = config_from_args(parse_args(["--base-url", "http://a:1/v1/", "--server-kind", "vllm",
                                         "--model", "runs/x"]))[0].engine  # fmt: skip
    assert (given.tokenizer, given.server_kind) == ("runs/x", "vllm")
    assert engine_options("http://a:1/v1", given).server_kind == "vllm"
    other = engine_options("http://b:2/v1", given)
    assert (other.base_url, other.server_kind, other.tokenizer, other.api_key_env) == (
        "http://b:2/v1", None, None, "OPENAI_API_KEY"
    )  # fmt: skip


def test_serve_reports_an_engine_that_is_down_in_one_line(tmp_path, capsys):
    from chatbot.cli import main

    port = free_port()
    code = main(["serve", "--base-url", f"http://127.0.0.1:{port}/v1", "--port", str(free_port()),
                 "--data-dir", str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: cannot reach http://127.0.0.1:{port}/v1/models (ConnectError): is the server "
                                 "running?"]  # fmt: skip
