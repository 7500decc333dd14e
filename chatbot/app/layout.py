"""The whole page: the model box above a Chat tab and an A/B tab. Each tab's layout and handlers live in
its own module (:mod:`chatbot.app.chat_tab`, :mod:`chatbot.app.ab_tab`); this one assembles them."""

from __future__ import annotations

import gradio as gr

from chatbot.app.ab_tab import ab_tab
from chatbot.app.chat_app import ChatApp
from chatbot.app.chat_tab import chat_tab
from chatbot.app.errors import ui_errors
from chatbot.app.models import model_bar
from chatbot.app.sessions import AppConfig, Session

CSS = """
.reply-box textarea { font-size: 1.02rem; line-height: 1.45; }
.stats { color: var(--body-text-color-subdued); font-size: 0.9rem; }
.notice { color: var(--color-accent); }
footer { display: none !important; }
"""


def launch_style() -> dict:
    """Theme and CSS: gradio 6 takes them in launch(), not in Blocks()."""
    return {"theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="sky"), "css": CSS}


def launch_options(config: AppConfig) -> dict:
    """``demo.launch`` keywords for ``config`` (add the port): where to listen, the login, the style.

    No ``allowed_paths``: the data folder (votes, saved chats, exports) is never served by URL; a file
    offered for download is a copy in a fresh temporary folder (:mod:`chatbot.app.access`).
    """
    return {"server_name": config.host, "share": config.share, "auth": config.auth, **launch_style()}


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
        model_box, load_model, model_info = model_bar(app.models)
        with gr.Tab("Chat"):
            chat_persona_note = chat_tab(app, session, generate)
        with gr.Tab("A/B compare"):
            ab_persona_note, board = ab_tab(app, session, generate)

        notes = [chat_persona_note, ab_persona_note]
        demo.load(ui_errors(app.models.page_load), [session], [model_info, *notes], api_name=False)
        # the leaderboard (table, summary, model selector) is read when a page opens, not when the app is
        # built (building creates no files), and again when the tab switches models: it shows the loaded
        # model's votes
        refresh_board = ui_errors(app.votes.leaderboard_view)
        demo.load(refresh_board, board.inputs(session), board.outputs, api_name=False)
        load_model.click(
            ui_errors(app.models.switch_model),
            [session, model_box],
            [model_box, model_info, *notes],
            api_name="switch_model",
        ).success(refresh_board, board.inputs(session), board.outputs, api_name=False)

    demo.queue(default_concurrency_limit=config.concurrency, max_size=config.queue_size)
    return demo
