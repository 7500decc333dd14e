"""Start ``transformers serve`` on a checkpoint folder, on a free localhost port, and wait until it answers.

    with transformers_serve("runs/small") as base_url:     # http://127.0.0.1:PORT/v1
        bot = load_bot(BackendOptions(base_url=base_url))

Used by the tests and the serving benchmark; needs ``pip install "transformers[serving]"``. The
server takes about 20-25 s to start on an idle CPU (longer on a busy one), so ``wait_s`` is generous.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from chatbot.backends.base import BackendError

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(folder: str | Path, port: int, continuous_batching: bool = False) -> list[str]:
    """The ``transformers serve`` command line (through this Python, so the same environment serves)."""
    exe = shutil.which("transformers")
    head = [exe] if exe else [sys.executable, "-m", "transformers.cli.transformers"]
    command = [*head, "serve", str(Path(folder).resolve()), "--host", "127.0.0.1", "--port", str(port)]
    return command + (["--continuous-batching"] if continuous_batching else [])


def _die_with_parent() -> None:
    """In the child, before exec: Linux sends it SIGTERM when the process that started it dies (a killed test run)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the context manager still stops it on a normal exit


def wait_for_health(root: str, process: subprocess.Popen, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BackendError(f"transformers serve exited with code {process.returncode} before answering")
        try:
            if httpx.get(f"{root}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise BackendError(f"transformers serve did not answer {root}/health within {wait_s:g} s")


@contextmanager
def transformers_serve(
    folder: str | Path, *, continuous_batching: bool = False, wait_s: float = 180.0, port: int | None = None
) -> Iterator[str]:
    """A running ``transformers serve`` for ``folder``; yields its base URL and stops it afterwards."""
    port = port or free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="transformers-serve-", suffix=".log", delete=False)
    process = subprocess.Popen(
        serve_command(folder, port, continuous_batching),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    root = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_health(root, process, wait_s)
        except BackendError as exc:
            log.seek(0)
            tail = log.read()[-2000:]
            raise BackendError(f"{exc}; its log ({log.name}) ends with:\n{tail}") from exc
        logger.info("transformers serve on %s (log %s)", root, log.name)
        yield f"{root}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
