"""Perplexity of recorded replies given their context, per token and per word.

Every utterance of a dialogue is scored as a reply to the window before it (built by the shared
dialogue format), so the number measures exactly what the chatbot is asked to do. The per-word
figure divides the same total negative log-likelihood by whitespace-separated words instead of
tokens, so models with different tokenizers can be compared.

Training (test perplexity after a run) and evaluation (reports, Hits@1) both use this module.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import torch

from chatbot.format import (
    IGNORE_INDEX,
    DialogueFormat,
    TokenIds,
    build_inputs,
    encode_text,
    encode_texts,
    persona_text,
    reply_positions,
)


@dataclass
class Perplexity:
    nll: float  # total negative log-likelihood, nats
    tokens: int  # scored tokens (reply tokens and their end-of-turn token)
    words: int  # whitespace-separated words of the scored replies
    replies: int

    @property
    def per_token(self) -> float:
        return math.exp(self.nll / self.tokens) if self.tokens else float("nan")

    @property
    def per_word(self) -> float:
        return math.exp(self.nll / self.words) if self.words else float("nan")

    def to_dict(self) -> dict:
        return {**asdict(self), "perplexity_per_token": self.per_token, "perplexity_per_word": self.per_word}


def reply_examples(tokenizer, dialogues, fmt: DialogueFormat, every_utterance: bool = True):
    """(input_ids, labels, words) for each scored reply: every utterance, or only the bot's when False
    (the odd utterances: the partner opens, as in ConvAI2 and in the evaluator's replies)."""
    ids = TokenIds.from_tokenizer(tokenizer)
    for dialogue in dialogues:
        turns = encode_texts(tokenizer, list(dialogue.turns))
        persona = encode_text(tokenizer, persona_text(dialogue.persona)) if dialogue.persona else []
        for i in range(len(turns)) if every_utterance else reply_positions(len(turns)):
            example = build_inputs(ids, turns[:i], turns[i], fmt, persona=persona)
            kept = sum(1 for label in example.labels if label != IGNORE_INDEX) - 1  # minus end-of-turn
            text = dialogue.turns[i] if kept == len(turns[i]) else tokenizer.decode(turns[i][:kept])
            yield example.input_ids, example.labels, len(text.split())


@torch.no_grad()
def sequence_nll(model, batch_ids: list[list[int]], batch_labels: list[list[int]], pad_id: int) -> torch.Tensor:
    """Summed NLL of the labelled tokens of each sequence in a batch (right-padded). Returns (B,)."""
    device = next(model.parameters()).device
    width = max(len(x) for x in batch_ids)
    input_ids = torch.full((len(batch_ids), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch_ids), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch_ids), width), dtype=torch.long)
    for row, (ids, lab) in enumerate(zip(batch_ids, batch_labels)):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(lab)] = torch.tensor(lab)
        mask[row, : len(ids)] = 1
    logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()  # (B, T, V)
    shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(device)
    losses = torch.nn.functional.cross_entropy(
        shift_logits.transpose(1, 2), shift_labels, ignore_index=IGNORE_INDEX, reduction="none"
    )  # (B, T-1), zero where ignored
    return losses.sum(dim=1).cpu()


def reply_perplexity(
    model,
    tokenizer,
    dialogues,
    fmt: DialogueFormat,
    batch_size: int = 32,
    every_utterance: bool = True,
    progress=None,
    limit: int | None = None,
) -> Perplexity:
    """Score replies in length-sorted batches; ``progress`` wraps the batch iterator (e.g. tqdm).

    ``limit`` scores only the first N replies in data order (None or 0: all of them), so the same
    dialogues give the same subset every time.
    """
    examples = reply_examples(tokenizer, dialogues, fmt, every_utterance)
    examples = sorted(itertools.islice(examples, limit or None), key=lambda e: len(e[0]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = [examples[i : i + batch_size] for i in range(0, len(examples), batch_size)]
    total = Perplexity(nll=0.0, tokens=0, words=0, replies=0)
    for batch in progress(batches) if progress else batches:
        nll = sequence_nll(model, [b[0] for b in batch], [b[1] for b in batch], pad_id)
        total.nll += float(nll.sum())
        # labels are input ids shifted by one, so count the labelled positions after the first
        total.tokens += sum(sum(1 for label in b[1][1:] if label != IGNORE_INDEX) for b in batch)
        total.words += sum(b[2] for b in batch)
        total.replies += len(batch)
    return total
