"""A scripted OpenAI-compatible pairwise judge on 127.0.0.1.

A pairwise request shows three images (source, A, B); each target is named by the red value of
its top-left pixel (its mark). The behaviour for a request is `script[frozenset({mark_a,
mark_b})]` if given, else `default`:
- "prefer:M": the picture marked M is better, wherever it is shown (a fair judge);
- "first": always A (a judge with total position bias);
- "refusal", "malformed" (JSON cut off), "not_a_choice" ({"better": "both"}), "slow" (a fair
  answer after `slow_s`; the mark is the one in `prefer`), "500".
Any other request (the VIEScore judge's SC and PQ prompts, with one or two images) gets a good
score, so a whole run can use this server as its judge. Every pairwise request is recorded as
(mark_a, mark_b, behaviour)."""

from __future__ import annotations

import json
import threading
import time

from tests.loopback_server import (
    LoopbackServer,
    QuietJSONHandler,
    chat_completion,
    decode_data_url,
)


def _mark(url: str) -> int:
    return int(decode_data_url(url)[0, 0, 0])


class FakePairwiseServer(LoopbackServer):
    def __init__(self, default: str = "first", script: dict[frozenset, str] | None = None, slow_s: float = 1.0, prefer: int = -1):
        self.default, self.script, self.slow_s, self.prefer = default, dict(script or {}), slow_s, prefer
        self.pairs: list[tuple[int, int, str]] = []
        self.other_requests = 0
        self._lock = threading.Lock()
        super().__init__(_handler_for(self), models=("fake-judge",))


def _choice(a: int, b: int, preferred: int) -> str:
    return json.dumps({"better": "A" if a == preferred else "B", "why": f"the edit marked {preferred} is cleaner"})


def _handler_for(server: FakePairwiseServer):
    class Handler(QuietJSONHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            content = body["messages"][-1]["content"]
            images = [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
            if len(images) != 3:
                with server._lock:
                    server.other_requests += 1
                return self._json(200, chat_completion(json.dumps({"score": [8, 8], "reasoning": "fine"})))
            a, b = _mark(images[1]), _mark(images[2])
            behaviour = server.script.get(frozenset((a, b)), server.default)
            with server._lock:
                server.pairs.append((a, b, behaviour))
            try:
                self._respond(behaviour, a, b)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting

        def _respond(self, behaviour: str, a: int, b: int) -> None:
            name, _, arg = behaviour.partition(":")
            if name == "prefer":
                return self._json(200, chat_completion(_choice(a, b, int(arg))))
            if name == "first":
                return self._json(200, chat_completion('{"better": "A", "why": "the first one"}'))
            if name == "refusal":
                return self._json(200, chat_completion("I'm sorry, but I can't help with that request."))
            if name == "malformed":
                return self._json(200, chat_completion('{"better": "A", "wh'))
            if name == "not_a_choice":
                return self._json(200, chat_completion('{"better": "both", "why": "equal"}'))
            if name == "slow":
                time.sleep(server.slow_s)
                return self._json(200, chat_completion(_choice(a, b, server.prefer)))
            if name == "500":
                return self._json(500, {"error": {"message": "internal error"}})
            raise ValueError(f"unknown behaviour {behaviour!r}")

    return Handler
