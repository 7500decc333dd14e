"""The fine-tuning pipeline on tiny models built from configs in tmp_path: train, save, reload, resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from chatbot.checkpoint import ChatbotSettings, load_chatbot
from chatbot.errors import SettingsError
from chatbot.format import IGNORE_INDEX, DialogueFormat, TokenIds
from training.cli import parse_args
from training.data import Dialogue
from training.examples import pack, reply_examples, reply_indices
from training.train import train

CHATTY = [
    ["hi, how are you?", "i am good, thanks!", "what are you up to?", "just reading a book."],
    ["do you like music?", "yes, i play guitar.", "cool, for how long?", "about ten years."],
    ["where do you live?", "in a small town.", "is it nice?", "yes, very quiet."],
]


def many(n: int) -> list[list[str]]:
    """n distinct dialogues (distinct content lands in all three hash splits)."""
    return [[f"{CHATTY[i % 3][0]} #{i}", *CHATTY[i % 3][1:]] for i in range(n)]


def write_jsonl(path, dialogues, persona=None):
    path.write_text("".join(json.dumps({"persona": persona or [], "turns": d}) + "\n" for d in dialogues))
    return str(path)


@pytest.fixture(scope="module")
def plain_gpt2(tmp_path_factory):
    """A tiny plain GPT-2 (no dialogue tokens) saved like a hub model, so --base-model loads it the same way."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    from training.model import new_gpt2

    folder = tmp_path_factory.mktemp("plain_gpt2")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([u for d in CHATTY for u in d] * 5, vocab_size=350, special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                        eos_token="<|endoftext|>")  # fmt: skip
    new_gpt2(tokenizer, n_layer=1, context=64, seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def run(argv):
    return train(parse_args(argv), command="test")


def log_losses(folder) -> list[float]:
    state = sorted(Path(folder).glob("checkpoint-*/trainer_state.json"))[-1]
    return [row["loss"] for row in json.loads(state.read_text())["log_history"] if "loss" in row]


@pytest.mark.slow
def test_finetune_base_model_loss_goes_down_and_checkpoint_reloads(tmp_path, plain_gpt2):
    data = write_jsonl(tmp_path / "d.jsonl", many(200))
    out = tmp_path / "run"
    metrics = run(["--base-model", plain_gpt2, "--data", data, "--output", str(out), "--max-steps", "30",
                   "--batch-size", "8", "--lr", "1e-2", "--logging-steps", "5", "--save-steps", "30",
                   "--eval-steps", "30"])  # fmt: skip
    losses = log_losses(out)
    assert losses[-1] < losses[0] * 0.8, losses
    for name in ("model.safetensors", "tokenizer.json", "generation_config.json", "chatbot.json", "metrics.json",
                 "README.md"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not (out / "pytorch_model.bin").exists()
    assert metrics["steps"] == 30 and "eval_loss" in metrics and "test_perplexity_per_word" in metrics
    assert json.loads((out / "metrics.json").read_text())["steps"] == 30

    loaded = load_chatbot(str(out))
    assert loaded.is_dialogue_model and loaded.settings.format == DialogueFormat(max_history=5, max_length=64)
    ids = loaded.ids
    assert loaded.model.get_input_embeddings().weight.shape[0] >= ids.eot + 1  # new tokens got embeddings
    assert ids.eot in loaded.model.generation_config.eos_token_id
    from chatbot.filters import FilterSettings

    assert FilterSettings.from_dict(loaded.settings.filters) == FilterSettings()  # filter defaults saved


@pytest.mark.slow
def test_init_from_keeps_tokens_and_settings(tmp_path, plain_gpt2):
    first = tmp_path / "first"
    run(["--base-model", plain_gpt2, "--data", write_jsonl(tmp_path / "a.jsonl", CHATTY * 4), "--output", str(first),
         "--max-steps", "4", "--max-history", "3", "--no-test-perplexity"])  # fmt: skip
    new_data = write_jsonl(tmp_path / "b.jsonl", [["new topic here", "a fresh reply", "and more"]] * 20)
    second = tmp_path / "second"
    run(["--init-from", str(first), "--data", new_data, "--output", str(second), "--max-steps", "4",
         "--no-test-perplexity"])  # fmt: skip
    a, b = load_chatbot(str(first)), load_chatbot(str(second))
    assert len(a.tokenizer) == len(b.tokenizer) and a.ids == b.ids
    assert b.settings.format.max_history == 3  # kept from the first chatbot
    assert str(first) in b.settings.base_model
    changed = any(not torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    assert changed


@pytest.mark.slow
def test_from_scratch_all_turns_cli(tmp_path, capsys):
    from chatbot.cli import main

    data = write_jsonl(tmp_path / "d.jsonl", many(80))
    out = tmp_path / "scratch"
    code = main(["train", "--from-scratch", "--size", "tiny", "--vocab-size", "320", "--loss", "all-turns",
                 "--data", data, "--output", str(out), "--max-steps", "3", "--test-limit", "5",
                 "--eval-limit", "2", "--max-length", "16"])  # fmt: skip
    assert code == 0
    loaded = load_chatbot(str(out))
    assert loaded.settings.loss == "all-turns" and loaded.model.config.n_layer == 2
    printed = capsys.readouterr().out
    assert "steps=3" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_replies"] == 5 and metrics["eval_examples"] == 2  # bounded by --test-limit/--eval-limit
    phases = ["load data", "tokenizer and model", "tokenize", "train", "evaluate", "save", "test perplexity"]
    assert list(metrics["phase_seconds"]) == phases
    assert all(s >= 0 for s in metrics["phase_seconds"].values())
    assert "time per phase: load data " in printed and ", test perplexity " in printed


def test_load_splits_reads_the_source_once_and_warns_once(tmp_path, caplog):
    from training.train import load_splits

    path = tmp_path / "d.jsonl"
    path.write_text(Path(write_jsonl(tmp_path / "ok.jsonl", many(60))).read_text() + "not json\n")
    cfg = parse_args(["--from-scratch", "--data", str(path), "--output", str(tmp_path / "o"), "--skip-bad"])
    with caplog.at_level("WARNING"):
        train_split, valid, test, notes = load_splits(cfg)
    assert [r.getMessage().count("skipped 1 bad dialogue") for r in caplog.records] == [1]
    assert notes == [f"skipped 1 bad dialogue(s) in {path}"]
    assert len(train_split) + len(valid) + len(test) == 60 and valid and test


def test_test_limit_scores_the_first_utterances(tiny_chatbot):
    from chatbot.perplexity import reply_perplexity

    loaded = load_chatbot(tiny_chatbot)
    dialogues = [Dialogue(turns=d) for d in CHATTY]
    whole = reply_perplexity(loaded.model, loaded.tokenizer, dialogues, loaded.format, limit=0)
    first = reply_perplexity(loaded.model, loaded.tokenizer, dialogues, loaded.format, limit=5, batch_size=2)
    one_dialogue = reply_perplexity(loaded.model, loaded.tokenizer, dialogues[:1], loaded.format)
    assert whole.replies == 12 and first.replies == 5 and one_dialogue.replies == 4
    # the first 5 utterances are dialogue 1 and the opening of dialogue 2
    assert first.words == one_dialogue.words + len(CHATTY[1][0].split())


@pytest.mark.slow
def test_resume_after_interruption(tmp_path, plain_gpt2, monkeypatch):
    from transformers import Trainer

    data = write_jsonl(tmp_path / "d.jsonl", CHATTY * 8)
    out = tmp_path / "resumable"
    argv = ["--base-model", plain_gpt2, "--data", data, "--output", str(out), "--max-steps", "8", "--save-steps", "3",
            "--logging-steps", "1", "--no-test-perplexity"]  # fmt: skip
    real_step = Trainer.training_step
    calls = {"n": 0}

    def dying_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # the process is killed during step 5; checkpoint-3 is on disk
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run(argv)
    assert (out / "checkpoint-3").is_dir() and not (out / "chatbot.json").exists()
    monkeypatch.setattr(Trainer, "training_step", real_step)

    with pytest.raises(SettingsError, match="--resume"):
        run(argv)  # never silently starts over on top of a run
    metrics = run([*argv, "--resume"])
    assert metrics["steps"] == 8
    steps = [row["step"] for row in json.loads((out / "checkpoint-8" / "trainer_state.json").read_text())["log_history"]
             if "loss" in row]  # fmt: skip
    assert steps == list(range(1, 9))  # 1-3 from the first process, 4-8 after resuming


def test_reply_examples_mask_everything_but_the_reply(tiny_chatbot):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_chatbot)
    ids = TokenIds.from_tokenizer(tokenizer)
    dialogue = Dialogue(turns=["hi", "hello there", "how are you?"])
    examples = reply_examples(tokenizer, ids, dialogue, DialogueFormat(max_length=64))
    assert len(examples) == 2
    last = examples[-1]
    targets = [t for t in last["labels"] if t != IGNORE_INDEX]
    assert targets == [*tokenizer("how are you?", add_special_tokens=False)["input_ids"], ids.eot]
    assert last["labels"][: len(last["labels"]) - len(targets)] == [IGNORE_INDEX] * (len(last["labels"]) - len(targets))


def test_reply_indices_follow_the_persona_owner():
    assert reply_indices(Dialogue(turns=["a", "b", "c", "d"])) == [1, 2, 3]
    assert reply_indices(Dialogue(turns=["a", "b", "c", "d"], persona=["p"])) == [1, 3]


def test_pack_fills_blocks_and_separates_conversations():
    chunks = pack([{"input_ids": [1, 2, 3], "labels": [1, 2, 3]}, {"input_ids": [4, 5], "labels": [-100, 5]}], 4, 0)
    assert chunks == [
        {"input_ids": [0, 1, 2, 3], "labels": [-100, 1, 2, 3]},
        {"input_ids": [0, 4, 5], "labels": [-100, -100, 5]},
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--from-scratch", "--init-from", "x"], "only one of"),
        (["--from-scratch", "--size", "huge"], "unknown --size"),
        (["--loss", "everything"], "unknown --loss"),
        (["--from-scratch", "--n-embd", "30", "--n-head", "4"], "divisible"),
    ],
)
def test_impossible_settings_are_named(argv, message, tmp_path):
    with pytest.raises(SettingsError, match=message):
        cfg = parse_args([*argv, "--output", str(tmp_path)])
        cfg.shape  # noqa: B018 - validated when the shape is read


def test_settings_file_round_trip(tmp_path):
    settings = ChatbotSettings(format=DialogueFormat(max_history=3, max_length=99), persona_trained=True,
                               filters={"min_words": 2}, extra={})  # fmt: skip
    settings.save(tmp_path)
    data = json.loads((tmp_path / "chatbot.json").read_text())
    data["future_field"] = 1
    (tmp_path / "chatbot.json").write_text(json.dumps(data))
    again = ChatbotSettings.load(tmp_path)
    assert again.format == settings.format and again.filters == {"min_words": 2} and again.extra == {"future_field": 1}


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path, plain_gpt2):
    """The same command under torchrun: 2 CPU processes, gloo backend, one saved chatbot."""
    data = write_jsonl(tmp_path / "d.jsonl", CHATTY * 8)
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "training.cli",
         "--base-model", plain_gpt2, "--data", data, "--output", str(out), "--max-steps", "3",
         "--no-test-perplexity", "--logging-steps", "1"],
        capture_output=True, text=True, env=env, timeout=300, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert load_chatbot(str(out)).is_dialogue_model
    assert json.loads((out / "metrics.json").read_text())["world_size"] == 2


