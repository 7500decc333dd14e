"""Write an evaluation to a folder: metrics.json, replies.jsonl, report.md, report.html and PNG plots.

The report is built once as a list of blocks (heading, paragraph, warning, table, image) and
rendered twice, to Markdown and to HTML, so both always say the same thing. Order follows the
question "which setting should I use?": warnings, the at-a-glance table, plots, paired
differences, the grid, turns, failures, side-by-side examples, human votes, model scores, method.
"""

# Over 400 lines on purpose: each section of report.md and report.html is a short function, and the
# sections are read in the order the report shows them.

from __future__ import annotations

import html
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from chatbot.rerankers import ranks_by_coherence
from chatbot.sampling import FIELD
from evaluation import plots
from evaluation.failures import LABELS, examples_of
from evaluation.pipeline import EvaluationResult
from evaluation.runner import METRIC_INFO, METRICS, verdict

logger = logging.getLogger(__name__)

GLANCE_METRICS = ("bleu", "f1", "meteor", "coherence", "off_topic", "distinct_2", "self_bleu", "length", "failure_rate")
PLOT_FILES = {
    "metrics": "metrics.png",
    "heatmap": "grid_heatmap.png",
    "turns": "turns.png",
    "failures": "failures.png",
}
MARKS = {"better": "▲", "worse": "▼", "same": ""}


@dataclass
class Block:
    kind: str  # h1, h2, p, warn, table, img
    text: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    classes: list[list[str]] = field(default_factory=list)  # per cell: "better", "worse" or ""


def fmt(value, key: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, METRIC_INFO[key].fmt)


def fmt_diff(diff: dict, key: str) -> str:
    signed = "+" + METRIC_INFO[key].fmt  # always show the sign of a difference
    return f"{format(diff['difference'], signed)} [{format(diff['low'], signed)}, {format(diff['high'], signed)}]"


# -- sections ------------------------------------------------------------------------------------


def warnings_section(result: EvaluationResult) -> list[Block]:
    meta, out = result.meta, []
    wordnet = meta.get("wordnet", {})
    if not wordnet.get("available", False):
        out.append(Block("warn", wordnet.get("message", "WordNet NOT FOUND: METEOR has no synonym matching.")))
    if "test embedder" in str(meta.get("embedder", "")) or meta.get("embedder") in (None, "none"):
        out.append(
            Block("warn", f"Coherence used {meta.get('embedder') or 'no embedder'}, not all-MiniLM-L6-v2: "
                  "coherence and off-topic numbers are not comparable with other reports.")
        )  # fmt: skip
    if judged := [s.name for s in result.settings if ranks_by_coherence(s.settings)]:
        out.append(
            Block("warn", f"{', '.join(judged)}: ranked by MiniLM coherence, the embedder of the coherence and "
                  "off-topic columns, which are then no independent judge of it; F1, BLEU and votes are.")
        )  # fmt: skip
    if meta.get("contexts", 0) < 50:
        out.append(Block("warn", f"Only {meta.get('contexts')} contexts: intervals are wide; use --limit 200 or more."))
    return out


def glance_section(result: EvaluationResult) -> list[Block]:
    rows, classes = [], []
    settings = [*result.settings, *([result.human] if result.human else [])]
    for s in settings:
        row, cls = [s.name + (" (reference)" if s.name == result.reference else ""), s.description], ["", ""]
        for key in GLANCE_METRICS:
            v = verdict(key, s.vs_reference.get(key))
            row.append(f"{fmt(s.values.get(key), key)} {MARKS[v]}".strip())
            cls.append(v if v != "same" else "")
        better = sum(verdict(k, d) == "better" for k, d in s.vs_reference.items())
        worse = sum(verdict(k, d) == "worse" for k, d in s.vs_reference.items())
        row.append("–" if s.kind == "human" or s.name == result.reference else f"{better} / {worse}")
        row.append(f"{s.seconds / max(len(s.replies), 1):.2f}" if s.kind != "human" else "–")
        cls += ["", ""]
        rows.append(row)
        classes.append(cls)
    headers = ["setting", "decoding", *(METRIC_INFO[k].label for k in GLANCE_METRICS), "better / worse", "s / reply"]
    return [
        Block("h2", "At a glance"),
        Block(
            "p",
            f"Each setting replied to the same {result.meta['contexts']} contexts. ▲ / ▼: significantly better / "
            f"worse than the reference **{result.reference}** (paired bootstrap 95% interval excludes 0, in the "
            'metric\'s better direction); "better / worse" counts such metrics; s / reply is wall time on this machine, '
            "filters and retries included. The human row scores the recorded "
            "replies themselves: a target for diversity, length and coherence.",
        ),
        Block("table", headers=headers, rows=rows, classes=classes),
        *highlights(result),
    ]


