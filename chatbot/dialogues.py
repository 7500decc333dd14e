"""Dialogue files in JSONL: one conversation a line, ``{"persona": [...], "turns": [...]}``.

The one reader and writer of the layout: the terminal chat and the web app save and resume
conversations with it, few-shot examples are read with it, and ``chatbot train`` reads ``.jsonl``
data through it. A bad line raises :class:`DataError` naming the file, the line and the problem.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from chatbot.errors import DataError


@dataclass(frozen=True)
class DialogueLine:
    """One parsed line: its persona and turns, and ``where`` (``path:line``) for error messages."""

    persona: list[str]
    turns: list[str]
    where: str


def conversation_record(persona: Sequence[str], turns: Sequence[str]) -> dict[str, list[str]]:
    """The JSON object of one line."""
    return {"persona": list(persona), "turns": list(turns)}


def save_conversations(records: Sequence[dict], path: str | os.PathLike, append: bool = True) -> Path:
    """Append (or write) records as JSONL lines ``{"persona": [...], "turns": [...]}``."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(conversation_record(record["persona"], record["turns"]), ensure_ascii=False) + "\n")
    return path


def read_text(path: Path) -> str:
    """A data file's text; one-line errors for a missing, unreadable, non-UTF-8 or empty file."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        text = data.decode("utf-8-sig")  # accepts and drops the byte-order mark some editors write
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "re-save the file as UTF-8"
        ) from exc
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    return text


def split_lines(text: str) -> list[str]:
    """Lines as an editor numbers them: str.splitlines() would also break at U+2028/U+0085,
    which JSON strings may contain raw."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def parse_line(line: str, where: str) -> DialogueLine:
    """One JSONL line as a :class:`DialogueLine`, or DataError naming ``where`` and the problem."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: bad JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict) or "turns" not in record:
        raise DataError(f'{where}: expected an object with "turns" (and optional "persona")')
    turns, persona = record["turns"], record.get("persona") or []
    check_types(turns, persona, where)
    return DialogueLine(persona=persona, turns=turns, where=where)


def check_types(turns, persona, where: str) -> None:
    """Turns and persona are lists of strings, or DataError naming ``where`` and the first problem."""
    if not isinstance(turns, list):
        raise DataError(f"{where}: 'turns' must be a list of strings, got {type(turns).__name__}")
    for i, turn in enumerate(turns):
        if not isinstance(turn, str):
            raise DataError(f"{where}: utterance {i + 1} is {type(turn).__name__}, expected text")
    if not isinstance(persona, list) or not all(isinstance(p, str) for p in persona):
        raise DataError(f"{where}: 'persona' must be a list of strings")


def iter_jsonl(path: str | os.PathLike, on_error: Callable[[DataError], None] | None = None) -> Iterator[DialogueLine]:
    """Every non-blank line of a JSONL dialogue file, in order.

    A bad line raises DataError; with ``on_error`` it is handed over instead and reading goes on
    (training's ``--skip-bad`` counts it; ``on_error`` may also re-raise).
    """
    path = Path(path)
    for number, line in enumerate(split_lines(read_text(path)), start=1):
        if not line.strip():
            continue
        try:
            yield parse_line(line, f"{path}:{number}")
        except DataError as exc:
            if on_error is None:
                raise
            on_error(exc)


def load_conversations(path: str | os.PathLike) -> list[dict[str, list[str]]]:
    """Every record of a JSONL conversation file (one-line error for a missing or broken file)."""
    return [conversation_record(line.persona, line.turns) for line in iter_jsonl(path)]
