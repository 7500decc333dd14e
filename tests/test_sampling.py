"""Sampling settings: field metadata on every surface, validation, identities (and old ones), presets, flags."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest

from chatbot.errors import SettingsError
from chatbot.sampling import (
    DEFAULT_PRESET,
    FIELD,
    FIELDS,
    GROUPS,
    NO_NEUTRAL,
    PRESET_DESCRIPTIONS,
    PRESETS,
    SEED_MAX,
    SamplingSettings,
    add_sampling_arguments,
    canonical_identity,
    differences,
    get_preset,
    load_presets,
    parse_assignment,
    preset_name,
    save_preset,
    save_presets,
    settings_from_args,
)

FIXTURES = Path(__file__).parent / "fixtures" / "sampling_v1"
V1_FIELDS = set(json.loads((FIXTURES / "identities.json").read_text())["identities"][0]["settings"])
ENABLERS = {
    "dynamic_temperature": True, "dry_multiplier": 0.8, "xtc_probability": 0.5, "mirostat_mode": 2,
    "keywords": ("zebra",), "reranker": "mix", "num_candidates": 4,
}  # fmt: skip


# -- an example value for any field, from its metadata alone ----------------------------------------------


def _numeric_example(spec, fraction: float):
    low = spec.ui_low if spec.ui_low is not None else spec.low
    high = spec.ui_high if spec.ui_high is not None else spec.high
    value = low + (high - low) * fraction
    return int(round(value)) if spec.kind == "int" else round(value, 4)


def example_values(spec) -> list:
    """Valid values of ``spec`` that are neither its default nor its neutral value."""
    if spec.kind == "bool":
        return [not spec.default]
    if spec.kind == "words":
        return [("zebra", "striped horse")]
    if spec.choices:
        return [c for c in spec.choices if c != spec.default]
    values = [_numeric_example(spec, f) for f in (0.37, 0.1, 0.61)]
    return [v for v in values if v not in (spec.default, spec.neutral)]


def example(spec, base: SamplingSettings | None = None) -> SamplingSettings:
    """``base`` (default: the default preset) with ``spec`` set to an example value that acts."""
    base = base or PRESETS[DEFAULT_PRESET]
    strategy = spec.strategies[-1] if spec.name != "strategy" else base.strategy
    context = {"strategy": strategy} | ({spec.enabled_by: ENABLERS[spec.enabled_by]} if spec.enabled_by else {})
    for value in example_values(spec):
        try:
            return base.adjust(**(context | {spec.name: value}))
        except SettingsError:
            continue  # e.g. dynatemp_low above dynatemp_high: try the next value
    raise AssertionError(f"no example value for {spec.name}")


def flag_argv(settings: SamplingSettings, base: SamplingSettings) -> list[str]:
    """The command line that turns ``base`` into ``settings``."""
    argv = []
    for name, (_, value) in differences(settings, base).items():
        spec = FIELD[name]
        if spec.kind == "bool":
            argv.append(spec.flag if value else "--no-" + spec.flag[2:])
        else:
            argv += [spec.flag, json.dumps(value)[1:-1] if spec.kind == "words" else str(value)]
    return argv


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_sampling_arguments(parser)
    return settings_from_args(parser.parse_args(argv))[0]


@pytest.fixture(scope="module")
def lm(tiny_chatbot):
    from chatbot.checkpoint import load_chatbot

    return load_chatbot(tiny_chatbot)


# -- one definition: every field on every surface -------------------------------------------------------


def test_every_field_reaches_every_surface(lm):
    from transformers import LogitsProcessorList

    from evaluation.pipeline import grid_specs, parse_grid

    parser = argparse.ArgumentParser()
    add_sampling_arguments(parser)
    options = {o for action in parser._actions for o in action.option_strings}
    base = PRESETS[DEFAULT_PRESET]
    for spec in FIELDS:
        settings = example(spec)
        value = getattr(settings, spec.name)
        # metadata the app's control builder reads
        assert spec.label and spec.help and spec.group in GROUPS, spec.name
        if spec.numeric and not spec.optional:
            assert spec.step and (spec.ui_low if spec.ui_low is not None else spec.low) is not None, spec.name
            assert (spec.ui_high if spec.ui_high is not None else spec.high) is not None, spec.name
        # identity and describe()
        assert spec.name in json.loads(settings.identity), spec.name
        assert spec.format(value) in settings.describe(), spec.name
        # flags, bool fields as --x/--no-x
        assert spec.flag in options and (spec.kind != "bool" or "--no-" + spec.flag[2:] in options), spec.name
        assert _parse(flag_argv(settings, base)) == settings, spec.name
        # validation names the field
        if spec.low is not None:
            with pytest.raises(SettingsError, match=spec.name):
                settings.replace(**{spec.name: spec.low - 1})
        # grid casts and labels
        if spec.numeric:
            point = grid_specs(parse_grid(f"{spec.name}={value}"), base.adjust(strategy=settings.strategy))[0]
            assert getattr(point.settings, spec.name) == value and point.name == spec.format(value), spec.name
        # the mapping to generate
        kwargs = settings.to_generation_kwargs(lm.tokenizer, end_token_ids=[lm.ids.eos])
        if spec.applied_by in ("generate", "warper") and spec.kwarg:
            assert spec.kwarg in kwargs, spec.name
        elif spec.applied_by == "processor":
            assert isinstance(kwargs["logits_processor"], LogitsProcessorList) and kwargs["logits_processor"], spec.name
        else:
            assert spec.name not in kwargs and "logits_processor" not in kwargs, spec.name


def test_ui_groups_follow_the_order_samplers_run_in():
    from chatbot.processors import FIELD_STAGE, ORDER

    group_rank = {g: i for i, g in enumerate(GROUPS)}
    staged = sorted(
        (ORDER.index(FIELD_STAGE[s.name]), group_rank[s.group], s.name) for s in FIELDS if s.name in FIELD_STAGE
    )
    ranks = [rank for _, rank, _ in staged]
    assert ranks == sorted(ranks), staged
    # every sampler field of ours has a stage in the processors' order
    assert {s.name for s in FIELDS if s.applied_by in ("warper", "processor")} <= set(FIELD_STAGE)


# -- validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": float("nan")}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"num_beams": 0}, "num_beams"),
        ({"strategy": "nucleus"}, "strategy"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"no_repeat_ngram_size": -2}, "no_repeat_ngram_size"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"min_new_tokens": 50, "max_new_tokens": 40}, "min_new_tokens"),
        ({"num_candidates": 0}, "num_candidates"),
        ({"strategy": "greedy", "num_candidates": 3}, "num_candidates"),
        ({"strategy": "beam", "num_beams": 2, "num_candidates": 3}, "num_candidates"),
        ({"seed": -1}, "seed"),
        ({"seed": 1180591620717411303424}, r"seed=1180591620717411303424 is invalid: must be in \[0, 9223372036854775807\]"),
        ({"top_k": 2.5}, "top_k"),
        ({"early_stopping": "yes"}, "early_stopping"),
        ({"length_penalty": float("inf")}, "length_penalty"),
        ({"min_p": 1.5}, "min_p"),
        ({"typical_p": 0.0}, "typical_p"),
        ({"epsilon_cutoff": 1.0}, "epsilon_cutoff"),
        ({"top_h": -0.1}, "top_h"),
        ({"presence_penalty": 3.0}, "presence_penalty"),
        ({"dry_base": 0.5}, "dry_base"),
        ({"dry_allowed_length": 0}, "dry_allowed_length"),
        ({"dry_sequence_breakers": ("\n", "")}, "dry_sequence_breakers"),
        ({"xtc_probability": 2.0}, "xtc_probability"),
        ({"mirostat_mode": 1}, r"mirostat_mode=1 is invalid: choose one of 0, 2"),
        ({"dynatemp_low": 2.0, "dynatemp_high": 1.0}, "dynatemp_high"),
        ({"avoid_words": "cat"}, "avoid_words"),
    ],
)
def test_impossible_values_raise_an_error_naming_the_setting(changes, named):
    with pytest.raises(SettingsError, match=named):
        SamplingSettings(**changes)


def test_error_messages_say_how_to_turn_a_field_off():
    with pytest.raises(SettingsError) as info:
        SamplingSettings(top_p=1.5)
    assert str(info.value) == "sampling setting top_p=1.5 is invalid: must be in (0, 1]; 1 turns it off"
    with pytest.raises(SettingsError, match="use strategy=greedy for argmax decoding"):
        SamplingSettings(temperature=0)


def test_replace_validates_and_rejects_unknown_fields():
    with pytest.raises(SettingsError, match="temperature"):
        PRESETS["top-p"].replace(temperature=0)
    with pytest.raises(SettingsError, match="temprature"):
        PRESETS["top-p"].replace(temprature=1.0)


def test_values_are_normalised():
    s = SamplingSettings(temperature=1, avoid_words=["a", "b"])
    assert s.temperature == 1.0 and isinstance(s.temperature, float) and s.avoid_words == ("a", "b")
    assert s == SamplingSettings(temperature=1.0, avoid_words=("a", "b"))


def test_the_strategy_implies_candidates_once_for_every_edit():
    top_p = PRESETS["top-p"]
    assert top_p.adjust(strategy="greedy").num_candidates == 1
    assert top_p.adjust(strategy="greedy", num_candidates=3).num_candidates == 1  # what greedy can give
    assert top_p.adjust(strategy="beam", num_beams=3).num_candidates == 3
    assert top_p.adjust(strategy="beam").num_candidates == 4  # 5 beams hold the preset's 4 candidates
    assert top_p.adjust(max_new_tokens=5, min_new_tokens=9).min_new_tokens == 5
    with pytest.raises(SettingsError, match="num_candidates"):
        top_p.replace(strategy="greedy")  # replace is strict: only edits are adjusted


# -- identities ---------------------------------------------------------------------------------------


def test_identity_holds_the_strategy_and_what_differs_from_neutral():
    assert json.loads(PRESETS["top-p"].identity) == {
        "strategy": "sample",
        "temperature": 0.7,
        "top_p": 0.9,
        "num_candidates": 4,
        "max_new_tokens": 40,
        "min_new_tokens": 1,
        "reranker": "coherence",  # the default preset's ranking is not the field's neutral logprob (#12)
    }
    greedy = {"strategy": "greedy", "num_candidates": 1, "max_new_tokens": 40, "min_new_tokens": 1}
    assert json.loads(PRESETS["greedy"].identity) == greedy
    # a field whose switch is off is left out however it is set; turned on, its settings count
    off = PRESETS["top-p"].replace(dry_base=3.0, xtc_threshold=0.3)
    assert off.identity == PRESETS["top-p"].identity
    on = json.loads(PRESETS["dry"].identity)
    assert on["dry_base"] == 1.75 and on["dry_sequence_breakers"] == ["\n", ":", '"', "*"]
    # greedy ignores sampling fields and the seed; sampling does not
    g1 = SamplingSettings(strategy="greedy", num_candidates=1, temperature=0.5, seed=1, min_p=0.2)
    assert g1.identity == PRESETS["greedy"].identity
    assert SamplingSettings(seed=1).identity != SamplingSettings(seed=2).identity
    assert SamplingSettings(temperature=0.7000000001).identity == SamplingSettings(temperature=0.7).identity
    # one candidate has nothing to rank: the reranker, and the weights it switches on, are no part of it
    one = PRESETS["top-p"].replace(num_candidates=1)
    assert "reranker" not in json.loads(one.identity)
    assert one.replace(reranker="mix", mix_coherence=5.0).identity == one.identity == PRESETS["top-p-stream"].identity
    assert len({p.identity for p in PRESETS.values()}) == len(PRESETS)


def test_fields_added_since_the_first_identities_change_no_identity():
    new = [s for s in FIELDS if s.name not in V1_FIELDS]
    assert {"min_p", "dry_multiplier", "xtc_probability", "mirostat_mode", "avoid_words"} <= {s.name for s in new}
    for spec in new:  # neutral by default, or switched off by default
        assert spec.is_neutral(spec.default) or not SamplingSettings().is_active(spec), spec.name
    assert set(json.loads(SamplingSettings().identity)) <= V1_FIELDS


def test_identities_stored_by_earlier_versions_canonicalise_to_todays():
    stored = json.loads((FIXTURES / "identities.json").read_text())["identities"]
    for row in stored:
        settings = SamplingSettings.from_dict(row["settings"])
        assert canonical_identity(row["identity"]) == settings.identity, row["name"]
        assert canonical_identity(row["ranking_identity"]) == settings.replace(seed=None).identity, row["name"]
        assert canonical_identity(settings.identity) == settings.identity  # stable when applied twice
    # settings that were distinct stay distinct, and equal ones stay equal
    old = {r["identity"] for r in stored}
    assert len({canonical_identity(i) for i in old}) == len(old)
    for bad, message in (("{not json", "not valid JSON"), ("[1]", "JSON object"), ('{"warmth": 1}', "warmth")):
        with pytest.raises(SettingsError, match=message):
            canonical_identity(bad)


def _replies_by_key(folder: Path) -> dict[tuple[str, tuple[str, ...]], str]:
    """{(setting key, context): reply} of a report, settings named by their canonical identity."""
    from evaluation.decoding import _setting_key

    settings = json.loads((folder / "metrics.json").read_text())["settings"]
    keys = {name: _setting_key(s["identity"]) for name, s in settings.items() if s.get("identity")}
    rows = [json.loads(line) for line in (folder / "replies.jsonl").read_text().splitlines()]
    return {
        (keys[n], tuple(r["context"])): reply["reply"] for r in rows for n, reply in r["replies"].items() if n in keys
    }


@pytest.mark.slow
def test_replay_of_a_report_written_before_neutral_identities(tiny_chatbot, tmp_path, monkeypatch):
    """--replay of the fixture report (written by the earlier code) finds every setting's replies again."""
    from evaluation.cli import main
    from evaluation.decoding import _setting_key

    monkeypatch.setenv("CHATBOT_CACHE_DIR", str(tmp_path / "cache"))
    flags = json.loads((FIXTURES / "report_argv.json").read_text())
    report = FIXTURES / "report"
    # the report predates top-p ranking by coherence: replay it with top-p as it was then (and its grid around it)
    then = tmp_path / "presets.json"
    then.write_text(json.dumps({"top-p-then": json.loads(PRESETS["top-p"].replace(reranker="logprob").to_json())}))
    flags += ["--presets-file", str(then), "--presets", "greedy,beam-5,top-p-then,diverse", "--reference", "top-p-then"]
    argv = ["--model", tiny_chatbot, "--data", str(FIXTURES / "dialogues.jsonl"), *flags, "--output", str(tmp_path)]
    assert main([*argv, "--replay", str(report)]) == 0
    old = _replies_by_key(report)
    assert _replies_by_key(tmp_path) == old and len({key for key, _ in old}) == 7
    # scores that depend on the replies and references only come out the same
    before = json.loads((report / "metrics.json").read_text())["settings"]
    after = {
        _setting_key(s["identity"]): s
        for s in json.loads((tmp_path / "metrics.json").read_text())["settings"].values()
        if s.get("identity")
    }
    for name, setting in before.items():
        if setting.get("identity"):
            again = after[_setting_key(setting["identity"])]["values"]
            for metric in ("bleu", "distinct_1", "distinct_2"):
                assert again[metric] == pytest.approx(setting["values"][metric]), (name, metric)


