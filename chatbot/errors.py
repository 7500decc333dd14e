"""Errors a user can fix. Entry points (CLI, web app) show them as one line, without a traceback."""


class ChatbotError(Exception):
    """A problem with the user's input, files or settings; the message names it and the fix."""


class DataError(ChatbotError, ValueError):
    """A dialogue data file or source that cannot be read."""


class ModelLoadError(ChatbotError):
    """A model folder or hub id that cannot be loaded as a chatbot or causal LM."""


class SettingsError(ChatbotError, ValueError):
    """An impossible or unknown setting (sampling, filters, training)."""
