"""Reply sources for the evaluation: the chatbot's own batched reply path, with a progress bar.

The evaluation measures what users get, so replies come from
:meth:`chatbot.conversation.Chatbot.reply_batch` (left-padded batches, candidates filtered and
ranked, retry, fallback), not from a bare ``generate`` call.
"""

from __future__ import annotations

from collections.abc import Sequence

from evaluation.failures import is_profanity_reason
from evaluation.runner import Example, Generated, ReplySource


def to_generated(reply) -> Generated:
    """Keep what the evaluation needs from a :class:`chatbot.conversation.Reply`."""
    reasons = [c.rejected for c in reply.candidates if c.rejected]
    return Generated(
        text=reply.text,
        profanity_rejected=any(is_profanity_reason(r) for r in reasons),
        fallback=bool(reply.fallback),
        rejected=reasons,
    )


def chatbot_source(bot, batch_size: int = 16, progress: bool = True) -> ReplySource:
    """A reply source on a :class:`chatbot.conversation.Chatbot`; one ``reply_batch`` call per batch."""
    from tqdm.auto import tqdm

    def source(examples: Sequence[Example], settings) -> list[Generated]:
        out: list[Generated] = []
        with tqdm(total=len(examples), desc=settings.describe(), unit="ctx", disable=not progress, leave=False) as bar:
            for start in range(0, len(examples), batch_size):
                chunk = examples[start : start + batch_size]
                replies = bot.reply_batch(
                    [e.context for e in chunk], settings, personas=[e.persona for e in chunk], batch_size=batch_size
                )
                out += [to_generated(r) for r in replies]
                bar.update(len(chunk))
        return out

    return source
