"""An HTTP server on 127.0.0.1 (a free port) served from a daemon thread while the `with` block
runs: the part every scripted fake server of the tests shares, the model list (GET /v1/models)
that a run probes before it starts included, and the chat-completion answer and image decoding
they all use."""

from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from PIL import Image


def chat_completion(content: str | None, refusal: str | None = None, finish_reason: str = "stop") -> dict[str, Any]:
    """An OpenAI chat-completion answer with one choice."""
    message = {"role": "assistant", "content": content, "refusal": refusal}
    return {"id": "fake", "object": "chat.completion", "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}]}


def decode_data_url(url: str) -> np.ndarray:
    """The RGB picture of a base64 data URL, as a request's image part carries it."""
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as img:
        return np.asarray(img.convert("RGB"))


class QuietJSONHandler(BaseHTTPRequestHandler):
    """A request handler that answers in JSON and keeps the test output free of access logs."""

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        models = getattr(self.server, "models", ())
        if self.path.rstrip("/") != "/v1/models":
            return self._json(404, {"error": {"message": f"no route {self.path}"}})
        self._json(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in models]})


class LoopbackServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0, models: tuple[str, ...] = ()):
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.models = tuple(models)  # what GET /v1/models lists
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, up to and including /v1."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
