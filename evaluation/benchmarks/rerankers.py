"""Rerankers compared on the same candidates: F1, Dist-2, coherence, off-topic rate and latency (run by hand).

    python -m evaluation.benchmarks.rerankers --threads 1                 # 300 chitchat test contexts, 8 candidates
    python -m evaluation.benchmarks.rerankers --limit 100 --threads 1     # a shared CPU

Candidates are generated ONCE per context (the default preset with ``--candidates`` candidates, seeded
as ``chatbot evaluate`` seeds, contexts chosen as it chooses them) and filtered with the default
filters; each reranker then picks among the same passing candidates, so the rows differ by ranking
alone. A context whose candidates all fail shows the fallback reply under every reranker (no retry).

Latency per reply = (generation + filtering + that reranker's own scoring) / contexts. The scoring is
timed separately per reranker (mmi: the batched no-context forward pass; coherence: MiniLM, loaded
before timing). Coherence and off-topic are measured with the same MiniLM the coherence reranker
ranks by, so they are no independent judge of it; F1 is.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chatbot.rerankers import RERANKERS, RerankConfig, best_first, combine

# extra rows: ranking rules that differ from the defaults only in a parameter (no extra scoring cost)
VARIANTS: dict[str, RerankConfig] = {
    "mmi lambda=0.25": RerankConfig("mmi", mmi_lambda=0.25),
    "mmi lambda=1.0": RerankConfig("mmi", mmi_lambda=1.0),
    "mix lp=1 coh=2": RerankConfig("mix", mix_logprob=1.0, mix_mmi=0.0, mix_coherence=2.0),
    "mix mmi=1 coh=1": RerankConfig("mix", mix_logprob=0.0, mix_mmi=1.0, mix_coherence=1.0),
    "mix mmi=1 coh=4": RerankConfig("mix", mix_logprob=0.0, mix_mmi=1.0, mix_coherence=4.0),
}


class CachedEmbedder:
    """Embeds each distinct text once: the rows below re-embed the same contexts and replies many times."""

    def __init__(self, embedder):
        self.embedder, self.name, self.vectors = embedder, getattr(embedder, "name", ""), {}

    def encode(self, texts):
        new = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if new:
            self.vectors.update(zip(new, np.asarray(self.embedder.encode(new)), strict=True))
        return np.stack([self.vectors[t] for t in texts])


@dataclass
class Pool:
    """Every context's filtered candidates, generated once."""

    contexts: list[list[str]]
    references: list[str]
    candidates: list[list]  # [context][candidate] chatbot.generation.Candidate, .rejected set by the filters
    fallbacks: list[str]  # the reply shown when every candidate failed
    seconds: float  # generation and filtering, all contexts


def generate_pool(bot, examples, settings, batch_size: int) -> Pool:
    from chatbot.filters import ReplyFilter
    from chatbot.generation import generate_candidates
    from chatbot.replies import choose_fallback, filter_context, mark_rejected

    reply_filter = ReplyFilter(bot.filters)
    start = time.perf_counter()
    candidates: list[list] = []
    for first in range(0, len(examples), batch_size):
        chunk = examples[first : first + batch_size]
        prompts = [bot.build_prompt(e.context, e.persona, settings).input_ids for e in chunk]
        result = generate_candidates(
            bot.model, bot.tokenizer, prompts, settings, stop_ids=bot.stop_ids, pad_id=bot.pad_id
        )
        for example, group in zip(chunk, result.candidates, strict=True):
            context = filter_context(example.context)
            for c in group:
                mark_rejected(c, reply_filter.check(c.text, context, c.raw_text), reply_filter)
            candidates.append(group)
        print(f"  generated {len(candidates)}/{len(examples)} contexts", flush=True)
    seconds = time.perf_counter() - start
    fallbacks = [choose_fallback(bot.filters.fallback_replies, filter_context(e.context).recent_bot) for e in examples]
    return Pool([e.context for e in examples], [e.reference for e in examples], candidates, fallbacks, seconds)


def choose(pool: Pool, scores: Sequence[Sequence[dict]]) -> list[str]:
    """The reply each context shows under one ranking: the best passing candidate, else the fallback."""
    replies = []
    for group, group_scores, fallback in zip(pool.candidates, scores, pool.fallbacks, strict=True):
        passing = [i for i, c in enumerate(group) if not c.rejected]
        replies.append(group[best_first(group_scores, passing)[0]].text if passing else fallback)
    return replies


