"""Dialogues -> tokenized training examples, in the two loss modes.

``reply`` (TransferTransfo): one example per bot utterance, its window as context, labels only on
the reply and its end-of-turn token. With a persona the bot is the persona's owner (odd
utterances); without one, every utterance after the first is a reply, so both sides teach the bot.

``all-turns`` (DialoGPT): whole conversations, every utterance a target, concatenated with an
end-of-text separator and cut into full-context chunks: no padding, several times cheaper per epoch.
"""

from __future__ import annotations

from chatbot.format import (
    IGNORE_INDEX,
    DialogueFormat,
    TokenIds,
    build_conversation,
    build_inputs,
    encode_texts,
    persona_text,
)
from training.data import Dialogue


def reply_indices(dialogue: Dialogue) -> list[int]:
    """Which utterances are bot replies (training targets) in ``reply`` mode."""
    if dialogue.persona:
        return list(range(1, len(dialogue.turns), 2))
    return list(range(1, len(dialogue.turns)))


def encode_dialogues(tokenizer, dialogues: list[Dialogue]) -> list[tuple[list[list[int]], list[int]]]:
    """(turn ids, persona ids) of each dialogue, every text encoded once and all in one tokenizer call."""
    texts = []
    for d in dialogues:
        texts += [*d.turns, persona_text(d.persona)] if d.persona else d.turns
    encoded = iter(encode_texts(tokenizer, texts))
    out = []
    for d in dialogues:
        turns = [next(encoded) for _ in d.turns]
        out.append((turns, next(encoded) if d.persona else []))
    return out


def encode_dialogue(tokenizer, dialogue: Dialogue) -> tuple[list[list[int]], list[int]]:
    """Encode every utterance and the persona once, as plain text."""
    return encode_dialogues(tokenizer, [dialogue])[0]


def reply_examples(
    tokenizer, ids: TokenIds, dialogue: Dialogue, fmt: DialogueFormat, targets: list[int] | None = None
) -> list[dict]:
    """One example per target utterance (default: :func:`reply_indices`)."""
    turns, persona = encode_dialogue(tokenizer, dialogue)
    return encoded_reply_examples(ids, turns, persona, fmt, reply_indices(dialogue) if targets is None else targets)


def encoded_reply_examples(
    ids: TokenIds, turns: list[list[int]], persona: list[int], fmt: DialogueFormat, targets: list[int]
) -> list[dict]:
    examples = []
    for i in targets:
        example = build_inputs(ids, turns[:i], turns[i], fmt, persona=persona)
        examples.append({"input_ids": example.input_ids, "labels": example.labels})
    return examples


def pack(examples: list[dict], block: int, separator: int) -> list[dict]:
    """Concatenate whole conversations (separated by end-of-text) and cut into ``block``-token chunks."""
    input_ids: list[int] = []
    labels: list[int] = []
    for example in examples:
        input_ids += [separator, *example["input_ids"]]
        labels += [IGNORE_INDEX, *example["labels"]]
    chunks = []
    for start in range(0, len(input_ids), block):
        chunk_labels = labels[start : start + block]
        if any(label != IGNORE_INDEX for label in chunk_labels):
            chunks.append({"input_ids": input_ids[start : start + block], "labels": chunk_labels})
    return chunks


def build_dataset(tokenizer, dialogues: list[Dialogue], fmt: DialogueFormat, loss: str):
    """A ``datasets.Dataset`` of input_ids/labels ready for the Trainer's padding collator."""
    import datasets

    ids = TokenIds.from_tokenizer(tokenizer)
    raw = datasets.Dataset.from_list([{"persona": d.persona, "turns": d.turns} for d in dialogues])

    def tokenize(batch):
        dialogues = [Dialogue(turns=t, persona=p) for p, t in zip(batch["persona"], batch["turns"])]
        out = {"input_ids": [], "labels": []}
        for dialogue, (turns, persona) in zip(dialogues, encode_dialogues(tokenizer, dialogues)):
            if loss == "reply":
                examples = encoded_reply_examples(ids, turns, persona, fmt, reply_indices(dialogue))
            else:  # whole conversations, packed below
                input_ids, labels = build_conversation(ids, turns, persona)
                examples = [{"input_ids": input_ids, "labels": labels}]
            for ex in examples:
                out["input_ids"].append(ex["input_ids"])
                out["labels"].append(ex["labels"])
        return out

    # declared column types spare datasets from inspecting every nested list to infer them
    features = datasets.Features(
        {"input_ids": datasets.List(datasets.Value("int64")), "labels": datasets.List(datasets.Value("int64"))}
    )
    dataset = raw.map(tokenize, batched=True, remove_columns=raw.column_names, features=features, desc="tokenizing")
    if loss == "all-turns":
        # pack across conversations so no chunk is padding; chunk boundaries cut conversations,
        # as in DialoGPT and nanoGPT, and the separator marks where one ends
        dataset = dataset.map(
            lambda b: _pack_batch(b, fmt.max_length, ids.eos), batched=True, batch_size=1000, features=features,
            desc="packing",
        )
    return dataset


def _pack_batch(batch, block: int, separator: int) -> dict:
    examples = [{"input_ids": i, "labels": lab} for i, lab in zip(batch["input_ids"], batch["labels"])]
    chunks = pack(examples, block, separator)
    return {"input_ids": [c["input_ids"] for c in chunks], "labels": [c["labels"] for c in chunks]}
