"""plan_resume on a real run folder: what is left, with which attempt numbers."""

from __future__ import annotations

from pathlib import Path

from farm.config.experiments import load_experiment
from farm.scheduler.resume import plan_resume
from farm.store.parquet import ParquetStore

ROOT = Path(__file__).resolve().parents[2]


def test_jobs_without_an_ok_record_run_again_and_an_unrecorded_attempt_is_closed(tmp_path):
    exp = load_experiment(ROOT / "experiments" / "quickstart.yaml")
    a, b, c = exp.jobs()
    store = ParquetStore(tmp_path / "run")
    base = {"run_id": "run", "ts": 1.0, "device_id": a.device_id}
    store.append("jobs", [{**base, "job_id": a.job_id, "attempt": 1, "status": "ok"},
                          {**base, "job_id": b.job_id, "attempt": 1, "status": "failed", "error_class": "device"}])
    # b's second attempt and c's first were in flight: trials on disk, no jobs record.
    store.append("trials", [{**base, "job_id": b.job_id, "attempt": 2, "trial_index": 0},
                            {**base, "job_id": c.job_id, "attempt": 1, "trial_index": 0}])
    plan = plan_resume(store, exp)
    assert plan.done == {a.job_id}
    assert [(job.job_id, attempt) for job, attempt in plan.todo] == [(b.job_id, 3), (c.job_id, 2)]
    closed = {(r["job_id"], r["attempt"]): r for r in plan.interrupted}
    assert set(closed) == {(b.job_id, 2), (c.job_id, 1)}
    assert all(r["status"] == "failed" and r["error_class"] == "infra" for r in closed.values())


def test_the_manifest_rebuilds_the_same_experiment(tmp_path):
    import json

    from farm.config.lock import experiment_of_run
    from farm.scheduler.manifest import initial_manifest

    exp = load_experiment(ROOT / "experiments" / "quickstart.yaml")
    store = ParquetStore(tmp_path / "run")
    store.write_manifest(json.loads(json.dumps(initial_manifest(exp, "run"), default=str)))
    rebuilt, manifest = experiment_of_run(tmp_path, "run")
    assert rebuilt == exp and manifest["git"].keys() >= {"commit", "dirty"}


def test_every_device_config_survives_the_manifest_round_trip():
    """--resume and --replay rebuild devices from the manifest: phones and Appium devices too."""
    import json

    from farm.config.devices import load_device
    from farm.config.lock import device_from_dict

    root = Path(__file__).resolve().parents[2] / "device_configs"
    files = [p for p in sorted(root.glob("*.yaml")) if not p.name.startswith("_")]
    assert any("appium" in p.name for p in files) and any("pixel" in p.name for p in files)
    from farm.config.errors import ConfigError

    checked = 0
    for path in files:
        try:
            device = load_device(path)
        except ConfigError as e:  # a profile for another machine (its browser is not installed here)
            assert "no browser at" in str(e), e
            continue
        checked += 1
        assert device_from_dict(json.loads(json.dumps(device.to_dict()))) == device, path.name
    assert checked >= len(files) - 1