# -- the mapping to generate --------------------------------------------------------------------------


def test_generation_kwargs_per_strategy():
    from transformers import GenerationConfig

    greedy = PRESETS["greedy"].to_generation_kwargs()
    assert greedy["do_sample"] is False and greedy["num_beams"] == 1 and "temperature" not in greedy
    beam = PRESETS["beam-5"].to_generation_kwargs()
    assert beam["num_beams"] == 5 and beam["num_return_sequences"] == 5
    assert beam["length_penalty"] == 1.0 and beam["early_stopping"] is True and beam["do_sample"] is False
    kwargs = (
        PRESETS["top-p"]
        .replace(seed=4, top_k=20, repetition_penalty=1.2, no_repeat_ngram_size=3)
        .to_generation_kwargs()
    )
    assert kwargs == {
        "do_sample": True,
        "num_beams": 1,
        "num_return_sequences": 4,
        "max_new_tokens": 40,
        "min_new_tokens": 1,
        "repetition_penalty": 1.2,
        "no_repeat_ngram_size": 3,
        "temperature": 0.7,
        "top_k": 20,
        "top_p": 0.9,
        # neutral warpers are sent as transformers' "off", so a model's generation_config cannot add one
        "min_p": None,
        "typical_p": 1.0,
        "epsilon_cutoff": 0.0,
        "eta_cutoff": 0.0,
        "top_h": None,
    }
    # every kwarg is a GenerationConfig field, so transformers takes them as they are
    for settings in (PRESETS["top-p"], PRESETS["greedy"], PRESETS["beam-5"], PRESETS["min-p"]):
        GenerationConfig(**settings.to_generation_kwargs()).validate(strict=True)
    assert PRESETS["min-p"].to_generation_kwargs()["min_p"] == 0.05


