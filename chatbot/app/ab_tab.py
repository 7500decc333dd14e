"""The A/B tab: two sampling settings answer every message side by side, the user votes for the better
reply (or picks one to continue), and the leaderboard below ranks the settings. :class:`ABTab` holds the
handlers, :func:`ab_tab` the layout."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import gradio as gr

from chatbot import conversation as cm
from chatbot.app.controls import (
    panel_handler,
    parse_seed,
    ranking_identity,
    sampling_panel,
    setting_label,
    settings_from_panel,
)
from chatbot.app.errors import bind, ui_errors
from chatbot.app.leaderboard_panel import LeaderboardWidgets, VotesPanel, fingerprint_of, leaderboard_panel
from chatbot.app.models import ModelRegistry, side_box_update
from chatbot.app.render import clean_message, fold_stream, messages, render_stream
from chatbot.app.sessions import PERSONA_BOX, ABPair, AppConfig, Session, stream_ab
from chatbot.arena.kinds import VOTE_KINDS, stored_winner
from chatbot.arena.leaderboard import settings_diff
from chatbot.arena.provenance import OWN, PROVENANCE_NOTES, reply_provenance
from chatbot.arena.votes import Vote
from chatbot.sampling import DEFAULT_PRESET, SamplingSettings

if TYPE_CHECKING:
    from chatbot.app.chat_app import ChatApp

HIDDEN_SETTINGS = "Settings (hidden until you vote)"
PENDING = "Generating both replies…"  # blind mode shows both replies together, so neither side shows progress


def _shown(value) -> str:
    # a field missing from a setting's identity is one its strategy does not use (greedy has no temperature)
    return "unused" if value is None else str(value)


def reveal_notes(pair: ABPair) -> str:
    """After the vote: each side's panel and setting, how its reply was made, and the settings that differ."""
    lines = []
    for screen in ("left", "right"):
        panel = pair.panel(screen)
        made = pair.provenance_of(panel)
        note = "" if made == OWN else f" · ⚠️ {PROVENANCE_NOTES[made]}"
        lines.append(f"**{screen.capitalize()}** was **{panel}** ({pair.label_of(panel)}){note}")
    diff = settings_diff(json.loads(pair.ranked[0]), json.loads(pair.ranked[1]))
    if diff:
        lines.append("A vs B: " + "; ".join(f"{field} {_shown(a)} → {_shown(b)}" for field, a, b in diff))
    else:
        lines.append("A and B were the same setting: this vote does not move the ratings.")
    return "  \n".join(lines)


