"""Where replies come from: the model in this process (``local``) or an OpenAI-compatible server (``openai``).

    from chatbot.backends import LocalBackend, BackendError, SERVER_KINDS

:mod:`chatbot.backends.base` defines the seam, :mod:`chatbot.backends.capabilities` the table of
what each server kind can apply, :mod:`chatbot.backends.openai` the HTTP backend and
:mod:`chatbot.backends.options` the command-line flags shared by chat, serve and evaluate.

Names are imported on first use, so parsing the backend flags does not import torch: a server that
is down is reported before the slow imports.
"""

import importlib

_EXPORTS = {
    "UNRANKED_NOTE": "chatbot.backends.base",
    "Backend": "chatbot.backends.base",
    "BackendError": "chatbot.backends.base",
    "Completion": "chatbot.backends.base",
    "LocalBackend": "chatbot.backends.local",
    "SERVER_KINDS": "chatbot.backends.capabilities",
    "UnsupportedSettingError": "chatbot.backends.capabilities",
    "plan_request": "chatbot.backends.capabilities",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'chatbot.backends' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
