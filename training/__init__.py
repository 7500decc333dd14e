"""Dialogue data loaders and the fine-tuning pipeline (``chatbot train``)."""