def highlights(result: EvaluationResult) -> list[Block]:
    """One line per question a chooser asks: most on-topic, most diverse, fewest failures, closest to human."""
    candidates = [s for s in result.settings]
    lines = []
    for key, question in (
        ("coherence", "Most on-topic"),
        ("f1", "Closest words to the recorded reply (F1)"),
        ("distinct_2", "Most diverse"),
        ("failure_rate", "Fewest failures"),
    ):
        scored = [s for s in candidates if key in s.values]
        if not scored:
            continue
        sign = 1 if METRIC_INFO[key].higher_is_better else -1
        best = max(scored, key=lambda s: sign * s.values[key])
        lines.append(f"{question}: **{best.name}** ({fmt(best.values[key], key)})")
    if result.human and "length" in result.human.values:
        target = result.human.values["length"]
        best = min(candidates, key=lambda s: abs(s.values.get("length", math.inf) - target))
        lines.append(f"Length closest to people ({target:.1f} words): **{best.name}** ({best.values['length']:.1f})")
    return [Block("p", "; ".join(lines) + ".")] if lines else []


def differences_section(result: EvaluationResult) -> list[Block]:
    keys = [m.key for m in METRICS]
    rows, classes = [], []
    for s in result.settings:
        if s.name == result.reference:
            continue
        row, cls = [s.name], [""]
        for key in keys:
            d = s.vs_reference.get(key)
            row.append(fmt_diff(d, key) if d else "–")
            cls.append(verdict(key, d) if d and verdict(key, d) != "same" else "")
        rows.append(row)
        classes.append(cls)
    return [
        Block("h2", f"A/B: difference to {result.reference} (paired bootstrap, 95% interval)"),
        Block(
            "p",
            f"setting minus {result.reference} on the same contexts, {result.meta['bootstrap_rounds']} resamples; "
            "green/red where the interval excludes 0 and the change is better/worse.",
        ),
        Block("table", headers=["setting", *(METRIC_INFO[k].label for k in keys)], rows=rows, classes=classes),
    ]


def grid_title(axes: dict[str, list[float]]) -> str:
    """The grid's heading from its fields' labels, in --grid order: 'Temperature × top-p grid'."""
    labels = []
    for i, name in enumerate(axes):
        spec = FIELD.get(name)
        label = spec.label.split(" (")[0] if spec else name  # 'Top-p (nucleus)' -> 'Top-p'
        # lower-case inside the heading, but keep acronyms ('DRY multiplier', 'XTC threshold')
        if i and label[1:2].islower():
            label = label[0].lower() + label[1:]
        labels.append(label)
    return " × ".join(labels) + " grid"


def grid_section(result: EvaluationResult, files: dict[str, str]) -> list[Block]:
    if not result.grid_axes:
        return []
    axes = "; ".join(f"{k} = {', '.join(f'{v:g}' for v in vs)}" for k, vs in result.grid_axes.items())
    return [
        Block("h2", grid_title(result.grid_axes)),
        Block("p", f"Grid around the reference's sampling settings: {axes}. Each cell is one setting."),
        Block("img", files["heatmap"], headers=["Heatmaps over the sampling grid"]),
    ]