def metrics(pool: Pool, replies: list[str], embedder) -> dict[str, float]:
    from evaluation.coherence import CoherenceConfig, coherence_scores, off_topic
    from evaluation.metrics import distinct_n, unigram_f1

    config = CoherenceConfig()
    cosines = coherence_scores(embedder, pool.contexts, replies, config)
    return {
        "f1": float(np.mean([unigram_f1(r, ref) for r, ref in zip(replies, pool.references, strict=True)])),
        "distinct_2": distinct_n(replies, 2),
        "coherence": float(np.mean(cosines)),
        "off_topic": float(np.mean(off_topic(cosines, config))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=300, help="chitchat test contexts")
    parser.add_argument("--candidates", type=int, default=8, help="candidates per context")
    parser.add_argument("--seed", type=int, default=0, help="seed of context selection and sampling")
    parser.add_argument("--batch-size", type=int, default=8, help="contexts per generate call")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--examples", type=int, default=3, help="contexts printed with every reranker's reply")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from chatbot.conversation import Chatbot
    from chatbot.embeddings import shared_minilm
    from chatbot.sampling import DEFAULT_PRESET, PRESETS
    from evaluation.pipeline import generation_settings
    from evaluation.runner import select_examples
    from training.data import load_dialogues

    dialogues, _ = load_dialogues("chitchat", "test", skip_bad=True)
    examples = select_examples(dialogues, args.limit, seed=args.seed)
    bot = Chatbot.load()
    settings = generation_settings(PRESETS[DEFAULT_PRESET].replace(num_candidates=args.candidates), args.seed)
    print(f"{bot.name}: {len(examples)} chitchat test contexts, {settings.describe()}")
    pool = generate_pool(bot, examples, settings, args.batch_size)
    n_candidates = sum(map(len, pool.candidates))
    passing = sum(not c.rejected for group in pool.candidates for c in group)
    print(
        f"generation + filters: {pool.seconds:.1f} s ({pool.seconds / len(examples) * 1000:.0f} ms per context); "
        f"{passing} of {n_candidates} candidates passed; {sum(not any(not c.rejected for c in g) for g in pool.candidates)} "
        "contexts fell back"
    )

    scorer = bot.scorer  # the reply path's own scorer: its MMI prompt, and MiniLM shared with the metrics
    embedder = scorer.embedder() or shared_minilm()  # loaded before any timing: a chat loads it once per process
    judge = CachedEmbedder(embedder)  # for the metrics only: the rerankers' timings embed for real
    last_user = [c[-1] for c in pool.contexts]
    rows: dict[str, tuple[dict, float, list]] = {}
    components = None
    for name in RERANKERS:
        config = RerankConfig(name)
        start = time.perf_counter()
        scores = scorer.score(pool.candidates, last_user, config)
        scoring = time.perf_counter() - start
        if name == "mix":
            components = scores  # mix computes every component with the default weights
        replies = choose(pool, scores)
        rows[name] = (metrics(pool, replies, judge), (pool.seconds + scoring) / len(examples) * 1000, replies)
    for label, config in VARIANTS.items():  # rescored from the components: same candidates, no extra cost
        scores = [
            [combine({k: s[k] for k in ("logprob", "no_context", "coherence")}, config) for s in g] for g in components
        ]
        replies = choose(pool, scores)
        rows[label] = (metrics(pool, replies, judge), float("nan"), replies)

    print(f"\n{'reranker':<18} {'F1':>6} {'Dist-2':>7} {'coherence':>9} {'off-topic':>9} {'ms/reply':>9}")
    for name, (m, ms, _) in rows.items():
        print(f"{name:<18} {m['f1']:6.3f} {m['distinct_2']:7.3f} {m['coherence']:9.3f} {m['off_topic']:9.1%} {ms:9.0f}")
    base = rows["logprob"][0]
    print("\nwinner rule: best F1 among rerankers that lose at most 10% of logprob's Dist-2")
    eligible = {n: r for n, r in rows.items() if n in RERANKERS and r[0]["distinct_2"] >= 0.9 * base["distinct_2"]}
    winner = max(eligible, key=lambda n: eligible[n][0]["f1"])
    print(f"  winner: {winner} (F1 {eligible[winner][0]['f1']:.3f} vs logprob {base['f1']:.3f})")
    for i in range(min(args.examples, len(examples))):
        print(f"\ncontext: {pool.contexts[i][-1]!r}   reference: {pool.references[i]!r}")
        for name in RERANKERS:
            print(f"  {name:<10} {rows[name][2][i]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
