"""Headless Chromium for the review page: Debian's ``chromium`` driven by Selenium
through ``chromium-driver`` (``make test`` installs both as root, like Graphviz).

:func:`browser_missing` says why no browser can be started here (``None`` when one
can); :func:`open_page` yields a driver on a local HTML file. Run as a script, it
screenshots a page: ``python tests/browser.py diagrams/review.html diagrams/review.png``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Where Debian puts the browser and its driver.
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"
#: The first screen a reviewer sees.
WINDOW = (1400, 900)
#: Flags that work headless, as root, without network.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def _which(names: tuple[str, ...]) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


def browser_missing() -> str | None:
    """Why the browser test cannot run here, or ``None`` when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if _which(CHROMIUM) is None:
        return "Chromium is not installed (Debian/Ubuntu: apt-get install chromium chromium-driver)"
    if _which((DRIVER,)) is None:
        return "chromedriver is not installed (Debian/Ubuntu: apt-get install chromium-driver)"
    return None


@contextmanager
def open_page(page: Path, window: tuple[int, int] = WINDOW) -> Iterator[Any]:
    """A headless Chromium showing ``page`` (a local file), its console log kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = _which(CHROMIUM)
    driver_path = _which((DRIVER,))
    if binary is None or driver_path is None:
        raise RuntimeError(f"no headless browser: {browser_missing()}")
    with tempfile.TemporaryDirectory(prefix="fsm-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={window[0]},{window[1]}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            driver.set_window_size(*window)
            driver.get(page.resolve().as_uri())
            yield driver
        finally:
            driver.quit()


def screenshot(page: Path, png: Path) -> None:
    """The first screen of ``page`` as ``png``."""
    with open_page(page) as driver:
        png.write_bytes(driver.get_screenshot_as_png())


if __name__ == "__main__":  # pragma: no cover - used by `make review`
    why = browser_missing()
    if why is not None:
        print(f"no screenshot: {why}", file=sys.stderr)
        sys.exit(0)
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"screenshot written to {sys.argv[2]}")
