"""Start the browser app from a checkout: ``python app.py [--model M] [--port P] ...`` (see ``chatbot serve --help``).

``demo`` is the module-level Gradio app with the default configuration (the embedded model, loaded
on first use), for tools that look for it, such as ``gradio app.py``; the app itself lives in
``chatbot.app`` so an installed package has it too.
"""

import sys

from chatbot import cli
from chatbot.app import build_app

demo = build_app()

if __name__ == "__main__":
    # through the CLI, so a bad --model is one line on stderr, exactly as with `chatbot serve`
    sys.exit(cli.main(["serve", *sys.argv[1:]]))