def turns_section(result: EvaluationResult, files: dict[str, str]) -> list[Block]:
    runs = [s for s in result.settings if s.multiturn is not None]
    if not runs:
        return [Block("h2", "Across turns"), Block("p", "Multi-turn runs were skipped (--multiturn-dialogues 0).")]
    turns = max(len(s.multiturn.replies_per_turn) for s in runs)
    rows = []
    for s in runs:
        per = s.multiturn.per_turn
        for key, label in (("coherence", "coherence"), ("self_repeat", "self-repeat"), ("off_topic", "off-topic")):
            values = per.get(key, [])
            rows.append([s.name, label, *(fmt(values[t] if t < len(values) else None, key) for t in range(turns))])
    counts = runs[0].multiturn.replies_per_turn
    return [
        Block("h2", "Across turns"),
        Block(
            "p",
            f"The bot talked with the recorded partner of {counts[0] if counts else 0} test dialogues for "
            f"{turns} turns; its own replies became its history. Replies per turn: {counts}.",
        ),
        Block("img", files["turns"], headers=["Coherence and repetition per turn"]),
        Block("table", headers=["setting", "metric", *(f"turn {t + 1}" for t in range(turns))], rows=rows),
    ]


def failures_section(result: EvaluationResult, files: dict[str, str], per_label: int = 4) -> list[Block]:
    settings = [*result.settings, *([result.human] if result.human else [])]
    rows = [
        [s.name, *(str(s.failures.get(label, 0)) for label in LABELS), str(s.failures.get("any", 0))] for s in settings
    ]
    blocks = [
        Block("h2", "Failure modes"),
        Block("img", files["failures"], headers=["Failure labels per setting"]),
        Block("table", headers=["setting", *LABELS, "any"], rows=rows),
    ]
    example_rows = []
    presets = [s for s in result.settings if s.kind == "preset"]
    for label in LABELS:
        # first the first example of every preset, then the second..., at most `per_label` rows a label
        picks = [
            (s, i) for rank in range(per_label) for s in presets for i in examples_of(s.labels, label, rank + 1)[rank:]
        ]
        for s, i in picks[:per_label]:
            example_rows.append([label, s.name, result.examples[i].context[-1], s.replies[i] or "(empty)"])
    if example_rows:
        blocks += [Block("p", "Examples (the user's last message, then the reply):")]
        blocks += [Block("table", headers=["label", "setting", "user said", "reply"], rows=example_rows)]
    frequent_rows = []
    for s in presets:
        counts = Counter(r.strip().lower() for r in s.replies)
        top = [f"{text or '(empty)'} ×{n}" for text, n in counts.most_common(3) if n > 1]
        frequent_rows.append([s.name, "; ".join(top) or "no reply given twice"])
    blocks += [
        Block("p", "Most frequent replies (canned answers are what the generic label catches):"),
        Block("table", headers=["setting", "top replies × count"], rows=frequent_rows),
    ]
    return blocks


def examples_section(result: EvaluationResult, count: int) -> list[Block]:
    shown = [s for s in result.settings if s.kind == "preset"]
    blocks = [
        Block("h2", "Side by side"),
        Block("p", "The same contexts, every preset's reply (failure labels in brackets)."),
    ]
    for i, example in enumerate(result.examples[:count]):
        context = " / ".join(example.context[-3:])
        rows = [["recorded reply", example.reference]]
        for s in shown:
            labels = f" [{', '.join(s.labels[i])}]" if s.labels[i] else ""
            rows.append([s.name, (s.replies[i] or "(empty)") + labels])
        blocks += [Block("p", f"**Context {i + 1}:** {context}"), Block("table", headers=["", "reply"], rows=rows)]
    return blocks


def votes_section(result: EvaluationResult) -> list[Block]:
    if result.votes is None:
        return []
    from chatbot.arena.leaderboard import TABLE_HEADERS, Standing, table_rows

    standings = [Standing(**row) for row in result.votes["standings"]]
    blocks = [Block("h2", "Human votes (A/B tab of the web app)")]
    if not standings:
        return blocks + [Block("p", f"{result.votes['path']} holds no votes between two different settings yet.")]
    return blocks + [
        Block(
            "p",
            f"{result.votes['total']} votes from {result.votes['path']}. Win rate counts ties and both-bad as half; "
            "rating: Bradley-Terry on the Elo scale, 95% bootstrap interval over votes.",
        ),
        Block("table", headers=list(TABLE_HEADERS), rows=[[str(c) for c in row] for row in table_rows(standings)]),
    ]