def test_our_processors_get_the_whole_list_and_generate_stays_neutral(lm):
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    from chatbot.processors import NEUTRAL_GENERATE_KWARGS, XTCProcessor

    settings = PRESETS["top-p"].replace(xtc_probability=0.5)
    kwargs = settings.to_generation_kwargs(lm.tokenizer, end_token_ids=[lm.ids.eos])
    assert {k: kwargs[k] for k in NEUTRAL_GENERATE_KWARGS} == NEUTRAL_GENERATE_KWARGS
    assert [type(p) for p in kwargs["logits_processor"]] == [TemperatureLogitsWarper, TopPLogitsWarper, XTCProcessor]
    last = settings.replace(temperature_last=True).to_generation_kwargs(lm.tokenizer)["logits_processor"]
    assert [type(p) for p in last] == [TopPLogitsWarper, XTCProcessor, TemperatureLogitsWarper]
    # beam search keeps its penalties in the list and draws nothing
    beam = PRESETS["beam-5"].replace(presence_penalty=0.5).to_generation_kwargs(lm.tokenizer)
    assert beam["repetition_penalty"] == 1.0 and "temperature" not in beam and len(beam["logits_processor"]) == 1


def _reply(lm, settings):
    from chatbot.format import build_inputs, encode_text
    from chatbot.generation import generate_candidates, stop_token_ids

    history = [encode_text(lm.tokenizer, "do you have any pets?")]
    prompt = build_inputs(lm.ids, history, None, lm.format, reserve=32).input_ids
    stops = stop_token_ids(lm.tokenizer, dialogue=True)
    result = generate_candidates(lm.model, lm.tokenizer, [prompt], settings, stop_ids=stops, pad_id=lm.ids.pad)
    return result.candidates[0][0]


