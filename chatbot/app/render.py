"""Text in and out of the page: the user's message cleaned, and replies, candidates and speed as the
chat, the "why this reply" table and the A/B panels show them. Pure functions on plain values."""

from __future__ import annotations

from chatbot import conversation as cm
from chatbot.format import is_user_turn
from chatbot.rerankers import RANK

CANDIDATE_HEADERS = ["", "candidate", "score", "rejected because", "try", "all scores"]

# what the conversation manager did with profanity in the user's message (FilterSettings.user_profanity)
USER_PROFANITY_NOTES = {
    "mask": "your message had profanity: the model saw it masked",
    "keep": "your message had profanity: the model saw it as typed",
    "refuse": "your message had profanity: the bot does not answer it",
}


def clean_message(text: str | None, limit: int) -> tuple[str, str | None]:
    """The message to send and a notice for the user (None: nothing to say). Empty stays empty."""
    text = (text or "").strip()
    if len(text) > limit:
        return text[:limit].rstrip(), f"Your message was cut to its first {limit} characters (it had {len(text)})."
    return text, None


def messages(turns: list[str]) -> list[dict]:
    """Chat messages for gr.Chatbot from alternating turns, the user's first."""
    return [{"role": "user" if is_user_turn(i) else "assistant", "content": text} for i, text in enumerate(turns)]


def candidate_rows(reply: cm.Reply | None) -> list[list]:
    """The "why this reply" table: every candidate, the chosen one marked, each rejection's reason, its scores.

    "score" is what the reranker ranked by; "all scores" lists every score it computed (chatbot.rerankers).
    """
    if reply is None:
        return []
    return [
        ["✔" if i == reply.chosen else "", c.text, round(c.score, 3), c.rejected or "", c.attempt, scores_text(c)]
        for i, c in enumerate(reply.candidates)
    ]


def scores_text(candidate) -> str:
    """``logprob -1.23 · mmi 0.45 · coherence 0.31``: every score but the ranking copy."""
    return " · ".join(f"{name} {value:.3g}" for name, value in candidate.scores.items() if name != RANK)


def reply_stats(reply: cm.Reply | None, label: str = "", user_profanity: str = "mask") -> str:
    """One line under the chat: tokens/s of the last reply and how it was chosen (with the backend's notes)."""
    if reply is None:
        return ""
    t, n, bad = reply.timings, len(reply.candidates), len(reply.rejected)
    # several candidates are generated together: the speed counts every token of every candidate
    over = f" over {n} candidates" if n > 1 else ""
    decoder = f", decoder: {reply.path}" if reply.path else ""  # fast (chatbot.fastdecode) or generate
    parts = [f"**{t.tokens_per_s:.0f} tokens/s** ({t.new_tokens} tokens{over} in {t.generation_ms / 1000:.2f} s{decoder})"]
    parts.append(f"reply in {t.total_ms / 1000:.2f} s, filters {t.filter_ms:.0f} ms")
    parts.append(f"{n} candidate{'s' * (n != 1)}, {bad} rejected" + (", 1 retry" if reply.attempts > 1 else ""))
    if label:
        parts.append(label)
    if reply.fallback:
        parts.append("every candidate failed the filters: a safe fallback reply was shown")
    if reply.cancelled:
        parts.append("stopped")
    if reply.truncated:
        parts.append(f"context cut to the last {reply.kept_utterances} utterances")
    if reply.user_profanity:
        parts.append(USER_PROFANITY_NOTES.get(user_profanity, "your message had profanity"))
    parts += reply.notes  # what the backend could not do: no likelihood ranking, settings a server dropped
    return " · ".join(parts)


def fold_stream(events):
    """After each stream event, yield ``(kind, value, shown, withdrawn)``: the text shown so far and the
    ``(text, reason)`` of every withdrawn attempt, as the chat and the A/B panels display them."""
    shown, withdrawn = "", []
    for kind, value in events:
        if kind == cm.DELTA:
            shown += value
        elif kind == cm.WITHDRAW:
            withdrawn.append((shown, value))
            shown = ""
        yield kind, value, shown, withdrawn


def render_stream(shown: str, withdrawn: list[tuple[str, str]], cursor: bool = True) -> str:
    """A reply being streamed: withdrawn attempts struck through, then the current text."""
    lines = [f"~~{text.strip()}~~ *(withdrawn: {reason}; regenerating)*" for text, reason in withdrawn]
    return "\n\n".join([*lines, shown + (" ▌" if cursor else "")]).strip()
