"""Where replies come from: the model in this process (``local``) or an OpenAI-compatible server (``openai``).

    from chatbot.backends import LocalBackend, connect, BackendError

:mod:`chatbot.backends.base` defines the seam, :mod:`chatbot.backends.capabilities` the table of
what each server kind can apply, :mod:`chatbot.backends.openai` the HTTP backend and
:mod:`chatbot.backends.options` the command-line flags shared by chat, serve and evaluate.
"""

from chatbot.backends.base import UNRANKED_NOTE, Backend, BackendError, Completion
from chatbot.backends.capabilities import SERVER_KINDS, UnsupportedSettingError, plan_request
from chatbot.backends.local import LocalBackend

__all__ = [
    "SERVER_KINDS",
    "UNRANKED_NOTE",
    "Backend",
    "BackendError",
    "Completion",
    "LocalBackend",
    "UnsupportedSettingError",
    "plan_request",
]
