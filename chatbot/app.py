"""The browser app: chat with the bot, and compare two sampling settings side by side (A/B).

    chatbot serve                                   # embedded default model, http://127.0.0.1:7860
    chatbot serve --model runs/small --port 8000 --auth me:secret --data-dir ./chatbot_data
    python app.py --model runs/small                # the same, from a checkout

The page holds no model logic: every reply comes from the conversation manager
(``chatbot.conversation``). The app is three modules:

- ``chatbot.app`` (this one): the page layout, the event wiring, and ``chatbot serve``;
- ``chatbot.app_actions``: what each button does (:class:`ChatApp`, one method per action);
- ``chatbot.app_state``: per-tab sessions, shared models, pure helpers, and the adapter to the
  conversation manager.

Votes go to a SQLite file in the data folder (``chatbot.arena.votes``); the leaderboard is
``chatbot.arena.leaderboard``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network calls home, before gradio is imported

import gradio as gr  # noqa: E402

from chatbot.app_actions import ChatApp, ui_errors  # noqa: E402
from chatbot.app_state import (  # noqa: E402
    CANDIDATE_HEADERS,
    CONTROL_FIELDS,
    DEFAULT_CONCURRENCY,
    AppConfig,
    Session,
    default_data_dir,
)
from chatbot.arena.leaderboard import TABLE_HEADERS  # noqa: E402
from chatbot.errors import ChatbotError  # noqa: E402
from chatbot.sampling import DEFAULT_PRESET, STRATEGIES, SamplingSettings, load_presets  # noqa: E402

logger = logging.getLogger(__name__)


CSS = """
.reply-box textarea { font-size: 1.02rem; line-height: 1.45; }
.stats { color: var(--body-text-color-subdued); font-size: 0.9rem; }
.notice { color: var(--color-accent); }
footer { display: none !important; }
"""


def launch_style() -> dict:
    """Theme and CSS: gradio 6 takes them in launch(), not in Blocks()."""
    return {"theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="sky"), "css": CSS}


def sampling_panel(presets: dict[str, SamplingSettings], default: str, title: str):
    """A preset dropdown and one control per CONTROL_FIELDS entry; returns (dropdown, controls)."""
    s = presets[default]
    preset = gr.Dropdown(choices=list(presets), value=default, label=f"{title} preset")
    strategy = gr.Radio(list(STRATEGIES), value=s.strategy, label="Strategy")
    temperature = gr.Slider(0.05, 2.0, value=s.temperature, step=0.05, label="Temperature", info="sampling only")
    top_p = gr.Slider(0.05, 1.0, value=s.top_p, step=0.01, label="Top-p (nucleus)", info="1 = off")
    top_k = gr.Slider(0, 200, value=s.top_k, step=1, label="Top-k", info="0 = off")
    max_new_tokens = gr.Slider(1, 100, value=s.max_new_tokens, step=1, label="Max new tokens")
    num_candidates = gr.Slider(
        1, 16, value=s.num_candidates, step=1, label="Candidates", info="filtered and ranked; 1 streams word by word"
    )
    with gr.Accordion("More settings", open=False):
        num_beams = gr.Slider(1, 10, value=s.num_beams, step=1, label="Beams", info="beam search only")
        length_penalty = gr.Slider(-2.0, 3.0, value=s.length_penalty, step=0.1, label="Length penalty", info="beam")
        repetition_penalty = gr.Slider(0.5, 2.0, value=s.repetition_penalty, step=0.05, label="Repetition penalty")
        no_repeat = gr.Slider(0, 6, value=s.no_repeat_ngram_size, step=1, label="No-repeat n-gram size", info="0 = off")
        seed = gr.Textbox(value="" if s.seed is None else str(s.seed), label="Seed", info="blank = random")
    controls = {
        "strategy": strategy,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "num_beams": num_beams,
        "length_penalty": length_penalty,
        "repetition_penalty": repetition_penalty,
        "no_repeat_ngram_size": no_repeat,
        "max_new_tokens": max_new_tokens,
        "num_candidates": num_candidates,
        "seed": seed,
    }
    return preset, [controls[name] for name in CONTROL_FIELDS]


def _bind(method, *args, name: str):
    """A handler taking only the session, with ``args`` fixed (gradio counts a handler's parameters)."""

    def handler(session):
        return method(session, *args)

    handler.__name__ = name
    return ui_errors(handler)


def chat_tab(app: ChatApp, session: gr.State, generate: dict) -> gr.Markdown:
    """The Chat tab, wired; returns the persona note the page fills when a model loads."""
    with gr.Row():
        with gr.Column(scale=3):
            chat = gr.Chatbot(label="Conversation", height=440, placeholder="Say hi to start chatting.")
            with gr.Row(equal_height=True):
                msg = gr.Textbox(
                    placeholder="Type a message and press Enter", show_label=False, scale=6, max_lines=4, autofocus=True
                )
                send = gr.Button("Send", variant="primary", scale=1, min_width=70)
                stop = gr.Button("Stop", variant="stop", scale=1, min_width=70)
            notice = gr.Markdown(elem_classes="notice")
            stats = gr.Markdown(elem_classes="stats")
            with gr.Accordion("Why this reply: every candidate and the filter that rejected it", open=False):
                why = gr.Dataframe(
                    headers=CANDIDATE_HEADERS,
                    datatype=["str", "str", "number", "str", "number"],
                    column_widths=["6%", "52%", "10%", "26%", "6%"],
                    interactive=False,
                    wrap=True,
                )
        with gr.Column(scale=2, min_width=280):
            persona = gr.Textbox(
                label="Persona (one fact per line)", lines=2, placeholder="i love hiking.\ni have a dog named max."
            )
            persona_note = gr.Markdown(elem_classes="stats")
            with gr.Accordion("Sampling", open=True):
                preset, controls = sampling_panel(app.presets, DEFAULT_PRESET, "Chat")
            with gr.Accordion("Save or load the conversation (JSONL)", open=False):
                with gr.Row():
                    save = gr.Button("Save", size="sm")
                    load = gr.UploadButton("Load…", file_types=[".jsonl"], size="sm")
                saved_file = gr.File(label="Saved conversation", visible=False, interactive=False)

    settings = [persona, preset, *controls]
    gr.on(
        [msg.submit, send.click],
        ui_errors(app.chat_send),
        [session, msg, *settings],
        [msg, chat, why, stats, notice],
        api_name="chat_send",
        **generate,
    )
    chat.retry(ui_errors(app.chat_retry), [session, *settings], [chat, why, stats], api_name="chat_retry", **generate)
    chat.undo(ui_errors(app.chat_undo), [session], [msg, chat, why, stats], api_name="chat_undo")
    chat.clear(ui_errors(app.chat_clear), [session], [chat, why, stats, notice], api_name="chat_clear")
    # Stop must not wait behind the generation it stops: no concurrency limit
    stop.click(ui_errors(app.stop), [session], None, api_name="stop", concurrency_limit=None)
    preset.change(ui_errors(app.preset_controls), [preset], controls, api_name=False)
    save.click(ui_errors(app.chat_save), [session], [saved_file, notice], api_name="chat_save")
    load.upload(ui_errors(app.chat_load), [session, load], [chat, persona, notice], api_name="chat_load")
    return persona_note


def leaderboard_panel(app: ChatApp) -> gr.Dataframe:
    """The vote table with refresh, export and clear; returns the table (votes update it)."""
    with gr.Accordion("Leaderboard of the settings compared so far", open=True):
        board = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, wrap=True)
        with gr.Row(equal_height=True):
            refresh = gr.Button("Refresh", size="sm")
            export_csv = gr.Button("Export CSV", size="sm")
            export_jsonl = gr.Button("Export JSONL", size="sm")
            confirm = gr.Checkbox(value=False, label="Yes, delete every vote")
            clear_votes = gr.Button("Clear votes", variant="stop", size="sm")
        export_file = gr.File(label="Exported votes", visible=False, interactive=False)
        notice = gr.Markdown(elem_classes="notice")
    refresh.click(ui_errors(app.leaderboard_rows), None, [board], api_name="leaderboard")
    for button, fmt in ((export_csv, "csv"), (export_jsonl, "jsonl")):
        export = ui_errors(functools.partial(app.export_votes, fmt))
        button.click(export, None, [export_file, notice], api_name=f"export_{fmt}")
    clear_votes.click(ui_errors(app.clear_votes), [confirm], [board, confirm, notice], api_name="clear_votes")
    return board


