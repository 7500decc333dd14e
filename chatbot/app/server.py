"""``chatbot serve``: its flags, the app's configuration from them, and the launch::

    chatbot serve                                   # embedded default model, http://127.0.0.1:7860
    chatbot serve --model runs/small --port 8000 --auth me:secret --data-dir ./chatbot_data
    chatbot serve --backend openai --base-url http://127.0.0.1:8000/v1   # replies from a serving engine

``python app.py`` in a checkout takes the same flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import socket
from pathlib import Path

from chatbot.app.chat_app import ChatApp
from chatbot.app.layout import build_app, launch_options
from chatbot.app.sessions import DEFAULT_CONCURRENCY, AppConfig, default_data_dir
from chatbot.backends.options import BackendOptions, add_backend_arguments, check_server, options_from_args
from chatbot.errors import ChatbotError
from chatbot.sampling import load_presets


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """``user:password`` -> (user, password); the password may contain colons."""
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ChatbotError("--auth takes user:password (both non-empty)")
    return user, password


def check_data_dir(path: Path, create: bool = False) -> Path:
    """The data folder, refused in one line when it cannot be one (a file, no permission); ``create`` makes it."""
    if path.exists() and not path.is_dir():
        raise ChatbotError(f"--data-dir {path} is a file; give a folder (it is created if missing)")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ChatbotError(
                f"--data-dir {path}: cannot create the folder ({exc.strerror}); give one you can write to"
            ) from None
    return path


def check_port(host: str, port: int) -> None:
    """Say in one line, before the model loads, why the app could not listen on ``host:port``.

    Gradio's own message for a taken port is "Cannot find empty port in range", after loading;
    binding a socket here finds a taken, privileged or out-of-range port, or an unknown host, at once.
    """
    if not 1 <= port <= 65535:
        raise ChatbotError(f"--port must be between 1 and 65535 (got {port})")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        raise ChatbotError(f"--host {host!r} is not an address of this machine; try 127.0.0.1 or 0.0.0.0") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server binds it
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ChatbotError(
                    f"port {port} on {host} is in use; choose another with --port, or stop the program using it"
                ) from None
            raise ChatbotError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chatbot serve",
        description="Start the browser app: chat with the bot and compare sampling settings side by side (A/B).",
    )
    parser.add_argument(
        "--model", default=None, help="chatbot checkpoint folder or hub id (default: the embedded model)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    parser.add_argument("--auth", default=None, metavar="USER:PASSWORD", help="require this login")
    parser.add_argument(
        "--data-dir", default=None, help=f"where votes and saved chats go (default: {default_data_dir()})"
    )
    parser.add_argument(
        "--presets-file",
        default=None,
        help="extra sampling presets: a JSON file {name: {field: value}}, a text-generation-webui .yaml preset, "
        "or a folder of them",
    )
    parser.add_argument(
        "--concurrency", type=int, default=DEFAULT_CONCURRENCY,
        help="generations run at once (with --base-url: also the requests sent to the server at once)",
    )  # fmt: skip
    add_backend_arguments(parser)  # --backend openai --base-url URL: the app starts on that engine
    return parser.parse_args(argv)


def app_model(model: str | None, engine: BackendOptions) -> tuple[str | None, BackendOptions]:
    """The model box's first value and the engine options: with ``--base-url`` the engine's URL, and a
    ``--model`` folder given with it is the served checkpoint (its format and tokenizer, as --tokenizer)."""
    if engine.backend != "openai":
        return model, engine
    if model is not None and engine.tokenizer is None:
        engine = dataclasses.replace(engine, tokenizer=model)
    return engine.base_url, engine


def config_from_args(args: argparse.Namespace) -> tuple[AppConfig, tuple[str, str] | None]:
    """The app's configuration and login from ``chatbot serve`` flags (a bad presets file, --data-dir or --auth
    raises)."""
    model, engine = app_model(args.model, options_from_args(args))
    config = AppConfig(
        model=model,
        engine=engine,
        data_dir=check_data_dir(Path(args.data_dir).expanduser().resolve() if args.data_dir else default_data_dir()),
        presets=load_presets(args.presets_file),
        concurrency=max(1, args.concurrency),
        host=args.host,
        share=args.share,
        auth=parse_auth(args.auth),
    )
    return config, config.auth


def main(argv: list[str] | None = None) -> int:
    """``chatbot serve``: load the model (or connect to the engine), print the data folder, serve until
    interrupted."""
    args = parse_args(argv)
    check_port(args.host, args.port)
    config, _ = config_from_args(args)  # the login is config.auth
    check_server(config.engine)  # an engine that is down: one line, before the slow imports
    app = ChatApp(config)
    check_data_dir(config.data_dir, create=True)
    app.registry.get(config.model)  # load now: a bad --model fails with one line, before the server starts
    print(f"Data folder (votes, saved conversations): {config.data_dir}")
    demo = build_app(config, app)
    try:
        demo.launch(server_port=args.port, **launch_options(config))  # host, share, login; no data folder served
    except OSError as exc:  # taken between check_port and now; gradio says "Cannot find empty port"
        raise ChatbotError(f"cannot listen on {args.host}:{args.port} ({exc}); choose another --port") from None
    return 0
