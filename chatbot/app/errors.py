"""Failures in a button's handler become one-line messages on the page (``gr.Error`` toasts)."""

from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from chatbot.errors import ChatbotError

logger = logging.getLogger(__name__)


def ui_errors(fn):
    """Turn failures into one-line ``gr.Error`` toasts: user errors say what to fix, others are logged."""

    def translate(exc: BaseException) -> gr.Error:
        if isinstance(exc, gr.Error):
            return exc
        if isinstance(exc, ChatbotError):
            return gr.Error(str(exc))
        logger.exception("unexpected error in %s", getattr(fn, "__qualname__", fn))  # a partial has no name
        return gr.Error(f"Something went wrong ({type(exc).__name__}); the server log has the details.")

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def wrapped_gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                raise translate(exc) from None

        return wrapped_gen

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise translate(exc) from None

    return wrapped


def bind(method, *args, name: str):
    """A handler taking only the session, with ``args`` fixed (gradio counts a handler's parameters)."""

    def handler(session):
        return method(session, *args)

    handler.__name__ = name
    return ui_errors(handler)
