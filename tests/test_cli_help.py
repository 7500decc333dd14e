"""Every subcommand's --help follows the same rules: switches are --x/--no-x with one help line,
flags are dash-style, no "(default: None)", no markup, and chat lists its in-chat commands."""

import re

import pytest

from chatbot.cli import COMMANDS
from chatbot.cli import main as cli_main


def help_text(command: str, capsys) -> str:
    try:
        code = cli_main([command, "--help"])
    except SystemExit as exc:  # argparse exits after printing the help
        code = exc.code
    assert code in (0, None)
    return capsys.readouterr().out


def usage_section(text: str) -> str:
    return text.split("\n\n", 1)[0]


def option_entries(text: str) -> dict[str, str]:
    """Option spec ("--x, --no-x" or "--top-k TOP_K") -> its help text, as argparse lays them out."""
    entries: dict[str, str] = {}
    spec = None
    for line in text.splitlines():
        if re.match(r"^  -", line):
            spec, _, first = line.strip().partition("  ")
            entries[spec] = first.strip()
        elif spec is not None and re.match(r"^ {4,}\S", line):
            entries[spec] = f"{entries[spec]} {line.strip()}".strip()
        else:
            spec = None
    return entries


@pytest.fixture(scope="module", params=list(COMMANDS))
def command(request):
    return request.param


def test_help_follows_the_house_rules(command, capsys):
    text = help_text(command, capsys)
    entries = option_entries(text)
    assert len(entries) > 3, text
    assert "(default: None)" not in text
    assert "`" not in text, "help is plain text, not markup"
    usage = usage_section(text)
    assert not re.search(r"\[--[\w-]+ \[[A-Z_]+\]\]", usage), "a switch shown as taking an optional value"
    flags = re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", usage)
    assert flags and not [f for f in flags if "_" in f], "flags are dash-style"
    for match in re.finditer(r"(?<![\w-])--no-([\w-]+)( [A-Z])?", usage):
        if match.group(2) is None:  # a switch: it must be the --x/--no-x pair, not a separate complement
            assert f"--{match.group(1)} | --no-{match.group(1)}" in usage, match.group(0)
    assert all(entries.values()), [spec for spec, h in entries.items() if not h]
    helps = [re.sub(r"\s*\(default: [^)]*\)", "", h) for h in entries.values()]  # a --no_x twin differs only here
    repeated = {h for h in helps if helps.count(h) > 1}
    assert not repeated, f"options share one help text: {repeated}"
    assert not [spec for spec, h in entries.items() if h.count("default") > 1], "one default per option"


def test_train_switches_are_pairs_with_one_help_line(capsys):
    entries = option_entries(help_text("train", capsys))
    assert "--test-perplexity, --no-test-perplexity" in entries
    assert entries["--test-perplexity, --no-test-perplexity"].endswith("(default: on)")
    assert "--from-scratch, --no-from-scratch" in entries
    assert entries["--output OUTPUT"] == "folder for checkpoints and the final chatbot"  # required: no default
    assert entries["--max-steps MAX_STEPS"].endswith("(default: -1)")


def test_chat_help_lists_the_in_chat_commands(capsys):
    text = help_text("chat", capsys)
    commands = text.split("in-chat commands:", 1)[1]
    for name in ("/reset", "/settings", "/save PATH", "/quit"):
        assert re.search(rf"^  {re.escape(name)}\b", commands, re.M), name


def test_underscore_spellings_still_parse():
    from training.cli import parse_args

    cfg = parse_args(["--output", "x", "--max_steps", "5", "--no_test_perplexity", "--from_scratch", "--eval-limit=7"])
    assert (cfg.max_steps, cfg.test_perplexity, cfg.from_scratch, cfg.eval_limit) == (5, False, True, 7)
