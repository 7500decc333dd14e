"""Few-shot prompting for plain causal LMs: example exchanges placed before the conversation."""

from __future__ import annotations

import json
import shutil

import gradio as gr
import pytest

from chatbot.conversation import Chatbot, load_examples
from chatbot.errors import ChatbotError
from chatbot.format import DialogueFormat, build_plain_inputs
from chatbot.sampling import PRESETS

EOS = 0
FAST = PRESETS["greedy"].replace(max_new_tokens=8)


def test_examples_come_first_in_order_in_the_plain_layout():
    examples = [[[1, 2], [3]], [[4], [5, 6]]]
    built = build_plain_inputs([[7], [8, 9]], EOS, DialogueFormat(max_length=64), examples=examples)
    assert built.input_ids == [1, 2, 0, 3, 0, 4, 0, 5, 6, 0, 7, 0, 8, 9, 0]
    assert (built.kept_utterances, built.truncated) == (2, False)  # the examples' turns are not the history's


def test_without_examples_the_plain_prompt_is_unchanged():
    fmt = DialogueFormat(max_history=2, max_length=8)
    history = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
    assert build_plain_inputs(history, EOS, fmt, reserve=2) == build_plain_inputs(history, EOS, fmt, 2, examples=[])
    built = build_plain_inputs(history, EOS, fmt, reserve=2)
    assert built.input_ids == [6, 7, 8, 9, 0]  # [4, 5] did not fit in 6
    assert (built.kept_utterances, built.truncated) == (1, True)


def test_history_is_trimmed_first_then_the_oldest_examples_are_dropped():
    fmt = DialogueFormat(max_length=12)
    examples = [[[1, 1, 1]], [[2, 2]], [[3]]]  # blocks of 4, 3 and 2 tokens with their end-of-text
    # the history takes 6 of the 10 tokens (12 minus 2 reserved): of the 4 left, only the newest example (2) fits
    ids = build_plain_inputs([[7, 7], [8, 8]], EOS, fmt, reserve=2, examples=examples).input_ids
    assert ids == [3, 0, 7, 7, 0, 8, 8, 0]
    ids = build_plain_inputs([[8, 8]], EOS, fmt, reserve=2, examples=examples).input_ids  # 3 tokens: 7 left, 2 + 3 fit
    assert ids == [2, 2, 0, 3, 0, 8, 8, 0]
    # a history that fills the budget leaves no room for any example
    assert build_plain_inputs([[9] * 20], EOS, fmt, reserve=2, examples=examples).input_ids == [9] * 9 + [0]


def test_load_examples_reads_turns_and_explains_an_empty_file(tmp_path):
    path = tmp_path / "examples.jsonl"
    path.write_text('{"turns": ["hi", "hello!"]}\n\n{"turns": ["where are you from?", "ohio."]}\n', encoding="utf-8")
    assert load_examples(path) == [["hi", "hello!"], ["where are you from?", "ohio."]]
    path.write_text('{"turns": []}\n', encoding="utf-8")
    with pytest.raises(ChatbotError, match='no example exchanges; write one {"turns": \\[...\\]} per line'):
        load_examples(path)


@pytest.fixture
def plain_lm(tiny_chatbot, tmp_path):
    folder = shutil.copytree(tiny_chatbot, tmp_path / "plain")
    (folder / "chatbot.json").unlink()  # no chatbot settings: a plain causal LM, turns joined by end-of-text
    return folder


def spy_on_generate(bot) -> list[list[int]]:
    """Record the prompt rows the model is given."""
    seen: list[list[int]] = []
    generate = bot.model.generate

    def recording(*args, **kwargs):
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        seen.extend(row[m.bool()].tolist() for row, m in zip(ids, mask, strict=True))
        return generate(*args, **kwargs)

    bot.model.generate = recording
    return seen


def test_a_tiny_plain_lm_sees_the_examples_in_order_within_its_window(plain_lm):
    examples = [["do you have any pets?", "a dog."], ["what is your favorite food?", "pizza."]]
    bot = Chatbot.load(plain_lm, sampling=FAST, examples=examples)
    assert not bot.dialogue
    seen = spy_on_generate(bot)
    bot.generate_reply(["hi, how are you?"])
    eos = bot.tokenizer.eos_token_id
    turns = bot.tokenizer.decode(seen[0]).split(bot.tokenizer.decode([eos]))
    assert turns == [*examples[0], *examples[1], "hi, how are you?", ""]
    assert len(seen[0]) + FAST.max_new_tokens <= bot.format.max_length


