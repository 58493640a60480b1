"""Headless Chromium flags for the browser tests: everything Chromium might reach for on its own
is switched off, and names resolve nowhere but loopback."""

OFFLINE_CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
