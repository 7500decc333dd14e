"""Prompts for a server: special-token text made harmless, a character budget, chat messages, stops.

**Typed special tokens stay text.** Locally, :func:`chatbot.format.encode_text` encodes what a person
typed with ``split_special_tokens=True``, so typing ``<|bot|>`` cannot produce the speaker token.
A server that takes a *text* prompt parses special-token strings itself (transformers serve and
vLLM do), so before an utterance or persona is sent as text, every special-token string in it (ours,
the local tokenizer's, and anything shaped like ``<|name|>``) gets a ZERO WIDTH SPACE (U+200B) after
its first character: it reads the same but no longer matches the token. Where the server accepts
token ids (vLLM, llama.cpp) and a local tokenizer is known, the ids are sent and nothing is changed.

**Budget without a tokenizer.** With no local tokenizer the prompt is built by the same
:func:`chatbot.format.build_inputs` on characters (:class:`CharTokenizer`), with a window of
``CHARS_PER_TOKEN`` characters per model token: an approximation (English BPE averages about 4).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from chatbot.format import BOT, EOS, EOT, PAD, PERSONA, USER, is_user_turn, persona_text

ZWSP = "\u200b"
# <|user|>, <|im_start|>, <|eot_id|>, ... the shape most chat and dialogue tokenizers use
_SPECIAL_SHAPE = re.compile(r"<\|[^|<>\s]{1,40}\|>")
CHARS_PER_TOKEN = 3  # deliberately below English BPE's ~4, so the character budget errs on the short side

DIALOGUE_STOPS = (EOT, USER, BOT, PERSONA)  # where our format ends a reply (end-of-text is the server's eos)


def neutralise(text: str, special_tokens: Iterable[str] = ()) -> str:
    """``text`` with every special-token string broken by a zero-width space after its first character."""
    for token in sorted({t for t in special_tokens if len(t) > 1}, key=len, reverse=True):
        text = text.replace(token, token[0] + ZWSP + token[1:])
    return _SPECIAL_SHAPE.sub(lambda m: m.group(0)[0] + ZWSP + m.group(0)[1:], text)


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """(text before the first stop string, whether one was found): the client-side end of turn."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of a stream could start a stop string (not to be shown yet)."""
    longest = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                longest = max(longest, k)
                break
    return longest


def chat_messages(utterances: Sequence[str], persona: Sequence[str] = ()) -> list[dict[str, str]]:
    """OpenAI chat messages: the persona as a system message, then turns with the user's last."""
    messages = [{"role": "system", "content": persona_text(persona)}] if persona else []
    n = len(utterances)
    for i, text in enumerate(utterances):
        messages.append({"role": "user" if is_user_turn(i, n) else "assistant", "content": text})
    return messages


class CharTokenizer:
    """A stand-in tokenizer whose tokens are characters, so :mod:`chatbot.format` can budget text.

    Our special tokens get ids above the Unicode range; ``decode`` turns ids back into text.
    """

    SPECIALS = (USER, BOT, PERSONA, EOT, PAD, EOS)
    _BASE = 0x110000  # first id past the last Unicode code point
    chars_per_token = CHARS_PER_TOKEN

    def __init__(self):
        self._ids = {token: self._BASE + i for i, token in enumerate(self.SPECIALS)}
        self._tokens = {i: t for t, i in self._ids.items()}
        self.eos_token_id = self._ids[EOS]
        self.pad_token_id = self._ids[PAD]
        self.unk_token_id = None
        self.all_special_tokens = list(self.SPECIALS)

    def __call__(self, text: str | list[str], **kwargs) -> dict[str, list]:
        """Code points of ``text`` (or of each text of a list); typed text is never special here."""
        if isinstance(text, str):
            return {"input_ids": [ord(c) for c in text]}
        return {"input_ids": [[ord(c) for c in t] for t in text]}

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self._ids.get(token)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False, **kwargs) -> str:
        out = []
        for i in ids:
            if i in self._tokens:
                if not skip_special_tokens:
                    out.append(self._tokens[i])
            else:
                out.append(chr(i))
        return "".join(out)

    def encode(self, text: str, **kwargs) -> list[int]:
        return self(text)["input_ids"]

    def __len__(self) -> int:
        return self._BASE + len(self.SPECIALS)
