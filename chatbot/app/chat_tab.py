"""The Chat tab: one conversation with the bot, streamed word by word, with every candidate the reply
was chosen from, save and load. :class:`ChatTab` holds the handlers, :func:`chat_tab` the layout."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from chatbot import conversation as cm
from chatbot.app.access import offered_copy
from chatbot.app.controls import panel_handler, sampling_panel, setting_label, settings_from_panel
from chatbot.app.errors import ui_errors
from chatbot.app.models import ModelRegistry, side_box_update
from chatbot.app.render import (
    CANDIDATE_HEADERS,
    candidate_rows,
    clean_message,
    fold_stream,
    messages,
    render_stream,
    reply_stats,
)
from chatbot.app.sessions import (
    PERSONA_BOX,
    AppConfig,
    Session,
    chat_conversation,
    drop_last_exchange,
    load_chat,
    now_stamp,
    save_chat,
    stream_chat,
)
from chatbot.errors import ChatbotError
from chatbot.format import is_user_turn
from chatbot.sampling import DEFAULT_PRESET, SamplingSettings

if TYPE_CHECKING:
    from chatbot.app.chat_app import ChatApp

class ChatTab:
    """What each button of the Chat tab does. Methods take the tab's Session and the widgets' values
    and return (or, while streaming, yield) the widgets' new values."""

    def __init__(self, config: AppConfig, registry: ModelRegistry):
        self.config = config
        self.registry = registry

    def _chat_view(self, session: Session, partial: str | None = None):
        turns = list(session.chat.turns) if session.chat else []
        history = messages(turns)
        if partial is not None:
            if turns and not is_user_turn(len(turns) - 1):  # the partial reply is already recorded (final event)
                history[-1]["content"] = partial
            else:
                history.append({"role": "assistant", "content": partial})
        return history

    def _stream_chat(self, session: Session, text: str, persona: str, settings: SamplingSettings):
        """Yield (chat messages, why rows, stats) while the reply streams; records the reply."""
        bot = self.registry.get(session.model)
        session.chat = chat_conversation(bot, session.chat, persona)
        for kind, value, shown, withdrawn in fold_stream(stream_chat(session.chat, text, settings, session.cancel)):
            if kind == cm.FINAL:
                session.last_reply = value
                yield (
                    self._chat_view(session),
                    candidate_rows(value),
                    reply_stats(value, setting_label(settings, self.config.presets), bot.filters.user_profanity),
                )
                return
            yield self._chat_view(session, render_stream(shown, withdrawn)), gr.skip(), gr.skip()

    def send(self, session: Session, text: str, persona: str, panel: dict):
        """Send a message and stream the reply. ``panel``: the sampling panel's values ({"preset": ...,
        field: value}; missing fields come from the preset). Outputs: textbox, chat, why rows, stats, notice."""
        text, notice = clean_message(text, self.config.max_message_chars)
        if not text:
            gr.Warning("Type a message first: an empty message is not sent.")
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), "Type a message, then press Enter or Send."
            return
        if notice:
            gr.Warning(notice)
        settings = settings_from_panel(self.config.presets, panel)
        self.registry.get(session.model)  # a model that cannot load fails here, before the message is shown
        session.cancel.clear()  # a new request: from here on, Stop applies to it
        # show the user's message at once, the reply streams under it
        yield "", [*self._chat_view(session), {"role": "user", "content": text}], gr.skip(), gr.skip(), notice or ""
        for view, rows, stats in self._stream_chat(session, text, persona, settings):
            yield gr.skip(), view, rows, stats, gr.skip()

    def retry(self, session: Session, persona: str, panel: dict):
        """Replace the last reply with a new one to the same message."""
        if session.chat is None or not session.chat.turns:
            gr.Warning("Nothing to retry yet.")
            return
        settings = settings_from_panel(self.config.presets, panel)
        session.cancel.clear()
        text = drop_last_exchange(session.chat)
        yield from self._stream_chat(session, text, persona, settings)

    def undo(self, session: Session):
        """Remove the last message and its reply; the message goes back into the textbox."""
        text = drop_last_exchange(session.chat) if session.chat else None
        session.last_reply = None
        return text or "", self._chat_view(session), [], ""

    def clear(self, session: Session):
        if session.chat is not None:
            session.chat.reset()
        session.last_reply = None
        return [], [], "", ""

    def save(self, session: Session):
        """Write the conversation as JSONL into the data folder and offer it for download."""
        if session.chat is None or not session.chat.turns:
            raise gr.Error("Nothing to save yet: chat first.")
        folder = self.config.data_dir / "conversations"
        path = save_chat(session.chat, folder / f"chat-{now_stamp()}-{session.rng.randrange(16**6):06x}.jsonl")
        # the data folder is never served: the download link points at a copy in a fresh temporary folder
        return gr.update(value=str(offered_copy(path)), visible=True), f"Saved to `{path}`"

    def side_box(self, session: Session):
        """The persona box as the tab's model uses it: persona facts, or a plain LM's few-shot examples."""
        return side_box_update(self.registry, session)

    def load(self, session: Session, file):
        """Resume the last conversation of an uploaded JSONL file. Outputs: chat, persona, notice."""
        if file is None:
            raise gr.Error("Choose a .jsonl conversation file to load.")
        path = file if isinstance(file, str) else getattr(file, "name", str(file))
        try:
            session.chat = load_chat(self.registry.get(session.model), path)
        except ChatbotError as exc:  # name the file as the user knows it, not by the upload's temporary path
            raise ChatbotError(str(exc).replace(str(path), Path(path).name)) from None
        session.last_reply = None
        turns = len(session.chat.turns)
        return (
            self._chat_view(session),
            "\n".join(session.chat.persona),
            f"Loaded {turns} turns from `{Path(path).name}`",
        )


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
                    datatype=["str", "str", "number", "str", "number", "str"],
                    column_widths=["5%", "40%", "8%", "20%", "5%", "22%"],
                    interactive=False,
                    wrap=True,
                )
        with gr.Column(scale=2, min_width=280):
            persona = gr.Textbox(lines=2, **PERSONA_BOX)
            persona_note = gr.Markdown(elem_classes="stats")
            gr.Markdown("### Sampling")
            panel = sampling_panel(app, DEFAULT_PRESET, "Chat")
            with gr.Accordion("Save or load the conversation (JSONL)", open=False):
                with gr.Row():
                    save = gr.Button("Save", size="sm")
                    load = gr.UploadButton("Load…", file_types=[".jsonl"], size="sm")
                saved_file = gr.File(label="Saved conversation", visible=False, interactive=False)

    tab = app.chat
    controls = panel.inputs()  # every sampling control, passed by keyword: preset, strategy, temperature, ...
    gr.on(
        [msg.submit, send.click],
        panel_handler(tab.send, panel),
        [session, msg, persona],
        [msg, chat, why, stats, notice],
        inputs_kwargs=controls,
        api_name="chat_send",
        **generate,
    )
    chat.retry(
        panel_handler(tab.retry, panel), [session, persona], [chat, why, stats], inputs_kwargs=controls,
        api_name="chat_retry", **generate,
    )  # fmt: skip
    chat.undo(ui_errors(tab.undo), [session], [msg, chat, why, stats], api_name="chat_undo")
    chat.clear(ui_errors(tab.clear), [session], [chat, why, stats, notice], api_name="chat_clear")
    # Stop must not wait behind the generation it stops: no concurrency limit
    stop.click(ui_errors(app.stop), [session], None, api_name="stop", concurrency_limit=None)
    save.click(ui_errors(tab.save), [session], [saved_file, notice], api_name="chat_save")
    load.upload(ui_errors(tab.load), [session, load], [chat, persona, notice], api_name="chat_load")
    # the page fills the note when a model loads or the tab switches models: the box follows the model
    persona_note.change(ui_errors(tab.side_box), [session], [persona], api_name=False)
    return persona_note