def model_section(result: EvaluationResult) -> list[Block]:
    scores = result.model_scores
    lines = []
    if scores.get("perplexity"):
        p = scores["perplexity"]
        lines.append(
            f"Perplexity of the recorded replies given their context: **{p['perplexity_per_token']:.1f} per token**, "
            f"**{p['perplexity_per_word']:.1f} per word** ({p['replies']} replies, {p['tokens']} tokens, {p['words']} words)."
        )
    if scores.get("hits"):
        h = scores["hits"]
        lines.append(
            f"Hits@1 of {h['n_candidates']}: **{h['hits_at_1']:.1%}** on {h['examples']} contexts (chance 5%)."
        )
    elif "hits" in scores:
        lines.append("Hits@1: the data has no 20-candidate lists (PersonaChat/ParlAI data has them).")
    return [Block("h2", "The model"), *(Block("p", line) for line in lines)] if lines else []


def method_section(result: EvaluationResult) -> list[Block]:
    meta = result.meta
    rows = [[m.label, m.help, {True: "higher", False: "lower", None: "–"}[m.higher_is_better]] for m in METRICS]
    fc = meta.get("failure_config", {})
    return [
        Block("h2", "Method"),
        Block("table", headers=["metric", "definition", "better"], rows=rows),
        Block(
            "p",
            f"Model: {meta.get('model')}. Data: {meta.get('data')} ({meta.get('split')}), {meta.get('contexts')} contexts "
            f"from {meta.get('dialogues')} dialogues. Coherence embedder: {meta.get('embedder')}; compared with the last "
            f"{meta.get('coherence_context_utterances')} context utterances; off-topic below cosine "
            f"{meta.get('off_topic_threshold')}. WordNet: {meta.get('wordnet', {}).get('message')}. Failure thresholds: "
            f"too short < {fc.get('min_words')} words, too long > {fc.get('max_words')} words, repetition "
            f"= the reply path's in-reply checks; generic = a dull phrase or a reply given to ≥ {fc.get('generic_share', 0):.0%} "
            f"of contexts. Sampled settings use seed {meta.get('seed')}. {meta.get('date')}."
            + (
                f" Replies replayed from {meta['replayed_from']} (rescored, not regenerated)."
                if meta.get("replayed_from")
                else ""
            ),
        ),
    ]


def build_blocks(result: EvaluationResult, files: dict[str, str], examples: int) -> list[Block]:
    title = f"Evaluation: {Path(str(result.meta.get('model'))).name} on {result.meta.get('data')} ({result.meta.get('split')})"
    return [
        Block("h1", title),
        *warnings_section(result),
        *glance_section(result),
        Block("img", files["metrics"], headers=["Metrics per setting"]),
        *differences_section(result),
        *grid_section(result, files),
        *turns_section(result, files),
        *failures_section(result, files),
        *examples_section(result, examples),
        *votes_section(result),
        *model_section(result),
        *method_section(result),
    ]


