"""Failures in a button's handler become one-line messages on the page, and never block a control.

- An expected failure (a :class:`~chatbot.errors.ChatbotError`, or a ``gr.Error`` a handler raises on
  purpose: a bad model folder, nothing to save yet) is the user's to fix. It becomes a warning toast
  with the message, and every output keeps its value (``gr.skip()``). Raising it would make gradio
  cover each output with an "Error" badge that intercepts clicks (the model box, the leaderboard)
  and print a traceback in the server log for what is no bug.
- An unexpected one is logged once, with its traceback (``logger.exception``), and the page gets a
  one-line error naming its type; gradio does not print it a second time (``print_exception=False``).
  API clients see it as an error.
"""

from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from chatbot.errors import ChatbotError

logger = logging.getLogger(__name__)

EXPECTED = (ChatbotError, gr.Error)


def user_message(exc: BaseException) -> str:
    """The one line an expected failure shows (gr.Error keeps its message in ``message``)."""
    return str(getattr(exc, "message", None) or exc)


def unexpected(fn, exc: BaseException) -> gr.Error:
    """Log an unexpected failure once, with its traceback, and the page's one line for it."""
    logger.exception("unexpected error in %s", getattr(fn, "__qualname__", fn))  # a partial has no name
    return gr.Error(
        f"Something went wrong ({type(exc).__name__}); the server log has the details.", print_exception=False
    )


def ui_errors(fn):
    """``fn`` as a gradio handler: expected failures become a warning with every output unchanged,
    unexpected ones are logged once and shown as a one-line error (see the module docstring)."""

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def wrapped_gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except EXPECTED as exc:
                gr.Warning(user_message(exc))
                yield gr.skip()  # one skip stands for every output
            except Exception as exc:
                raise unexpected(fn, exc) from None

        return wrapped_gen

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EXPECTED as exc:
            gr.Warning(user_message(exc))
            return gr.skip()
        except Exception as exc:
            raise unexpected(fn, exc) from None

    return wrapped


def bind(method, *args, name: str):
    """A handler taking only the session, with ``args`` fixed (gradio counts a handler's parameters)."""

    def handler(session):
        return method(session, *args)

    handler.__name__ = name
    return ui_errors(handler)
