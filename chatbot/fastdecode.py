"""A lean decode loop for GPT-2 models: the same weights and arithmetic as ``generate``, less Python per token.

API (used by :mod:`chatbot.generation`)::

    from chatbot.fastdecode import decode_plan, fast_decode

    plan = decode_plan(model, generation_kwargs, prompt_lengths)   # a DecodePlan, or a str: why not
    out = fast_decode(model, prompts, plan)                         # Decoded: tokens and log-probs per row

Why it is faster: transformers' ``generate`` spends most of a token on Python (cache objects, mask
builders, output records, a processor list) and computes the tied output projection as
``hidden @ wte.T`` over a (vocab, width) matrix, a layout whose matrix-vector product runs about 3x
slower on the CPU than the same product over a contiguous (width, vocab) copy. This loop keeps one
transposed copy of that matrix, preallocates the key/value cache, calls the blocks' own submodules
(``ln_1``, ``c_attn``, ...) directly, and replaces the top-p sort over the whole vocabulary by a
top-k prefilter. It defines no model: a change to the GPT-2 weights is picked up from the model.

What it serves, and how exactly:

- GPT-2 (``GPT2LMHeadModel`` with SDPA attention) only; ``decode_plan`` returns the reason for anything else,
  and the caller hands that to ``generate``.
- The processors are the ones ``generate`` would build for the same keyword arguments (read from
  transformers' own ``_get_logits_processor``), run in the same order. Served: min-new-tokens,
  temperature, top-k, top-p. Any other processor (repetition penalty, n-gram blocking, a custom
  list) makes ``decode_plan`` decline.
- The prompts are prefilled by the model's own forward, a few of similar length at a time (left-padded
  with generate's mask and positions), and decoding continues from that key/value cache. A padded
  bucket's numbers equal a prompt's own forward up to float rounding (~1e-5 in the logits).
- Sampling draws the same random numbers as ``generate``: ``torch.multinomial(p, 1)`` is
  ``argmax(p / q)`` with ``q ~ Exp(1)`` drawn for the whole (batch, vocab) matrix, and this loop
  draws that same matrix, rows that finished included, so a seed gives ``generate``'s replies.
- Results equal ``generate``'s up to float rounding: the output projection sums in another order
  (last-bit differences in the logits), and the nucleus boundary is computed from descending
  rather than ascending cumulative mass. Either can change a token only at an exact tie.
- Finished rows leave the batch (their cache rows are dropped), so a batch costs what its live
  rows cost, not what its longest reply costs.
"""

# Over 400 lines on purpose: the decode loop, its cache and the rules for when it may stand in for
# ``generate`` must be read together; split, a reader could change one without the others.

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

# the top-p prefilter: the nucleus is searched among this many most likely tokens first; a row whose
# nucleus is wider (a flat distribution) falls back to the exact full sort
PREFILTER = 256

# prompts prefilled together in one forward: a bigger matrix product per weight read, against the
# padding a bucket of unequal prompts computes; 4 prompts sorted by length prefilled 16 chitchat-length
# prompts (15-80 tokens) 1.3-1.6x faster than one at a time, and 8 or 16 at once less so (more padding)
PREFILL_BUCKET = 4

# live rows from which a step computes the output projection as (V, C) x (C, R): with the weights evicted
# by the blocks' (as in a step), one thread, 1 row took 1.0 ms as (R, C) x (C, V) and 2.2 ms the other way;
# 4 rows 5.6 against 2.3 ms, 8 rows 4.9 against 2.5, 16 rows 6.3 against 4.4 (medians of 40)
HEAD_ROWS_SWITCH = 3

FAST = "fast"  # the name of this path in a reply's timings
GENERATE = "generate"


@dataclass(frozen=True)
class DecodePlan:
    """What one decode does, read from the processors ``generate`` would run for the same settings."""

    max_new_tokens: int
    stop_ids: tuple[int, ...]
    num_return_sequences: int = 1
    do_sample: bool = False
    min_new_tokens: int = 0
    min_new_ids: tuple[int, ...] = ()  # tokens forbidden before min_new_tokens (generate's eos ids)
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None


@dataclass
class Decoded:
    """One generated row per prompt and return sequence (generate's row order): tokens and their log-probs."""

    tokens: list[list[int]]  # up to and including the stop token
    logprobs: list[torch.Tensor]  # (n_tokens,) log p(token) under the raw logits


