"""The review page's server: stdlib http.server on 127.0.0.1 only. GET serves RUN/review/ (the
page, its thumbnails, verdicts.jsonl so a reopened page shows what was done); POST /verdicts
checks one verdict against the contract, the run's id and the sample, and appends it to
RUN/review/verdicts.jsonl. A run on a store is served from a local folder holding its page and a
working copy of its verdicts file; each verdict puts the whole file on the store
(`verdicts.append_verdict`)."""

from __future__ import annotations

import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipeline.core.run_dir import RunDir
from pipeline.postrun.review_sample import read_sample
from pipeline.postrun.verdicts import (
    Run,
    VerdictError,
    append_verdict,
    fetch_verdicts,
    parse_verdict,
    review_dir,
    run_id,
)

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024


class _Handler(SimpleHTTPRequestHandler):
    server: ReviewServer

    def _allowed_host(self) -> bool:
        # a page elsewhere that resolves its own name to 127.0.0.1 (DNS rebinding) carries that name here
        port = self.server.server_address[1]
        return self.headers.get("Host", "") in (f"{HOST}:{port}", f"localhost:{port}")

    def _json(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def list_directory(self, path):  # no folder listings
        self.send_error(404)
        return None

    def do_GET(self) -> None:
        if not self._allowed_host():
            self.send_error(403, "unknown Host")
            return
        super().do_GET()

    def do_HEAD(self) -> None:
        if not self._allowed_host():
            self.send_error(403, "unknown Host")
            return
        super().do_HEAD()

    def do_POST(self) -> None:
        if not self._allowed_host():
            return self._json(403, {"error": "unknown Host"})
        if self.path != "/verdicts":
            return self._json(404, {"error": f"no such endpoint {self.path}; POST verdicts to /verdicts"})
        # application/json cannot be sent cross-origin without a preflight this server never answers
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return self._json(415, {"error": "Content-Type must be application/json"})
        declared = self.headers.get("Content-Length", "")
        length = int(declared) if declared.isdigit() else 0
        if not 0 < length <= MAX_BODY:
            return self._json(413 if length else 400, {"error": f"a verdict is one JSON object of at most {MAX_BODY} bytes"})
        try:
            verdict = parse_verdict(json.loads(self.rfile.read(length)), self.server.run_id, self.server.tasks)
        except VerdictError as exc:
            return self._json(400, {"error": str(exc)})
        except ValueError:  # not JSON, or not UTF-8
            return self._json(400, {"error": "not JSON"})
        try:
            with self.server.lock:
                append_verdict(self.server.run, verdict, self.server.working)
        except OSError as exc:  # disk full, folder gone, store unreachable: the page shows NOT SAVED and keeps the verdict
            return self._json(500, {"error": f"cannot append to the verdicts file: {exc.strerror or exc}"})
        self._json(200, {"ok": True, "sample_id": verdict.sample_id})

    def log_message(self, format, *args) -> None:  # one line per request would bury the URL
        pass


class ReviewServer(ThreadingHTTPServer):
    """Serves a run's review folder on 127.0.0.1; port 0 takes a free one. A run on a store is
    served from `folder`, where its page was drawn; its verdicts so far are copied there first."""

    daemon_threads = True

    def __init__(self, run: Run, port: int = 0, folder: Path | None = None):
        self.run = RunDir(run)
        self.run_id = run_id(self.run)
        self.tasks = {s["sample_id"]: s["task"] for s in read_sample(self.run)["samples"]}
        self.lock = threading.Lock()
        if self.run.store.remote:
            if folder is None:
                raise ValueError("a run on a store is reviewed from a local folder holding its page")
            self.working: Path | None = Path(folder) / "verdicts.jsonl"
            fetch_verdicts(self.run, self.working)
        else:
            folder, self.working = review_dir(self.run), None
        super().__init__((HOST, port), partial(_Handler, directory=str(folder)))

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"
