"""One look at an OpenAI-compatible server before any work is sent to it: GET {url}/models
answers, and the model asked for is in its list. A wrong URL or model name then stops the run at
once, not after every row has been retried and marked unscored. The key is read from the
environment, sent as the client sends it, and never put in a message."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import requests

PROBE_TIMEOUT_S = 5.0  # a listing is cheap: a server that cannot answer it this fast is not ready


class ServerUnusable(ValueError):
    """The server cannot serve the model: unreachable, an error answer, or the model not listed."""


def shown_url(url: str) -> str:
    """The URL as it may be printed: no user:password@, no query (either may hold a key)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def probe_model(base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", what: str = "server",
                timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise ServerUnusable naming the URL (credentials stripped) unless the server lists `model`."""
    key = os.environ.get(api_key_env) or None
    url = base_url.rstrip("/") + "/models"
    where = f"{what} at {shown_url(url)}"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    session = requests.Session()
    session.trust_env = False  # as the client: no proxy or netrc credentials from the environment
    try:
        with session:
            response = session.get(url, headers=headers, timeout=timeout_s)
    except requests.Timeout:
        raise ServerUnusable(f"{where}: no answer within {timeout_s:g} s") from None
    except requests.RequestException as exc:
        raise ServerUnusable(f"{where} is unreachable ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise ServerUnusable(f"{where} answered HTTP {response.status_code}" + (" (check the key in $" + api_key_env + ")"
                                                                               if response.status_code in (401, 403) else ""))
    try:
        listed = [str(m.get("id")) for m in response.json().get("data") or [] if isinstance(m, dict)]
    except (ValueError, AttributeError):
        raise ServerUnusable(f"{where} answered something that is not a model list") from None
    if model not in listed:
        shown = ", ".join(listed[:10]) + (" ..." if len(listed) > 10 else "")
        raise ServerUnusable(f"{where} does not serve model {model!r} (it lists: {shown or 'nothing'})")
