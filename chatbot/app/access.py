"""What a visitor of the app can reach and change.

- Downloads: a file offered for download (a vote export, a saved conversation) is first copied into
  a fresh temporary folder, and that copy is offered. The data folder itself is never served: the
  app launches without it in ``allowed_paths``, so ``/gradio_api/file=<data folder>/...`` is refused.
- Changes to the data folder (clearing votes, saving presets) pass one gate,
  :func:`disk_changes_allowed`: open while the app is reachable from this machine only, or behind
  a login (``--auth``); closed when it listens beyond loopback (``--host 0.0.0.0``) or has a public
  ``--share`` link without a login.
"""

from __future__ import annotations

import shutil
import tempfile
from ipaddress import ip_address
from pathlib import Path

from chatbot.app.sessions import AppConfig


def is_loopback(host: str) -> bool:
    """``host`` only accepts connections from this machine (127.x.x.x, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


def disk_changes_allowed(config: AppConfig) -> bool:
    """The one gate for actions that change files in the data folder (clearing votes, saving presets)."""
    return config.auth is not None or (is_loopback(config.host) and not config.share)


def refused(action: str) -> str:
    """The one-line message when the gate is closed: what is off, why, and the fix."""
    return (
        f"{action} is off: this app is reachable beyond this machine (--host or --share) without a login. "
        "Restart it with --auth USER:PASSWORD, or on 127.0.0.1 without --share."
    )


def offered_copy(path: Path) -> Path:
    """A copy of ``path`` in a fresh temporary folder: what a download link may point at."""
    folder = Path(tempfile.mkdtemp(prefix="chatbot-download-"))
    return Path(shutil.copy2(path, folder / Path(path).name))
