"""A kernel that never finishes hits the per-job timeout; a device whose browser cannot start is
quarantined while the other device finishes its jobs."""

from __future__ import annotations

import json

import pytest

from farm.config.experiments import load_experiment
from farm.scheduler.run import RunOptions, run_experiment

from .conftest import check_records, needs_lavapipe
from .spin_template import SPIN_M, SpinOnM7, register

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.native]

HANG_EXPERIMENT = f"""\
name: hang
devices: [native-lavapipe]
ops:
  - {{kind: matmul, M: {SPIN_M}, N: 16, K: 16, label: spins}}
  - {{kind: matmul, M: 8, N: 16, K: 16, label: fine}}
tuner: {{template: {SpinOnM7.name}, budget_s: 30, max_evals: 4, batch_size: 2}}
measure: {{warmup: 0, samples: 2, min_sample_ms: 1, max_reps: 4}}
compare: {{rounds: 1, samples: 2}}
faults: {{job_timeout_s: 6, retries: {{device: 0}}}}
"""

BROKEN_BROWSER = """\
id: broken-chromium
name: a browser that cannot start
driver: playwright
tags: {platform: server, backend: webgpu}
browser:
  executable_path: /bin/false
  launch_timeout_s: 20
"""

QUARANTINE_EXPERIMENT = """\
name: quarantine
devices: [broken-chromium, native-lavapipe]
ops:
  - {kind: matmul, M: 16, N: 16, K: 16}
  - {kind: matmul, M: 8, N: 16, K: 16}
tuner: {budget_s: 30, max_evals: 2, batch_size: 2}
measure: {warmup: 0, samples: 2, min_sample_ms: 1, max_reps: 4}
compare: {rounds: 1, samples: 2}
faults: {quarantine_after: 2}
"""


@needs_lavapipe
def test_unbounded_wgsl_loop_hits_the_job_timeout_and_the_next_job_runs_on_a_new_worker(ray_session, workspace, tmp_path):
    register()
    exp = load_experiment(workspace("hang", HANG_EXPERIMENT))
    outcome = run_experiment(exp, RunOptions(results_dir=tmp_path / "results", poll_s=0.2))
    jobs = check_records(outcome.run_dir, {j.job_id for j in exp.jobs()})
    by_label = {label: rows for label, rows in jobs.groupby("op_label")}
    spins = by_label["spins"]
    assert len(spins) == 1 and spins["status"].iloc[0] == "failed"  # retries: {device: 0}
    assert spins["error_class"].iloc[0] == "device" and "job_timeout_s=6" in spins["error"].iloc[0]
    assert list(by_label["fine"]["status"]) == ["ok"]


@needs_lavapipe
def test_device_whose_browser_cannot_start_is_quarantined_while_the_other_finishes(ray_session, workspace, tmp_path):
    path = workspace("quarantine", QUARANTINE_EXPERIMENT)
    (path.parent.parent / "device_configs" / "broken-chromium.yaml").write_text(BROKEN_BROWSER)
    exp = load_experiment(path)
    outcome = run_experiment(exp, RunOptions(results_dir=tmp_path / "results", poll_s=0.2))
    jobs = check_records(outcome.run_dir, {j.job_id for j in exp.jobs()})
    broken = jobs[jobs["device_id"] == "broken-chromium"]
    assert set(broken["status"]) == {"skipped"} and set(broken["error_class"]) == {"infra"}
    assert broken["error"].str.contains("quarantined").all()
    assert set(jobs.loc[jobs["device_id"] == "native-lavapipe", "status"]) == {"ok"}
    manifest = json.loads((outcome.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert "could not open the device (2x)" in manifest["devices"]["broken-chromium"]["quarantined"]
