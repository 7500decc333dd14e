"""Dialogue data: one small type, and loaders for every source ``--data`` accepts.

Sources:
    chitchat              the ``chitchat-dataset`` package (7,168 real conversations), offline
    PATH.json             PersonaChat/ConvAI2 as TransferTransfo ships it ({"train": [...], "valid": [...]})
    PATH.txt              ParlAI's ConvAI2 text format (numbered lines, "your persona:", tab-separated turns)
    PATH.jsonl            one dialogue per line: {"persona": [...], "turns": [...]}
    hf:NAME[:CONFIG]      a Hugging Face hub dataset through ``datasets``

Sources that ship splits keep them; the others are split 90/5/5 by a stable hash of each dialogue,
so a dialogue always lands in the same split. ``--split all`` takes every dialogue of a source.
Malformed input raises :class:`DataError` naming the file, the line and the problem; with
``skip_bad=True`` bad dialogues are skipped and counted instead (never dropped silently).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from chatbot.dialogues import check_types, iter_jsonl, read_text, split_lines
from chatbot.errors import DataError

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test", "all")
# Hub datasets name their splits differently; ours -> theirs, first match wins.
HF_SPLIT_NAMES = {"train": ("train",), "valid": ("validation", "valid", "dev"), "test": ("test",)}


@dataclass
class Dialogue:
    """Ordered utterances of two alternating speakers; the persona (if any) is the bot's.

    The bot speaks the utterances at odd indices (the partner opens), as in ConvAI2.
    ``candidates[i]`` are candidate replies for utterance ``i`` with the gold one last, or empty.
    """

    turns: list[str]
    persona: list[str] = field(default_factory=list)
    candidates: list[list[str]] | None = None

    def key(self) -> str:
        """A stable identity of the dialogue's content, used for hash splits."""
        text = json.dumps({"persona": self.persona, "turns": self.turns}, ensure_ascii=False)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def to_json(self) -> dict:
        return {"persona": self.persona, "turns": self.turns}


@dataclass
class LoadReport:
    """What a load did: how many dialogues were kept and which bad ones were skipped."""

    kept: int = 0
    skipped: list[str] = field(default_factory=list)
    one_speaker: int = 0  # chitchat conversations where only one person wrote (not dialogues)


def hash_split(dialogue: Dialogue) -> str:
    """90/5/5 split decided by the dialogue's content alone."""
    bucket = int(dialogue.key()[:8], 16) % 100
    return "train" if bucket < 90 else "valid" if bucket < 95 else "test"


def check_dialogue(turns, persona, where: str) -> Dialogue:
    """Validate raw fields and build a Dialogue, or raise DataError naming ``where`` and the problem."""
    persona = [] if persona is None else persona
    check_types(turns, persona, where)  # the types, as the JSONL reader checks them
    if len(turns) < 2:
        raise DataError(f"{where}: a dialogue needs at least 2 utterances, got {len(turns)}")
    for i, turn in enumerate(turns):
        if not turn.strip():
            raise DataError(f"{where}: utterance {i + 1} is empty")
    return Dialogue(turns=[t.strip() for t in turns], persona=[p.strip() for p in persona if p.strip()])


class _Collector:
    """Gathers dialogues; on a bad one either re-raises or, with skip_bad, counts it."""

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.dialogues: list[tuple[Dialogue, str | None]] = []  # (dialogue, shipped split or None)
        self.report = LoadReport()

    def bad(self, error: DataError) -> None:
        if not self.skip_bad:
            raise error
        self.report.skipped.append(str(error))

    def add(self, dialogue: Dialogue, split: str | None = None) -> None:
        self.dialogues.append((dialogue, split))


def load_jsonl(path: Path, out: _Collector) -> None:
    for line in iter_jsonl(path, on_error=out.bad):
        try:
            out.add(check_dialogue(line.turns, line.persona, line.where))
        except DataError as exc:
            out.bad(exc)


