"""Sampling settings: validation, presets, JSON and identity, generate kwargs, user presets, CLI flags."""

from __future__ import annotations

import argparse
import json

import pytest

from chatbot.errors import SettingsError
from chatbot.sampling import (
    DEFAULT_PRESET,
    PRESETS,
    SamplingSettings,
    add_sampling_arguments,
    get_preset,
    load_presets,
    preset_name,
    save_presets,
    settings_from_args,
)


def test_required_presets_have_the_issue_values():
    assert DEFAULT_PRESET == "top-p"
    top_p = PRESETS["top-p"]
    assert (top_p.strategy, top_p.top_p, top_p.temperature) == ("sample", 0.9, 0.7)
    diverse = PRESETS["diverse"]
    assert (diverse.strategy, diverse.temperature, diverse.top_p) == ("sample", 1.2, 0.95)
    assert PRESETS["greedy"].strategy == "greedy" and PRESETS["greedy"].num_candidates == 1
    assert PRESETS["beam-5"].strategy == "beam" and PRESETS["beam-5"].num_beams == 5


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
        ({"top_k": 2.5}, "top_k"),
        ({"early_stopping": "yes"}, "early_stopping"),
        ({"length_penalty": float("inf")}, "length_penalty"),
    ],
)
def test_impossible_values_raise_an_error_naming_the_setting(changes, named):
    with pytest.raises(SettingsError, match=named):
        SamplingSettings(**changes)


def test_replace_validates_and_rejects_unknown_fields():
    with pytest.raises(SettingsError, match="temperature"):
        PRESETS["top-p"].replace(temperature=0)
    with pytest.raises(SettingsError, match="temprature"):
        PRESETS["top-p"].replace(temprature=1.0)


def test_json_round_trip_for_every_preset():
    for settings in PRESETS.values():
        assert SamplingSettings.from_json(settings.to_json()) == settings
    with pytest.raises(SettingsError, match="not valid JSON"):
        SamplingSettings.from_json("{temperature: 1")


def test_identity_is_canonical_and_ignores_fields_the_strategy_does_not_use():
    a = SamplingSettings(temperature=0.7, top_p=0.9, seed=3)
    b = SamplingSettings.from_dict(json.loads(json.dumps({"seed": 3, "top_p": 0.9, "temperature": 0.7})))
    assert a.identity == b.identity
    assert json.loads(a.identity)["temperature"] == 0.7
    assert SamplingSettings(temperature=0.7000000001).identity == SamplingSettings(temperature=0.7).identity
    # greedy ignores temperature and the seed; sampling does not
    g1 = SamplingSettings(strategy="greedy", num_candidates=1, temperature=0.5, seed=1)
    g2 = SamplingSettings(strategy="greedy", num_candidates=1, temperature=1.3)
    assert g1.identity == g2.identity
    assert "temperature" not in json.loads(g1.identity)
    assert SamplingSettings(temperature=0.5).identity != SamplingSettings(temperature=0.6).identity
    assert SamplingSettings(seed=1).identity != SamplingSettings(seed=2).identity
    assert PRESETS["beam-5"].replace(seed=1).identity == PRESETS["beam-5"].identity  # beams draw nothing
    assert len({p.identity for p in PRESETS.values()}) == len(PRESETS)


def test_generation_kwargs_per_strategy():
    greedy = PRESETS["greedy"].to_generation_kwargs()
    assert greedy["do_sample"] is False and greedy["num_beams"] == 1 and "temperature" not in greedy
    beam = PRESETS["beam-5"].to_generation_kwargs()
    assert beam["num_beams"] == 5 and beam["num_return_sequences"] == 5
    assert beam["length_penalty"] == 1.0 and beam["early_stopping"] is True and beam["do_sample"] is False
    top_p = PRESETS["top-p"].replace(seed=4, top_k=20, repetition_penalty=1.2, no_repeat_ngram_size=3)
    kwargs = top_p.to_generation_kwargs()
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
    }
    # every kwarg is a GenerationConfig field, so transformers takes them as they are
    from transformers import GenerationConfig

    GenerationConfig(**kwargs).validate(strict=True)


def test_user_presets_file(tmp_path):
    path = tmp_path / "presets.json"
    path.write_text(json.dumps({"warm": {"base": "top-p", "temperature": 0.9}, "short": {"max_new_tokens": 12}}))
    presets = load_presets(path)
    assert set(PRESETS) < set(presets)
    assert presets["warm"] == PRESETS["top-p"].replace(temperature=0.9)
    assert presets["short"] == SamplingSettings(max_new_tokens=12)
    assert preset_name(presets["warm"], presets) == "warm"
    # save/load round trip of user presets
    again = load_presets(save_presets(presets, tmp_path / "again.json"))
    assert again == presets


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


def test_missing_presets_file(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_presets(tmp_path / "none.json")


def test_get_preset_unknown_name_lists_the_choices():
    with pytest.raises(SettingsError, match="greedy, beam-5, top-p"):
        get_preset("nucleus")


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_sampling_arguments(parser)
    return settings_from_args(parser.parse_args(argv))[0]


def test_flags_override_the_preset():
    assert _parse([]) == PRESETS["top-p"]
    assert _parse(["--preset", "diverse", "--seed", "5"]) == PRESETS["diverse"].replace(seed=5)
    assert _parse(["--temperature", "1.1", "--top-k", "30"]) == PRESETS["top-p"].replace(temperature=1.1, top_k=30)
    # the strategy's implications, not an error: greedy gives one reply, beams bound the candidates
    assert _parse(["--strategy", "greedy"]).num_candidates == 1
    assert _parse(["--strategy", "beam", "--num-beams", "3"]).num_candidates == 3
    assert _parse(["--preset", "beam-5", "--early-stopping", "false"]).early_stopping is False
    with pytest.raises(SettingsError, match="top_p"):
        _parse(["--top-p", "2"])
