"""The backend flags, declared once for ``chatbot chat``, ``chatbot serve`` and ``chatbot evaluate``.

    chatbot chat --backend openai --base-url http://127.0.0.1:8000/v1 --once "hi"
    chatbot evaluate --backend openai --base-url http://127.0.0.1:8000/v1 --concurrency 4 --data ... --output ...

:class:`BackendOptions` is a dataclass whose fields carry their help: ``evaluate`` takes it as one more
config, and :func:`add_backend_arguments` adds the same flags to ``chat`` and ``serve``, both through
:mod:`chatbot.dataclass_cli`. :func:`load_bot` turns the options into a ``Chatbot``. The API key
is read from the environment variable ``--api-key-env`` names (default ``OPENAI_API_KEY``), never
from a flag, so it stays out of shell history and process lists.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from chatbot.backends.capabilities import SERVER_KINDS
from chatbot.dataclass_cli import add_dataclass_arguments
from chatbot.errors import ChatbotError, SettingsError

BACKENDS = ("local", "openai")


@dataclass
class BackendOptions:
    """Where replies come from (``--backend``) and how to talk to a server."""

    backend: str = field(
        default="local",
        metadata={
            "help": "local (the model in this process) or openai (an OpenAI-compatible server at --base-url)",
            "choices": BACKENDS,
        },
    )
    base_url: str | None = field(
        default=None,
        metadata={"help": "the server's API root, e.g. http://127.0.0.1:8000/v1 (implies --backend openai)"},
    )
    api_model: str | None = field(
        default=None, metadata={"help": "model name on the server (default: the only one it lists)"}
    )
    api_key_env: str = field(
        default="OPENAI_API_KEY",
        metadata={"help": "environment variable holding the API key (never pass keys as flags)"},
    )
    server_kind: str | None = field(
        default=None,
        metadata={"help": f"override the detected server kind: {', '.join(SERVER_KINDS)}"},
    )
    allow_unsupported: bool = field(
        default=False,
        metadata={"help": "send requests without the settings the server cannot apply (warned with each reply)"},
    )
    tokenizer: str | None = field(
        default=None,
        metadata={"help": "local checkpoint folder for the prompt format and token budget "
                  "(default: the served folder if it exists here; else an approximate character budget)"},
    )  # fmt: skip
    concurrency: int = field(default=1, metadata={"help": "requests sent to the server at once"})
    timeout: float = field(default=120.0, metadata={"help": "seconds to wait for a server's answer"})
    connect_timeout: float = field(default=3.0, metadata={"help": "seconds to wait for a connection to the server"})
    retries: int = field(default=2, metadata={"help": "retries after HTTP 429/5xx answers or dropped connections"})

    def __post_init__(self):
        if self.base_url and self.backend == "local":
            self.backend = "openai"  # a server address can only mean the openai backend
        if self.backend not in BACKENDS:
            raise SettingsError(f"--backend {self.backend!r}: choose one of {', '.join(BACKENDS)}")
        if self.backend == "openai" and not self.base_url:
            raise SettingsError("--backend openai needs --base-url, e.g. --base-url http://127.0.0.1:8000/v1")
        if self.server_kind is not None and self.server_kind not in SERVER_KINDS:
            raise SettingsError(f"--server-kind {self.server_kind!r}: choose one of {', '.join(SERVER_KINDS)}")
        if self.concurrency < 1:
            raise SettingsError(f"--concurrency must be >= 1 (got {self.concurrency})")
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise SettingsError("--timeout and --connect-timeout must be > 0 seconds")
        if self.retries < 0:
            raise SettingsError(f"--retries must be >= 0 (got {self.retries})")

    def http_settings(self):
        from chatbot.backends.http import HttpSettings

        return HttpSettings(timeout=self.timeout, connect_timeout=self.connect_timeout, retries=self.retries)


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per BackendOptions field; a flag the parser already has (serve's --concurrency) is shared."""
    group = parser.add_argument_group("backend (where replies come from)")
    add_dataclass_arguments(group, BackendOptions, share_existing=True)


def options_from_args(args: argparse.Namespace) -> BackendOptions:
    """The BackendOptions of parsed flags (SettingsError for an impossible combination)."""
    names = [f.name for f in dataclasses.fields(BackendOptions)]
    return BackendOptions(**{n: getattr(args, n) for n in names if hasattr(args, n)})


def check_server(options: BackendOptions) -> BackendOptions:
    """Fail fast when nothing answers at ``--base-url``: one line within seconds, before the slow imports.

    Only a refused or timed-out connection is reported here; anything else (an HTTP error, a bad
    answer) is left to :func:`connect_options`, which says it with the server's own message.
    """
    if options.backend != "openai":
        return options
    import httpx

    url = f"{options.base_url.rstrip('/')}/models"
    try:
        httpx.get(url, timeout=options.connect_timeout)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise ChatbotError(f"cannot reach {url} ({type(exc).__name__}): is the server running?") from exc
    except httpx.HTTPError:
        pass
    return options


def connect_options(options: BackendOptions):
    """Connect to the server the options name: a :class:`chatbot.backends.openai.Remote`."""
    from chatbot.backends.openai import connect

    return connect(
        options.base_url,
        api_model=options.api_model,
        api_key_env=options.api_key_env,
        server_kind=options.server_kind,
        tokenizer=options.tokenizer,
        allow_unsupported=options.allow_unsupported,
        concurrency=options.concurrency,
        http=options.http_settings(),
    )


def load_bot(options: BackendOptions, model=None, *, device=None, **chatbot_kwargs):
    """A Chatbot: the local model (``model``: folder, hub id or None) or the server the options name.

    ``chatbot_kwargs`` (sampling, filters, ...) go to the Chatbot either way.
    """
    from chatbot.conversation import Chatbot

    if options.backend == "local":
        return Chatbot.load(model, device=device, **chatbot_kwargs)
    if options.tokenizer is None and model is not None:
        options = dataclasses.replace(options, tokenizer=str(model))  # --model DIR: its format and tokenizer
    remote = connect_options(options)
    return Chatbot(remote.model, backend=remote.backend, **chatbot_kwargs)