@pytest.mark.parametrize("name", sorted(set(FIELD) - V1_FIELDS - {"avoid_words"}))
def test_a_seeded_reply_for_each_new_field(lm, name):
    base = PRESETS["top-p-stream"].replace(max_new_tokens=8, min_new_tokens=8, seed=3)
    settings = example(FIELD[name], base)
    first, again = _reply(lm, settings), _reply(lm, settings)
    assert first.token_ids == again.token_ids and len(first.token_ids) == 8  # the same seed, the same reply


def test_avoid_words_keeps_their_tokens_out_of_the_reply(lm):
    from chatbot.sampling.generate import bad_words_ids

    base = PRESETS["top-p-stream"].replace(max_new_tokens=12, min_new_tokens=12, seed=5, temperature=1.5, top_p=1.0)
    tokens = _reply(lm, base).token_ids
    word = lm.tokenizer.decode(tokens[:1]).strip()
    banned = bad_words_ids(lm.tokenizer, [word])
    assert [tokens[0]] in banned  # the reply's first token is one way to write the word
    again = _reply(lm, base.replace(avoid_words=(word,))).token_ids
    assert len(again) == 12
    for seq in banned:
        assert all(list(again[i : i + len(seq)]) != seq for i in range(len(again))), (word, seq)


# -- presets --------------------------------------------------------------------------------------------