class ABTab:
    """What each button of the A/B tab does. Methods take the tab's Session and the widgets' values and
    return (or, while streaming, yield) the widgets' new values; votes go to ``votes``' store."""

    def __init__(self, config: AppConfig, registry: ModelRegistry, votes: VotesPanel):
        self.config = config
        self.registry = registry
        self.votes = votes

    def _labels(self, pair: ABPair | None) -> tuple[str, str]:
        if pair is None or pair.hidden:
            return "Left reply", "Right reply"
        labels = []
        for screen in ("left", "right"):
            panel = pair.panel(screen)
            label = f"{screen.capitalize()}: {panel} · {pair.label_of(panel)}"
            if pair.provenance_of(panel) != OWN:
                label += f" · {pair.provenance_of(panel)}"
            labels.append(label + (" · continues the conversation" if pair.continued == panel else ""))
        return labels[0], labels[1]

    @staticmethod
    def _settings_panels(hidden: bool):
        """The two settings panels: collapsed and neutrally labelled while a blind pair waits for the vote."""
        if hidden:
            return gr.update(label=HIDDEN_SETTINGS, open=False), gr.update(label=HIDDEN_SETTINGS, open=False)
        return gr.update(label="Settings A", open=True), gr.update(label="Settings B", open=True)

    def view(self, session: Session, notice: str = "", left: str | None = None, right: str | None = None, hidden=None):
        """The A/B outputs: chat, left reply, right reply, the vote buttons, 2 continue buttons, notice,
        settings panel A, settings panel B. ``hidden``: hide the settings (a blind pair being generated).
        Updates, not new components: a view is made on every vote and every streamed word."""
        pair = session.pair
        hidden = (pair is not None and pair.hidden) if hidden is None else hidden
        if pair is not None:
            left = pair.reply_of(pair.panel("left")) if left is None else left
            right = pair.reply_of(pair.panel("right")) if right is None else right
        left_label, right_label = self._labels(pair)
        can_vote = pair is not None and pair.voted is None and pair.open
        can_continue = pair is not None and pair.open
        return (
            messages(session.ab_turns),
            gr.update(value=left or "", label=left_label),
            gr.update(value=right or "", label=right_label),
            *[gr.update(interactive=can_vote) for _ in VOTE_KINDS],
            *[gr.update(interactive=can_continue) for _ in range(2)],
            notice,
            *self._settings_panels(hidden),
        )

    def _pair_settings(
        self, panel_a: dict, panel_b: dict, shared_seed
    ) -> tuple[SamplingSettings, SamplingSettings, int | None]:
        """Settings A and B from both panels' values (preset, then controls), and the shared seed if any."""
        settings_a = settings_from_panel(self.config.presets, panel_a)
        settings_b = settings_from_panel(self.config.presets, panel_b)
        seed = parse_seed(shared_seed)
        if seed is not None:  # the same draw for both: the replies differ by their settings only
            settings_a, settings_b = settings_a.replace(seed=seed), settings_b.replace(seed=seed)
        return settings_a, settings_b, seed

    def _make_replies(self, session: Session, bot, persona: str, settings: dict, screens, shown, notice, show: bool):
        """Make A's reply, then B's; returns the finished replies (Reply objects) by panel, incomplete when Stop
        was pressed. ``show``: stream each into its screen side of ``shown``, yielding the view after each
        event. Blind mode does not show: it yields nothing, so no side shows first or streams faster."""
        replies = {}
        for panel, panel_settings in settings.items():
            events = stream_ab(bot, session.ab_turns, persona, panel_settings, session.cancel)
            for kind, value, streamed, withdrawn in fold_stream(events):
                if kind == cm.FINAL:
                    replies[panel] = value
                    streamed, withdrawn = value.text, []
                if show:
                    shown[screens[panel]] = render_stream(streamed, withdrawn, cursor=kind != cm.FINAL)
                    yield gr.skip(), *self.view(session, notice, shown["left"], shown["right"])
            if session.cancel.is_set():
                break
        return replies

    def side_box(self, session: Session):
        """The persona box as the model reads it, as in the chat tab: persona facts or few-shot examples."""
        return side_box_update(self.registry, session)

    def send(self, session: Session, text: str, persona: str, blind: bool, shared_seed, panel_a: dict, panel_b: dict):
        """One message answered by A and by B, side by side. ``panel_a``/``panel_b``: each sampling panel's
        values ({"preset": ..., field: value}; missing fields come from the preset)."""
        text, notice = clean_message(text, self.config.max_message_chars)
        if not text:
            gr.Warning("Type a message first: an empty message is not sent.")
            yield gr.skip(), *self.view(session, "Type a message, then press Enter or Send.")
            return
        if session.pair is not None and session.pair.open:
            gr.Warning("First choose which reply continues the conversation (vote, or a Continue button).")
            yield gr.skip(), *self.view(session, "Choose which reply continues the conversation first.")
            return
        if notice:
            gr.Warning(notice)
        settings_a, settings_b, seed = self._pair_settings(panel_a, panel_b, shared_seed)
        swapped = bool(blind) and session.rng.random() < 0.5
        bot = self.registry.get(session.model)  # a model that cannot load fails here, before the message is shown
        session.pair = None
        session.ab_turns.append(text)
        session.cancel.clear()  # a new request: from here on, Stop applies to it
        screens = {"A": "right" if swapped else "left", "B": "left" if swapped else "right"}
        shown = {"left": "…", "right": "…"}
        blind = bool(blind)
        if blind:
            yield "", *self.view(session, notice or PENDING, PENDING, PENDING, hidden=True)
        else:
            yield "", *self.view(session, notice or "", shown["left"], shown["right"])
        try:
            settings = {"A": settings_a, "B": settings_b}
            replies = yield from self._make_replies(
                session, bot, persona, settings, screens, shown, notice or "", show=not blind
            )
        except BaseException:
            session.ab_turns.pop()  # no half-answered message stays in the shared history
            raise
        if session.cancel.is_set():
            # a cut-short reply is no fair comparison: nothing to vote on, the message goes back to the box
            session.ab_turns.pop()
            stopped = "Stopped: nothing was added to the conversation or the votes. Send the message again."
            yield text, *self.view(session, stopped, shown["left"], shown["right"], hidden=False)
            return
        session.pair = self.make_pair(
            reply_a=replies["A"].text,
            reply_b=replies["B"].text,
            settings_a=settings_a,
            settings_b=settings_b,
            swapped=swapped,
            blind=blind,
            seed=seed,
            persona=persona or "",
            provenance_a=reply_provenance(replies["A"], settings_a),
            provenance_b=reply_provenance(replies["B"], settings_b),
            fingerprint=fingerprint_of(bot),
        )
        prompt = "Vote, or pick the reply that continues the conversation."
        if not blind and session.pair.ranked[0] == session.pair.ranked[1]:
            prompt += " A and B are the same setting: a vote here does not move the leaderboard."
        yield gr.skip(), *self.view(session, prompt)  # blind: both replies appear in this one update

    def make_pair(self, **fields) -> ABPair:
        """An :class:`ABPair` of ``fields``, with its settings' names and ranking identities."""
        pair = ABPair(**fields)
        pair.labels = (
            setting_label(pair.settings_a, self.config.presets),
            setting_label(pair.settings_b, self.config.presets),
        )
        pair.ranked = (ranking_identity(pair.settings_a), ranking_identity(pair.settings_b))
        return pair

    def vote(self, session: Session, choice: str, selected: str | None = None, include: bool = False):
        """Store a vote (a kind's choice: "left", "right", "tie", "both-bad").

        Outputs: the A/B view, then the leaderboard's table, summary, model selector and timer.
        """
        pair = session.pair
        if pair is None or not pair.open or pair.voted is not None:
            message = (
                "Nothing to vote on: send a message first."
                if pair is None or not pair.open
                else ("You already voted on these replies.")
            )
            gr.Warning(message)
            return *self.view(session, message), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        winner = stored_winner(choice, pair.swapped)  # ValueError for an unknown choice
        vote = Vote(
            winner=winner,
            settings_a_id=pair.ranked[0],
            settings_a_json=pair.settings_a.to_json(),
            settings_b_id=pair.ranked[1],
            settings_b_json=pair.settings_b.to_json(),
            reply_a=pair.reply_a,
            reply_b=pair.reply_b,
            conversation=messages(session.ab_turns),
            blind=pair.blind,
            swapped=pair.swapped,
            persona=pair.persona,
            model=pair.fingerprint.source,
            seed=pair.seed,
            fingerprint=pair.fingerprint.key,
            provenance_a=pair.provenance_a,
            provenance_b=pair.provenance_b,
        )
        self.votes.store.add(vote)
        pair.voted = winner
        if winner in ("A", "B"):  # the better reply continues the conversation
            notice = self._continue_with(session, winner)
        else:
            notice = "Vote stored. Now pick the reply that continues the conversation."
        notice += "  \n" + reveal_notes(pair)
        return *self.view(session, notice), *self.votes.leaderboard_view(session, selected, include)

    def _continue_with(self, session: Session, panel: str) -> str:
        pair = session.pair
        session.ab_turns.append(pair.reply_of(panel))
        pair.continued = panel
        voted = "Vote stored. " if pair.voted else ""
        return f"{voted}{panel} ({pair.label_of(panel)}) continues the conversation."

    def continue_with(self, session: Session, screen: str):
        """Continue the shared conversation with the reply on screen side "left" or "right"."""
        if session.pair is None or not session.pair.open:
            raise gr.Error("No replies to choose from: send a message first.")
        return self.view(session, self._continue_with(session, session.pair.panel(screen)))

    def clear(self, session: Session):
        """New conversation (the button, or the chat's trash icon): the server-side history goes too."""
        session.ab_turns.clear()
        session.pair = None
        return self.view(session, "")


