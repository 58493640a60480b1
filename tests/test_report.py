"""The HTML report of a run: files and relative links on disk, then a real headless Chromium
renders it offline with no console errors and shows the cards."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.core import config
from pipeline.postrun.finish import run_pipeline
from pipeline.postrun.report import write_report
from tests.offline_chromium import OFFLINE_CHROMIUM_FLAGS

OFFLINE_FLAGS = [*OFFLINE_CHROMIUM_FLAGS, "--window-size=1280,2000", "--virtual-time-budget=3000"]


@pytest.fixture(scope="module")
def report(ray_address, tmp_path_factory):
    out = tmp_path_factory.mktemp("report_run") / "run"
    overrides = [{"run": {"out": str(out), "progress": False}}]
    overrides += [config.parse_set(s) for s in ("run.shard_size=3", "decode.working_size=128")]
    result = run_pipeline(config.load_config("cpu", overrides=overrides), log=lambda m: None)
    index = write_report(result.run_dir, per_task=4, page_size=3)
    return result.run_dir, index


def _pages(index: Path) -> list[Path]:
    return sorted(index.parent.glob("*.html"))


def test_report_pages_and_relative_images_exist(report):
    run_dir, index = report
    assert index == run_dir / "report" / "index.html"
    names = {p.name for p in _pages(index)}
    counts = json.loads((run_dir / "manifest.json").read_text())["tasks"]["color_alteration"]
    assert counts["ok"] >= 10 and counts["skipped"] == 1  # the sample must cut, and the video row shows
    sampled = sum(min(4, n) for n in counts.values())  # at most 4 per status
    pages = -(-sampled // 3)
    assert {"index.html", "errors.html", f"color_alteration-{pages}.html"} <= names
    assert f"color_alteration-{pages + 1}.html" not in names
    links = 0
    for page in _pages(index):
        text = page.read_text()
        assert "http://" not in text and "https://" not in text
        for src in re.findall(r"src='([^']+)'", text):
            assert not src.startswith("/") and (page.parent / src).is_file(), (page.name, src)
            links += 1
    assert links > 0
    thumb = Image.open(next((index.parent / "thumbs").glob("*_source.jpg")))
    assert max(thumb.size) <= 256
    errors = (index.parent / "errors.html").read_text()
    assert "color_alteration takes still images, this input is a video" in errors


def test_report_is_deterministic_and_escapes_text(report, tmp_path):
    run_dir, index = report
    again = write_report(run_dir, out=tmp_path / "again", per_task=4, page_size=3)
    for page in _pages(index):
        assert (again.parent / page.name).read_text() == page.read_text()
    config_text = (run_dir / "config.yaml").read_text()
    assert "<pre>" in index.read_text() and config_text.splitlines()[0] in index.read_text()
    assert "<script>" not in (index.parent / "errors.html").read_text()  # pages work without scripts


def _chromium(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium")
    return subprocess.run([binary, *OFFLINE_FLAGS, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
@pytest.mark.parametrize("page", ["index.html", "color_alteration-1.html"])
def test_chromium_renders_the_page_without_console_errors(report, page, tmp_path):
    _run_dir, index = report
    shot = tmp_path / "shot.png"
    url = (index.parent / page).as_uri()
    done = _chromium("--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", url)
    assert shot.exists(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 10  # not a blank page
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert not console, console


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_chromium_dom_has_the_cards(report, tmp_path):
    _run_dir, index = report
    done = _chromium(f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (index.parent / "color_alteration-1.html").as_uri())
    cards = re.findall(r'class="card s-(\w+)', done.stdout)
    assert len(cards) == 3, done.stdout[:2000]
    with_images = sum(status in ("ok", "rejected") for status in cards)
    assert with_images >= 1
    # source, target, mask overlay, and the two layers of the before/after slider
    assert len(re.findall(r"<img ", done.stdout)) == 5 * with_images
