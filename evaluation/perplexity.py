"""``python -m evaluation.perplexity``: perplexity of a split's recorded replies, as one JSON line.

The measure itself (:class:`chatbot.perplexity.Perplexity`, ``reply_perplexity``) lives in
:mod:`chatbot.perplexity`, shared with training.
"""

from __future__ import annotations

from chatbot.perplexity import reply_perplexity


def main(argv: list[str] | None = None) -> int:
    """python -m evaluation.perplexity --model DIR [--data chitchat] [--split test] [--limit N]"""
    import argparse
    import json

    from tqdm.auto import tqdm

    from chatbot.checkpoint import load_chatbot
    from training.data import load_dialogues

    parser = argparse.ArgumentParser(prog="python -m evaluation.perplexity", description=main.__doc__)
    parser.add_argument("--model", default=None, help="chatbot checkpoint folder (default: the embedded model)")
    parser.add_argument("--data", default="chitchat", help="chitchat, a .json/.txt/.jsonl path, or hf:NAME")
    parser.add_argument("--split", default="test", help="train, valid, test or all (default: test)")
    parser.add_argument("--limit", type=int, default=None, help="first N dialogues only")
    args = parser.parse_args(argv)
    loaded = load_chatbot(args.model)
    dialogues, _ = load_dialogues(args.data, args.split, skip_bad=True)
    dialogues = dialogues[: args.limit] if args.limit else dialogues
    ppl = reply_perplexity(loaded.model, loaded.tokenizer, dialogues, loaded.format, progress=tqdm)
    print(json.dumps({"model": loaded.path, "split": args.split, "dialogues": len(dialogues), **ppl.to_dict()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
