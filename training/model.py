"""GPT-2 built from a config: the one factory for from-scratch training, tests and benchmarks.

``chatbot train --from-scratch`` sizes it from ``--shape``; the tests build a tiny one (a few
thousand parameters) and the generation benchmark a mid-sized one, all through :func:`new_gpt2`.
"""

from __future__ import annotations

from chatbot.format import TokenIds


def new_gpt2(
    tokenizer=None,
    *,
    vocab_size: int | None = None,
    n_layer: int = 2,
    n_embd: int = 32,
    n_head: int = 2,
    context: int = 128,
    dropout: float = 0.1,
    seed: int | None = None,
    **config,
):
    """A randomly initialised ``GPT2LMHeadModel``.

    With ``tokenizer`` the vocabulary and the bos/eos/pad ids are the tokenizer's, and a tokenizer
    that has the dialogue tokens also sets the generation config's stops (end-of-turn, end-of-text)
    and pad. Without one, ``vocab_size`` is required. ``seed`` makes the weights reproducible;
    other keywords go to ``GPT2Config`` (e.g. ``initializer_range``).
    """
    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    if tokenizer is not None:
        vocab_size = len(tokenizer)
        ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        config = {**ids, "pad_token_id": tokenizer.pad_token_id, **config}
    if vocab_size is None:
        raise ValueError("new_gpt2 needs a tokenizer or a vocab_size")
    if seed is not None:
        torch.manual_seed(seed)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=vocab_size, n_positions=context, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
            resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout, **config,
        )
    )  # fmt: skip
    if tokenizer is not None and tokenizer.pad_token_id is not None:
        try:
            ids = TokenIds.from_tokenizer(tokenizer)
        except ValueError:  # a plain tokenizer without our dialogue tokens: keep generate's defaults
            return model
        model.generation_config = GenerationConfig(eos_token_id=[ids.eot, ids.eos], pad_token_id=ids.pad)
    return model
