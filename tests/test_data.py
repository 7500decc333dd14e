"""Every loader on fixture files written here, including broken ones, and the CLI's one-line errors."""

import json

import pytest

from chatbot.cli import main as cli_main
from chatbot.errors import DataError
from training.data import Dialogue, hash_split, load_dialogues

PERSONACHAT = {
    "train": [
        {
            "personality": ["i like dogs.", "i live in ohio."],
            "utterances": [
                {"history": ["hi there"], "candidates": ["no.", "hello! i love dogs."]},
                {
                    "history": ["hi there", "hello! i love dogs.", "me too, what breed?"],
                    "candidates": ["bye", "a beagle."],
                },
            ],
        }
    ],
    "valid": [
        {
            "personality": ["i am tall."],
            "utterances": [{"history": ["how tall?"], "candidates": ["short", "six feet."]}],
        }
    ],
}

PARLAI = """1 your persona: i like cats.
2 your persona: i am a nurse.
3 hello, how are you?\ti am fine. i just fed my cats.\t\tno|i am fine. i just fed my cats.
4 what are their names?\ttom and jerry.
1 your persona: i ski.
2 do you ski?\tevery winter.
"""


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return str(path)


def test_jsonl_all_split_and_fields(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"persona": ["p1"], "turns": ["a", "b", "c"]}\n\n{"turns": ["x", "y"]}\n')
    dialogues, report = load_dialogues(path, "all")
    assert [d.turns for d in dialogues] == [["a", "b", "c"], ["x", "y"]]
    assert dialogues[0].persona == ["p1"] and dialogues[1].persona == []
    assert report.kept == 2 and report.skipped == []


def test_utf8_bom_is_accepted(tmp_path):
    path = write(tmp_path / "d.jsonl", '\ufeff{"turns": ["hé", "ça va"]}\n')
    assert load_dialogues(path, "all")[0][0].turns == ["hé", "ça va"]


def test_hash_split_is_stable_and_partitions(tmp_path):
    rows = [{"turns": [f"message {i}", f"reply {i}"]} for i in range(400)]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows))
    splits = {s: load_dialogues(path, s)[0] for s in ("train", "valid", "test")}
    assert sum(len(v) for v in splits.values()) == 400
    assert 320 <= len(splits["train"]) <= 390  # 90% of 400, give or take the hash
    for name, dialogues in splits.items():
        assert all(hash_split(d) == name for d in dialogues)
    again = load_dialogues(path, "test")[0]
    assert [d.turns for d in again] == [d.turns for d in splits["test"]]


def test_hash_split_depends_only_on_content():
    a = Dialogue(turns=["hello", "hi"])
    assert hash_split(a) == hash_split(Dialogue(turns=["hello", "hi"]))


def test_personachat_json_keeps_shipped_splits_and_candidates(tmp_path):
    path = write(tmp_path / "pc.json", json.dumps(PERSONACHAT))
    train, _ = load_dialogues(path, "train")
    assert train[0].turns == ["hi there", "hello! i love dogs.", "me too, what breed?", "a beagle."]
    assert train[0].persona == ["i like dogs.", "i live in ohio."]
    assert train[0].candidates == [[], ["no.", "hello! i love dogs."], [], ["bye", "a beagle."]]
    valid, _ = load_dialogues(path, "valid")
    assert valid[0].turns == ["how tall?", "six feet."]
    with pytest.raises(DataError, match="has no test split"):
        load_dialogues(path, "test")


def test_parlai_txt(tmp_path):
    path = write(tmp_path / "convai2.txt", PARLAI)
    dialogues, _ = load_dialogues(path, "all")
    assert len(dialogues) == 2
    first = dialogues[0]
    assert first.persona == ["i like cats.", "i am a nurse."]
    assert first.turns == [
        "hello, how are you?",
        "i am fine. i just fed my cats.",
        "what are their names?",
        "tom and jerry.",
    ]
    assert first.candidates[1] == ["no", "i am fine. i just fed my cats."]
    assert dialogues[1].turns == ["do you ski?", "every winter."]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"turns": ["a", "b"]}\n{"turns": ["a", \n', r"d\.jsonl:2: bad JSON"),
        ('{"turns": ["a", "b"]}\n{"persona": []}\n', r"d\.jsonl:2: expected an object with \"turns\""),
        ('{"turns": ["a", null]}\n', r"d\.jsonl:1: utterance 2 is NoneType"),
        ('{"turns": ["a", "  "]}\n', r"d\.jsonl:1: utterance 2 is empty"),
        ('{"turns": ["only one"]}\n', r"d\.jsonl:1: a dialogue needs at least 2 utterances"),
        ("", r"d\.jsonl: the file is empty"),
        (b'{"turns": ["a", "\xff\xfe"]}\n', r"d\.jsonl:1: not UTF-8"),
    ],
)
def test_malformed_jsonl_names_file_line_and_problem(tmp_path, content, message):
    path = write(tmp_path / "d.jsonl", content)
    with pytest.raises(DataError, match=message):
        load_dialogues(path, "all")


