"""A GPT-2 dialogue chatbot: dialogue format, checkpoints, decoding, conversation manager and web app."""

__version__ = "0.1.0"
