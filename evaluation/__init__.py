"""Measuring chatbots and sampling settings (``chatbot evaluate``)."""