def test_required_presets_have_the_issue_values():
    assert DEFAULT_PRESET == "top-p"
    top_p = PRESETS["top-p"]
    assert (top_p.strategy, top_p.top_p, top_p.temperature) == ("sample", 0.9, 0.7)
    diverse = PRESETS["diverse"]
    assert (diverse.strategy, diverse.temperature, diverse.top_p) == ("sample", 1.2, 0.95)
    assert PRESETS["greedy"].strategy == "greedy" and PRESETS["greedy"].num_candidates == 1
    assert PRESETS["beam-5"].strategy == "beam" and PRESETS["beam-5"].num_beams == 5
    simple = PRESETS["simple-1"]
    assert (simple.temperature, simple.top_p, simple.top_k, simple.repetition_penalty) == (0.7, 0.9, 20, 1.15)
    assert PRESETS["min-p"].min_p == 0.05 and PRESETS["dry"].dry_multiplier == 0.8
    assert PRESETS["creative"].xtc_probability == 0.5
    for name in ("simple-1", "min-p", "dry", "creative"):
        assert "text-generation-webui" in PRESET_DESCRIPTIONS[name], name
    assert "Preset Arena" in PRESET_DESCRIPTIONS["simple-1"]


def test_json_round_trip_for_every_preset():
    for settings in PRESETS.values():
        assert SamplingSettings.from_json(settings.to_json()) == settings
    with pytest.raises(SettingsError, match="not valid JSON"):
        SamplingSettings.from_json("{temperature: 1")