def test_examples_beyond_the_window_drop_the_oldest(plain_lm):
    many = [[f"example number {i} is about pizza and hiking?", f"reply {i}."] for i in range(40)]
    bot = Chatbot.load(plain_lm, sampling=FAST, examples=many)
    prompt = bot.build_prompt(["where are you from?"], settings=FAST).input_ids
    window = bot.format.max_length - FAST.max_new_tokens
    assert len(prompt) <= window
    text = bot.tokenizer.decode(prompt)
    assert "reply 39." in text and "example number 0 " not in text  # the newest kept, the oldest dropped
    shown = [i for i in range(40) if f"reply {i}." in text]
    assert shown == list(range(shown[0], 40))  # a contiguous run of the newest, in order
    assert text.endswith("where are you from?" + bot.tokenizer.decode([bot.tokenizer.eos_token_id]))


def test_a_dialogue_model_ignores_examples_with_a_warning(tiny_chatbot, caplog):
    bot = Chatbot.load(tiny_chatbot, sampling=FAST, examples=[["hi", "hello"]])
    assert bot.examples == [] and "few-shot examples are for plain causal LMs; ignored" in caplog.text


def test_chat_cli_takes_examples_for_a_plain_lm(plain_lm, tmp_path, capsys):
    from chatbot.chat import main

    path = tmp_path / "examples.jsonl"
    path.write_text(json.dumps({"turns": ["hi", "hello!"]}) + "\n", encoding="utf-8")
    assert main(["--model", str(plain_lm), "--examples", str(path), "--once", "hi", "--preset", "greedy"]) == 0
    assert capsys.readouterr().out.strip()


def test_the_apps_persona_box_holds_a_plain_lms_examples(plain_lm, tiny_chatbot, tmp_path, fake):
    from chatbot.app.chat_app import ChatApp
    from chatbot.app.sessions import EXAMPLES_BOX, PERSONA_BOX, AppConfig

    app = ChatApp(AppConfig(model=str(plain_lm), data_dir=tmp_path / "data"))
    session = app.new_session()
    assert app.chat.side_box(session)["label"] == EXAMPLES_BOX["label"]
    generator = fake([("i am from ohio.", -0.2), ("ohio.", -0.4)])
    box = "do you have any pets?\na dog.\n\n\nwhat is your favorite food?\npizza.\n"  # two exchanges
    panel = {"preset": "top-p", "max_new_tokens": 8, "num_candidates": 2, "reranker": "logprob"}
    list(app.chat.send(session, "hi, how are you?", box, panel))
    assert session.chat.turns == ["hi, how are you?", "i am from ohio."] and session.chat.persona == []
    tokenizer = app.registry.get(session.model).tokenizer
    prompt = tokenizer.decode(generator.calls[0]["prompts"][0])
    assert prompt.split(tokenizer.decode([tokenizer.eos_token_id])) == [
        "do you have any pets?", "a dog.", "what is your favorite food?", "pizza.", "hi, how are you?", ""
    ]  # fmt: skip
    # a dialogue model's box is its persona again, and its text is read as persona facts
    session.model = tiny_chatbot
    assert app.chat.side_box(session) == gr.update(**PERSONA_BOX)
    list(app.chat.send(session, "where are you from?", "i love hiking.\ni have a dog.", panel))
    assert session.chat.persona == ["i love hiking.", "i have a dog."] and session.chat.examples is None


def test_the_ab_tabs_persona_box_holds_a_plain_lms_examples_too(plain_lm, tmp_path, fake):
    from chatbot.app.chat_app import ChatApp
    from chatbot.app.sessions import EXAMPLES_BOX, AppConfig

    app = ChatApp(AppConfig(model=str(plain_lm), data_dir=tmp_path / "data"))
    session = app.new_session()
    assert app.ab.side_box(session)["label"] == EXAMPLES_BOX["label"]
    generator = fake([("i am from ohio.", -0.2), ("ohio.", -0.4)])
    box = "do you have any pets?\na dog.\n"
    panel = {"preset": "top-p", "max_new_tokens": 8, "num_candidates": 2, "reranker": "logprob"}
    list(app.ab.send(session, "hi, how are you?", box, True, "", panel, panel))
    tokenizer = app.registry.get(session.model).tokenizer
    end = tokenizer.decode([tokenizer.eos_token_id])
    for call in generator.calls:  # both sides' prompts start with the example exchange
        assert tokenizer.decode(call["prompts"][0]).split(end) == ["do you have any pets?", "a dog.", "hi, how are you?", ""]
    assert len(generator.calls) == 2