def ab_tab(app: ChatApp, session: gr.State, generate: dict) -> tuple[gr.Markdown, gr.Dataframe]:
    """The A/B tab, wired; returns the persona note and the leaderboard table the page fills on load."""
    # B starts on a contrasting preset, so a first A/B turn already compares something
    default_b = "greedy" if "greedy" in app.presets and DEFAULT_PRESET != "greedy" else DEFAULT_PRESET
    gr.Markdown(
        "Two sampling settings answer every message side by side. Vote for the better reply "
        "(it continues the conversation), or pick one to continue without voting."
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=230):
            gr.Markdown("### Settings A")
            preset_a, controls_a = sampling_panel(app.presets, DEFAULT_PRESET, "A")
        with gr.Column(scale=3):
            chat = gr.Chatbot(label="Shared conversation", height=280, placeholder="One conversation, two bots.")
            with gr.Row(equal_height=True):
                msg = gr.Textbox(placeholder="Type a message for A and B", show_label=False, scale=6, max_lines=4)
                send = gr.Button("Send", variant="primary", scale=1, min_width=70)
                stop = gr.Button("Stop", variant="stop", scale=1, min_width=70)
            with gr.Row(equal_height=True):
                with gr.Column():
                    left = gr.Textbox(label="Left reply", lines=3, interactive=False, elem_classes="reply-box")
                    continue_left = gr.Button("Continue with left", size="sm", interactive=False)
                with gr.Column():
                    right = gr.Textbox(label="Right reply", lines=3, interactive=False, elem_classes="reply-box")
                    continue_right = gr.Button("Continue with right", size="sm", interactive=False)
            with gr.Row():
                vote_left = gr.Button("← Left better", variant="primary", interactive=False)
                vote_tie = gr.Button("Tie", interactive=False)
                vote_bad = gr.Button("Both bad", interactive=False)
                vote_right = gr.Button("Right better →", variant="primary", interactive=False)
            notice = gr.Markdown(elem_classes="notice")
            with gr.Row(equal_height=True):
                blind = gr.Checkbox(value=True, label="Blind: random sides, settings hidden until you vote")
                shared_seed = gr.Textbox(value="", label="Shared seed", info="blank = none", min_width=120)
                new = gr.Button("New conversation", size="sm")
            persona = gr.Textbox(label="Persona (one fact per line)", lines=1)
            persona_note = gr.Markdown(elem_classes="stats")
        with gr.Column(scale=1, min_width=230):
            gr.Markdown("### Settings B")
            preset_b, controls_b = sampling_panel(app.presets, default_b, "B")
    board = leaderboard_panel(app)

    # the order ChatApp.ab_view returns them in
    view = [chat, left, right, vote_left, vote_tie, vote_bad, vote_right, continue_left, continue_right, notice]
    gr.on(
        [msg.submit, send.click],
        ui_errors(app.ab_send),
        [session, msg, persona, blind, shared_seed, preset_a, *controls_a, preset_b, *controls_b],
        [msg, *view],
        api_name="ab_send",
        **generate,
    )
    stop.click(ui_errors(app.stop), [session], None, api_name=False, concurrency_limit=None)
    for button, choice in ((vote_left, "left"), (vote_right, "right"), (vote_tie, "tie"), (vote_bad, "both-bad")):
        api = f"ab_vote_{choice.replace('-', '_')}"
        button.click(_bind(app.ab_vote, choice, name=api), [session], [*view, board], api_name=api)
    for button, screen in ((continue_left, "left"), (continue_right, "right")):
        api = f"ab_continue_{screen}"
        button.click(_bind(app.ab_continue, screen, name=api), [session], view, api_name=api)
    new.click(ui_errors(app.ab_clear), [session], view, api_name="ab_clear")
    preset_a.change(ui_errors(app.preset_controls), [preset_a], controls_a, api_name=False)
    preset_b.change(ui_errors(app.preset_controls), [preset_b], controls_b, api_name=False)
    return persona_note, board


