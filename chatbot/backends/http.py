"""A small HTTP client for OpenAI-compatible servers: JSON calls, server-sent events, one-line errors.

Built on ``httpx`` (already installed with gradio). Failures become :class:`BackendError` with one
line a user can act on:

- nothing listening, or no answer to the connection within ``connect_timeout`` (default 3 s): "cannot
  reach URL", not retried, so a server that is down is reported within seconds;
- an HTTP error: the status and the server's own message (FastAPI's ``detail``, OpenAI's
  ``error.message``, llama.cpp's and TGI's ``error``);
- a body that is not JSON, or JSON without what the caller needs: "malformed response".

``retries`` (default 2) repeats a request after 429, 500, 502, 503 and 504 answers and dropped
connections, waiting 0.5 s, then 1 s, ...; ``timeout`` (default 120 s) bounds each read, which a
long generation on a CPU may need.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from chatbot.backends.base import BackendError

logger = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class HttpSettings:
    """Timeouts (seconds) and retries of every request to a server."""

    timeout: float = 120.0
    connect_timeout: float = 3.0
    retries: int = 2


def server_message(response: httpx.Response) -> str:
    """The server's own explanation of an error response, in one line."""
    try:
        data = response.json()
    except ValueError:
        return " ".join(response.text.split())[:300] or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            return " ".join(str(error).split())[:300]
    return " ".join(json.dumps(data).split())[:300]


class HttpClient:
    """JSON requests to one server; ``base_url`` ends with the API root, e.g. ``http://host:8000/v1``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        settings: HttpSettings | None = None,
        transport: httpx.BaseTransport | None = None,  # tests pass httpx.MockTransport
    ):
        self.base_url = base_url.rstrip("/")
        self.settings = settings or HttpSettings()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(self.settings.timeout, connect=self.settings.connect_timeout)
        self._client = httpx.Client(headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._client.close()

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}/{path.lstrip('/')}"

    def _send(self, method: str, path: str, body: dict | None, stream: bool = False) -> httpx.Response:
        url = self.url(path)
        for attempt in range(self.settings.retries + 1):
            last = attempt == self.settings.retries
            try:
                request = self._client.build_request(method, url, json=body)
                response = self._client.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise BackendError(f"cannot reach {url} ({type(exc).__name__}): is the server running?") from exc
            except httpx.TimeoutException as exc:
                raise BackendError(
                    f"{url} did not answer within {self.settings.timeout:g} s; raise --timeout for slow servers"
                ) from exc
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                if last:
                    raise BackendError(f"{url} dropped the connection ({exc})") from exc
                self._wait(attempt, f"dropped connection ({exc})")
                continue
            if response.status_code < 400:
                return response
            if stream:
                response.read()
            if response.status_code in RETRY_STATUS and not last:
                self._wait(attempt, f"HTTP {response.status_code}")
                continue
            raise BackendError(f"{url} answered HTTP {response.status_code}: {server_message(response)}")
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, why: str) -> None:
        delay = 0.5 * 2**attempt
        logger.warning("%s; retrying in %.1f s", why, delay)
        time.sleep(delay)

    def get_json(self, path: str) -> dict:
        return _json_of(self._send("GET", path, None), self.url(path))

    def post_json(self, path: str, body: dict) -> dict:
        return _json_of(self._send("POST", path, body), self.url(path))

    def probe(self, path: str) -> dict | None:
        """GET a path that may not exist on this server: its JSON, or None for any error."""
        try:
            return self.get_json(path)
        except BackendError:
            return None

    def stream_events(self, path: str, body: dict) -> Iterator[dict]:
        """The JSON ``data:`` events of a server-sent-event response; closing the iterator closes the connection."""
        response = self._send("POST", path, body, stream=True)
        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    event = json.loads(data)
                except json.JSONDecodeError as exc:
                    raise BackendError(
                        f"{self.url(path)}: malformed response (an event is not JSON: {data[:80]!r})"
                    ) from exc
                if isinstance(event, dict) and "error" in event:
                    raise BackendError(f"{self.url(path)} reported an error mid-stream: {event['error']}")
                yield event
        except httpx.TimeoutException as exc:
            raise BackendError(f"{self.url(path)} stopped sending within {self.settings.timeout:g} s") from exc
        finally:
            response.close()  # a cancelled stream: the server sees the disconnect and stops generating


def _json_of(response: httpx.Response, url: str) -> dict:
    try:
        data = response.json()
    except ValueError as exc:
        raise BackendError(f"{url}: malformed response (not JSON: {response.text[:80]!r})") from exc
    if not isinstance(data, dict):
        raise BackendError(f"{url}: malformed response (expected a JSON object, got {type(data).__name__})")
    return data
