"""The dialogue format: the one place that says how a conversation becomes model input.

Training (``training/``) and inference (``chatbot/``) both call :func:`build_inputs`, so the
model is always asked for a reply in exactly the layout it was trained on::

    [<|persona|> persona text <|eot|>]  <|user|> ... <|eot|>  <|bot|> ... <|eot|>  <|bot|> reply <|eot|>
     optional persona block            the last k utterances, speakers alternate  the reply (target)

Speakers are assigned backwards from the reply: the utterance just before the reply is the
user's, the one before that the bot's, and so on. Text typed by a person is always encoded as
plain text, so a user who types ``<|bot|>`` gets those characters, not the special token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

IGNORE_INDEX = -100  # label value the loss skips (PyTorch's CrossEntropyLoss default)

USER = "<|user|>"
BOT = "<|bot|>"
PERSONA = "<|persona|>"
EOT = "<|eot|>"  # end of turn: generation stops here
PAD = "<|pad|>"
# GPT-2's own end-of-text token; separates whole conversations when they are packed together.
EOS = "<|endoftext|>"

SPECIAL_TOKENS = (USER, BOT, PERSONA, EOT, PAD)


@dataclass(frozen=True)
class ModelInput:
    """Token ids for one example; ``labels`` is IGNORE_INDEX everywhere except the reply."""

    input_ids: list[int]
    labels: list[int]
    # Utterances of the window that survived the token budget (for display and tests).
    kept_utterances: int = 0
    truncated: bool = False


@dataclass
class TokenIds:
    """The special-token ids of one tokenizer, looked up once."""

    user: int
    bot: int
    persona: int
    eot: int
    pad: int
    eos: int | None = None

    @classmethod
    def from_tokenizer(cls, tokenizer) -> TokenIds:
        ids = {}
        for name, token in zip(("user", "bot", "persona", "eot", "pad"), SPECIAL_TOKENS):
            token_id = tokenizer.convert_tokens_to_ids(token)
            if token_id is None or token_id == tokenizer.unk_token_id:
                raise ValueError(
                    f"tokenizer has no {token} token; call chatbot.format.add_special_tokens(tokenizer) first"
                )
            ids[name] = token_id
        return cls(**ids, eos=tokenizer.eos_token_id)


def add_special_tokens(tokenizer) -> int:
    """Register the dialogue tokens (and a pad token) on a tokenizer; returns how many were new."""
    added = tokenizer.add_special_tokens({"pad_token": PAD, "additional_special_tokens": [USER, BOT, PERSONA, EOT]})
    return added


def encode_text(tokenizer, text: str) -> list[int]:
    """Encode user- or data-provided text as plain text: special-token strings are not special here."""
    return encode_texts(tokenizer, [text])[0]


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """:func:`encode_text` for many texts in one tokenizer call (one call per text costs ~10x more)."""
    if not texts:
        return []
    # verbose=False: an utterance longer than the model is no error here, since every caller windows or
    # chunks the ids (build_inputs, pack); the tokenizer would warn "longer than the specified maximum"
    return tokenizer(texts, add_special_tokens=False, split_special_tokens=True, verbose=False)["input_ids"]


@dataclass
class DialogueFormat:
    """How many utterances a reply sees and how many tokens fit; saved in the chatbot's settings file."""

    max_history: int = field(default=5, metadata={"help": "utterances (both speakers) before the reply"})
    max_length: int = field(default=256, metadata={"help": "token budget of one model input"})

    def __post_init__(self):
        if self.max_history < 1:
            raise ValueError(f"max_history must be >= 1 (got {self.max_history}); it counts utterances")
        if self.max_length < 8:
            raise ValueError(f"max_length must be >= 8 tokens (got {self.max_length})")


# -- who said what --------------------------------------------------------------------------------
# Speakers alternate. A conversation's turns start with the user's; a context (the utterances a reply
# answers) ends with the user's. This is the one place that says so: other modules ask these helpers.


def is_user_turn(i: int, n: int | None = None) -> bool:
    """Whether utterance ``i`` is the user's.

    Without ``n``: in a conversation, whose first turn is the user's. With ``n``: in a context of
    ``n`` utterances, whose last is the user's (the bot speaks next).
    """
    return (i if n is None else n - 1 - i) % 2 == 0


def reply_positions(n_turns: int) -> range:
    """Indices of the bot's turns in a conversation of ``n_turns``; each replies to the turns before it."""
    return range(1, n_turns, 2)


def bot_turns(context: Sequence[str]) -> list[str]:
    """The bot's own utterances in a context (whose last is the user's), oldest first."""
    return [u for i, u in enumerate(context) if not is_user_turn(i, len(context))]


def persona_text(persona: Sequence[str]) -> str:
    """A persona's sentences as the one text a model or server sees."""
    return " ".join(persona)


def speaker_tokens(n_utterances: int, ids: TokenIds) -> list[int]:
    """Speaker token of each of the last ``n_utterances`` context utterances; the last one is the user's."""
    return [ids.user if is_user_turn(i, n_utterances) else ids.bot for i in range(n_utterances)]


