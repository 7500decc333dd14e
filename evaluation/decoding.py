"""Reply sources for the evaluation: the chatbot's own batched reply path, with a progress bar.

The evaluation measures what users get, so replies come from
:meth:`chatbot.conversation.Chatbot.reply_batch` (left-padded batches, candidates filtered and
ranked, retry, fallback), not from a bare ``generate`` call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from chatbot.errors import ChatbotError
from chatbot.format import reply_positions
from chatbot.sampling import SamplingSettings
from evaluation.failures import is_profanity_reason
from evaluation.keywords import reference_keyword
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


def chatbot_source(
    bot, batch_size: int = 16, progress: bool = True, keywords_from_reference: bool = False
) -> ReplySource:
    """A reply source on a :class:`chatbot.conversation.Chatbot`; one ``reply_batch`` call per batch.

    ``keywords_from_reference``: each context's reply is steered to its own keyword
    (:func:`evaluation.keywords.reference_keyword`); a keyword is a setting, so such contexts are
    decoded one ``reply_batch`` call each.
    """
    from tqdm.auto import tqdm

    def source(examples: Sequence[Example], settings) -> list[Generated]:
        out: list[Generated] = []
        with tqdm(total=len(examples), desc=settings.describe(), unit="ctx", disable=not progress, leave=False) as bar:
            for start in range(0, len(examples), batch_size):
                chunk = examples[start : start + batch_size]
                if keywords_from_reference:
                    replies = [bot.generate_reply(e.context, persona=e.persona, settings=keyword_settings(settings, e))
                               for e in chunk]  # fmt: skip
                else:
                    replies = bot.reply_batch(
                        [e.context for e in chunk], settings, personas=[e.persona for e in chunk], batch_size=batch_size
                    )
                out += [to_generated(r) for r in replies]
                bar.update(len(chunk))
        return out

    return source


def keyword_settings(settings: SamplingSettings, example: Example) -> SamplingSettings:
    """``settings`` with the example's reference keyword added to its keywords (unchanged when it has none)."""
    keyword = reference_keyword(example.reference)
    return settings.replace(keywords=(*settings.keywords, keyword)) if keyword else settings


def _setting_key(identity: str) -> str:
    """A setting's identity in today's form, without its seed (the evaluation seeds sampled settings itself).

    Reports written before identities left out neutral fields still replay: their identities are
    canonicalised first.
    """
    return SamplingSettings.from_identity(identity).replace(seed=None).identity


def replay_source(report_dir: str | Path) -> ReplySource:
    """Replies of an earlier report (replies.jsonl, conversations.jsonl), to rescore without generating.

    Useful after a change to the metrics or the report: the same contexts get the same replies.
    A context the earlier run did not reply to (other data, limit or seed) is an error.
    """
    folder = Path(report_dir)
    try:
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        lines = (folder / "replies.jsonl").read_text(encoding="utf-8").splitlines()
    except (OSError, json.JSONDecodeError) as exc:
        raise ChatbotError(f"--replay {folder}: not a readable evaluation report ({exc})") from exc
    keys = {name: _setting_key(s["identity"]) for name, s in metrics["settings"].items() if s.get("identity")}
    table: dict[tuple[str, tuple[str, ...]], Generated] = {}
    for line in lines:
        record = json.loads(line)
        for name, reply in record["replies"].items():
            table[keys[name], tuple(record["context"])] = Generated(
                reply["reply"],
                profanity_rejected=reply.get("profanity_rejected", False),
                fallback=reply.get("fallback", False),
                rejected=reply.get("rejected", []),
            )
    conversations = folder / "conversations.jsonl"
    for line in conversations.read_text(encoding="utf-8").splitlines() if conversations.is_file() else []:
        record = json.loads(line)
        turns = record["turns"]
        for t in reply_positions(len(turns)):
            table.setdefault((keys[record["setting"]], tuple(turns[:t])), Generated(turns[t]))

    def source(examples: Sequence[Example], settings) -> list[Generated]:
        key = _setting_key(settings.identity)
        out = []
        for e in examples:
            reply = table.get((key, tuple(e.context)))
            if reply is None:
                raise ChatbotError(
                    f"--replay {folder}: no reply under {settings.describe()} for the context ending "
                    f"{e.context[-1]!r}; use the same data, --limit and --seed, or run without --replay"
                )
            out.append(reply)
        return out

    return source