def build_app(config: AppConfig | None = None, app: ChatApp | None = None) -> gr.Blocks:
    """The whole page. Models load on first use, so building it is quick and needs no model."""
    config = config or AppConfig()
    app = app or ChatApp(config)
    # every generating event shares one limit: that many replies are made at once, the rest queue
    generate = {"concurrency_id": "generate", "concurrency_limit": config.concurrency}

    with gr.Blocks(title="GPT-2 dialogue chatbot", analytics_enabled=False) as demo:
        # deep-copied for every tab: a fresh Session each; a closed tab stops its generation
        session = gr.State(app.new_session(), delete_callback=Session.close)
        gr.Markdown("## GPT-2 dialogue chatbot")
        with gr.Row(equal_height=True):
            model_box = gr.Dropdown(
                choices=app.known_models,
                value=app.known_models[0],
                allow_custom_value=True,
                show_label=False,
                container=False,
                scale=5,
            )
            load_model = gr.Button("Load model", scale=1, min_width=120)
        model_info = gr.Markdown("Type a checkpoint folder or hub id above to switch models.", elem_classes="stats")
        with gr.Tab("Chat"):
            chat_persona_note = chat_tab(app, session, generate)
        with gr.Tab("A/B compare"):
            ab_persona_note, board = ab_tab(app, session, generate)

        notes = [chat_persona_note, ab_persona_note]
        demo.load(ui_errors(app.page_load), [session], [model_info, *notes], api_name=False)
        # the leaderboard is read when a page opens, not when the app is built: building creates no files
        demo.load(ui_errors(app.leaderboard_rows), None, [board], api_name=False)
        load_model.click(
            ui_errors(app.switch_model), [session, model_box], [model_box, model_info, *notes], api_name="switch_model"
        )

    demo.queue(default_concurrency_limit=config.concurrency, max_size=config.queue_size)
    return demo


# ---------------------------------------------------------------------------------------------
# chatbot serve
# ---------------------------------------------------------------------------------------------


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


def __getattr__(name: str):
    # ``chatbot.app.demo``: the module-level app with the default configuration, built on first access
    if name == "demo":
        globals()["demo"] = build_app()
        return globals()["demo"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
