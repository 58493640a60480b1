"""Draws docs/review.png: the review page of a run, served, part-way through a review (a few cards
judged with the keys, one note), in headless Chromium driven by Selenium.

    python docs/review_screenshot.py runs/demo [--out docs/review.png]

It writes RUN/review/ (page, sample, and the verdicts the keys make), so use a demo run."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from pipeline.core.fonts import cjk_font_path
from pipeline.postrun.review_page import write_review_page
from pipeline.postrun.review_server import ReviewServer
from pipeline.postrun.verdicts import verdicts_file

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
         "--window-size=1400,1500", "--hide-scrollbars"]


def _fontconfig(folder: Path) -> dict[str, str]:
    """An environment whose fontconfig also sees the project's Noto Sans CJK (from PyPI), so the
    Chinese instructions render on a machine without system CJK fonts."""
    conf = folder / "fonts.conf"
    conf.write_text(
        "<?xml version='1.0'?><!DOCTYPE fontconfig SYSTEM 'fonts.dtd'><fontconfig>"
        "<include ignore_missing='yes'>/etc/fonts/fonts.conf</include>"
        f"<dir>{cjk_font_path().parent}</dir><cachedir>{folder / 'cache'}</cachedir></fontconfig>"
    )
    return {**os.environ, "FONTCONFIG_FILE": str(conf)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/review.png"))
    args = parser.parse_args()
    os.environ["SE_OFFLINE"] = "true"
    write_review_page(args.run, 60, seed=0)
    verdicts_file(args.run).unlink(missing_ok=True)
    server = ReviewServer(args.run, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in FLAGS:
        options.add_argument(flag)
    fonts = tempfile.TemporaryDirectory()
    service = Service(shutil.which("chromedriver"), env=_fontconfig(Path(fonts.name)))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.get(server.url)
        while driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") != "1":
            time.sleep(0.05)
        driver.find_element(By.ID, "reviewer").send_keys("ann")
        driver.execute_script("document.activeElement.blur()")
        for keys in ("y4j", "n2c"):
            for key in keys:
                ActionChains(driver).send_keys(key).perform()
        driver.switch_to.active_element.send_keys("neck ring cut away with the old background", Keys.ENTER)
        for key in "jy3j":
            ActionChains(driver).send_keys(key).perform()
        time.sleep(1.0)  # the last POSTs land and the page redraws
        # the judged cards above the current one, the one with the note at the top
        driver.execute_script("document.querySelectorAll('.rv')[1].scrollIntoView({block: 'start'}); window.scrollBy(0, -70)")
        driver.save_screenshot(str(args.out))
    finally:
        driver.quit()
        server.shutdown()
        fonts.cleanup()
    print(args.out, len(verdicts_file(args.run).read_text().splitlines()), "verdict lines")


if __name__ == "__main__":
    main()
