"""Our logits processors on hand-computed distributions, the sampler order, and generate with a tiny GPT-2."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import TopPLogitsWarper

from chatbot.errors import SettingsError
from chatbot.processors import (
    FIELD_STAGE,
    NEUTRAL_GENERATE_KWARGS,
    ORDER,
    DRYProcessor,
    DynamicTemperatureProcessor,
    KeywordBoostProcessor,
    MirostatV2Processor,
    PresenceFrequencyPenaltyProcessor,
    XTCProcessor,
    build_processor_list,
    keyword_token_ids,
    parse_sequence_breakers,
    processor_order,
    sequence_breaker_ids,
)

INF = float("inf")


def logits_of(*probs: float) -> torch.Tensor:
    """(1, V) logits whose softmax is ``probs``."""
    return torch.tensor([probs]).log()


# -- presence / frequency --------------------------------------------------------------------------------


def test_presence_and_frequency_count_only_reply_tokens_of_left_padded_rows():
    # rows are [pad, pad | prompt | reply]; the padded prompt is 4 wide, the reply is the last 3 tokens
    input_ids = torch.tensor([[0, 0, 5, 1, 1, 2, 1], [0, 3, 4, 5, 3, 3, 3]])
    scores = torch.zeros(2, 6)
    out = PresenceFrequencyPenaltyProcessor(0.5, 0.25, prompt_length=4)(input_ids, scores)
    # row 0: token 1 twice -> 0.5 + 2 * 0.25; token 2 once -> 0.5 + 0.25; token 5 (prompt only) untouched
    # row 1: token 3 three times -> 0.5 + 0.75; tokens 4, 5 appear only in the prompt
    expected = torch.tensor([[0, -1.0, -0.75, 0, 0, 0], [0, 0, 0, -1.25, 0, 0]])
    torch.testing.assert_close(out, expected)


def test_penalties_find_the_reply_start_themselves_and_count_the_context_with_prompt_length_0():
    prompt = torch.tensor([[5, 1]])
    auto = PresenceFrequencyPenaltyProcessor(0.0, 1.0)
    torch.testing.assert_close(auto(prompt, torch.zeros(1, 6)), torch.zeros(1, 6))  # nothing generated yet
    step = torch.tensor([[5, 1, 1]])
    torch.testing.assert_close(auto(step, torch.zeros(1, 6)), torch.tensor([[0, -1.0, 0, 0, 0, 0]]))
    whole = PresenceFrequencyPenaltyProcessor(0.0, 1.0, prompt_length=0)
    torch.testing.assert_close(whole(step, torch.zeros(1, 6)), torch.tensor([[0, -2.0, 0, 0, 0, -1.0]]))


# -- DRY -------------------------------------------------------------------------------------------------


def test_dry_penalises_the_token_that_extends_a_repeat():
    # "1 2 3 4 1 2 3": the context ends with "1 2 3", which was followed by 4; the match is 3 long
    input_ids = torch.tensor([[1, 2, 3, 4, 1, 2, 3]])
    out = DRYProcessor(0.8, 1.75, allowed_length=2)(input_ids, torch.zeros(1, 6))
    expected = torch.zeros(1, 6)
    expected[0, 4] = -0.8 * 1.75 ** (3 - 2)  # -1.4
    torch.testing.assert_close(out, expected)


def test_dry_sequence_breaker_stops_the_match_and_allowed_length_spares_short_repeats():
    input_ids = torch.tensor([[1, 2, 3, 4, 1, 2, 3]])
    # 2 is a breaker: the match "3" cannot extend back over it, 1 < allowed_length
    broken = DRYProcessor(0.8, 1.75, allowed_length=2, sequence_breakers=[2])(input_ids, torch.zeros(1, 6))
    torch.testing.assert_close(broken, torch.zeros(1, 6))
    spared = DRYProcessor(0.8, 1.75, allowed_length=4)(input_ids, torch.zeros(1, 6))
    torch.testing.assert_close(spared, torch.zeros(1, 6))
    # the context ends with 2; its earlier occurrences were followed by 3 (after "1 2": match 2) and 9 (match 1)
    ids = torch.tensor([[1, 2, 3, 2, 9, 1, 2]])
    out = DRYProcessor(1.0, 2.0, allowed_length=1)(ids, torch.zeros(1, 10))
    expected = torch.zeros(1, 10)
    expected[0, 3] = -(2.0 ** (2 - 1))  # "1 2" then 3
    expected[0, 9] = -(2.0 ** (1 - 1))  # "2" then 9
    torch.testing.assert_close(out, expected)


class CharTokenizer:
    """One token per character, its code point as the id."""

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]


def test_sequence_breakers_parse_webui_syntax_and_map_through_the_tokenizer():
    assert parse_sequence_breakers('"\\n", ":", "\\"", "*"') == ["\n", ":", '"', "*"]
    assert parse_sequence_breakers('["a"]') == ["a"]
    with pytest.raises(SettingsError, match="dry_sequence_breakers"):
        parse_sequence_breakers("\\n, :")
    assert sequence_breaker_ids(CharTokenizer(), ["\n", ":"]) == {10, 58}


def test_build_processor_list_maps_text_fields_through_the_tokenizer():
    dry, keywords = build_processor_list({"dry_multiplier": 0.8, "keywords": "ab, c"}, tokenizer=CharTokenizer())
    assert dry.sequence_breakers == {10, 58, 34, 42}  # text-generation-webui's defaults: newline : " *
    assert keywords.keywords == [[(32, 97, 98), (97, 98)], [(32, 99), (99,)]]


# -- XTC -------------------------------------------------------------------------------------------------


def test_xtc_removes_all_tokens_above_threshold_but_the_least_likely():
    scores = logits_of(0.5, 0.3, 0.15, 0.05)
    out = XTCProcessor(0.1, 1.0, seed=0)(None, scores)
    expected = torch.tensor([[-INF, -INF, math.log(0.15), math.log(0.05)]])
    torch.testing.assert_close(out, expected)
    # probability 0: never acts; a protected token (end of turn) that would go leaves the row as it is
    torch.testing.assert_close(XTCProcessor(0.1, 0.0, seed=0)(None, scores), scores)
    torch.testing.assert_close(XTCProcessor(0.1, 1.0, seed=0, protected_token_ids=[1])(None, scores), scores)


def test_xtc_is_reproducible_with_a_seed_and_draws_a_coin_per_row():
    scores = logits_of(0.5, 0.3, 0.15, 0.05).expand(32, 4)

    def acted(seed):
        processor = XTCProcessor(0.1, 0.5, seed=seed)
        return [tuple(torch.isinf(processor(None, scores))[:, 0].tolist()) for _ in range(3)]

    first = acted(7)
    assert first == acted(7)
    assert first != acted(8)
    rows = first[0]
    assert 0 < sum(rows) < 32  # per-row coins: some rows acted, some did not
    generator = torch.Generator().manual_seed(7)
    assert tuple(torch.isinf(XTCProcessor(0.1, 0.5, generator=generator)(None, scores))[:, 0].tolist()) == rows


# -- dynamic temperature ---------------------------------------------------------------------------------


def test_dynamic_temperature_scales_each_row_by_its_normalised_entropy():
    scores = torch.tensor([[math.log(0.5), math.log(0.25), math.log(0.25), -INF], [1.0, 1.0, 1.0, 1.0]])
    processor = DynamicTemperatureProcessor(0.5, 1.5, exponent=1.0)
    # row 0: H = 0.5 ln2 + 2 * 0.25 ln4 = 1.5 ln2 over 3 valid tokens, H_max = ln3
    t0 = 0.5 + 1.0 * (1.5 * math.log(2) / math.log(3))
    # row 1: uniform over 4, H = H_max -> the high temperature
    t1 = 1.5
    torch.testing.assert_close(processor.temperatures(scores), torch.tensor([t0, t1]))
    torch.testing.assert_close(processor(None, scores), torch.stack([scores[0] / t0, scores[1] / t1]))
    squared = DynamicTemperatureProcessor(0.5, 1.5, exponent=2.0).temperatures(scores[:1])
    torch.testing.assert_close(squared, torch.tensor([0.5 + (1.5 * math.log(2) / math.log(3)) ** 2]))


# -- mirostat --------------------------------------------------------------------------------------------


def test_mirostat_truncates_by_surprise_and_updates_mu_per_row_from_the_sampled_token():
    # surprises in bits: 1, 2, 3, 3
    scores = logits_of(0.5, 0.25, 0.125, 0.125).expand(2, 4)
    processor = MirostatV2Processor(tau=1.0, eta=0.1)
    prompt = torch.tensor([[9, 9], [9, 9]])
    out = processor(prompt, scores)
    torch.testing.assert_close(processor.mu, torch.tensor([2.0, 2.0]))  # mu starts at 2 * tau
    assert torch.isinf(out[:, 2:]).all() and torch.isfinite(out[:, :2]).all()  # surprise <= 2 bits kept
    # row 0 sampled token 0 (p 2/3 after renormalising), row 1 token 1 (p 1/3)
    step = torch.tensor([[9, 9, 0], [9, 9, 1]])
    out = processor(step, scores)
    mu0 = 2 - 0.1 * (math.log2(3 / 2) - 1)  # 2.0415
    mu1 = 2 - 0.1 * (math.log2(3) - 1)  # 1.9415
    torch.testing.assert_close(processor.mu, torch.tensor([mu0, mu1]))
    assert torch.isfinite(out[0, :2]).all() and torch.isinf(out[0, 2:]).all()
    assert torch.isfinite(out[1, 0]) and torch.isinf(out[1, 1:]).all()  # 2 bits > mu1: only token 0 left
    # a new reply (not one token longer than the last step) starts from 2 * tau again
    processor(torch.tensor([[4], [4]]), scores)
    torch.testing.assert_close(processor.mu, torch.tensor([2.0, 2.0]))


# -- keywords --------------------------------------------------------------------------------------------


def test_keyword_boost_follows_a_multi_token_word_and_stops_once_it_is_written():
    # "pizza" is tokens [3, 4] mid-sentence and token 6 at the start of a reply
    processor = KeywordBoostProcessor([[[3, 4], [6]]], strength=2.0, prompt_length=2)
    zeros = torch.zeros(1, 8)

    def boost(*reply):
        return processor(torch.tensor([[3, 4, *reply]]), zeros)[0].tolist()  # the prompt already says "pizza"

    assert boost() == [0, 0, 0, 2.0, 0, 0, 2.0, 0]  # the first token of each form
    assert boost(1) == [0, 0, 0, 2.0, 0, 0, 2.0, 0]
    assert boost(1, 3) == [0, 0, 0, 0, 2.0, 0, 0, 0]  # its prefix was written: only the continuation
    assert boost(1, 3, 4) == [0] * 8  # written: no boost
    assert boost(1, 3, 4, 5) == [0] * 8


def test_keyword_boost_adds_per_keyword_and_bans_nothing():
    processor = KeywordBoostProcessor([[[1]], [[1, 2]], [[5]]], strength=1.5)
    scores = torch.tensor([[0.0, 1.0, -1.0, 2.0, 0.5, -3.0]])
    out = processor(torch.tensor([[0, 0]]), scores)
    torch.testing.assert_close(out, scores + torch.tensor([[0, 3.0, 0, 0, 0, 1.5]]))


def test_keyword_token_ids_encodes_with_and_without_a_leading_space():
    class WordTokenizer:
        vocab = {" pizza": [3, 4], "pizza": [6], " cat": [7]}

        def encode(self, text, add_special_tokens=False):
            return self.vocab.get(text, [7])

    assert keyword_token_ids(WordTokenizer(), " pizza ") == [[3, 4], [6]]
    assert keyword_token_ids(WordTokenizer(), "cat") == [[7]]  # both forms tokenise alike: one sequence


# -- order and the whole list ----------------------------------------------------------------------------


def test_xtc_before_or_after_top_p_differ_and_the_list_puts_xtc_after_top_p():
    scores = logits_of(0.5, 0.3, 0.15, 0.05)
    top_p, xtc = TopPLogitsWarper(0.7), XTCProcessor(0.1, 1.0, seed=0)
    # top-p keeps {0.5, 0.3}; XTC then drops 0.5 (both >= 0.1): token 1 alone
    after = xtc(None, top_p(None, scores))
    # XTC first keeps {0.15, 0.05} -> {0.75, 0.25}; top-p 0.7 then drops 0.25: token 2 alone
    before = top_p(None, xtc(None, scores))
    assert torch.isfinite(after[0]).tolist() == [False, True, False, False]
    assert torch.isfinite(before[0]).tolist() == [False, False, True, False]
    processors = build_processor_list({"xtc_probability": 1.0, "xtc_threshold": 0.1, "top_p": 0.7}, seed=0)
    assert [type(p) for p in processors] == [TopPLogitsWarper, XTCProcessor]
    torch.testing.assert_close(processors(None, scores), after)


def test_build_processor_list_follows_order_skips_neutral_values_and_moves_temperature_last():
    spec = {
        "temperature": 0.7,
        "top_k": 20,
        "min_p": 0.05,
        "repetition_penalty": 1.15,
        "presence_penalty": 0.3,
        "dry_multiplier": 0.8,
        "dry_sequence_breakers": [5],
        "dynatemp_low": 0.5,
        "dynatemp_high": 1.5,
        "mirostat_tau": 5.0,
        "xtc_probability": 0.5,
        "keywords": [[1, 2]],
        "strategy": "sample",  # not a sampler field: ignored
    }
    names = [type(p).__name__ for p in build_processor_list(spec)]
    assert names == [
        "RepetitionPenaltyLogitsProcessor",
        "PresenceFrequencyPenaltyProcessor",
        "DRYProcessor",
        "KeywordBoostProcessor",
        "TemperatureLogitsWarper",
        "DynamicTemperatureProcessor",
        "TopKLogitsWarper",
        "MinPLogitsWarper",
        "MirostatV2Processor",
        "XTCProcessor",
    ]
    last = [type(p).__name__ for p in build_processor_list(spec | {"temperature_last": True})]
    assert last[-2:] == ["TemperatureLogitsWarper", "DynamicTemperatureProcessor"]
    assert processor_order(True)[-2:] == ("temperature", "dynamic_temperature")
    neutral = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "typical_p": 1.0, "min_p": 0.0, "top_h": None}
    neutral |= {"repetition_penalty": 1.0, "presence_penalty": 0, "dry_multiplier": 0, "xtc_probability": 0}
    neutral |= {"dynatemp_low": 1, "dynatemp_high": 1, "mirostat_tau": 0, "keywords": ""}
    assert len(build_processor_list(neutral)) == 0
    assert (
        len(
            build_processor_list(
                {
                    "mirostat_mode": 0,
                    "mirostat_tau": 5,
                    "dynamic_temperature": False,
                    "dynatemp_low": 0.5,
                    "dynatemp_high": 2,
                }
            )
        )
        == 0
    )
    assert set(FIELD_STAGE.values()) == set(ORDER)


def test_build_processor_list_names_the_setting_and_the_fix():
    with pytest.raises(SettingsError, match="tokenizer="):
        build_processor_list({"dry_multiplier": 0.8})  # default breakers are text
    with pytest.raises(SettingsError, match="keywords holds text"):
        build_processor_list({"keywords": "pizza"})
    with pytest.raises(SettingsError, match="temperature=0"):
        build_processor_list({"temperature": 0})
    with pytest.raises(SettingsError, match="mirostat_mode=1"):
        build_processor_list({"mirostat_mode": 1, "mirostat_tau": 5})
    with pytest.raises(SettingsError, match="dynatemp_high"):
        build_processor_list({"dynatemp_low": 2.0, "dynatemp_high": 1.0})


# -- generate with a tiny GPT-2 --------------------------------------------------------------------------

SPECS = {
    "repetition": {"repetition_penalty": 1.3, "temperature": 0.9, "top_k": 10, "top_p": 0.9, "min_p": 0.05},
    "presence_frequency": {"presence_penalty": 0.5, "frequency_penalty": 0.5},
    "dry": {"dry_multiplier": 0.8, "dry_base": 1.75, "dry_allowed_length": 2, "dry_sequence_breakers": [3]},
    "typical_eta_epsilon_top_h": {"typical_p": 0.9, "eta_cutoff": 0.001, "epsilon_cutoff": 0.001, "top_h": 0.5},
    "dynatemp": {"dynatemp_low": 0.5, "dynatemp_high": 1.5, "dynatemp_exponent": 1.0},
    "mirostat": {"mirostat_tau": 3.0, "mirostat_eta": 0.1},
    "xtc": {"xtc_threshold": 0.05, "xtc_probability": 0.5, "temperature": 1.5, "temperature_last": True},
}


@pytest.fixture(scope="module")
def tiny_gpt2():
    from training.model import new_gpt2

    model = new_gpt2(vocab_size=50, n_layer=1, n_embd=16, context=1024, seed=0).eval()
    model.generation_config.pad_token_id = 0
    return model


def _generate(model, spec, seed, **build):
    torch.manual_seed(seed)
    prompt = torch.tensor([[0, 0, 7, 8, 9], [11, 12, 13, 14, 15]])  # row 0 left-padded
    out = model.generate(
        input_ids=prompt,
        attention_mask=(prompt != 0).long(),
        do_sample=True,
        max_new_tokens=6,
        min_new_tokens=6,
        logits_processor=build_processor_list(spec, seed=seed, end_token_ids=[49], **build),
        **NEUTRAL_GENERATE_KWARGS,
    )
    return out[:, prompt.shape[1] :]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_generate_runs_with_each_processor_and_a_seed_repeats_the_reply(tiny_gpt2, name):
    reply = _generate(tiny_gpt2, SPECS[name], seed=3)
    assert reply.shape == (2, 6)
    assert torch.equal(reply, _generate(tiny_gpt2, SPECS[name], seed=3))


def test_generate_with_a_strong_keyword_boost_writes_the_keyword(tiny_gpt2):
    reply = _generate(tiny_gpt2, {"keywords": [[21, 22, 23]], "keyword_strength": 50.0}, seed=0)
    for row in reply.tolist():
        assert row[:3] == [21, 22, 23]  # boosted token by token, then released
        assert row[3:] != [21, 22, 23]


def test_neutral_generate_kwargs_add_no_warper_of_transformers(tiny_gpt2):
    tiny_gpt2.generation_config.top_k = 50  # what a model's own generation config may hold
    prompt = torch.tensor([[7, 8, 9]])
    out = tiny_gpt2.generate(
        input_ids=prompt,
        do_sample=True,
        max_new_tokens=3,
        output_scores=True,
        output_logits=True,
        return_dict_in_generate=True,
        **NEUTRAL_GENERATE_KWARGS,
    )
    # processed scores equal the raw logits: transformers warped nothing
    assert all(torch.equal(s, raw) for s, raw in zip(out.scores, out.logits, strict=True))
