"""The fine-tuning pipeline: load data -> build tokenizer and model -> Trainer -> save a chatbot.

Runs unchanged on one process, or on several under ``torchrun --nproc_per_node N`` /
``accelerate launch`` (the Trainer's DDP; gloo on CPUs).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path

from chatbot.checkpoint import SETTINGS_FILE, ChatbotSettings, hub_load_options, load_chatbot, model_context
from chatbot.errors import DataError, ModelLoadError, SettingsError
from chatbot.format import IGNORE_INDEX, DialogueFormat, TokenIds, add_special_tokens
from training.config import TrainConfig
from training.data import Dialogue, collect, select_split

logger = logging.getLogger(__name__)


def load_splits(cfg: TrainConfig) -> tuple[list[Dialogue], list[Dialogue], list[Dialogue], list[str]]:
    """Train, valid and test dialogues from one read of the source (so its notices appear once);
    the valid and test splits may be missing (then no evaluation, no test perplexity)."""
    collected = collect(cfg.data, skip_bad=cfg.skip_bad)
    skipped = len(collected.report.skipped)
    notes = [f"skipped {skipped} bad dialogue(s) in {cfg.data}"] if skipped else []
    train = select_split(collected, cfg.data, "train")
    if cfg.limit:
        train = train[: cfg.limit]
    if not train:
        raise DataError(f"{cfg.data}: the train split is empty")
    valid, test = (optional_split(collected, cfg.data, name) for name in ("valid", "test"))
    if not valid:
        logger.warning("%s: no valid split; training without evaluation", cfg.data)
    return train, valid, test, notes


def optional_split(collected, source: str, split: str) -> list[Dialogue]:
    try:
        return select_split(collected, source, split)
    except DataError as exc:  # a source that ships splits but not this one
        logger.info("%s", exc)
        return []


@contextmanager
def phase(times: dict[str, float], name: str):
    """Add the wall-clock seconds of a block to ``times[name]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        times[name] = round(times.get(name, 0.0) + time.perf_counter() - start, 1)


