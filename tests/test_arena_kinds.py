"""The vote kinds registry, reply provenance and model fingerprints."""

from __future__ import annotations

import json
import os

import pytest

from chatbot.arena.fingerprint import engine_fingerprint, folder_fingerprint, model_fingerprint
from chatbot.arena.kinds import VOTE_KINDS, WINNERS, outcome_for, points, stored_winner
from chatbot.arena.provenance import exclusion_reason, reply_provenance, same_text, stored_provenance
from chatbot.filters import FilterSettings
from chatbot.generation import Candidate
from chatbot.replies import Reply
from chatbot.sampling import PRESETS


def test_the_registry_gives_buttons_stored_values_and_points():
    assert [k.choice for k in VOTE_KINDS] == ["left", "tie", "both-bad", "right"]
    assert WINNERS == ("A", "B", "tie", "both-bad")
    assert stored_winner("left", swapped=False) == "A" and stored_winner("left", swapped=True) == "B"
    assert stored_winner("right", swapped=True) == "A" and stored_winner("both-bad", swapped=True) == "both-bad"
    assert points("A") == (1.0, 0.0) and points("B") == (0.0, 1.0) and points("tie") == (0.5, 0.5)
    assert outcome_for("B", "A") == "loss" and outcome_for("B", "B") == "win" and outcome_for("tie", "A") == "tie"
    with pytest.raises(ValueError, match="unknown vote 'up'"):
        stored_winner("up", swapped=False)
    with pytest.raises(ValueError, match="unknown winner 'left'"):
        points("left")


def reply(attempt: int = 1, fallback: bool = False) -> Reply:
    candidates = [Candidate("no", rejected="echo", attempt=1), Candidate("fine, thanks.", attempt=attempt)]
    return Reply(text="fine, thanks.", candidates=candidates, chosen=None if fallback else 1, fallback=fallback)


def test_provenance_of_own_retried_and_fallback_replies():
    greedy, top_p = PRESETS["greedy"], PRESETS["top-p"]
    assert reply_provenance(reply(1), greedy) == "own"
    assert reply_provenance(reply(2), greedy) == "retry"  # greedy retries by sampling with top-p
    assert reply_provenance(reply(2), top_p) == "own"  # a sampler's retry is a fresh draw of the same sampler
    assert reply_provenance(reply(fallback=True), top_p) == "fallback"
    assert exclusion_reason("own", "own", identical=False) is None
    assert exclusion_reason("retry", "fallback", identical=True) == "fallback"
    assert exclusion_reason("own", "own", identical=True) == "identical"


def test_identical_text_and_stored_fallbacks():
    assert same_text("I like  dogs.", "i like dogs.") and not same_text("i like dogs.", "i like cats.")
    assert stored_provenance(FilterSettings().fallback_replies[-1].upper()) == "fallback"
    assert stored_provenance("hello") == "unknown"


def test_folder_fingerprint_changes_with_config_and_weights_not_with_nothing(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"n_layer": 2}))
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x" * 10)
    first = folder_fingerprint(tmp_path)
    assert folder_fingerprint(tmp_path) == first and first.source == str(tmp_path.resolve())
    assert first.key == f"{first.source}@{first.digest}" and len(first.digest) == 12
    os.utime(weights, ns=(1, 1))  # retrained into the same folder: same path, other weights
    retrained = folder_fingerprint(tmp_path)
    assert retrained.source == first.source and retrained.digest != first.digest
    (tmp_path / "config.json").write_text(json.dumps({"n_layer": 3}))
    assert folder_fingerprint(tmp_path).digest != retrained.digest
    assert model_fingerprint(str(tmp_path)) == folder_fingerprint(tmp_path)


def test_hub_and_engine_fingerprints():
    class Config:
        _commit_hash = "abc"

        def to_json_string(self, use_diff=False):
            return '{"n_layer": 12}'

    class Model:
        config = Config()

    hub = model_fingerprint("no-such-folder/gpt2-like", Model())
    assert hub.source == "no-such-folder/gpt2-like" and hub.digest != model_fingerprint("other/id", Model()).digest
    engine = engine_fingerprint("http://127.0.0.1:8000/v1/", "chatbot")
    assert engine.source == "http://127.0.0.1:8000/v1#chatbot"
    assert engine == engine_fingerprint("http://127.0.0.1:8000/v1", "chatbot")
    assert engine.digest != engine_fingerprint("http://127.0.0.1:8000/v1", "other").digest
