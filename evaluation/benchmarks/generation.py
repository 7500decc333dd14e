"""Generation speed benchmark (run by hand, not in CI): our reply path against textbook loops.

    python -m evaluation.benchmarks.generation                       # the embedded default model
    python -m evaluation.benchmarks.generation --model runs/small --repeats 5
    python -m evaluation.benchmarks.generation --random 4x256x8000   # an untrained model of that shape

With a 200-token context and exactly 40 new tokens (end-of-turn suppressed by min_new_tokens, so
every contender does the same work), it prints tokens/s and the latency of the shown reply for

  (a) our reply path: build the prompt, one top-p candidate through ``generate`` with the KV cache,
      scores, filters (and a retry if the filters reject it: that is part of the path);
  (a') the same reply streamed word by word (each word filtered before it is shown);
  (b) the textbook naive loop: the whole sequence re-run every token, no cache;
  (c) a bare torch loop with the KV cache, top-p sampling, nothing else;

then 4 candidates in one batched call against 4 sequential calls, and the filters' share of the
latency of a 4-candidate reply (plus what better-profanity's own matcher would have cost). The
issue's targets: (a) >= 4x (b) and >= 0.8x (c); batched >= 2x sequential; filters <= 15%.
"""

from __future__ import annotations

import os

# before torch loads: idle OpenMP threads sleep rather than spin (see chatbot.chat.calm_cpu_threads)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import torch  # noqa: E402

from chatbot.conversation import Chatbot  # noqa: E402
from chatbot.sampling import PRESETS, SamplingSettings  # noqa: E402

CONTEXT_TOKENS = 200
NEW_TOKENS = 40