def build_tokenizer_and_model(
    cfg: TrainConfig, train: list[Dialogue], main_process_first, resuming: bool, hub: dict | None = None
):
    """Returns (tokenizer, model, settings) for the three starting points; ``hub``: from_pretrained options
    for --base-model (see :func:`chatbot.checkpoint.hub_load_options`)."""
    hub = hub or {}
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cfg.init_from:
        if ChatbotSettings.load(cfg.init_from) is None:
            raise ModelLoadError(f"{cfg.init_from}: no {SETTINGS_FILE}; use --base-model for a plain causal LM")
        loaded = load_chatbot(cfg.init_from)  # one-line errors for broken folders
        tokenizer, model, settings = loaded.tokenizer, loaded.model, loaded.settings
        settings.base_model = f"{settings.base_model or '?'} -> {cfg.init_from}"
        return tokenizer, model, settings

    if cfg.from_scratch:
        n_layer, n_embd, n_head, context = cfg.shape
        tokenizer_dir = Path(cfg.output) / "tokenizer"
        with main_process_first(desc="training the tokenizer"):
            if resuming and (tokenizer_dir / "tokenizer.json").is_file():  # the same tokenizer again
                tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
            else:
                from training.tokenizer import train_bpe_tokenizer

                texts = (t for d in train for t in [*d.turns, *d.persona])
                tokenizer = train_bpe_tokenizer(texts, cfg.vocab_size)
                tokenizer.save_pretrained(tokenizer_dir)
        from training.model import new_gpt2

        model = new_gpt2(tokenizer, n_layer=n_layer, n_embd=n_embd, n_head=n_head, context=context, dropout=cfg.dropout)
        base = f"from scratch ({n_layer} layers x {n_embd}, context {context}, vocab {len(tokenizer)})"
    else:
        try:
            tokenizer = AutoTokenizer.from_pretrained(cfg.base_model, **hub)
            model = AutoModelForCausalLM.from_pretrained(cfg.base_model, use_safetensors=True, **hub)
        except OSError as exc:
            first = (str(exc).strip().splitlines() or ["not found"])[0]
            raise ModelLoadError(f"cannot load base model {cfg.base_model!r}: {first}") from exc
        if add_special_tokens(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        base = cfg.base_model

    # the default window; apply_overrides() applies --max-history/--max-length
    fmt = DialogueFormat(max_history=5, max_length=min(model_context(model), 256))
    return tokenizer, model, ChatbotSettings(format=fmt, base_model=base)


def apply_overrides(cfg: TrainConfig, settings: ChatbotSettings, model, train: list[Dialogue]) -> ChatbotSettings:
    """Format flags given on the command line win over a retrained chatbot's saved ones."""
    context = model_context(model)
    fmt = DialogueFormat(
        max_history=cfg.max_history or settings.format.max_history,
        max_length=cfg.max_length or settings.format.max_length,
    )
    if fmt.max_length > context:
        raise SettingsError(f"--max-length {fmt.max_length} exceeds the model's context of {context} tokens")
    settings.format = fmt
    settings.loss = cfg.loss
    if not settings.filters:  # a retrained chatbot keeps its own filter defaults
        from chatbot.filters import FilterSettings

        settings.filters = FilterSettings().to_dict()
    settings.persona_trained = settings.persona_trained or any(d.persona for d in train)
    return settings


def training_arguments(cfg: TrainConfig, has_eval: bool):
    import torch
    from transformers import TrainingArguments

    on_cpu = not torch.cuda.is_available()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return TrainingArguments(
        output_dir=cfg.output,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size * 2,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a share of all steps
        weight_decay=cfg.weight_decay,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        logging_steps=cfg.logging_steps,
        seed=cfg.seed,
        bf16=cfg.bf16,
        use_cpu=on_cpu,
        ddp_backend="gloo" if on_cpu and distributed else None,
        ddp_find_unused_parameters=False,
        report_to="none",
        dataloader_num_workers=0,
        # reply examples vary in length: batching similar lengths wastes less compute on padding
        train_sampling_strategy="group_by_length" if cfg.loss == "reply" else "random",
        remove_unused_columns=False,
    )


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint whose save finished (the Trainer writes trainer_state.json last):
    a process killed while saving leaves a partial folder that must not be resumed from."""
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob("checkpoint-*") if p.name[11:].isdigit() and (p / "trainer_state.json").is_file()]
    return str(max(done, key=lambda p: int(p.name[11:]))) if done else None


def check_output(cfg: TrainConfig) -> str | None:
    """The checkpoint to resume from, if any; refuses to overwrite a finished or running job silently."""
    out = Path(cfg.output)
    last = last_complete_checkpoint(out)
    if cfg.resume:
        if last is None:
            logger.warning("--resume: no checkpoint in %s yet, starting from the beginning", out)
        return last
    if out.is_dir() and any(p.name.startswith("checkpoint-") or p.name == SETTINGS_FILE for p in out.iterdir()):
        raise SettingsError(f"{out} already holds a training run; pass --resume to continue it or pick a new --output")
    return None


def train(cfg: TrainConfig, command: str = "") -> dict:
    """Run the whole pipeline; returns the metrics it wrote to ``metrics.json``.

    ``metrics["phase_seconds"]`` holds the wall-clock time of each phase, in the order they ran.
    """
    started, times = time.time(), {}
    resume_from = check_output(cfg)
    # before the slow imports and the data: an unreachable hub fails in a second, not after a minute of retries
    hub = hub_load_options(cfg.base_model) if cfg.base_model else {}

    import torch

    with phase(times, "load data"):
        train_dialogues, valid_dialogues, test_dialogues, notes = load_splits(cfg)
    args = training_arguments(cfg, has_eval=bool(valid_dialogues))
    with phase(times, "tokenizer and model"):
        tokenizer, model, settings = build_tokenizer_and_model(
            cfg, train_dialogues, args.main_process_first, resuming=resume_from is not None, hub=hub
        )
        settings = apply_overrides(cfg, settings, model, train_dialogues)

    with phase(times, "tokenize"), args.main_process_first(desc="tokenizing"):
        train_set, eval_set = tokenized_sets(cfg, tokenizer, settings.format, train_dialogues, valid_dialogues)
    trainer = make_trainer(args, model, tokenizer, train_set, eval_set)
    with phase(times, "train"):
        result = trainer.train(resume_from_checkpoint=resume_from)
    metrics = {"train_loss": result.training_loss, "steps": result.global_step, "train_examples": len(train_set)}
    if eval_set is not None:
        with phase(times, "evaluate"):
            eval_loss = trainer.evaluate()["eval_loss"]
        metrics.update(eval_loss=eval_loss, eval_examples=len(eval_set), eval_perplexity=math.exp(min(eval_loss, 50)))

    if not trainer.is_world_process_zero():
        return metrics
    with phase(times, "save"):
        save_chatbot(trainer, tokenizer, settings, cfg.output)
    if cfg.test_perplexity:
        with phase(times, "test perplexity"):
            metrics.update(test_perplexity(cfg, model, tokenizer, settings.format, test_dialogues))
    metrics.update(
        wall_time_s=round(time.time() - started, 1),
        phase_seconds=times,
        parameters=sum(p.numel() for p in model.parameters()),
        device=str(next(model.parameters()).device),
        torch_threads=torch.get_num_threads(),
        world_size=args.world_size,
        command=command,
        data=cfg.data,
        notes=notes,
    )
    write_metrics(Path(cfg.output), cfg, settings, metrics)
    logger.info("saved chatbot to %s", cfg.output)
    return metrics


def tokenized_sets(cfg: TrainConfig, tokenizer, fmt: DialogueFormat, train: list[Dialogue], valid: list[Dialogue]):
    """The train set, and the valid set (None without valid dialogues) cut to ``--eval-limit`` examples."""
    from training.examples import build_dataset

    train_set = build_dataset(tokenizer, train, fmt, cfg.loss)
    eval_set = build_dataset(tokenizer, valid, fmt, cfg.loss) if valid else None
    if eval_set is not None and cfg.eval_limit and len(eval_set) > cfg.eval_limit:
        eval_set = eval_set.shuffle(seed=0).select(range(cfg.eval_limit))  # a fixed sample: comparable evaluations
    return train_set, eval_set


def make_trainer(args, model, tokenizer, train_set, eval_set):
    from transformers import DataCollatorForSeq2Seq, Trainer

    return Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX),
        processing_class=tokenizer,
    )


def save_chatbot(trainer, tokenizer, settings: ChatbotSettings, output: str) -> None:
    """Weights (safetensors), config, generation defaults, tokenizer and chatbot.json, and nothing pickled."""
    from transformers import GenerationConfig

    ids = TokenIds.from_tokenizer(tokenizer)
    trainer.model.generation_config = GenerationConfig(
        eos_token_id=[ids.eot, ids.eos], pad_token_id=ids.pad, max_new_tokens=40, do_sample=True, top_p=0.9,
        temperature=0.7,
    )  # fmt: skip
    trainer.save_model(output)
    # the Trainer also pickles its arguments; a shipped chatbot carries no pickle
    (Path(output) / "training_args.bin").unlink(missing_ok=True)
    settings.save(output)


def write_metrics(folder: Path, cfg: TrainConfig, settings: ChatbotSettings, metrics: dict) -> None:
    from training.card import write_model_card

    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    write_model_card(folder, cfg, settings, metrics)


def test_perplexity(cfg: TrainConfig, model, tokenizer, fmt: DialogueFormat, test: list[Dialogue]) -> dict:
    """Per-token and per-word perplexity of the test split's first ``--test-limit`` utterances
    (every utterance with 0), scored in length-sorted batches."""
    from tqdm.auto import tqdm

    from chatbot.perplexity import reply_perplexity

    if not test:
        logger.warning("%s: no test utterances; skipping test perplexity", cfg.data)
        return {}
    model.eval()
    ppl = reply_perplexity(
        model, tokenizer, test, fmt, batch_size=cfg.batch_size * 2, limit=cfg.test_limit,
        progress=lambda b: tqdm(b, desc="test perplexity"),
    )  # fmt: skip
    model.train()
    return {f"test_{k}": v for k, v in ppl.to_dict().items()}