def _reply_panels() -> tuple[gr.Textbox, gr.Textbox, dict[str, gr.Button], dict[str, gr.Button]]:
    """The two replies side by side, each with its Continue button, and the vote buttons under them.

    Returns the left and right reply boxes, the vote buttons by choice (one per
    :data:`chatbot.arena.kinds.VOTE_KINDS`, in its order) and the Continue buttons by screen side.
    """
    with gr.Row(equal_height=True):
        with gr.Column():
            left = gr.Textbox(label="Left reply", lines=3, interactive=False, elem_classes="reply-box")
            continue_left = gr.Button("Continue with left", size="sm", interactive=False)
        with gr.Column():
            right = gr.Textbox(label="Right reply", lines=3, interactive=False, elem_classes="reply-box")
            continue_right = gr.Button("Continue with right", size="sm", interactive=False)
    with gr.Row():
        votes = {
            kind.choice: gr.Button(kind.label, variant="primary" if kind.side else "secondary", interactive=False)
            for kind in VOTE_KINDS
        }
    return left, right, votes, {"left": continue_left, "right": continue_right}


def ab_tab(app: ChatApp, session: gr.State, generate: dict) -> tuple[gr.Markdown, LeaderboardWidgets]:
    """The A/B tab, wired; returns the persona note and the leaderboard the page fills on load."""
    # B starts on a contrasting preset, so a first A/B turn already compares something
    default_b = "greedy" if "greedy" in app.presets and DEFAULT_PRESET != "greedy" else DEFAULT_PRESET
    gr.Markdown(
        "Two sampling settings answer every message side by side. Vote for the better reply "
        "(it continues the conversation), or pick one to continue without voting."
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=300):  # a sampling panel's help lines need the width
            with gr.Accordion("Settings A", open=True) as panel_a:
                sampling_a = sampling_panel(app, DEFAULT_PRESET, "A", prefix="a_")
        with gr.Column(scale=3):
            chat = gr.Chatbot(label="Shared conversation", height=280, placeholder="One conversation, two bots.")
            with gr.Row(equal_height=True):
                msg = gr.Textbox(placeholder="Type a message for A and B", show_label=False, scale=6, max_lines=4)
                send = gr.Button("Send", variant="primary", scale=1, min_width=70)
                stop = gr.Button("Stop", variant="stop", scale=1, min_width=70)
            left, right, votes, continues = _reply_panels()
            notice = gr.Markdown(elem_classes="notice")
            with gr.Row():
                blind = gr.Checkbox(value=True, label="Blind: random sides, settings hidden until you vote")
                shared_seed = gr.Textbox(value="", label="Shared seed", info="blank = none", min_width=120)
                new = gr.Button("New conversation", size="sm")
            persona = gr.Textbox(lines=1, **PERSONA_BOX)
            persona_note = gr.Markdown(elem_classes="stats")
        with gr.Column(scale=1, min_width=300):  # a sampling panel's help lines need the width
            with gr.Accordion("Settings B", open=True) as panel_b:
                sampling_b = sampling_panel(app, default_b, "B", prefix="b_")
    board = leaderboard_panel(app.votes, session)

    tab = app.ab
    # the order ABTab.view returns them in
    view = [chat, left, right, *votes.values(), *continues.values(), notice, panel_a, panel_b]
    gr.on(
        [msg.submit, send.click],
        panel_handler(tab.send, sampling_a, sampling_b),
        [session, msg, persona, blind, shared_seed],
        [msg, *view],
        inputs_kwargs=sampling_a.inputs() | sampling_b.inputs(),
        api_name="ab_send",
        **generate,
    )
    stop.click(ui_errors(app.stop), [session], None, api_name=False, concurrency_limit=None)
    for choice, button in votes.items():
        api = f"ab_vote_{choice.replace('-', '_')}"

        def vote(session_value, selected_value, include_value, choice=choice):
            return tab.vote(session_value, choice, selected_value, include_value)

        vote.__name__ = api
        button.click(ui_errors(vote), board.inputs(session), [*view, *board.outputs], api_name=api)
    for screen, button in continues.items():
        api = f"ab_continue_{screen}"
        button.click(bind(tab.continue_with, screen, name=api), [session], view, api_name=api)
    new.click(ui_errors(tab.clear), [session], view, api_name="ab_clear")
    chat.clear(ui_errors(tab.clear), [session], view, api_name=False)  # the trash icon clears the history too
    persona_note.change(ui_errors(tab.side_box), [session], [persona], api_name=False)  # the box follows the model
    return persona_note, board
