"""``chatbot serve``: its flags, the app's configuration from them, and the launch::

    chatbot serve                                   # embedded default model, http://127.0.0.1:7860
    chatbot serve --model runs/small --port 8000 --auth me:secret --data-dir ./chatbot_data

``python app.py`` in a checkout takes the same flags.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chatbot.app.chat_app import ChatApp
from chatbot.app.layout import build_app, launch_style
from chatbot.app.sessions import DEFAULT_CONCURRENCY, AppConfig, default_data_dir
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
        "--presets-file", default=None, help="JSON file of extra sampling presets {name: {field: value}}"
    )
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="generations run at once")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> tuple[AppConfig, tuple[str, str] | None]:
    """The app's configuration and login from ``chatbot serve`` flags (a bad presets file or --auth raises)."""
    config = AppConfig(
        model=args.model,
        data_dir=Path(args.data_dir).expanduser().resolve() if args.data_dir else default_data_dir(),
        presets=load_presets(args.presets_file),
        concurrency=max(1, args.concurrency),
    )
    return config, parse_auth(args.auth)


def main(argv: list[str] | None = None) -> int:
    """``chatbot serve``: load the model, print the data folder, serve until interrupted."""
    args = parse_args(argv)
    config, auth = config_from_args(args)
    app = ChatApp(config)
    app.registry.get(config.model)  # load now: a bad --model fails with one line, before the server starts
    config.data_dir.mkdir(parents=True, exist_ok=True)
    print(f"Data folder (votes, saved conversations): {config.data_dir}")
    demo = build_app(config, app)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        auth=auth,
        allowed_paths=[str(config.data_dir)],
        **launch_style(),
    )
    return 0
