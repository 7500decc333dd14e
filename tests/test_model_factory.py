"""training.model.new_gpt2: the one GPT-2 factory for from-scratch training, tests and benchmarks."""

from __future__ import annotations

import pytest
import torch

from chatbot.format import TokenIds
from training.model import new_gpt2
from training.tokenizer import train_bpe_tokenizer


def test_sized_for_a_dialogue_tokenizer_with_its_stops():
    tokenizer = train_bpe_tokenizer(["hi there", "hello, how are you?"] * 5, vocab_size=300)
    ids = TokenIds.from_tokenizer(tokenizer)
    model = new_gpt2(tokenizer, n_layer=1, n_embd=16, context=32, dropout=0.0)
    assert (model.config.vocab_size, model.config.n_positions, model.config.n_layer) == (len(tokenizer), 32, 1)
    assert model.config.resid_pdrop == model.config.attn_pdrop == 0.0
    assert model.config.pad_token_id == ids.pad
    assert model.generation_config.eos_token_id == [ids.eot, ids.eos]


def test_seeded_weights_repeat_and_a_vocab_size_stands_in_for_a_tokenizer():
    a, b = (new_gpt2(vocab_size=50, n_layer=1, n_embd=16, seed=3) for _ in range(2))
    assert torch.equal(a.transformer.wte.weight, b.transformer.wte.weight)
    assert a.config.vocab_size == 50 and a.config.pad_token_id is None
    with pytest.raises(ValueError, match="needs a tokenizer or a vocab_size"):
        new_gpt2()
