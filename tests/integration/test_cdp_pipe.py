"""farm/drivers/cdp_pipe.py drives real headless Chromium over --remote-debugging-pipe: the harness
page loads from the loopback server, JavaScript values and thrown errors come back, and a command
after the browser died is an error rather than a hang."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from farm.drivers.cdp_pipe import CdpError, CdpLaunch, CdpPipe
from farm.harness.server import HarnessServer

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/lib/chromium/chromium"
FLAGS = ("--headless=new", "--no-sandbox", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--enable-unsafe-webgpu")


@pytest.fixture()
def browser(tmp_path: Path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/setup.sh")
    b = CdpPipe(CdpLaunch(executable=CHROMIUM, args=FLAGS, user_data_dir=str(tmp_path / "profile"),
                          command_timeout_s=60))
    yield b
    b.close()


def test_harness_page_answers_probe_over_the_debugging_pipe(browser):
    assert "Chrome/" in browser.version()["product"]
    with HarnessServer() as server:
        session = browser.open_page(f"{server.url}/index.html?featureLevel=core")
        assert browser.evaluate(session, "1 + 2") == 3
        ready = browser.evaluate(session, "new Promise(r => { const t = () => window.jitfarmReady ? r(true) : "
                                          "setTimeout(t, 50); t(); })")
        assert ready is True
        probe = browser.evaluate(session, "window.jitfarm.probe()")
        assert probe["webgpu"] is True and probe["adapter"]["vendor"]


def test_page_errors_and_a_dead_browser_are_cdp_errors(browser):
    session = browser.open_page("about:blank")
    with pytest.raises(CdpError, match="boom"):
        browser.evaluate(session, "(() => { throw new Error('boom'); })()")
    browser.proc.kill()
    browser.proc.wait(timeout=10)
    with pytest.raises(CdpError):
        browser.evaluate(session, "1", timeout_s=10)