def top_p_sample(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """nanoGPT-style sampling of one token per row from (B, V) logits; returns (B, 1)."""
    probs = torch.softmax(logits / temperature, dim=-1)
    sorted_probs, order = torch.sort(probs, descending=True)
    # keep the smallest prefix whose mass reaches top_p (the first token always stays)
    cut = torch.cumsum(sorted_probs, dim=-1) - sorted_probs > top_p
    sorted_probs[cut] = 0.0
    choice = torch.multinomial(sorted_probs, 1)
    return order.gather(-1, choice)


@torch.inference_mode()
def naive_loop(model, prompt: list[int], new_tokens: int, settings: SamplingSettings) -> list[int]:
    """(b) Re-run the whole sequence for every token, no cache."""
    ids = torch.tensor([prompt])
    for _ in range(new_tokens):
        logits = model(ids, use_cache=False).logits[:, -1, :]  # (1, V)
        ids = torch.cat([ids, top_p_sample(logits, settings.temperature, settings.top_p)], dim=1)
    return ids[0, len(prompt) :].tolist()


@torch.inference_mode()
def kv_cache_loop(model, prompt: list[int], new_tokens: int, settings: SamplingSettings) -> list[int]:
    """(c) One forward over the prompt, then one token at a time through the KV cache."""
    out = model(torch.tensor([prompt]), use_cache=True)
    token = top_p_sample(out.logits[:, -1, :], settings.temperature, settings.top_p)  # (1, 1)
    cache, generated = out.cache, [int(token)]
    for _ in range(new_tokens - 1):
        out = model(token, cache=cache, use_cache=True)  # transformers 5: `cache`, not `past_key_values`
        cache = out.cache
        token = top_p_sample(out.logits[:, -1, :], settings.temperature, settings.top_p)
        generated.append(int(token))
    return generated


def timed(contenders: dict[str, Callable[[], object]], repeats: int) -> tuple[dict[str, float], dict[str, object]]:
    """Median seconds of each contender and its last result.

    Contenders run round-robin (one warm-up each first): on a shared machine the load changes
    from second to second, and interleaving exposes every contender to the same load.
    """
    results = {name: fn() for name, fn in contenders.items()}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, results


def history_of_length(bot: Chatbot, settings: SamplingSettings, tokens: int) -> list[str]:
    """A conversation whose model input is ``tokens`` long (+-2): ordinary chit-chat, then padding words."""
    turns = [
        "hi, how are you doing today?",
        "i am good, thanks. i just got back from a long hike in the mountains. how about you?",
        "pretty good. i have been busy with school, but i found some time to cook dinner for friends.",
        "that sounds fun! what did you cook for them, and did they like it?",
    ]
    words = "we talked about music movies travel food and the weather for a long time".split()
    last = "i made pasta with"
    budget = bot.format.max_length - settings.max_new_tokens
    if budget < tokens:
        print(f"note: the model's window ({bot.format.max_length} tokens) fits only {budget} context tokens")
        tokens = budget
    for i in range(10 * tokens):
        if len(bot.build_prompt([*turns, last], settings=settings).input_ids) >= tokens:
            break
        last += " " + words[i % len(words)]
    return [*turns, last]


def build_random_model(spec: str) -> Chatbot:
    """An untrained GPT-2 of shape LAYERSxWIDTH[xVOCAB], same speed as a trained one of that shape."""
    from chatbot.checkpoint import ChatbotSettings, LoadedModel
    from chatbot.format import DialogueFormat, TokenIds
    from training.tokenizer import train_bpe_tokenizer

    layers, width, *rest = (int(x) for x in spec.lower().split("x"))
    vocab = rest[0] if rest else 8000
    try:
        import chitchat_dataset

        texts = [m["text"] for c in list(chitchat_dataset.Dataset().values())[:3000] for t in c["messages"] for m in t]
    except ImportError:
        texts = [f"sentence number {i} about things" for i in range(5000)]
    tokenizer = train_bpe_tokenizer(texts, vocab_size=vocab)
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    ids = TokenIds.from_tokenizer(tokenizer)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=256,
        n_embd=width,
        n_layer=layers,
        n_head=max(1, width // 64),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=ids.pad,
    )
    model = GPT2LMHeadModel(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=[ids.eot, ids.eos], pad_token_id=ids.pad)
    settings = ChatbotSettings(format=DialogueFormat(max_history=5, max_length=256))
    return Chatbot(LoadedModel(model=model, tokenizer=tokenizer, path=f"untrained GPT-2 {spec}", settings=settings))


def report(name: str, seconds: float, tokens: int, baseline: float | None = None) -> None:
    ratio = f"  {baseline / seconds:5.2f}x of ours" if baseline else ""
    print(f"  {name:<44} {seconds * 1000:8.1f} ms  {tokens / seconds:8.1f} tokens/s{ratio}")


def run(bot: Chatbot, repeats: int) -> dict[str, float]:
    settings = PRESETS["top-p"].replace(num_candidates=1, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, seed=0)
    history = history_of_length(bot, settings, CONTEXT_TOKENS)
    prompt = bot.build_prompt(history, settings=settings).input_ids
    n_params = sum(p.numel() for p in bot.model.parameters())
    print(f"model: {bot.name} ({n_params / 1e6:.1f} M parameters), torch threads: {torch.get_num_threads()}")
    print(f"context: {len(prompt)} tokens, {NEW_TOKENS} new tokens, top-p {settings.top_p} T {settings.temperature}")

    seconds, results = timed(
        {
            "ours": lambda: bot.generate_reply(history, settings=settings),
            "stream": lambda: list(bot.stream_reply(history, settings=settings)),
            "naive": lambda: naive_loop(bot.model, prompt, NEW_TOKENS, settings),
            "kv": lambda: kv_cache_loop(bot.model, prompt, NEW_TOKENS, settings),
        },
        repeats,
    )
    ours_s, stream_s, naive_s, kv_s = (seconds[k] for k in ("ours", "stream", "naive", "kv"))
    reply, streamed = results["ours"], results["stream"][-1].value
    print("\nlatency of one 40-token reply (median of runs):")
    report("(a) our reply path, filters included", ours_s, NEW_TOKENS)
    report("(a') our streamed reply, word filters", stream_s, streamed.timings.new_tokens)
    report("(b) naive loop, no KV cache", naive_s, NEW_TOKENS)
    report("(c) bare torch loop with KV cache", kv_s, NEW_TOKENS)
    print(f"  (last reply: {reply.attempts} attempt(s), fallback={reply.fallback}; streamed: ", end="")
    print(f"{streamed.attempts} attempt(s), {streamed.timings.new_tokens} tokens, fallback={streamed.fallback})")

    four = settings.replace(num_candidates=4)
    one = settings.replace(num_candidates=1)
    seconds, _ = timed(
        {
            "batched": lambda: bot.generate_reply(history, settings=four),
            "sequential": lambda: [bot.generate_reply(history, settings=one) for _ in range(4)],
        },
        repeats,
    )
    batched_s, sequential_s = seconds["batched"], seconds["sequential"]
    print("\n4 candidates:")
    report("one batched call (num_return_sequences=4)", batched_s, 4 * NEW_TOKENS)
    report("4 sequential calls", sequential_s, 4 * NEW_TOKENS)

    # filters' share in an ordinary 4-candidate reply: end-of-turn allowed, default preset
    replies = [bot.generate_reply(history, settings=PRESETS["top-p"].replace(seed=s)) for s in range(repeats + 1)]
    share = statistics.median(r.timings.filter_ms / r.timings.total_ms for r in replies[1:])
    filter_ms = statistics.median(r.timings.filter_ms for r in replies[1:])
    lib_ms = better_profanity_ms([c.text for r in replies[1:] for c in r.candidates]) / repeats
    print("\nfilters in a 4-candidate top-p reply:")
    print(f"  filters {filter_ms:.2f} ms of {statistics.median(r.timings.total_ms for r in replies[1:]):.1f} ms")
    print(f"  (better-profanity's own matcher on the same candidates: {lib_ms:.1f} ms per reply)")

    ratios = {
        "ours_vs_naive": naive_s / ours_s,
        "ours_vs_kv_loop": kv_s / ours_s,
        "stream_vs_kv_loop": (streamed.timings.new_tokens / stream_s) / (NEW_TOKENS / kv_s),
        "batched_speedup": sequential_s / batched_s,
        "filter_share": share,
    }
    print("\nratios (target):")
    print(f"  ours / naive tokens/s          {ratios['ours_vs_naive']:6.2f}x  (>= 4)")
    print(f"  ours / bare KV loop tokens/s   {ratios['ours_vs_kv_loop']:6.2f}x  (>= 0.8)")
    print(f"  streamed / bare KV loop        {ratios['stream_vs_kv_loop']:6.2f}x")
    print(f"  4 sequential / 4 batched time  {ratios['batched_speedup']:6.2f}x  (>= 2)")
    print(f"  filters' share of latency      {ratios['filter_share']:6.1%}   (<= 15%)")
    return ratios


def better_profanity_ms(texts: list[str]) -> float:
    from better_profanity import Profanity

    library = Profanity()
    start = time.perf_counter()
    for text in texts:
        library.contains_profanity(text)
    return (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint folder or hub id (default: the embedded model)")
    parser.add_argument("--random", default=None, metavar="LxW[xV]", help="an untrained GPT-2 of this shape instead")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: stable timings on a shared CPU; 0: torch's choice)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    bot = build_random_model(args.random) if args.random else Chatbot.load(args.model)
    run(bot, args.repeats)
    return 0


if __name__ == "__main__":
    from chatbot.errors import ChatbotError

    try:
        sys.exit(main())
    except ChatbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