# -- rendering -----------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if b.kind == "h1":
            out.append(f"# {b.text}")
        elif b.kind == "h2":
            out.append(f"## {b.text}")
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "warn":
            out.append(f"> **⚠ WARNING:** {b.text}")
        elif b.kind == "img":
            out.append(f"![{b.headers[0] if b.headers else ''}]({b.text})")
        elif b.kind == "table":
            lines = ["| " + " | ".join(map(_md_cell, b.headers)) + " |", "|" + "---|" * len(b.headers)]
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in b.rows]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .85em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } tr:nth-child(even) td { background: #fafafa; }
td.better { background: #d9f2d9 !important; } td.worse { background: #f8d7d7 !important; }
.warn { background: #fff3cd; border: 2px solid #e0a800; padding: .8em 1em; font-weight: 600; margin: .8em 0; }
img { max-width: 100%; border: 1px solid #eee; margin: .5em 0; }
"""


def _inline(text: str) -> str:
    """HTML-escape, then turn **bold** into <b>."""
    parts = html.escape(text).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: list[Block]) -> str:
    title = next((b.text for b in blocks if b.kind == "h1"), "Evaluation")
    body = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            body.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "warn":
            body.append(f'<div class="warn">⚠ WARNING: {_inline(b.text)}</div>')
        elif b.kind == "img":
            alt = html.escape(b.headers[0] if b.headers else "")
            body.append(f'<img src="{html.escape(b.text)}" alt="{alt}">')
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.headers)
            rows = []
            for r, row in enumerate(b.rows):
                cls = b.classes[r] if r < len(b.classes) else []
                cells = []
                for c, value in enumerate(row):
                    attr = f' class="{cls[c]}"' if c < len(cls) and cls[c] else ""
                    cells.append(f"<td{attr}>{_inline(str(value))}</td>")
                rows.append("<tr>" + "".join(cells) + "</tr>")
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


# -- files ---------------------------------------------------------------------------------------


def write_replies(result: EvaluationResult, path: Path) -> Path:
    """One JSON line per context: the context, the recorded reply, and every setting's reply and labels."""
    with path.open("w", encoding="utf-8") as f:
        for i, e in enumerate(result.examples):
            replies = {
                s.name: {
                    "reply": s.replies[i],
                    "labels": s.labels[i],
                    "coherence": s.coherence[i],
                    **(s.facts[i] if s.facts else {}),
                }
                for s in result.settings
            }
            record = {"index": i, "dialogue": e.dialogue, "turn": e.turn, "persona": e.persona, "context": e.context}
            f.write(json.dumps({**record, "reference": e.reference, "replies": replies}, ensure_ascii=False) + "\n")
    return path


def write_conversations(result: EvaluationResult, path: Path) -> Path:
    """The multi-turn transcripts, one JSON line per (setting, conversation)."""
    with path.open("w", encoding="utf-8") as f:
        for s in result.settings:
            for turns in s.multiturn.conversations if s.multiturn else []:
                f.write(json.dumps({"setting": s.name, "turns": turns}, ensure_ascii=False) + "\n")
    return path


def _json_default(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value):
    """NaN -> None recursively (json.dumps writes NaN, which is not JSON)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_plots(result: EvaluationResult, folder: Path) -> dict[str, str]:
    everything = [*result.settings, *([result.human] if result.human else [])]
    plots.metric_bars(everything, result.reference, folder / PLOT_FILES["metrics"])
    plots.failure_matrix(everything, folder / PLOT_FILES["failures"])
    if any(s.multiturn is not None for s in result.settings):
        plots.turn_decay(result.settings, folder / PLOT_FILES["turns"])
    if result.grid_axes:
        plots.grid_heatmaps(result.settings, result.grid_axes, folder / PLOT_FILES["heatmap"])
    return dict(PLOT_FILES)


def write_report(result: EvaluationResult, folder: str | Path, examples: int = 8) -> dict[str, Path]:
    """Write every report file into ``folder``; returns name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    metrics_path = folder / "metrics.json"
    metrics_path.write_text(
        json.dumps(_clean(result.to_json()), indent=2, default=_json_default) + "\n", encoding="utf-8"
    )
    paths = {"metrics.json": metrics_path, "replies.jsonl": write_replies(result, folder / "replies.jsonl")}
    if any(s.multiturn is not None for s in result.settings):
        paths["conversations.jsonl"] = write_conversations(result, folder / "conversations.jsonl")
    files = write_plots(result, folder)
    blocks = build_blocks(result, files, examples)
    (folder / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    (folder / "report.html").write_text(to_html(blocks), encoding="utf-8")
    paths |= {"report.md": folder / "report.md", "report.html": folder / "report.html"}
    paths |= {name: folder / name for name in files.values() if (folder / name).is_file()}
    logger.info("report written to %s", folder)
    return paths
