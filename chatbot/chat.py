"""``chatbot chat``: talk to a chatbot in the terminal, or get one reply for a script.

    chatbot chat                                        # the embedded default model, preset top-p
    chatbot chat --model runs/small --preset beam-5
    chatbot chat --model runs/small --temperature 0.9 --top-p 0.95 --num-candidates 1   # streams
    chatbot chat --model runs/small --persona "i love hiking." --persona "i have a dog."
    chatbot chat --model runs/small --once "hi, how are you?" --seed 1                  # prints the reply
    chatbot chat --model runs/small --resume chats.jsonl                                # continue a saved chat
    chatbot chat --model gpt2 --examples examples.jsonl     # a plain LM, few-shot: {"turns": [...]} a line

In the chat, type a message, or a command: /reset (forget the conversation, keep the persona),
/settings (show them; ``/settings temperature=0.9 top_k=40`` changes them), /save PATH (append the
conversation as a JSONL line, the layout ``chatbot train`` reads), /quit. Ctrl-C stops a reply
that is being written. With one candidate the reply streams word by word (a withdrawn reply is
struck through and regenerated); with several, the best one appears once ranked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading

from chatbot.backends.options import add_backend_arguments, check_server, load_bot, options_from_args
from chatbot.dataclass_cli import plain_text
from chatbot.errors import ChatbotError
from chatbot.sampling import (
    SamplingSettings,
    add_sampling_arguments,
    parse_assignment,
    preset_name,
    settings_from_args,
)

# in-chat command -> what it does; the greeting line and ``chat --help`` are built from this
IN_CHAT_COMMANDS = {
    "/reset": "forget the conversation, keep the persona",
    "/settings [field=value ...]": "show the sampling settings, or change some (/settings temperature=0.9 top_k=40)",
    "/save PATH": "append the conversation to a JSONL file (the layout chatbot train reads)",
    "/quit": "leave (so do Ctrl-D and Ctrl-C at the prompt)",
}
COMMANDS_HELP = "commands: " + "  ".join(IN_CHAT_COMMANDS)


def in_chat_help() -> str:
    width = max(map(len, IN_CHAT_COMMANDS))
    lines = [f"  {command:<{width}}  {text}" for command, text in IN_CHAT_COMMANDS.items()]
    return "\n".join(["in-chat commands:", *lines, "", "Ctrl-C while a reply is being written stops it."])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatbot chat",
        description=plain_text(__doc__.split("\n\n")[0]),
        epilog=in_chat_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default=None, help="chatbot checkpoint folder or hub id (default: embedded model)")
    parser.add_argument("--persona", action="append", default=[], help="a persona sentence (repeat for more)")
    parser.add_argument("--once", metavar="MESSAGE", default=None, help="reply to MESSAGE, print it and exit")
    parser.add_argument("--json", action="store_true", help="with --once: print the whole Reply as JSON")
    parser.add_argument("--resume", metavar="JSONL", default=None, help="continue the last conversation of a file")
    parser.add_argument(
        "--examples", metavar="JSONL", default=None,
        help='few-shot example exchanges for a plain causal LM, one {"turns": [...]} a line',
    )  # fmt: skip
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cpu)")
    add_sampling_arguments(parser)
    add_backend_arguments(parser)
    return parser


def parse_assignments(items: list[str], settings: SamplingSettings) -> SamplingSettings:
    """``["temperature=0.9", "avoid_words=cat,", "dog"]`` applied to settings, each value cast by its field.

    The items are the command's words: a word without ``=`` continues the previous value, so a word
    list typed with spaces after its commas (``avoid_words=cat, dog``) stays one value.
    """
    assignments: list[str] = []
    for item in items:
        if "=" not in item and assignments:
            assignments[-1] += " " + item
        else:
            assignments.append(item)
    return settings.adjust(**dict(map(parse_assignment, assignments)))


def show_reply(conversation, text: str, settings: SamplingSettings, out=None) -> None:
    """Stream one reply to the terminal; Ctrl-C stops it within a token."""
    out = out or sys.stdout
    cancel = threading.Event()
    events = conversation.stream(text, settings, cancel=cancel)
    out.write("bot> ")
    out.flush()
    shown = ""
    try:
        for event in events:
            shown = render_event(event, shown, out)
    except KeyboardInterrupt:
        cancel.set()
        for event in events:  # the final event still comes, with what was shown so far
            shown = render_event(event, shown, out)
        out.write(" [stopped]\n")


def render_event(event, shown: str, out) -> str:
    """Write one stream event; returns the text now on screen for this reply."""
    if event.kind == "delta":
        out.write(event.value)
        out.flush()
        return shown + event.value
    if event.kind == "withdraw":
        out.write(f"\n     [withdrawn: {event.value}; regenerating]\nbot> ")
        out.flush()
        return ""
    reply = event.value
    if reply.text != shown.strip():
        out.write(("\nbot> " if shown else "") + reply.text)
    out.write("\n")
    if reply.fallback:
        out.write("     [every candidate failed the filters: fallback reply]\n")
    for note in reply.notes:  # e.g. not ranked by likelihood (a server without log-probabilities)
        out.write(f"     [{note}]\n")
    out.flush()
    return reply.text


def describe(bot, settings: SamplingSettings) -> str:
    preset = preset_name(settings)
    lines = [
        f"model: {bot.name}",
        f"sampling: {settings.describe()}" + (f" (preset {preset})" if preset else ""),
        f"identity: {settings.identity}",
        f"filters: {json.dumps(bot.filters.to_dict())}",
    ]
    return "\n".join(lines)


def save_conversation(conversation, path: str) -> str:
    """``/save PATH``: append the conversation to a JSONL file; the line to show. A failed save
    leaves the conversation as it was, so the user can retry with another path."""
    if not path:
        raise ChatbotError("/save needs a file path, e.g. /save chats.jsonl")
    if os.path.isdir(os.path.expanduser(path)):
        example = os.path.join(path, "chats.jsonl")
        raise ChatbotError(f"/save {path}: that is a folder; give a file path, e.g. /save {example}")
    try:
        return f"[saved to {conversation.save(os.path.expanduser(path))}]"
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ChatbotError(
            f"/save {path}: cannot write there ({reason}); the conversation is kept, try another path"
        ) from exc


def interactive(bot, conversation, settings: SamplingSettings) -> int:
    print(f"chatting with {bot.name} ({settings.describe()}). {COMMANDS_HELP}")
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not line:
            continue
        if line.startswith("/"):
            command, _, rest = line.partition(" ")
            try:
                if command == "/quit":
                    return 0
                if command == "/reset":
                    conversation.reset()
                    print("[conversation reset]")
                elif command == "/settings":
                    if rest.strip():
                        settings = parse_assignments(rest.split(), settings)
                    print(describe(bot, settings))
                elif command == "/save":
                    print(save_conversation(conversation, rest.strip()))
                else:
                    print(f"unknown command {command}; {COMMANDS_HELP}")
            except ChatbotError as exc:
                print(f"error: {exc}")
            continue
        try:
            show_reply(conversation, line, settings)
        except ChatbotError as exc:
            print(f"\nerror: {exc}")


def calm_cpu_threads() -> None:
    """Let idle OpenMP threads sleep instead of spinning, if torch is not loaded yet.

    With the default (active) wait policy, torch's two intra-op threads spin between the many
    small operations of token-by-token decoding; on a CPU shared with other work (a training run),
    the spinning threads steal each other's core and a 40-token reply took ~17 s instead of ~0.9 s
    here. OpenMP reads the variable once, when torch loads.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    calm_cpu_threads()
    settings, _ = settings_from_args(args)  # SettingsError (bad flag value or preset) before the slow load
    backend = check_server(options_from_args(args))  # a server that is down: one line, before torch loads
    from transformers.utils import logging as hf_logging

    from chatbot.conversation import Conversation, load_examples
    from chatbot.dialogues import load_conversations

    hf_logging.set_verbosity_error()  # transformers' one-time hints would interleave with the chat text
    examples = load_examples(args.examples) if args.examples else ()
    if args.resume:
        load_conversations(args.resume)  # a missing or broken file fails before the slow model load
    bot = load_bot(backend, args.model, device=args.device, sampling=settings, examples=examples)
    if args.resume:
        conversation = Conversation.load(bot, args.resume)
        if args.persona:
            conversation.persona = list(args.persona)
    else:
        conversation = bot.new_conversation(persona=args.persona)
    if args.once is not None:
        reply = conversation.reply(args.once, settings)
        print(json.dumps(reply.to_dict(), ensure_ascii=False) if args.json else reply.text)
        if not args.json:  # stdout stays the reply alone (the JSON carries its notes)
            for note in reply.notes:
                print(f"note: {note}", file=sys.stderr)
        return 0
    return interactive(bot, conversation, settings)