def build_inputs(
    tokenizer_or_ids,
    history: list[list[int]],
    reply: list[int] | None,
    fmt: DialogueFormat,
    persona: list[int] | None = None,
    reserve: int = 0,
) -> ModelInput:
    """Build one model input from already-encoded utterances.

    ``history``: encoded context utterances, oldest first; the last one is the user's.
    ``reply``: the encoded target reply for training, or ``None`` for generation (the input then
    ends with the bot's speaker token and the model continues from there).
    ``reserve``: tokens kept free for generation (max_new_tokens) when ``reply`` is None.

    The window keeps the last ``fmt.max_history`` utterances; when they do not fit in
    ``fmt.max_length`` the oldest are dropped first, then the persona, and finally the oldest
    remaining utterance is cut from its start. The reply is never dropped: a reply longer than the
    whole budget is cut at its end, keeping its end-of-turn token so the model still learns to stop.
    """
    ids = tokenizer_or_ids if isinstance(tokenizer_or_ids, TokenIds) else TokenIds.from_tokenizer(tokenizer_or_ids)
    window = [list(u) for u in history[-fmt.max_history :]]
    budget = fmt.max_length - reserve
    truncated = len(history) > len(window)

    if reply is None:
        tail = [ids.bot]
    else:
        # speaker token + reply + eot must fit; cut the reply's end if it alone overflows
        room = budget - 2
        if room < 1:
            raise ValueError(f"max_length {fmt.max_length} leaves no room for a reply")
        if len(reply) > room:
            reply, truncated = reply[:room], True
        tail = [ids.bot, *reply, ids.eot]
    if budget - len(tail) < 0:
        raise ValueError(
            f"max_length {fmt.max_length} minus {reserve} reserved tokens leaves no room for the prompt; "
            "lower max_new_tokens"
        )

    persona_block = [ids.persona, *persona, ids.eot] if persona else []
    window, persona_block, cut = _fit(window, persona_block, budget - len(tail))
    truncated = truncated or cut

    input_ids = list(persona_block)
    for speaker, utterance in zip(speaker_tokens(len(window), ids), window):
        input_ids += [speaker, *utterance, ids.eot]
    labels = [IGNORE_INDEX] * len(input_ids)
    input_ids += tail
    if reply is None:
        labels += [IGNORE_INDEX]
    else:
        # the speaker token is given; the model is scored on the reply and on ending it
        labels += [IGNORE_INDEX, *tail[1:]]
    assert len(input_ids) <= budget, (len(input_ids), budget)
    return ModelInput(input_ids=input_ids, labels=labels, kept_utterances=len(window), truncated=truncated)


def _fit(window: list[list[int]], persona_block: list[int], room: int) -> tuple[list[list[int]], list[int], bool]:
    """Drop the oldest utterances, then the persona, then cut the last utterance's start until the
    context fits in ``room`` tokens (each utterance costs 2 more: speaker and end-of-turn)."""
    truncated = False

    def total() -> int:
        return len(persona_block) + sum(len(u) + 2 for u in window)

    while len(window) > 1 and total() > room:
        window.pop(0)
        truncated = True
    if total() > room and persona_block:
        persona_block, truncated = [], True
    if total() > room and window:
        # one utterance left and still too long: keep its end, which is nearest the reply
        keep = room - 2
        window = [window[0][-keep:]] if keep >= 1 else []
        truncated = True
    return window, persona_block, truncated


def build_conversation(
    ids: TokenIds,
    turns: list[list[int]],
    persona: list[int] | None = None,
) -> tuple[list[int], list[int]]:
    """A whole conversation as one sequence (the ``all-turns`` training mode, DialoGPT style).

    Speakers alternate with the user first; every utterance and its end-of-turn token is a target,
    the persona block is context only. Returns ``(input_ids, labels)``.
    """
    input_ids: list[int] = []
    labels: list[int] = []
    if persona:
        block = [ids.persona, *persona, ids.eot]
        input_ids += block
        labels += [IGNORE_INDEX] * len(block)
    for i, utterance in enumerate(turns):
        speaker = ids.user if is_user_turn(i) else ids.bot
        input_ids += [speaker, *utterance, ids.eot]
        labels += [IGNORE_INDEX, *utterance, ids.eot]
    return input_ids, labels


def build_plain_inputs(
    history: list[list[int]],
    eos_id: int,
    fmt: DialogueFormat,
    reserve: int = 0,
    examples: Sequence[Sequence[list[int]]] = (),
) -> ModelInput:
    """Prompt for a plain causal LM that knows no speaker tokens: turns joined by end-of-text (DialoGPT).

    ``examples``: few-shot example exchanges (each a list of encoded turns, oldest example first),
    placed before the conversation in the same layout. The history is trimmed first, as without
    examples; the examples then fill what is left of the budget, whole ones only, the oldest
    dropped first. Without examples the prompt is exactly the history's. ``kept_utterances`` counts
    the history's utterances in the prompt (never the examples'); there are no labels.
    """
    budget = fmt.max_length - reserve
    if budget < 1:
        raise ValueError(
            f"max_length {fmt.max_length} minus {reserve} reserved tokens leaves no room for the prompt; "
            "lower max_new_tokens"
        )
    window = [list(u) for u in history[-fmt.max_history :]]
    while len(window) > 1 and sum(len(u) + 1 for u in window) > budget:
        window.pop(0)
    whole = plain_turns(window, eos_id)
    conversation = whole[-budget:]
    input_ids = fitting_examples(examples, eos_id, budget - len(conversation)) + conversation
    truncated = len(window) < len(history) or len(whole) > budget
    return ModelInput(input_ids, [], kept_utterances=len(window), truncated=truncated)


def plain_turns(turns: Sequence[list[int]], eos_id: int) -> list[int]:
    """Encoded turns in the plain layout: each followed by end-of-text."""
    return [t for u in turns for t in (*u, eos_id)]


def fitting_examples(examples: Sequence[Sequence[list[int]]], eos_id: int, room: int) -> list[int]:
    """The newest whole examples that fit in ``room`` tokens, in their order, in the plain layout."""
    kept: list[int] = []
    for example in reversed(examples):  # newest first, so the oldest are the ones dropped
        block = plain_turns(example, eos_id)
        if len(kept) + len(block) > room:
            break
        kept = block + kept
    return kept
