"""Byte-level BPE tokenizers trained on dialogue text (GPT-2's own algorithm), for from-scratch models."""

from __future__ import annotations

from collections.abc import Iterable

from chatbot.format import EOS, add_special_tokens


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int):
    """Train a byte-level BPE tokenizer and wrap it as a transformers tokenizer with our special tokens."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 300:
        raise ValueError(f"vocab_size must be >= 300 (got {vocab_size}): 256 bytes plus merges and special tokens")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS], show_progress=False)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token=EOS, eos_token=EOS, unk_token=EOS, model_max_length=1024
    )
    add_special_tokens(tokenizer)
    return tokenizer