def test_user_presets_file(tmp_path):
    path = tmp_path / "presets.json"
    path.write_text(
        json.dumps(
            {"warm": {"base": "top-p", "temperature": 0.9, "description": "mine"}, "short": {"max_new_tokens": 12}}
        )
    )
    presets = load_presets(path)
    assert set(PRESETS) < set(presets)
    assert presets["warm"] == PRESETS["top-p"].replace(temperature=0.9)
    assert presets["short"] == SamplingSettings(max_new_tokens=12)
    assert preset_name(presets["warm"], presets) == "warm"
    assert load_presets(save_presets(presets, tmp_path / "again.json")) == presets


def test_save_preset_adds_one_and_keeps_the_others(tmp_path):
    path = tmp_path / "data" / "presets.json"
    path.parent.mkdir()
    save_preset("mine", PRESETS["min-p"].replace(min_p=0.1), path)
    save_preset("other", PRESETS["dry"], path)
    presets = load_presets(path)
    assert presets["mine"].min_p == 0.1 and presets["other"] == PRESETS["dry"]
    with pytest.raises(SettingsError, match="built-in"):
        save_preset("top-p", PRESETS["dry"], path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"top-p": {"temperature": 1.0}}', "redefines a built-in"),
        ('{"x": {"temperature": 0}}', "preset 'x'.*temperature"),
        ('{"x": {"colour": 1}}', "colour"),
        ('{"x": {"base": "nope"}}', "unknown preset 'nope'"),
        ("[1, 2]", "JSON object"),
        ("{broken", "not valid JSON"),
    ],
)
def test_bad_presets_files_raise_settings_errors(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(SettingsError, match=message):
        load_presets(path)


def test_missing_and_non_utf8_presets_files(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_presets(tmp_path / "none.json")
    latin = tmp_path / "café.yaml"
    latin.write_bytes("# préréglage\nmin_p: 0.1\n".encode("latin-1"))
    with pytest.raises(SettingsError) as info:
        load_presets(latin)
    assert str(info.value) == f"{latin}: presets file is not UTF-8 text (byte 0xe9 at offset 4); save it as UTF-8"


WEBUI_YAML = """\
temperature: 1.3
min_p: 0.1
top_k: 40
epsilon_cutoff: 3
dry_multiplier: 0.8
dry_sequence_breakers: '"\\n", ":", "\\"", "*"'
temperature_last: true
tfs: 0.95
sampler_priority: "temperature\\ntop_k"
"""


def test_text_generation_webui_yaml_presets(tmp_path, caplog):
    path = tmp_path / "My Preset.yaml"
    path.write_text(WEBUI_YAML)
    with caplog.at_level(logging.WARNING, logger="chatbot.sampling"):
        presets = load_presets(path)
    mine = presets["My Preset"]  # named by the file stem
    assert (mine.temperature, mine.min_p, mine.top_k, mine.dry_multiplier) == (1.3, 0.1, 40, 0.8)
    assert mine.top_p == 1.0 and mine.repetition_penalty == 1.0  # webui's starting point is neutral, not top-p
    assert mine.epsilon_cutoff == pytest.approx(3e-4)  # webui shows it in units of 1e-4
    assert mine.dry_sequence_breakers == ("\n", ":", '"', "*") and mine.temperature_last is True
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "sampler_priority, tfs" in warnings[0] and str(path) in warnings[0]
    # webui's own simple-1.yaml is our built-in; a folder loads every file; do_sample: false is greedy
    (tmp_path / "simple-1.yaml").write_text("temperature: 0.7\ntop_p: 0.9\ntop_k: 20\nrepetition_penalty: 1.15\n")
    (tmp_path / "Deterministic.yaml").write_text("do_sample: false\ntop_k: 1\n")
    folder = load_presets(tmp_path)
    assert folder["simple-1"] == PRESETS["simple-1"] and folder["Deterministic"].strategy == "greedy"
    (tmp_path / "simple-1.yaml").write_text("temperature: 0.5\n")
    with pytest.raises(SettingsError, match="redefines a built-in"):
        load_presets(tmp_path)
    (tmp_path / "bad.yml").write_text("min_p: [1\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_presets(tmp_path / "bad.yml")


def test_get_preset_unknown_name_lists_the_choices():
    with pytest.raises(SettingsError, match="greedy, beam-5, top-p"):
        get_preset("nucleus")


# -- flags --------------------------------------------------------------------------------------------------


def test_flags_override_the_preset():
    assert _parse([]) == PRESETS["top-p"]
    assert _parse(["--preset", "diverse", "--seed", "5"]) == PRESETS["diverse"].replace(seed=5)
    assert _parse(["--temperature", "1.1", "--top-k", "30"]) == PRESETS["top-p"].replace(temperature=1.1, top_k=30)
    assert _parse(["--strategy", "greedy"]).num_candidates == 1
    assert _parse(["--strategy", "beam", "--num-beams", "3"]).num_candidates == 3
    assert _parse(["--preset", "beam-5", "--no-early-stopping"]).early_stopping is False
    assert _parse(["--min-p", "0.05", "--avoid-words", "cat, dog"]).avoid_words == ("cat", "dog")
    assert _parse(["--dry-sequence-breakers", '"\\n", ":"']).dry_sequence_breakers == ("\n", ":")
    with pytest.raises(SettingsError, match="top_p"):
        _parse(["--top-p", "2"])
    with pytest.raises(SettingsError, match="seed=1180591620717411303424 is invalid"):
        _parse(["--seed", "1180591620717411303424"])
    assert _parse(["--seed", str(SEED_MAX)]).seed == SEED_MAX


def test_bad_flag_values_are_one_argparse_error(capsys):
    with pytest.raises(SystemExit):
        _parse(["--top-k", "many"])
    assert "sampling setting top_k='many' is invalid: expected a whole number" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parse(["--mirostat-mode", "1"])
    assert "invalid choice" in capsys.readouterr().err


def test_parse_assignment_casts_by_the_field_type():
    assert parse_assignment("min-p=0.05") == ("min_p", 0.05)
    assert parse_assignment("early_stopping=no") == ("early_stopping", False)
    assert parse_assignment("seed=none") == ("seed", None)
    assert parse_assignment("avoid_words=cat,dog") == ("avoid_words", ("cat", "dog"))
    with pytest.raises(SettingsError, match="write field=value"):
        parse_assignment("warmth=1")


def test_every_field_with_a_neutral_value_has_one_its_range_allows():
    for spec in FIELDS:
        if spec.neutral is not NO_NEUTRAL:
            spec.check(spec.neutral)


# -- what a settings panel reads ------------------------------------------------------------------------


def test_panel_sections_hide_what_the_strategy_does_not_use():
    from chatbot.sampling.panel import sections

    everything = [s.name for _, specs in sections() for s in specs]
    assert sorted(everything) == sorted(FIELD)  # every field has a place
    greedy = {s.name for _, specs in sections("greedy") for s in specs}
    assert "min_p" not in greedy and "num_beams" not in greedy and "presence_penalty" in greedy
    labels = [label for label, _ in sections("sample")]
    assert labels.index(GROUPS["dry"]) < labels.index(GROUPS["truncation"]) < labels.index(GROUPS["xtc"])


def test_panel_values_are_cast_by_the_field_type():
    from chatbot.sampling.panel import control_value, settings_from_values

    values = {"temperature": "0.9", "top_k": 30.0, "seed": "", "avoid_words": "cat, dog", "early_stopping": "no"}
    s = settings_from_values(PRESETS["top-p"], values)
    assert (s.temperature, s.top_k, s.seed, s.avoid_words, s.early_stopping) == (0.9, 30, None, ("cat", "dog"), False)
    assert settings_from_values(PRESETS["top-p"], {"strategy": "greedy"}).num_candidates == 1
    assert [control_value(FIELD[n], getattr(s, n)) for n in ("avoid_words", "seed", "top_k")] == ["cat, dog", "", 30]
    with pytest.raises(SettingsError, match="seed"):
        settings_from_values(PRESETS["top-p"], {"seed": "lucky"})


def test_differs_from_preset_line():
    from chatbot.sampling.panel import differs_line

    changed = PRESETS["top-p"].replace(temperature=1.0, min_p=0.05, seed=3)
    assert differs_line(changed, "top-p", PRESETS) == "top-p, changed: T 0.7 -> 1, min_p 0 -> 0.05, seed none -> 3"
    assert differs_line(PRESETS["dry"], "dry", PRESETS) == "dry (unchanged)"
    # what the strategy ignores is no difference
    assert differs_line(PRESETS["greedy"].replace(temperature=1.5), "greedy", PRESETS) == "greedy (unchanged)"


def test_any_two_numeric_fields_form_the_evaluation_grid():
    from evaluation.pipeline import EvalConfig, setting_specs

    config = EvalConfig(data="x", output="y", presets="top-p", grid="min_p=0.02,0.05,0.1;temperature=0.7,1.0,1.5")
    specs, _, axes = setting_specs(config)
    grid = [s for s in specs if s.kind == "grid"]
    assert axes == {"min_p": [0.02, 0.05, 0.1], "temperature": [0.7, 1.0, 1.5]} and len(grid) == 9
    assert (
        grid[0].name == "min_p=0.02 T=0.7" and grid[-1].settings.min_p == 0.1 and grid[-1].settings.temperature == 1.5
    )
    assert len({s.settings.identity for s in grid}) == 9
    with pytest.raises(SettingsError, match="top_k.*whole number"):
        setting_specs(EvalConfig(data="x", output="y", grid="top_k=2.5"))
    with pytest.raises(SettingsError, match="numeric sampling setting"):
        setting_specs(EvalConfig(data="x", output="y", grid="avoid_words=1"))