# -- which settings the fast path serves ----------------------------------------------------------


def unsupported_model(model) -> str | None:
    """Why this model cannot take the fast path (None: it can)."""
    from transformers import GenerationMixin, GPT2LMHeadModel
    from transformers.pytorch_utils import Conv1D

    if not isinstance(model, GPT2LMHeadModel):
        return f"{type(model).__name__} is not a GPT-2 model"
    generate = getattr(model.generate, "__func__", None)
    if generate is not GenerationMixin.generate:  # a subclass's own generate, or one wrapped on the instance
        return "the model has its own generate"
    if any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()):
        return "forward hooks on the model (this loop does not run its forward per token)"
    blocks = model.transformer.h
    layers = [m for b in blocks for m in (b.attn.c_attn, b.attn.c_proj, b.mlp.c_fc, b.mlp.c_proj)]
    norms = [m for b in blocks for m in (b.ln_1, b.ln_2)] + [model.transformer.ln_f]
    if any(type(m) is not Conv1D for m in layers) or any(type(m) is not torch.nn.LayerNorm for m in norms):
        return "a block's layers were replaced (adapters, quantisation)"
    if type(model.lm_head) is not torch.nn.Linear:
        return f"output layer {type(model.lm_head).__name__}"
    config = model.config
    if config._attn_implementation != "sdpa":
        return f"attention implementation {config._attn_implementation!r} (the fast path mirrors sdpa)"
    if config.add_cross_attention:
        return "cross-attention layers"
    if model.training:
        return "model in training mode (dropout)"
    return None


def _generate_processors(model, kwargs: dict, prompt_length: int):
    """The logits processors and generation config ``generate`` would use for these keyword arguments."""
    config, _ = model._prepare_generation_config(None, **kwargs)
    model._prepare_special_tokens(config, kwargs_has_attention_mask=True, device=model.device)
    processors = model._get_logits_processor(
        generation_config=config,
        input_ids_seq_length=prompt_length,
        encoder_input_ids=torch.zeros((1, prompt_length), dtype=torch.long),
        logits_processor=kwargs.get("logits_processor"),
        device=model.device,
    )
    return processors, config


