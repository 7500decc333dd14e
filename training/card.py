"""The model card (README.md) written next to every trained chatbot."""

from __future__ import annotations

from pathlib import Path

from chatbot.checkpoint import ChatbotSettings
from training.config import TrainConfig


def _fmt(value) -> str:
    return f"{value:,.2f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)


def write_model_card(folder: Path, cfg: TrainConfig, settings: ChatbotSettings, metrics: dict) -> Path:
    rows = "\n".join(
        f"| {k} | {_fmt(v)} |" for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    )
    text = f"""# Chatbot checkpoint

A GPT-2 dialogue model trained with `chatbot train`.

- Command: `{metrics.get("command") or "chatbot train ..."}`
- Data: `{cfg.data}` (train split; valid split for evaluation, test split for the test perplexity)
- Started from: {settings.base_model}
- Loss mode: `{settings.loss}`; window: last {settings.format.max_history} utterances, {settings.format.max_length} tokens
- Trained with personas: {settings.persona_trained}
- Steps: {_fmt(metrics.get("steps"))}, wall time {_fmt(metrics.get("wall_time_s"))} s on {metrics.get("device")}

## Metrics

| metric | value |
| --- | --- |
{rows}

Per-word perplexity divides the total negative log-likelihood of the scored test utterances (each
predicted from the window before it; `test_replies` of them, the first ones of the test split, bounded
by `--test-limit`) by their whitespace-separated words, so models with different tokenizers compare.

## Use

```
chatbot chat --model {folder}
chatbot serve --model {folder}
```
"""
    path = folder / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
