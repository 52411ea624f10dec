"""`jitfarm dashboard` writes one self-contained HTML file that real headless Chromium renders offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.cli import main
from farm.store.synthetic import PlantedStep, SyntheticDevice, write_history
from tests.dashboard_browser import CHROMIUM, render_offline

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not (CHROMIUM and Path(CHROMIUM).is_file()), reason=f"no Chromium at {CHROMIUM}")]

OPS = ("matmul_f32_64x64x64", "matmul_f32_1x128x128")
DEVICES = (SyntheticDevice("laptop", adapter="intel gen12", fingerprint="fp-l", vendor="intel"),
           SyntheticDevice("phone", adapter="adreno 740", fingerprint="fp-p", vendor="qualcomm"))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash")
    write_history(root, runs=8, devices=DEVICES, ops=OPS, step=PlantedStep(at=5, device_id="laptop"),
                  run_jitter=0.01, trials=12, seed=3)
    out = root / "dash.html"
    assert main(["dashboard", "--results-dir", str(root), "-o", str(out)]) == 0
    return out, render_offline(out, root / "dash.png")


def test_dashboard_is_one_file_without_scripts_or_outside_references(rendered):
    html, r = rendered
    text = html.read_text()
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text and "<link" not in text
    assert r.outside_requests == [] and r.console_errors == []


def test_every_chart_renders_marks(rendered):
    _, r = rendered
    kinds = [k for k, _, _ in r.charts]
    assert kinds.count("heatmap") == 1 and kinds.count("bars") == 2 and kinds.count("lines") == 2
    assert kinds.count("timeline") == 2 * 2 * 2  # device x impl x op
    assert all(marks > 3 and width > 100 for _, marks, width in r.charts)


def test_page_shows_tables_flags_and_the_planted_regression(rendered):
    _, r = rendered
    for section in ("Speedup heatmap", "Speedup per device", "Tuning curves", "Latency (median ms, 95% CI",
                    "Validity flags", "Timeline of every series"):
        assert section in r.text
    assert r.step_markers == 2  # the laptop's two tuned-kernel series, at the planted run
    assert "synthetic-005: 2 series slower" in r.text and "chromium 156.0.0.0 -> chromium 157.0.0.0" in r.text


def test_screenshot_is_produced(rendered):
    _, r = rendered
    data = r.screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_dashboard_of_unknown_run_is_a_user_error(tmp_path):
    assert main(["dashboard", "nope", "--results-dir", str(tmp_path)]) == 2
    assert main(["dashboard", "--results-dir", str(tmp_path)]) == 2