def decode_plan(model, kwargs: dict, prompt_lengths: list[int]) -> DecodePlan | str:
    """The fast path's plan for ``generate(**kwargs)`` on these prompts, or the reason it declines."""
    from transformers.generation.logits_process import (
        MinNewTokensLengthLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    reason = unsupported_model(model)
    if reason:
        return reason
    if kwargs.get("num_beams", 1) != 1:
        return "beam search"
    if kwargs.get("stopping_criteria") or kwargs.get("streamer"):
        return "stopping criteria or streamer given to generate (pass them to fast_decode)"
    try:
        processors, config = _generate_processors(model, kwargs, max(prompt_lengths))
    except (AttributeError, TypeError, ValueError) as exc:  # a transformers release without these internals
        return f"cannot read generate's processors ({type(exc).__name__}: {exc})"
    if config.num_beams != 1 or config.max_new_tokens is None:
        return "beam search or no max_new_tokens"
    if max(prompt_lengths) + config.max_new_tokens > model.config.n_positions:
        return f"prompt + max_new_tokens exceed the model's {model.config.n_positions}-token window"
    plan: dict = {}
    for processor in processors:
        if isinstance(processor, MinNewTokensLengthLogitsProcessor) and not {"temperature", "top_k", "top_p"} & set(plan):
            plan["min_new_tokens"] = processor.min_new_tokens
            plan["min_new_ids"] = tuple(int(i) for i in processor.eos_token_id.flatten())
        elif isinstance(processor, TemperatureLogitsWarper) and "top_k" not in plan and "top_p" not in plan:
            plan["temperature"] = float(processor.temperature)
        elif isinstance(processor, TopKLogitsWarper) and "top_p" not in plan:
            plan["top_k"] = int(processor.top_k)
        elif isinstance(processor, TopPLogitsWarper) and processor.min_tokens_to_keep == 1:
            plan["top_p"] = float(processor.top_p)
        else:  # a processor (or an order) this loop does not reproduce
            return f"logits processor {type(processor).__name__}"
    stops = config._eos_token_tensor
    return DecodePlan(
        max_new_tokens=config.max_new_tokens,
        stop_ids=tuple(int(i) for i in stops.flatten()) if stops is not None else (),
        num_return_sequences=config.num_return_sequences or 1,
        do_sample=bool(config.do_sample),
        **plan,
    )


# -- the model, step by step ------------------------------------------------------------------------


class LeanGPT2:
    """A GPT2LMHeadModel's modules arranged for one-token steps over a preallocated key/value cache."""

    def __init__(self, model):
        self.model = model
        transformer = model.transformer
        self.wte, self.wpe = transformer.wte.weight, transformer.wpe.weight
        self.blocks = list(transformer.h)
        self.acts = [_fused_activation(b.mlp.act) for b in self.blocks]
        self.ln_f = transformer.ln_f
        self.heads = model.config.n_head
        self.head_dim = model.config.n_embd // self.heads
        self.version = self._weights_version()
        # (C, V) contiguous: ``hidden @ head_t`` streams the matrix row by row, ~3x faster on a CPU than
        # ``F.linear(hidden, lm_head.weight)`` over the (V, C) matrix for a handful of rows
        self.head_t = model.lm_head.weight.detach().t().contiguous()
        self.head_bias = model.lm_head.bias  # None for GPT-2's tied head

    def _weights_version(self) -> tuple:
        head = self.model.lm_head.weight
        return id(self.model.lm_head), head.data_ptr(), head._version, head.dtype, head.device

    @property
    def stale(self) -> bool:
        """The weights changed since the transposed output matrix was copied (training, a dtype cast)."""
        return self._weights_version() != self.version

    def prefill(self, prompts: list[list[int]]) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Raw logits (B, V) after each prompt and each layer's (keys, values), (B, H, T, D) with the prompts
        left-padded to the longest (T): the model's own forward, given what generate passes for such a batch."""
        from transformers import DynamicCache

        width = max(len(p) for p in prompts)
        device = self.wte.device
        ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts], dtype=torch.long, device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long, device=device)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),  # generate's: count real tokens only
            cache=DynamicCache(config=self.model.config),
            use_cache=True,
            logits_to_keep=1,
        )
        layers = [(layer.keys, layer.values) for layer in out.cache.layers]
        return out.logits[:, -1].float(), layers

    def step(self, tokens: torch.Tensor, positions: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Raw logits (R, V) for the next token of each live row; writes the rows' keys and values at ``cache.end``."""
        rows, heads, dim = tokens.shape[0], self.heads, self.head_dim
        slot = cache.end
        x = self.wte[tokens] + self.wpe[positions]  # (R, C)
        mask = cache.attention_mask()  # (R, 1, 1, L) or None when no row is padded
        for i, (block, act) in enumerate(zip(self.blocks, self.acts, strict=True)):
            attn, mlp = block.attn, block.mlp
            # the blocks' own modules and Conv1D's addmm(bias, x, W), without the reshapes a (B, T, C) input needs
            h = torch.nn.functional.layer_norm(x, x.shape[-1:], block.ln_1.weight, block.ln_1.bias, block.ln_1.eps)
            qkv = torch.addmm(attn.c_attn.bias, h, attn.c_attn.weight).view(rows, 3, heads, dim)
            cache.keys[i][:, :, slot] = qkv[:, 1]
            cache.values[i][:, :, slot] = qkv[:, 2]
            a = torch.nn.functional.scaled_dot_product_attention(
                qkv[:, 0, :, None],  # (R, H, 1, D)
                cache.keys[i][:, :, : slot + 1],
                cache.values[i][:, :, : slot + 1],
                attn_mask=mask,
                scale=attn.scaling,
            )
            x = torch.addmm(attn.c_proj.bias, a.view(rows, heads * dim), attn.c_proj.weight) + x
            h = torch.nn.functional.layer_norm(x, x.shape[-1:], block.ln_2.weight, block.ln_2.bias, block.ln_2.eps)
            h = act(torch.addmm(mlp.c_fc.bias, h, mlp.c_fc.weight))
            x = torch.addmm(mlp.c_proj.bias, h, mlp.c_proj.weight) + x
        x = torch.nn.functional.layer_norm(x, x.shape[-1:], self.ln_f.weight, self.ln_f.bias, self.ln_f.eps)
        cache.end += 1
        if rows >= HEAD_ROWS_SWITCH:
            # several rows: the (V, C) matrix times the (C, R) hidden states is ~2x faster on a CPU than the
            # (R, C) x (C, V) product, whose small-M kernel runs far below the memory bound (MKL, AVX2)
            logits = torch.mm(self.model.lm_head.weight, x.t()).t()
            return (logits if self.head_bias is None else logits + self.head_bias).float()
        if self.head_bias is not None:
            return torch.addmm(self.head_bias, x, self.head_t).float()
        return torch.mm(x, self.head_t).float()


def _fused_activation(act: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """GPT-2's gelu_new as one kernel: transformers computes the same tanh formula in five tensor ops
    (pow, mul, add, tanh, mul), ~6% of a decode step; the results differ in the last bit only."""
    from transformers.activations import NewGELUActivation

    if type(act) is NewGELUActivation:
        return lambda x: torch.nn.functional.gelu(x, approximate="tanh")
    return act


class KVCache:
    """Preallocated keys and values, (R, H, L, D) per layer; prompts left-aligned to end at ``start``."""

    def __init__(self, lean: LeanGPT2, lengths: list[int], new_tokens: int):
        width = max(lengths)
        size = width + new_tokens
        like = lean.wte
        shape = (len(lengths), lean.heads, size, lean.head_dim)
        self.keys = [torch.zeros(shape, dtype=like.dtype, device=like.device) for _ in lean.blocks]
        self.values = [torch.zeros(shape, dtype=like.dtype, device=like.device) for _ in lean.blocks]
        self.lengths = torch.tensor(lengths, device=like.device)
        # (R, L): True where a row has a token; left padding is False forever
        self.valid = torch.arange(size, device=like.device)[None] >= (width - self.lengths)[:, None]
        self.width = width
        self.padded = any(n != width for n in lengths)
        self.end = width  # the slot the next token goes to

    def put(self, row: int, layers: list[tuple[torch.Tensor, torch.Tensor]], source: int, length: int) -> None:
        """Row ``source`` of a prefilled bucket (its last ``length`` positions hold the prompt), right-aligned at ``end``."""
        for i, (k, v) in enumerate(layers):
            self.keys[i][row, :, self.end - length : self.end] = k[source, :, k.shape[2] - length :]
            self.values[i][row, :, self.end - length : self.end] = v[source, :, v.shape[2] - length :]

    def attention_mask(self) -> torch.Tensor | None:
        """The (R, 1, 1, end + 1) keys each row may attend to (None when no row has padding, as in generate)."""
        return self.valid[:, None, None, : self.end + 1] if self.padded else None

    def keep(self, rows: torch.Tensor) -> None:
        """Drop every row not in ``rows`` (finished rows leave the batch)."""
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]
        self.valid = self.valid[rows]
        self.lengths = self.lengths[rows]
        # a column of padding left of the shortest live prompt still needs the mask
        self.padded = bool((self.lengths != self.width).any())


_LEAN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def lean_model(model) -> LeanGPT2:
    """The model's LeanGPT2, built once and rebuilt only when its weights change."""
    lean = _LEAN.get(model)
    if lean is None or lean.stale:
        lean = _LEAN[model] = LeanGPT2(model)
    return lean


# -- choosing tokens ----------------------------------------------------------------------------------


def filter_scores(scores: torch.Tensor, plan: DecodePlan, step: int) -> torch.Tensor:
    """generate's processors in generate's order: min-new-tokens, temperature, top-k, top-p. (R, V) -> (R, V)."""
    if step < plan.min_new_tokens and plan.min_new_ids:
        scores = scores.clone()
        scores[:, list(plan.min_new_ids)] = -float("inf")
    if not plan.do_sample:
        return scores
    if plan.temperature is not None:
        scores = scores / plan.temperature
    if plan.top_k is not None:
        kth = torch.topk(scores, min(plan.top_k, scores.shape[-1])).values[:, -1:]
        scores = scores.masked_fill(scores < kth, -float("inf"))
    if plan.top_p is not None:
        scores = scores.masked_fill(~nucleus(scores, plan.top_p), -float("inf"))
    return scores


def nucleus(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """(R, V) bool: the tokens top-p keeps, i.e. those whose more likely tokens hold less than ``top_p``.

    generate's TopPLogitsWarper sorts all V scores ascending and drops tokens whose cumulative mass is
    <= 1 - top_p; that is the same set. Only the PREFILTER most likely tokens are sorted (topk), unless
    a row's nucleus reaches past them.
    """
    k = min(PREFILTER, scores.shape[-1])
    top, order = torch.topk(scores, k)  # (R, k), descending
    probs = scores.softmax(-1).gather(1, order)
    above = probs.cumsum(-1) - probs  # mass of the strictly more likely tokens
    keep_top = above < top_p
    keep_top[:, 0] = True  # min_tokens_to_keep=1
    wide = keep_top[:, -1]
    if k < scores.shape[-1] and bool(wide.any()):  # a flat row: its nucleus may go past the prefilter
        top, order = torch.sort(scores, descending=True)
        probs = top.softmax(-1)
        keep_top = (probs.cumsum(-1) - probs) < top_p
        keep_top[:, 0] = True
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, order, keep_top)


def choose(scores: torch.Tensor, plan: DecodePlan, rows: torch.Tensor, batch: int) -> torch.Tensor:
    """The next token of each live row: argmax, or generate's multinomial draw for the whole batch."""
    if not plan.do_sample:
        return scores.argmax(-1)
    probs = scores.softmax(-1)
    # torch.multinomial(p, 1) is argmax(p / q), q ~ Exp(1) over the full (batch, V) matrix; drawing the
    # whole matrix keeps the random stream generate's even after rows left the batch
    q = torch.empty((batch, scores.shape[-1]), dtype=probs.dtype, device=probs.device).exponential_(1)
    return (probs / q[rows]).argmax(-1)


def prefill_buckets(lengths: list[int], size: int = PREFILL_BUCKET) -> list[list[int]]:
    """Prompt indices grouped for prefill: sorted by length, ``size`` at a time, so little of a bucket is padding."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[i : i + size] for i in range(0, len(order), size)]


# -- the loop ------------------------------------------------------------------------------------------


@torch.inference_mode()
def fast_decode(
    model,
    prompts: list[list[int]],
    plan: DecodePlan,
    *,
    should_stop: Callable[[], bool] | None = None,
    on_tokens: Callable[[torch.Tensor], None] | None = None,
) -> Decoded:
    """``plan.num_return_sequences`` continuations of every prompt, rows in generate's order.

    ``should_stop`` is checked after every token (a Stop button); ``on_tokens`` receives each step's
    (R,) tokens of a single-row decode (a streamer's ``put``).
    """
    lean = lean_model(model)
    n = plan.num_return_sequences
    lengths = [len(p) for p in prompts for _ in range(n)]
    cache = KVCache(lean, lengths, plan.max_new_tokens)
    first: list[torch.Tensor] = [torch.empty(0)] * len(lengths)
    for bucket in prefill_buckets([len(p) for p in prompts]):
        logits, layers = lean.prefill([prompts[i] for i in bucket])
        for source, i in enumerate(bucket):
            for j in range(n):
                cache.put(i * n + j, layers, source, len(prompts[i]))
                first[i * n + j] = logits[source]
    batch = len(lengths)
    rows = torch.arange(batch, device=lean.wte.device)  # the live rows, as indices into the original batch
    logits = torch.stack(first)
    positions = cache.lengths.clone()  # position ids continue each prompt (generate: cumsum of the mask)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    logprobs: list[list[float]] = [[] for _ in range(batch)]
    stops = torch.tensor(plan.stop_ids or [-1], device=lean.wte.device)
    for step in range(plan.max_new_tokens):
        chosen = choose(filter_scores(logits, plan, step), plan, rows, batch)
        picked = torch.log_softmax(logits, -1).gather(1, chosen[:, None])[:, 0]
        for row, token, lp in zip(rows.tolist(), chosen.tolist(), picked.tolist(), strict=True):
            tokens[row].append(token)
            logprobs[row].append(lp)
        if on_tokens is not None:
            on_tokens(chosen)
        live = ~torch.isin(chosen, stops)
        if step + 1 == plan.max_new_tokens or not bool(live.any()) or (should_stop and should_stop()):
            break
        if not bool(live.all()):
            cache.keep(live.nonzero()[:, 0])
            rows, chosen, positions = rows[live], chosen[live], positions[live]
        logits = lean.step(chosen, positions, cache)
        positions = positions + 1
    return Decoded(tokens, [torch.tensor(lp, dtype=torch.float32) for lp in logprobs])
