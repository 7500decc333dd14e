"""Copy a trained chatbot into a compact folder: fp16 safetensors, tokenizer, settings, card, metrics.

This is how the default model embedded in the package (``chatbot/default_model/``) is made::

    python -m training.export runs/default chatbot/default_model --card chatbot/default_model/README.md

Only the files a chatbot needs are copied (no optimizer state, no checkpoints, no pickles).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from chatbot.checkpoint import SETTINGS_FILE, ChatbotSettings
from chatbot.errors import ModelLoadError

KEPT_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", SETTINGS_FILE, "metrics.json")


def export_chatbot(source: str | Path, target: str | Path, fp16: bool = True) -> Path:
    """Write ``source``'s weights (fp16 by default) and its small files into ``target``."""
    import torch
    from transformers import AutoModelForCausalLM

    source, target = Path(source), Path(target)
    if ChatbotSettings.load(source) is None:
        raise ModelLoadError(f"{source}: not a chatbot checkpoint (no {SETTINGS_FILE})")
    model = AutoModelForCausalLM.from_pretrained(source, use_safetensors=True, dtype=torch.float32)
    if fp16:
        model = model.half()  # halves the size on disk; load_chatbot upcasts to fp32 on CPUs
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.safetensors"):
        old.unlink()
    model.save_pretrained(target)  # config.json, generation_config.json, model.safetensors
    for name in KEPT_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a chatbot folder written by chatbot train")
    parser.add_argument("target", help="where to write the compact copy")
    parser.add_argument("--fp32", action="store_true", help="keep float32 weights (twice the size)")
    parser.add_argument("--card", help="a model card (Markdown) to copy in as README.md")
    args = parser.parse_args(argv)
    target = export_chatbot(args.source, args.target, fp16=not args.fp32)
    if args.card and Path(args.card).resolve() != (target / "README.md").resolve():
        shutil.copy2(args.card, target / "README.md")
    size = sum(p.stat().st_size for p in target.iterdir() if p.is_file())
    print(json.dumps({"target": str(target), "bytes": size}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
