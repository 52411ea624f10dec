"""Device covariates as records: the device_state row and the device-warm flag of a job."""

from __future__ import annotations

import json

from farm.scheduler.actors import job_context
from farm.scheduler.job import DeviceContext
from farm.store.schema import device_state_row, to_table


def test_device_state_row_keeps_known_covariates_in_columns_and_all_as_json():
    cov = {"battery_level": 78, "battery_temp_c": 31.2, "thermal_status": "light", "chrome_version": "131.0",
           "gpu_renderer": "Adreno (TM) 620", "cooldown_wait_s": 12.5, "cooled": True, "model": "Pixel 5"}
    row = device_state_row("r", "dev/op", "dev", 1.0, cov, ["software-adapter"])
    table = to_table("device_state", [{**row, "attempt": 1}])
    got = table.to_pylist()[0]
    assert got["battery_temp_c"] == 31.2 and got["thermal_status"] == "light" and got["cooled"] is True
    assert json.loads(got["covariates"])["model"] == "Pixel 5" and got["flags"] == ["software-adapter"]


def test_a_device_still_warm_after_its_cooldown_flags_the_job():
    probe = {"adapter": {"vendor": "google", "architecture": "swiftshader", "isFallbackAdapter": True},
             "limits": {"maxComputeInvocationsPerWorkgroup": 256}, "features": []}
    ctx = DeviceContext.from_probe("dev", probe, None)
    assert job_context(ctx, {"cooled": True}) is ctx and job_context(ctx, {}) is ctx
    warm = job_context(ctx, {"cooled": False, "battery_temp_c": 41.0})
    assert warm.flags[-1] == "device-warm" and set(ctx.flags) < set(warm.flags)