def load_personachat_json(path: Path, out: _Collector) -> None:
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: bad JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict) or not any(isinstance(v, list) for v in data.values()):
        raise DataError(f'{path}: expected {{"train": [...], "valid": [...]}} in the PersonaChat layout')
    for split_name, items in data.items():
        split = {"validation": "valid", "dev": "valid"}.get(split_name, split_name)
        if not isinstance(items, list):
            logger.warning("%s: ignoring top-level key %r (not a list of dialogues)", path, split_name)
            continue
        for n, item in enumerate(items, 1):
            where = f"{path}: {split_name} dialogue {n}"
            try:
                out.add(_personachat_item(item, where), split)
            except DataError as exc:
                out.bad(exc)


def _personachat_item(item, where: str) -> Dialogue:
    if not isinstance(item, dict) or "utterances" not in item:
        raise DataError(f'{where}: missing field "utterances"')
    utterances = item["utterances"]
    if not isinstance(utterances, list) or not utterances:
        raise DataError(f'{where}: "utterances" must be a non-empty list')
    for k, u in enumerate(utterances, 1):
        if not isinstance(u, dict) or "history" not in u or "candidates" not in u:
            raise DataError(f'{where}: each utterance needs "history" and "candidates" (utterance {k})')
        if not isinstance(u["history"], list):
            raise DataError(f'{where}: "history" of utterance {k} must be a list of strings')
        if not isinstance(u["candidates"], list) or not u["candidates"]:
            raise DataError(f'{where}: "candidates" of utterance {k} must be a non-empty list (gold reply last)')
    last = utterances[-1]
    turns = list(last["history"]) + [last["candidates"][-1]]
    dialogue = check_dialogue(turns, item.get("personality", []), where)
    candidates: list[list[str]] = [[] for _ in dialogue.turns]
    for u in utterances:
        index = len(u["history"])
        if index < len(candidates):
            candidates[index] = [str(c) for c in u["candidates"]]
    dialogue.candidates = candidates
    return dialogue


def load_parlai_txt(path: Path, out: _Collector) -> None:
    """ParlAI ConvAI2: '1 your persona: ...', then 'N partner\\tself[\\t\\tcand|cand|...]'; N restarts at 1."""
    current: dict | None = None
    skipping = False  # after a bad line, drop the rest of that dialogue quietly (counted once)

    def flush():
        if current is None:
            return
        where = f"{path}:{current['line']}"
        try:
            dialogue = check_dialogue(current["turns"], current["persona"], where)
            dialogue.candidates = current["candidates"] if any(current["candidates"]) else None
            out.add(dialogue)
        except DataError as exc:
            out.bad(exc)

    for lineno, raw in enumerate(split_lines(read_text(path)), 1):
        if not raw.strip():
            continue
        number, _, rest = raw.partition(" ")
        if not number.isdigit():
            out.bad(DataError(f"{path}:{lineno}: expected a line number at the start of the line"))
            continue
        if number == "1":
            flush()
            current = {"line": lineno, "turns": [], "persona": [], "candidates": []}
            skipping = False
        if skipping:
            continue
        if current is None:
            out.bad(DataError(f"{path}:{lineno}: dialogue does not start at line number 1"))
            continue
        if rest.startswith(("your persona:", "partner's persona:")):
            if rest.startswith("your persona:"):
                current["persona"].append(rest.split(":", 1)[1].strip())
            continue
        fields = rest.split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            out.bad(DataError(f"{path}:{lineno}: expected 'partner text<TAB>reply text'"))
            current, skipping = None, True  # the rest of this dialogue cannot be trusted
            continue
        reply = fields[1].strip()
        current["turns"] += [fields[0].strip(), reply]
        cands = [c.strip() for c in fields[3].split("|")] if len(fields) >= 4 and fields[3].strip() else []
        # ParlAI only asks that the label be among the candidates; we keep it last (Hits@1 relies on it)
        cands = [c for c in cands if c != reply] + [reply] if reply in cands else []
        current["candidates"] += [[], cands]
    flush()


def load_chitchat(out: _Collector) -> None:
    """The chitchat-dataset package: each inner list of messages is one speaker's turn."""
    try:
        import chitchat_dataset as ccc
    except ImportError as exc:
        raise DataError(
            "the 'chitchat' source needs the chitchat-dataset package: pip install chitchat-dataset"
        ) from exc
    for conv_id, conv in ccc.Dataset().items():
        turns = [" ".join(m["text"].strip() for m in turn if m.get("text")) for turn in conv.get("messages", [])]
        turns = [t for t in turns if t.strip()]
        if len(turns) < 2:
            # 3,151 of the corpus's 7,168 conversations have one speaker only: no reply to learn
            out.report.one_speaker += 1
            continue
        out.add(check_dialogue(turns, [], f"chitchat conversation {conv_id}"))
    logger.info("chitchat: %d one-speaker conversations left out (no reply in them)", out.report.one_speaker)