def test_export_writes_a_compact_fp16_chatbot(tmp_path, tiny_chatbot):
    from safetensors import safe_open

    from training.export import main as export_main

    target = tmp_path / "compact"
    assert export_main([tiny_chatbot, str(target)]) == 0
    with safe_open(str(target / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    assert not list(target.glob("*.bin"))
    loaded = load_chatbot(str(target))
    assert loaded.is_dialogue_model and next(loaded.model.parameters()).dtype == torch.float32


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--max-length", "4"], "--max-length must be >= 8"),
        (["--vocab-size", "100"], "--vocab-size must be >= 300"),
        (["--scheduler", "cosin"], "unknown --scheduler 'cosin'"),
        (["--warmup-ratio", "1.5"], "--warmup-ratio"),
    ],
)
def test_more_impossible_settings(argv, message, tmp_path):
    with pytest.raises(SettingsError, match=message):
        parse_args([*argv, "--output", str(tmp_path)])


def test_resume_skips_a_checkpoint_whose_save_was_interrupted(tmp_path):
    from training.train import last_complete_checkpoint

    for step, complete in ((3, True), (6, True), (9, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-6")
    assert last_complete_checkpoint(tmp_path / "missing") is None


@pytest.mark.slow
def test_broken_weights_are_a_one_line_error(tmp_path, tiny_chatbot):
    import shutil

    from chatbot.cli import main

    broken = tmp_path / "broken"
    shutil.copytree(tiny_chatbot, broken)
    (broken / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    assert main(["train", "--init-from", str(broken), "--data", "chitchat", "--output", str(tmp_path / "o")]) == 2
