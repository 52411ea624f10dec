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


def test_cdp_driver_tunes_and_checks_a_kernel_like_the_playwright_driver(tmp_path):
    # The device YAML route (driver: cdp), then one batch through it, checked against numpy.
    from farm.config.devices import load_device
    from farm.drivers import make_driver
    from jit_core.caps import DeviceCaps
    from jit_core.ops import MatMul
    from jit_core.protocol import MeasureSpec, make_batch
    from jit_core.reference import check_outputs, check_positions
    from jit_core.templates import get_template

    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/setup.sh")
    yaml = tmp_path / "cdp-chromium.yaml"
    yaml.write_text("id: cdp-chromium\ndriver: cdp\nbrowser:\n  executable_path: " + CHROMIUM +
                    "\n  args: [--enable-unsafe-webgpu, --enable-webgpu-developer-features]\n")
    driver = make_driver(load_device(yaml))
    assert driver.kind == "cdp"
    with driver:
        probe = driver.probe()
        assert probe["webgpu"] and probe["adapter"]["vendor"]
        caps = DeviceCaps.from_probe(probe)
        op = MatMul(33, 20, 12)
        template = get_template("matmul-wgsl-vec4")
        configs = list(template.space(op, caps))[:3]
        positions = check_positions(op, 0, 5)
        batch = make_batch(op, [(f"c{i}", template.render(op, c)) for i, c in enumerate(configs)], seed=5,
                           measure=MeasureSpec(warmup=0, samples=2, min_sample_ms=0.0, max_reps=2),
                           check_positions=positions)
        for res in driver.run_batch(batch):
            assert res.ok, res.error
            assert check_outputs(op, 5, positions, res.values).ok
            assert len(res.samples_ms) == 2
        assert "Chrome/" in driver.versions()["browser"]
