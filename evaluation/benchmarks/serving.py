"""Benchmark: evaluation throughput over HTTP (``transformers serve --continuous-batching``) vs the local batched path.

Both runs reply to the same contexts with the same settings through the same reply path
(:meth:`chatbot.conversation.Chatbot.reply_batch`: candidates, filters, ranking, retry); the local
run batches ``--batch-size`` contexts per ``generate`` call, the served run sends ``--concurrency``
requests at a time to a ``transformers serve`` it starts on a free localhost port. Prints seconds,
contexts/s, tokens/s and the ratio, measured in one run. Run by hand, not in CI::

    python -m evaluation.benchmarks.serving --contexts 32 --concurrency 8

On a CPU both share the same cores, so this measures the serving overhead (HTTP, scheduling,
candidates emulated one request each), not what a GPU engine such as vLLM would gain.
"""

from __future__ import annotations

import argparse
import sys

from evaluation.benchmarks.batched_eval import Timing, bench_contexts, time_replies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the embedded model)")
    parser.add_argument("--data", default="chitchat", help="dialogue source for the contexts")
    parser.add_argument("--split", default="test")
    parser.add_argument("--contexts", type=int, default=32, help="contexts replied to in each run")
    parser.add_argument("--batch-size", type=int, default=16, help="contexts per local generate call")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight to the server")
    parser.add_argument("--preset", default="top-p", help="sampling preset (as evaluated)")
    parser.add_argument("--num-candidates", type=int, default=None, help="override the preset's candidates")
    parser.add_argument("--no-continuous-batching", action="store_true", help="serve without continuous batching")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one request may take (busy CPU)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from chatbot.backends.launch import transformers_serve
    from chatbot.backends.options import BackendOptions, load_bot
    from chatbot.checkpoint import resolve_model
    from chatbot.sampling import get_preset

    folder = resolve_model(args.model)
    settings = get_preset(args.preset)
    if args.num_candidates:
        settings = settings.replace(num_candidates=args.num_candidates)
    if settings.strategy == "sample":
        settings = settings.replace(seed=args.seed)
    contexts = bench_contexts(args.data, args.split, args.contexts, args.seed)

    local_bot = load_bot(BackendOptions(), folder)
    local_bot.reply_batch(contexts[:2], settings, batch_size=2)  # warm-up
    local = time_replies(local_bot, contexts, settings, args.batch_size)
    print(f"model {folder}, {len(contexts)} contexts, {settings.describe()}", flush=True)
    show(f"local batched ({args.batch_size})", local)

    with transformers_serve(folder, continuous_batching=not args.no_continuous_batching) as base_url:
        options = BackendOptions(
            base_url=base_url, concurrency=args.concurrency, tokenizer=folder, timeout=args.timeout
        )
        remote_bot = load_bot(options)
        remote_bot.reply_batch(contexts[:2], settings, batch_size=2)  # warm-up: the server's first requests
        served = time_replies(remote_bot, contexts, settings, len(contexts))
        kind = remote_bot.backend.describe()["server_kind"]

    show(f"{kind} x{args.concurrency}", served)
    print(f"  served / local throughput: {ratio(served, local):.2f}x (contexts/s, measured in this run)")
    return 0


def show(label: str, t: Timing) -> None:
    print(
        f"  {label:>28}: {t.seconds:7.1f} s  {t.contexts_per_s:6.2f} contexts/s  {t.tokens_per_s:7.1f} tokens/s",
        flush=True,
    )


def ratio(served: Timing, local: Timing) -> float:
    return served.contexts_per_s / local.contexts_per_s


if __name__ == "__main__":
    sys.exit(main())