def load_hf(spec: str, out: _Collector) -> None:
    """``hf:NAME[:CONFIG]``; rows with "turns"/"dialog"/"utterances" (+ optional persona) become dialogues.

    Every split of the dataset is collected, each under our name for it (see HF_SPLIT_NAMES)."""
    name, _, config = spec.partition(":")
    if not name:
        raise DataError("hf: needs a dataset name, e.g. --data hf:daily_dialog")
    try:
        import datasets

        dsets = datasets.load_dataset(name, config or None)
    except Exception as exc:  # datasets raises many types: network, missing, bad config
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"cannot load hub dataset {name!r}: {first}; check the name and your network") from exc
    ours = {}  # theirs -> ours; the first of their names wins, as documented at HF_SPLIT_NAMES
    for our_name, candidates in HF_SPLIT_NAMES.items():
        found = [c for c in candidates if c in dsets]
        if found:
            ours[found[0]] = our_name
    for split_name in dsets:
        for n, row in enumerate(dsets[split_name], 1):
            where = f"hf:{name} {split_name} row {n}"
            try:
                out.add(_hf_row(row, where), ours.get(split_name, split_name))
            except DataError as exc:
                out.bad(exc)


def _hf_row(row: dict, where: str) -> Dialogue:
    persona = row.get("personality") or row.get("persona") or []
    if isinstance(row.get("utterances"), list) and row["utterances"] and isinstance(row["utterances"][0], dict):
        return _personachat_item({"personality": persona, "utterances": row["utterances"]}, where)
    for column in ("turns", "dialog", "dialogue", "utterances"):
        if column in row:
            return check_dialogue(row[column], persona, where)
    raise DataError(f"{where}: no dialogue column (looked for turns, dialog, dialogue, utterances; got {list(row)})")


def collect(source: str, skip_bad: bool = False) -> _Collector:
    """Read a whole source once: every dialogue with its shipped split (or None), and the load report."""
    out = _Collector(skip_bad)
    if source == "chitchat":
        load_chitchat(out)
    elif source.startswith("hf:"):
        load_hf(source[3:], out)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError(f"{source}: no such file, and not a known source (chitchat, hf:NAME, or a path)")
        loaders = {".jsonl": load_jsonl, ".json": load_personachat_json, ".txt": load_parlai_txt}
        loader = loaders.get(path.suffix.lower())
        if loader is None:
            raise DataError(
                f"{path}: unknown file type {path.suffix!r}; use .jsonl, .json (PersonaChat) or .txt (ParlAI)"
            )
        loader(path, out)
    if not out.dialogues and not out.report.skipped and not out.report.one_speaker:
        raise DataError(f"{source}: no dialogues found")
    if out.report.skipped:
        logger.warning(
            "%s: skipped %d bad dialogue(s); first: %s", source, len(out.report.skipped), out.report.skipped[0]
        )
    return out


def select_split(collected: _Collector, source: str, split: str) -> list[Dialogue]:
    """One split of a collected source: its shipped split if it has them, else the 90/5/5 hash split."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    has_shipped = any(s is not None for _, s in collected.dialogues)
    selected = [
        dialogue
        for dialogue, shipped in collected.dialogues
        if split == "all" or (shipped if has_shipped else hash_split(dialogue)) == split
    ]
    if has_shipped and split != "all" and not selected:
        shipped_names = sorted({s for _, s in collected.dialogues if s})
        raise DataError(f"{source}: has no {split} split (it ships: {', '.join(shipped_names)})")
    return selected


def load_dialogues(source: str, split: str = "train", skip_bad: bool = False) -> tuple[list[Dialogue], LoadReport]:
    """Load one split of a source; returns the dialogues and a report of what was skipped."""
    if split not in SPLITS:  # before a slow read
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    collected = collect(source, skip_bad)
    selected = select_split(collected, source, split)
    collected.report.kept = len(selected)
    return selected, collected.report
