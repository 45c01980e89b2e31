"""Fixtures for the browser tests: headless Chromium (Debian's chromium + chromedriver) driven by
selenium against a real `vramplan serve`, and the CLI the page's numbers are checked against.

run.sh starts the server and passes VRAMPLAN_URL and VRAMPLAN_BIN."""

import json
import os
import subprocess
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DESKTOP = (1280, 1000)


def _which(*names):
    for n in names:
        for d in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin", "/usr/lib/chromium"]:
            p = os.path.join(d, n)
            if os.access(p, os.X_OK):
                return p
    raise RuntimeError(f"none of {names} found: run tests/browser/run.sh, which installs them")


@pytest.fixture(scope="session")
def base_url():
    url = os.environ.get("VRAMPLAN_URL")
    if not url:
        pytest.fail("VRAMPLAN_URL is not set: run the tests through tests/browser/run.sh")
    return url.rstrip("/")


@pytest.fixture(scope="session")
def cli():
    binary = os.environ.get("VRAMPLAN_BIN") or os.path.join(ROOT, "target", "debug", "vramplan")

    def run(*args):
        out = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"vramplan {args}: {out.stderr}"
        return json.loads(out.stdout)

    return run


@pytest.fixture(scope="session")
def browser():
    opts = Options()
    opts.binary_location = _which("chromium", "chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={DESKTOP[0]},{DESKTOP[1]}", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(_which("chromedriver")), options=opts)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


class Page:
    """The calculator page in the browser, with helpers to change inputs and read figures."""

    def __init__(self, driver, base_url):
        self.d = driver
        self.base = base_url

    def open(self, query=""):
        self.d.get(self.base + "/" + (("?" + query) if query else ""))
        self.settle()

    def state(self):
        return self.d.execute_script("return document.body.dataset.state || ''")

    def settle(self, want="ready", timeout=20):
        """Waits until no update is pending and the newest one begun has finished; checks that it
        ended in `want` ("ready": every figure shown is for the current inputs; "error"; None:
        either, for a step between two inputs)."""
        end = time.time() + timeout
        script = ("const b = document.body.dataset; return !b.pending && !!b.generation && "
                  "b.started === b.generation && document.getElementById('busy').hidden;")
        while time.time() < end:
            if self.d.execute_script(script):
                st = self.state()
                assert want is None or st == want, f"page ended in {st!r}, wanted {want!r}: {self.el('#status').text!r}"
                return
            time.sleep(0.05)
        raise AssertionError(f"page did not settle: state {self.state()!r}, status {self.el('#status').text!r}")

    def type_into(self, element_id, value, want="ready"):
        e = self.el("#" + element_id)
        e.clear()
        e.send_keys(str(value))
        self.settle(want)

    def choose(self, element_id, value, want="ready"):
        from selenium.webdriver.support.ui import Select
        Select(self.el("#" + element_id)).select_by_value(str(value))
        self.settle(want)

    def el(self, css):
        return self.d.find_element("css selector", css)

    def figure(self, name):
        dd = self.el(f'dd[data-figure="{name}"]')
        return dd.get_attribute("data-value"), dd.find_element("css selector", ".value").text

    def console_errors(self):
        # A fetch answered 4xx is logged by Chromium as "Failed to load resource": that is the
        # API doing its job in the bad-input tests, not a page error.
        return [entry for entry in self.d.get_log("browser")
                if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]]


@pytest.fixture
def page(browser, base_url):
    browser.set_window_size(*DESKTOP)
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    browser.get(base_url + "/favicon.svg")
    browser.execute_script("try { localStorage.clear(); } catch (e) {}")
    browser.get_log("browser")
    p = Page(browser, base_url)
    p.open()
    yield p
    errors = p.console_errors()
    assert not errors, f"JavaScript errors: {errors}"
