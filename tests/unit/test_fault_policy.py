"""The fault policy: which failures are retried (after reopening), when a device is quarantined,
and how the experiment's faults: section reads."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from farm.config.errors import ConfigError
from farm.config.experiments import load_experiment
from farm.config.faults import FaultSpec
from farm.drivers.base import DriverError
from farm.scheduler.faults import DeviceHealth, classify_exception

ROOT = Path(__file__).resolve().parents[2]


def test_each_class_is_retried_as_often_as_its_policy_says_and_kernel_failures_never():
    health = DeviceHealth(FaultSpec(retries={"infra": 1, "device": 2, "harness": 0, "kernel": 0}))
    assert health.decide("device", 1).retry and health.decide("device", 2).retry
    last = health.decide("device", 3)
    assert not last.retry and last.reopen
    kernel = health.decide("kernel", 1)
    assert not kernel.retry and not kernel.reopen


def test_a_device_is_quarantined_after_n_failed_jobs_in_a_row_and_a_success_resets_the_streak():
    health = DeviceHealth(FaultSpec(quarantine_after=2, retries={"device": 0}))
    assert not health.decide("device", 1).quarantine
    health.succeeded()
    assert not health.decide("harness", 1).quarantine
    assert health.decide("device", 1).quarantine


def test_kernel_failures_do_not_count_towards_quarantine():
    health = DeviceHealth(FaultSpec(quarantine_after=2, retries={"device": 0}))
    health.decide("device", 1)
    health.decide("kernel", 1)
    assert not health.decide("device", 1).quarantine


def test_driver_errors_keep_their_class_across_processes():
    err = pickle.loads(pickle.dumps(DriverError("device", "session lost")))
    assert classify_exception(err) == ("device", "session lost")
    assert classify_exception(DriverError("made-up", "x"))[0] == "harness"


def _experiment(tmp_path: Path, body: str) -> Path:
    shutil.copytree(ROOT / "device_configs", tmp_path / "device_configs")
    (tmp_path / "experiments").mkdir()
    path = tmp_path / "experiments" / "e.yaml"
    path.write_text("name: e\nops: [{kind: matmul, M: 8, N: 8, K: 8}]\n" + body)
    return path


def test_faults_section_reads_with_defaults_for_missing_keys(tmp_path):
    exp = load_experiment(_experiment(tmp_path, "devices: [native-lavapipe]\nfaults: {job_timeout_s: 5, retries: {device: 3}}\n"))
    assert exp.faults.job_timeout_s == 5 and exp.faults.retries == {"infra": 1, "device": 3, "harness": 1, "kernel": 0}
    assert FaultSpec.from_dict(exp.faults.to_dict()) == exp.faults


def test_unknown_failure_class_in_retries_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"faults\.retries\.gpu: unknown key"):
        load_experiment(_experiment(tmp_path, "devices: [native-lavapipe]\nfaults: {retries: {gpu: 1}}\n"))


def test_devices_selected_by_tags_and_by_id_each_once(tmp_path):
    exp = load_experiment(_experiment(tmp_path, "devices: [{driver: playwright, vendor: google, software: 'true'}, native-lavapipe]\n"))
    assert [d.id for d in exp.devices] == ["local-chromium-swiftshader", "native-lavapipe"]
    exp = load_experiment(_experiment(tmp_path / "b", "devices: [{driver: native, vendor: mesa}]\n"))
    assert [d.id for d in exp.devices] == ["native-lavapipe"]


def test_a_tag_selector_that_matches_nothing_lists_the_tags_that_exist(tmp_path):
    with pytest.raises(ConfigError, match=r"devices\[0\]: no valid device .* has tags \{'vendor': 'imagination'\}.*vendor=mesa"):
        load_experiment(_experiment(tmp_path, "devices: [{vendor: imagination}]\n"))
