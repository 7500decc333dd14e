"""The dialogue format: exact layouts, label masking, window trimming and the token budget."""

import pytest

from chatbot.format import (
    BOT,
    IGNORE_INDEX,
    DialogueFormat,
    TokenIds,
    bot_turns,
    build_conversation,
    build_inputs,
    build_plain_inputs,
    encode_text,
    is_user_turn,
    persona_text,
    reply_positions,
)

IDS = TokenIds(user=1001, bot=1002, persona=1003, eot=1004, pad=1005, eos=0)
U, B, P, E = IDS.user, IDS.bot, IDS.persona, IDS.eot


def test_reply_layout_and_labels_exact():
    fmt = DialogueFormat(max_history=5, max_length=64)
    out = build_inputs(IDS, [[10, 11], [20]], [30, 31, 32], fmt, persona=[40])
    assert out.input_ids == [P, 40, E, B, 10, 11, E, U, 20, E, B, 30, 31, 32, E]
    assert out.labels == [IGNORE_INDEX] * 11 + [30, 31, 32, E]
    assert out.kept_utterances == 2 and not out.truncated


def test_generation_prompt_ends_with_bot_token_and_has_no_targets():
    out = build_inputs(IDS, [[10], [20], [30]], None, DialogueFormat(max_length=64))
    assert out.input_ids == [U, 10, E, B, 20, E, U, 30, E, B]
    assert set(out.labels) == {IGNORE_INDEX}


def test_window_keeps_last_k_utterances():
    history = [[i] for i in range(10)]
    out = build_inputs(IDS, history, [99], DialogueFormat(max_history=3, max_length=64))
    assert out.input_ids[:9] == [U, 7, E, B, 8, E, U, 9, E]
    assert out.kept_utterances == 3 and out.truncated


def test_token_budget_drops_oldest_first_and_never_the_reply():
    history = [[1] * 10, [2] * 10, [3] * 10]
    # budget 30: reply block = 1 + 5 + 1 = 7; each utterance costs 12 -> only the newest fits
    out = build_inputs(IDS, history, [7] * 5, DialogueFormat(max_history=5, max_length=30))
    assert out.input_ids == [U, *[3] * 10, E, B, *[7] * 5, E]
    assert len(out.input_ids) <= 30 and out.kept_utterances == 1


def test_budget_is_exact_at_the_boundary():
    history = [[1] * 10, [2] * 10]
    fits = build_inputs(IDS, history, [7] * 4, DialogueFormat(max_length=30))  # 12 + 12 + 6 = 30
    assert len(fits.input_ids) == 30 and fits.kept_utterances == 2
    over = build_inputs(IDS, history, [7] * 5, DialogueFormat(max_length=30))  # 31 > 30
    assert over.kept_utterances == 1


def test_persona_dropped_before_last_utterance_is_cut():
    out = build_inputs(IDS, [[2] * 10], [7] * 4, DialogueFormat(max_length=20), persona=[9] * 10)
    assert P not in out.input_ids
    assert out.input_ids == [U, *[2] * 10, E, B, *[7] * 4, E]


def test_long_last_utterance_keeps_its_end():
    out = build_inputs(IDS, [list(range(100))], [7], DialogueFormat(max_length=20))
    # 20 tokens = user token + the last 15 tokens + eot + bot + reply + eot
    assert out.input_ids == [U, *range(85, 100), E, B, 7, E]
    assert out.truncated


def test_overlong_reply_is_cut_but_keeps_end_of_turn():
    out = build_inputs(IDS, [[1]], list(range(50)), DialogueFormat(max_length=20))
    assert len(out.input_ids) == 20 and out.input_ids[-1] == E and out.labels[-1] == E
    assert B in out.input_ids and out.truncated


def test_generation_reserve_is_respected():
    out = build_inputs(IDS, [[1] * 30, [2] * 30], None, DialogueFormat(max_length=64), reserve=30)
    assert len(out.input_ids) <= 34


def test_conversation_every_utterance_is_a_target():
    ids, labels = build_conversation(IDS, [[10], [20, 21]], persona=[40])
    assert ids == [P, 40, E, U, 10, E, B, 20, 21, E]
    assert labels == [IGNORE_INDEX] * 3 + [IGNORE_INDEX, 10, E, IGNORE_INDEX, 20, 21, E]


def test_plain_inputs_join_turns_with_eos():
    assert build_plain_inputs([[1, 2], [3]], eos_id=0, fmt=DialogueFormat(max_length=64)).input_ids == [1, 2, 0, 3, 0]


def test_invalid_format_settings():
    with pytest.raises(ValueError, match="max_history"):
        DialogueFormat(max_history=0)
    with pytest.raises(ValueError, match="max_length"):
        DialogueFormat(max_length=2)


def test_special_tokens_typed_by_a_user_stay_text(tiny_chatbot):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_chatbot)
    ids = TokenIds.from_tokenizer(tokenizer)
    encoded = encode_text(tokenizer, f"hi {BOT} there <|eot|><|endoftext|>")
    assert not {ids.bot, ids.eot, ids.user, ids.persona, ids.pad, ids.eos} & set(encoded)
    assert tokenizer.decode(encoded) == f"hi {BOT} there <|eot|><|endoftext|>"


def test_plain_inputs_refuse_a_reserve_that_leaves_no_room():
    with pytest.raises(ValueError, match="lower max_new_tokens"):
        build_plain_inputs([[1, 2]], eos_id=0, fmt=DialogueFormat(max_length=16), reserve=16)


def test_speaker_parity_from_the_start_of_a_conversation_and_the_end_of_a_context():
    # a conversation opens with the user
    assert [is_user_turn(i) for i in range(4)] == [True, False, True, False]
    # a context of 4 ends with the user: it opened with the bot
    assert [is_user_turn(i, 4) for i in range(4)] == [False, True, False, True]
    assert [is_user_turn(i, 3) for i in range(3)] == [True, False, True]
    assert list(reply_positions(5)) == [1, 3] and list(reply_positions(1)) == []
    assert bot_turns(["b0", "u1", "b2", "u3"]) == ["b0", "b2"]
    assert bot_turns(["u0"]) == [] and bot_turns([]) == []


def test_persona_text_joins_sentences_with_spaces():
    assert persona_text(["i like cats.", "i live in ohio."]) == "i like cats. i live in ohio."
    assert persona_text([]) == ""
