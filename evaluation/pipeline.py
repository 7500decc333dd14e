"""``chatbot evaluate`` as one function: settings -> replies -> scores -> comparisons -> a result to report.

:class:`EvalConfig` is the command's configuration (its fields are the CLI flags);
:func:`evaluate` runs everything on already-loaded pieces (dialogues, a reply source, an embedder,
WordNet), so tests can pass a fake reply source and a tiny embedder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chatbot.embeddings import Embedder
from chatbot.errors import ChatbotError, SettingsError
from chatbot.sampling import FIELD, FIELDS, PRESETS, SamplingSettings, get_preset, load_presets
from evaluation.coherence import CoherenceConfig
from evaluation.failures import LABELS, FailureConfig, count_labels
from evaluation.multiturn import MultiTurnConfig, MultiTurnResult, run_multiturn
from evaluation.runner import Example, Generated, ReplySource, compare, score_setting, select_examples

logger = logging.getLogger(__name__)

DEFAULT_PRESETS = "greedy,beam-5,top-p,diverse"
EMBEDDERS = ("minilm", "hashing", "none")


@dataclass
class EvalConfig:
    """What to evaluate and where the report goes (``chatbot evaluate --help`` lists these)."""

    data: str = field(metadata={"help": "dialogue source: chitchat, a .json/.txt/.jsonl path, or hf:NAME"})
    output: str = field(metadata={"help": "report folder (metrics.json, replies.jsonl, report.md/.html, plots)"})
    model: str | None = field(
        default=None, metadata={"help": "checkpoint folder or hub id; none = the embedded default model"}
    )
    split: str = field(default="test", metadata={"help": "data split: train, valid, test or all"})
    presets: str = field(default=DEFAULT_PRESETS, metadata={"help": "comma-separated presets to compare"})
    presets_file: str | None = field(
        default=None,
        metadata={"help": "extra presets: a JSON file, a text-generation-webui preset .yaml, or a folder of them"},
    )
    grid: str | None = field(
        default=None,
        metadata={
            "help": 'sampling grid around the reference over one or two numeric fields, e.g. "temperature=0.5,0.7,1.0;'
            'top_p=0.8,0.9,0.95" or "min_p=0.02,0.05,0.1;temperature=0.7,1.0,1.5"'
        },
    )
    reference: str = field(default="top-p", metadata={"help": "preset every setting is compared with"})
    limit: int = field(default=200, metadata={"help": "contexts evaluated, spread over dialogues (0 = all)"})
    replay: str | None = field(
        default=None, metadata={"help": "rescore the replies of an earlier report folder instead of generating"}
    )
    votes: str | None = field(
        default=None, metadata={"help": "the web app's votes.sqlite3 (or its --data-dir) to summarise"}
    )
    keywords_from_reference: bool = field(
        default=False,
        metadata={
            "help": "steer each reply to contain its context's keyword: the longest non-stopword of the recorded "
            "reply (keyword-conditional generation at the settings' keyword_strength)"
        },
    )
    batch_size: int = field(default=16, metadata={"help": "contexts decoded per batched generate call"})
    threads: int | None = field(
        default=None,
        metadata={"help": "torch CPU threads (default: torch's choice; use 1 on a CPU shared with other jobs)"},
    )
    bootstrap_rounds: int = field(default=1000, metadata={"help": "bootstrap resamples for the 95 percent intervals"})
    seed: int = field(default=0, metadata={"help": "seed of context selection, sampling and bootstrap"})
    embedder: str = field(default="minilm", metadata={"help": "coherence embedder: minilm, hashing (tests), none"})
    hits_limit: int = field(default=200, metadata={"help": "contexts scored for Hits@1 when data has candidates"})
    examples: int = field(default=8, metadata={"help": "contexts shown with every setting's reply in the report"})
    perplexity: bool = field(default=True, metadata={"help": "score perplexity of the references"})
    wordnet_download: bool = field(
        default=True, metadata={"help": "try nltk.download('wordnet') when offline copies fail"}
    )
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self):
        if self.limit < 0:
            raise SettingsError(f"--limit must be >= 0 (got {self.limit}); 0 means every context")
        if self.threads is not None and self.threads < 1:
            raise SettingsError(f"--threads must be >= 1 (got {self.threads})")
        if self.batch_size < 1:
            raise SettingsError(f"--batch-size must be >= 1 (got {self.batch_size})")
        if self.bootstrap_rounds < 10:
            raise SettingsError(f"--bootstrap-rounds must be >= 10 (got {self.bootstrap_rounds}); 1000 is usual")
        if self.embedder not in EMBEDDERS:
            raise SettingsError(f"--embedder {self.embedder!r}: choose one of {', '.join(EMBEDDERS)}")
        if not self.preset_names():
            raise SettingsError("--presets is empty; name at least one preset, e.g. greedy,top-p")

    def preset_names(self) -> list[str]:
        names = [n.strip() for n in self.presets.split(",") if n.strip()]
        return list(dict.fromkeys(names))  # keep order, drop duplicates


@dataclass
class SettingSpec:
    """A setting to evaluate: its display name, value, and grid coordinates if it comes from the grid."""

    name: str
    settings: SamplingSettings
    kind: str  # "preset" or "grid"
    point: dict[str, float] | None = None


def parse_grid(text: str) -> dict[str, list[float]]:
    """``"min_p=0.02,0.05;temperature=0.7,1.0"`` -> ``{"min_p": [0.02, 0.05], "temperature": [0.7, 1.0]}``.

    Any one or two numeric sampling fields; values are cast by the field's type (top_k takes whole numbers).
    """
    axes: dict[str, list[float]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, values = part.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in FIELD or not FIELD[name].numeric:
            numeric = ", ".join(s.name for s in FIELDS if s.numeric)
            raise SettingsError(
                f"--grid part {part!r}: expected FIELD=V1,V2,... with FIELD a numeric sampling setting ({numeric})"
            )
        try:
            axes[name] = [FIELD[name].cast(v) for v in values.split(",") if v.strip()]
        except SettingsError as exc:
            raise SettingsError(f"--grid {name}: values must be numbers ({exc})") from exc
        if not axes[name]:
            raise SettingsError(f"--grid {name}: no values")
    if not 1 <= len(axes) <= 2:
        raise SettingsError(f"--grid takes one or two axes (got {len(axes)}); the heatmap is 2-D")
    return axes


def grid_specs(axes: dict[str, list[float]], base: SamplingSettings) -> list[SettingSpec]:
    """Every combination of the grid axes applied to ``base`` (a sampling preset), labelled like describe()."""
    combos: list[dict[str, float]] = [{}]
    for name, values in axes.items():
        combos = [{**c, name: v} for c in combos for v in values]
    return [SettingSpec(grid_label(point), base.adjust(**point), "grid", point) for point in combos]


def grid_label(point: dict[str, float]) -> str:
    """``{"temperature": 0.7, "top_p": 0.9}`` -> ``"T=0.7 top_p=0.9"`` (each field's short label)."""
    return " ".join(FIELD[name].format(value) for name, value in point.items())


def setting_specs(config: EvalConfig) -> tuple[list[SettingSpec], str, dict[str, list[float]] | None]:
    """Presets (the reference added if missing) then grid points; returns (specs, reference name, axes)."""
    presets = load_presets(config.presets_file)
    names = config.preset_names()
    if config.reference not in names:
        names.append(config.reference)  # every difference is measured against it, so it must run
    specs = [SettingSpec(n, get_preset(n, presets), "preset") for n in names]
    axes = parse_grid(config.grid) if config.grid else None
    if axes:
        base = get_preset(config.reference, presets)
        if base.strategy != "sample":
            base = PRESETS["top-p"]
            logger.warning("reference %r does not sample; the grid varies the top-p preset", config.reference)
        specs += grid_specs(axes, base)
    return specs, config.reference, axes


@dataclass
class SettingResult:
    """One setting's numbers, labels and replies, as the report shows them."""

    name: str
    kind: str  # preset, grid or human
    settings: dict[str, Any] | None
    identity: str | None
    description: str
    point: dict[str, float] | None
    values: dict[str, float]
    intervals: dict[str, list[float]]
    vs_reference: dict[str, dict]
    failures: dict[str, int]
    labels: list[list[str]]
    replies: list[str]
    coherence: list[float]
    seconds: float = 0.0
    multiturn: MultiTurnResult | None = None
    facts: list[dict] = field(default_factory=list)  # per reply: fallback, profanity_rejected, rejected

    def to_json(self) -> dict:
        data = {
            k: v for k, v in asdict(self).items() if k not in ("labels", "replies", "coherence", "multiturn", "facts")
        }
        if self.multiturn is not None:
            data["multiturn"] = {
                "per_turn": self.multiturn.per_turn,
                "replies_per_turn": self.multiturn.replies_per_turn,
            }
        return data


@dataclass
class EvaluationResult:
    meta: dict[str, Any]
    examples: list[Example]
    settings: list[SettingResult]
    human: SettingResult | None
    reference: str
    grid_axes: dict[str, list[float]] | None = None
    model_scores: dict[str, Any] = field(default_factory=dict)  # perplexity, hits@1
    votes: dict[str, Any] | None = None

    def setting(self, name: str) -> SettingResult:
        return next(s for s in self.settings if s.name == name)

    def to_json(self) -> dict:
        return {
            "meta": self.meta,
            "reference": self.reference,
            "grid_axes": self.grid_axes,
            "model": self.model_scores,
            "settings": {s.name: s.to_json() for s in self.settings},
            "human_references": self.human.to_json() if self.human else None,
            "votes": self.votes,
            "failure_labels": list(LABELS),
        }


def generation_settings(settings: SamplingSettings, seed: int) -> SamplingSettings:
    """A sampling setting without a seed gets the run's seed, so a rerun reproduces the replies."""
    if settings.strategy == "sample" and settings.seed is None:
        return settings.replace(seed=seed)
    return settings


def evaluate(
    config: EvalConfig,
    dialogues: Sequence,
    source: ReplySource,
    embedder: Embedder | None,
    wordnet=None,
    coherence_config: CoherenceConfig | None = None,
    failure_config: FailureConfig | None = None,
    multiturn_config: MultiTurnConfig | None = None,
    meta: dict[str, Any] | None = None,
) -> EvaluationResult:
    """Decode the same contexts under every setting, score them, compare each with the reference."""
    coherence_config = coherence_config or CoherenceConfig()
    failure_config = failure_config or FailureConfig()
    multiturn_config = multiturn_config or MultiTurnConfig()
    specs, reference, axes = setting_specs(config)
    examples = select_examples(dialogues, config.limit or None, seed=config.seed)
    if not examples:
        raise ChatbotError(f"{config.data} ({config.split}): no dialogue has a bot turn to evaluate")
    logger.info("evaluating %d settings on %d contexts", len(specs), len(examples))

    def score(replies: list[Generated], with_reference: bool = True):
        return score_setting(examples, replies, embedder, wordnet, coherence_config, failure_config, with_reference)

    scored: dict[str, tuple] = {}
    by_identity: dict[str, str] = {}
    for spec in specs:
        same = by_identity.get(spec.settings.identity)
        if same is not None:
            # a grid point equal to a preset decodes identically (same seed): reuse, and say so
            spec.name = f"{spec.name} (= {same})"
            scored[spec.name] = (spec, *scored[same][1:])
            continue
        by_identity[spec.settings.identity] = spec.name
        started = time.perf_counter()
        replies = source(examples, generation_settings(spec.settings, config.seed))
        scored[spec.name] = (spec, replies, score(replies), time.perf_counter() - started)
    ref_scores = scored[reference][2]

    results = []
    for spec, replies, scores, seconds in scored.values():
        other = None if spec.name == reference else ref_scores
        values, intervals, diffs = compare(scores, other, config.bootstrap_rounds, config.seed)
        results.append(
            SettingResult(
                name=spec.name,
                kind=spec.kind,
                settings=spec.settings.to_dict(),
                identity=spec.settings.identity,
                description=spec.settings.describe(),
                point=spec.point,
                values=values,
                intervals=intervals,
                vs_reference=diffs,
                failures=count_labels(scores.labels),
                labels=scores.labels,
                replies=[g.text for g in replies],
                facts=[
                    {"fallback": g.fallback, "profanity_rejected": g.profanity_rejected, "rejected": g.rejected}
                    for g in replies
                ],
                coherence=[float(c) for c in scores.coherence],
                seconds=seconds,
            )
        )
    human = human_result(examples, score([Generated(e.reference) for e in examples], False), config)

    if multiturn_config.multiturn_dialogues > 0:
        for result, spec in zip(results, specs, strict=True):
            if spec.kind == "preset":
                result.multiturn = run_multiturn(
                    dialogues, source, generation_settings(spec.settings, config.seed), embedder, coherence_config,
                    multiturn_config,
                )  # fmt: skip
    meta = {
        "data": config.data,
        "split": config.split,
        "contexts": len(examples),
        "dialogues": len({e.dialogue for e in examples}),
        "bootstrap_rounds": config.bootstrap_rounds,
        "seed": config.seed,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "off_topic_threshold": coherence_config.off_topic_threshold,
        "coherence_context_utterances": coherence_config.context_utterances,
        "failure_config": asdict(failure_config),
        "multiturn": asdict(multiturn_config),
        **(meta or {}),
    }
    return EvaluationResult(meta, examples, results, human, reference, axes)


def human_result(examples: Sequence[Example], scores, config: EvalConfig) -> SettingResult:
    """The recorded replies scored like a setting: what a person's diversity and coherence look like."""
    values, intervals, _ = compare(scores, None, config.bootstrap_rounds, config.seed)
    return SettingResult(
        name="human (recorded)",
        kind="human",
        settings=None,
        identity=None,
        description="the recorded replies of the data",
        point=None,
        values=values,
        intervals=intervals,
        vs_reference={},
        failures=count_labels(scores.labels),
        labels=scores.labels,
        replies=[e.reference for e in examples],
        coherence=[float(c) for c in scores.coherence],
    )


def summarise_votes(path: str | Path) -> dict[str, Any]:
    """Win rates and Bradley-Terry ratings (with bootstrap intervals) of the web app's A/B votes."""
    from chatbot.arena.leaderboard import leaderboard, preset_names, presets_json
    from chatbot.arena.ratings import comparisons_from_votes
    from chatbot.arena.votes import VOTES_FILE, VoteStore

    path = Path(path).expanduser()
    if path.is_dir():
        path = path / VOTES_FILE
    if not path.is_file():
        raise ChatbotError(f"--votes {path}: no such vote file; pass the app's votes file or its --data-dir")
    votes = VoteStore(path).votes()
    standings = leaderboard(
        comparisons_from_votes(votes), names=preset_names(PRESETS), presets_json=presets_json(PRESETS)
    )
    return {"path": str(path), "total": len(votes), "standings": [asdict(s) for s in standings]}
