"""Open a dashboard file in real headless Chromium with the network cut off; report what rendered."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from farm.drivers.base import BrowserOptions
from farm.drivers.playwright_driver import chromium_launch_args

CHROMIUM = BrowserOptions().executable_path


@dataclass
class Rendered:
    """What the page showed: per chart (data-chart kind, number of marks, width in px), requests
    that left the file, console errors, and the screenshot's path."""

    charts: list[tuple[str, int, float]]
    outside_requests: list[str]
    console_errors: list[str]
    screenshot: Path
    text: str
    step_markers: int


def render_offline(html: Path, screenshot: Path) -> Rendered:
    from playwright.sync_api import sync_playwright

    args, ignore = chromium_launch_args(BrowserOptions())
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args, ignore_default_args=ignore)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1400, "height": 900})
            page = context.new_page()
            outside: list[str] = []
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            def route(r):
                if r.request.url.startswith("file://"):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(html.resolve().as_uri())
            charts = page.evaluate("""() => [...document.querySelectorAll('svg.chart')].map(s => [
                s.dataset.chart, s.querySelectorAll('rect,path,circle').length, s.getBoundingClientRect().width])""")
            text = page.inner_text("body")
            markers = page.evaluate("() => document.querySelectorAll('svg.chart .step-marker').length")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return Rendered([tuple(c) for c in charts], outside, errors, screenshot, text, markers)
