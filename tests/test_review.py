"""`review`: the sample, the offline page, the server's checks (no browser), and a real headless
Chromium driven by Selenium pressing the keys, served and opened as a file."""

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from pipeline.postrun.review_page import write_review_page
from pipeline.postrun.review_sample import choose_sample, read_sample
from pipeline.postrun.review_server import ReviewServer
from pipeline.postrun.verdicts import candidate_tasks, load_verdicts, verdicts_file
from tests.offline_chromium import OFFLINE_CHROMIUM_FLAGS
from tests.review_runs import RUN_ID, TASKS, make_run, verdict

SAMPLE = 8


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("review") / "run")
    write_review_page(run, SAMPLE, seed=1)
    return run


@pytest.fixture
def server(run):
    verdicts_file(run).unlink(missing_ok=True)
    server = ReviewServer(run, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _post(url, body, content_type="application/json", host=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + "verdicts", data=data, method="POST", headers={"Content-Type": content_type})
    if host:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_sample_spreads_over_tasks_and_statuses_and_follows_the_seed(run):
    picked = choose_sample(run, 6, seed=1)
    assert [r["task"] for r in picked] == sorted(r["task"] for r in picked)  # the page goes task by task
    assert sorted((r["task"], r["status"]) for r in picked) == sorted((t, s) for t in TASKS for s in ("ok", "rejected"))
    assert choose_sample(run, 6, seed=1) == picked
    assert {r["sample_id"] for r in choose_sample(run, 6, seed=2)} != {r["sample_id"] for r in picked}
    assert {r["task"] for r in choose_sample(run, 5, seed=1, tasks=["style_transfer"])} == {"style_transfer"}
    written = read_sample(run)
    assert written["run"] == RUN_ID and len(written["samples"]) == SAMPLE


def test_the_page_is_offline_and_carries_the_cards(run):
    page = (run / "review" / "index.html").read_text()
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert page.count("<section class='rv'") == SAMPLE
    sources = [s.split("'")[0] for s in page.split("src='")[1:]]
    assert sources and all((run / "review" / s).is_file() for s in sources)
    assert "Make the box &lt;b&gt;" in page  # instructions escaped, as in the report
    assert "把盒子变成红色" in page and "o=7.483" in page and "outside_change" in page


def test_the_server_binds_loopback_and_refuses_bad_verdicts(run, server):
    assert server.server_address[0] == "127.0.0.1"
    sample = read_sample(run)["samples"]
    outside = next(sid for sid in candidate_tasks(run) if sid not in {x["sample_id"] for x in sample})
    first = sample[0]
    good = verdict(first["sample_id"], first["task"], score=None)
    cases = [
        (verdict(outside, candidate_tasks(run)[outside]), 400, "unknown sample_id"),  # a row of the run, not of the sample
        ({**good, "run": "cfg-other"}, 400, "another run"),
        ({**good, "score": 9}, 400, "score must be"),
        (b"{oops", 400, "not JSON"),
        (b"\x80\x81{}", 400, "not JSON"),
    ]
    for body, code, message in cases:
        status, answer = _post(server.url, body)
        assert status == code and message in answer["error"], (body, answer)
    assert _post(server.url, good, content_type="text/plain")[0] == 415
    assert _post(server.url, good, host="evil.example:80")[0] == 403
    assert not verdicts_file(run).exists()
    assert _post(server.url, good) == (200, {"ok": True, "sample_id": first["sample_id"]})
    assert load_verdicts(run)[first["sample_id"]].score is None


def test_a_failed_append_is_an_error_answer_not_a_dropped_connection(run, server):
    first = read_sample(run)["samples"][0]
    verdicts_file(run).mkdir()  # appending to a folder fails like a full disk would
    try:
        status, answer = _post(server.url, verdict(first["sample_id"], first["task"]))
    finally:
        verdicts_file(run).rmdir()
    assert status == 500 and "cannot append to the verdicts file" in answer["error"]


def test_the_command_serves_and_import_refuses_a_bad_file(run, tmp_path):
    command = [sys.executable, "-m", "pipeline", "review", str(run), "--sample", str(SAMPLE), "--seed", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        url = lines[1].split()[2]
        assert url.startswith("http://127.0.0.1:"), lines
        first = read_sample(run)["samples"][0]
        assert _post(url, verdict(first["sample_id"], first["task"], verdict="reject"))[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(verdict(first["sample_id"], first["task"])) + "\n" + json.dumps(verdict("x", "style_transfer")) + "\n")
    done = subprocess.run([sys.executable, "-m", "pipeline", "review", "import", str(run), str(bad)], capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "bad.jsonl line 2: unknown sample_id x" in done.stderr
    assert load_verdicts(run)[first["sample_id"]].verdict == "reject"


# --- a real browser ---------------------------------------------------------------------------

CHROME_FLAGS = [*OFFLINE_CHROMIUM_FLAGS, "--disable-dev-shm-usage", "--window-size=1280,900"]


def _browser_missing() -> str | None:
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        return "chromium or chromedriver is not installed"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


needs_browser = pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))


@pytest.fixture
def browser(tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads"),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    yield driver
    driver.quit()


def _press(driver, keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    for key in keys:
        ActionChains(driver).send_keys(key).perform()


def _wait(condition, seconds: float = 10.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def _open(driver, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    _wait(lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")


def _current(driver) -> str:
    return driver.execute_script("return document.querySelector('.rv.current').dataset.sid")


@needs_browser
def test_keys_in_the_served_page_write_verdicts(run, server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    sample = [s["sample_id"] for s in read_sample(run)["samples"]]
    _open(browser, server.url)
    assert _current(browser) == sample[0]
    _press(browser, "y")  # the first card: keep
    _press(browser, "j")
    assert _current(browser) == sample[1]
    _press(browser, "y3n")  # the second: keep, score 3, then changed to reject
    _press(browser, "c")
    note = browser.switch_to.active_element
    assert note.get_attribute("placeholder").startswith("note")
    note.send_keys("halo at the edge", Keys.ENTER)
    _wait(lambda: verdicts_file(run).exists() and len(verdicts_file(run).read_text().splitlines()) == 5)
    lines = [json.loads(x) for x in verdicts_file(run).read_text().splitlines()]
    assert [(x["sample_id"], x["verdict"], x["score"]) for x in lines[:4]] == [
        (sample[0], "keep", None), (sample[1], "keep", None), (sample[1], "keep", 3), (sample[1], "reject", 3)]
    assert all(x["run"] == RUN_ID and x["at"].endswith("Z") for x in lines)
    found = load_verdicts(run)
    assert (found[sample[1]].verdict, found[sample[1]].score, found[sample[1]].note) == ("reject", 3, "halo at the edge")
    assert browser.find_element(By.ID, "progress").text == f"reviewed 2 of {SAMPLE}"
    state = browser.find_elements(By.CSS_SELECTOR, ".rv .rv-state")[1].text
    assert state == "REJECT · score 3 · note: halo at the edge"
    _press(browser, "jjjjjj")  # the highlighted card is scrolled into view
    assert _current(browser) == sample[7]
    top, bottom = browser.execute_script("var r=document.querySelector('.rv.current').getBoundingClientRect(); return [r.top, r.bottom];")
    assert 0 <= top < 900 and bottom > 0
    _open(browser, server.url)  # reopened: what was saved shows, the first unreviewed card is current
    assert browser.find_element(By.ID, "progress").text == f"reviewed 2 of {SAMPLE}"
    assert _current(browser) == sample[2]


@needs_browser
def test_the_page_opened_as_a_file_downloads_verdicts_that_import(run, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    verdicts_file(run).unlink(missing_ok=True)
    sample = [s["sample_id"] for s in read_sample(run)["samples"]]
    _open(browser, (run / "review" / "index.html").as_uri())
    browser.find_element(By.ID, "reviewer").send_keys("ann", Keys.ENTER)  # Enter hands the keys back to the cards
    _press(browser, "n2jy")
    browser.find_element(By.ID, "download").click()
    _press(browser, "j")
    assert _current(browser) == sample[2]
    download = _wait(lambda: next((tmp_path / "downloads").glob("verdicts*.jsonl"), None))
    lines = [json.loads(x) for x in _wait(lambda: download.read_text()).splitlines()]
    assert [(x["sample_id"], x["verdict"], x["score"], x["reviewer"]) for x in lines] == [
        (sample[0], "reject", 2, "ann"), (sample[1], "keep", None, "ann")]
    assert not verdicts_file(run).exists()  # nothing was sent anywhere
    done = subprocess.run([sys.executable, "-m", "pipeline", "review", "import", str(run), str(download)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "2 new, 0 changed" in done.stdout
    assert load_verdicts(run)[sample[0]].score == 2