def test_skip_bad_counts_instead_of_stopping(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"turns": ["a", "b"]}\nnot json\n{"turns": ["c"]}\n{"turns": ["d", "e"]}\n')
    dialogues, report = load_dialogues(path, "all", skip_bad=True)
    assert [d.turns for d in dialogues] == [["a", "b"], ["d", "e"]]
    assert len(report.skipped) == 2 and ":2:" in report.skipped[0] and ":3:" in report.skipped[1]


def test_malformed_personachat_and_parlai(tmp_path):
    bad_json = write(tmp_path / "pc.json", '{"train": [{"personality": [], "utterances": [{"history": []}]}]}')
    with pytest.raises(DataError, match="train dialogue 1: each utterance needs"):
        load_dialogues(bad_json, "train")
    bad_txt = write(tmp_path / "c.txt", "1 hello\tworld\n2 only one side\n")
    with pytest.raises(DataError, match=r"c\.txt:2: expected 'partner text<TAB>reply text'"):
        load_dialogues(bad_txt, "all")


def test_unknown_sources(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dialogues(str(tmp_path / "missing.jsonl"))
    with pytest.raises(DataError, match="unknown file type"):
        load_dialogues(write(tmp_path / "d.csv", "a,b"))
    with pytest.raises(DataError, match="unknown split"):
        load_dialogues("chitchat", "dev")


@pytest.mark.slow
def test_hf_source_error_path_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="cannot load hub dataset 'no-such-user/no-such-dataset'"):
        load_dialogues("hf:no-such-user/no-such-dataset", "train")


def test_hf_rows_become_dialogues(monkeypatch):
    import datasets

    fake = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list([{"dialog": ["hi", "hello"]}, {"dialog": ["a", "b", "c"]}]),
            "validation": datasets.Dataset.from_list([{"dialog": ["v1", "v2"]}]),
        }
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config=None: fake)
    assert [d.turns for d in load_dialogues("hf:daily_dialog", "valid")[0]] == [["v1", "v2"]]
    assert len(load_dialogues("hf:daily_dialog", "train")[0]) == 2
    with pytest.raises(DataError, match="has no test split"):
        load_dialogues("hf:daily_dialog", "test")


@pytest.mark.slow
def test_chitchat_source_loads_real_conversations():
    train, report = load_dialogues("chitchat", "train")
    assert len(train) > 3000 and all(len(d.turns) >= 2 for d in train)
    assert report.one_speaker > 3000  # one-speaker conversations are counted, not silently dropped


def test_cli_prints_one_line_error_for_a_broken_file(tmp_path, capsys):
    path = write(tmp_path / "broken.jsonl", '{"turns": ["a", "b"]}\n{"turns": ["a", \n')
    code = cli_main(["train", "--from-scratch", "--data", path, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"error: {path}:2: bad JSON (Expecting value at column 17)"]


def test_personachat_malformed_middle_utterance_is_a_data_error(tmp_path):
    bad = {"train": [{"personality": [], "utterances": [None, PERSONACHAT["train"][0]["utterances"][1]]}]}
    path = write(tmp_path / "pc.json", json.dumps(bad))
    with pytest.raises(DataError, match=r"train dialogue 1: each utterance needs .* \(utterance 1\)"):
        load_dialogues(path, "train")
    assert load_dialogues(path, "train", skip_bad=True)[1].skipped


def test_jsonl_lines_may_hold_unicode_line_separators(tmp_path):
    path = write(tmp_path / "d.jsonl", json.dumps({"turns": ["hello\u2028there", "hi\u0085back"]}, ensure_ascii=False))
    assert load_dialogues(path, "all")[0][0].turns == ["hello\u2028there", "hi\u0085back"]


def test_parlai_bad_dialogue_counts_once_and_gold_candidate_goes_last(tmp_path):
    text = "1 hi\tbad line without reply tab\n2 no tab here\n3 more\tlines\n1 a\tb\t\tb|x|y\n"
    path = write(tmp_path / "c.txt", text.replace("1 hi\tbad line without reply tab", "1 hi"))
    dialogues, report = load_dialogues(path, "all", skip_bad=True)
    assert len(report.skipped) == 1 and ":1:" in report.skipped[0]
    assert dialogues[0].turns == ["a", "b"] and dialogues[0].candidates[1] == ["x", "y", "b"]
