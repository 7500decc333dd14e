"""Command-line flags from config dataclasses: one ``--field-name`` per field, help from ``metadata["help"]``.

Used by ``chatbot train`` and ``chatbot evaluate`` in place of transformers' HfArgumentParser, whose help
repeats each boolean's text on a ``--no_x`` twin, shows switches as taking values (``[--x [X]]``) and
prints "(default: None)". Here a boolean is one ``--x/--no-x`` pair (argparse.BooleanOptionalAction),
a default is shown only where there is one, and the dataclass spelling ``--field_name`` is still
accepted without cluttering the help.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

SCALARS = (str, int, float, bool)


def plain_text(doc: str) -> str:
    """A docstring as help text: reStructuredText's double backticks removed (help is not rendered)."""
    return doc.replace("``", "")


def field_type(hint) -> type:
    """The scalar type of a field annotated ``T`` or ``T | None``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
    if hint not in SCALARS:
        raise TypeError(f"unsupported flag type {hint!r}: use str, int, float or bool (optionally | None)")
    return hint


def field_help(field: dataclasses.Field, kind: type) -> str:
    """The field's help with its default appended, unless it has none or the text already names it."""
    text = field.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
    if kind is bool:  # a switch is off unless given; say so only when it is on
        return f"{text} (default: on)" if field.default is True else text
    if field.default is dataclasses.MISSING or field.default is None or "default" in text:
        return text
    return f"{text} (default: {field.default})"


def add_dataclass_arguments(parser, cls, *, share_existing: bool = False) -> None:
    """One flag per init field of ``cls``, on a parser or an argument group.

    ``share_existing``: a flag the parser already has (``chatbot serve``'s own ``--concurrency``) is left as it
    is and fills the field too, instead of being an argparse conflict. ``metadata["choices"]`` limits a value.
    """
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        flag = "--" + field.name.replace("_", "-")
        if share_existing and flag in parser._option_string_actions:  # a group shares its parser's flags
            continue
        kind = field_type(hints[field.name])
        kwargs = {"dest": field.name, "help": field_help(field, kind)}
        if "choices" in field.metadata:
            kwargs["choices"] = field.metadata["choices"]
        if field.default is not dataclasses.MISSING:
            kwargs["default"] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            kwargs["default"] = field.default_factory()
        else:
            kwargs["required"] = True
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        else:
            if "choices" not in kwargs:  # argparse shows the choices themselves, {local,openai}
                kwargs["metavar"] = field.name.upper()
            parser.add_argument(flag, type=kind, **kwargs)


def dash_flags(argv: list[str]) -> list[str]:
    """``--max_steps 5`` -> ``--max-steps 5``: the dataclass spelling of a flag keeps working."""
    out = []
    for arg in argv:
        if arg.startswith("--") and arg != "--":
            name, sep, value = arg.partition("=")
            arg = name.replace("_", "-") + sep + value
        out.append(arg)
    return out


def parse_dataclasses(parser: argparse.ArgumentParser, classes, argv: list[str]) -> tuple:
    """Parse ``argv`` and build one instance of each class (their ``__post_init__`` validates)."""
    namespace = parser.parse_args(dash_flags(argv))
    return tuple(
        cls(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls) if f.init}) for cls in classes
    )
