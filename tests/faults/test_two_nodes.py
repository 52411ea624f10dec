"""Two Ray nodes on this machine (a head, and a second `ray start` that owns the device through its
``device:<id>`` resource): the device's worker runs on the second node. Both nodes listen on
127.0.0.1, keep their files in a private temp dir (so no other Ray user here finds them) and are
stopped by PID."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from farm.procs import cmdline, descendants, process_alive as alive
from tests.projects import run_folders

from .conftest import ROOT, check_records, kill_pids, needs_lavapipe

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.native]

EXPERIMENT = """\
name: two-nodes
devices: [native-lavapipe]
ops:
  - {kind: matmul, M: 8, N: 16, K: 16}
tuner: {budget_s: 20, max_evals: 2, batch_size: 2}
measure: {warmup: 0, samples: 2, min_sample_ms: 1, max_reps: 4}
compare: {rounds: 1, samples: 2}
"""

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ours(temp_dir: str) -> list[int]:
    """Processes of the two nodes (their command lines name the private temp dir), and their children."""
    roots = [int(p) for p in os.listdir("/proc") if p.isdigit() and temp_dir in " ".join(cmdline(int(p)))]
    return sorted({*roots, *(c for r in roots for c in descendants(r))})


@pytest.fixture
def two_nodes():
    temp_dir = tempfile.mkdtemp(prefix="jfr", dir="/tmp")  # short: Ray's socket paths must fit
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    try:
        subprocess.run([RAY, "start", "--head", "--port", str(port), "--temp-dir", temp_dir,
                        "--include-dashboard", "false", *common], check=True, env=env, cwd=ROOT,
                       capture_output=True, timeout=180)
        subprocess.run([RAY, "start", "--address", f"127.0.0.1:{port}", *common,
                        "--resources", json.dumps({"device:native-lavapipe": 1})],
                       check=True, env=env, cwd=ROOT, capture_output=True, timeout=180)
        yield f"127.0.0.1:{port}", env
    finally:
        # A raylet may start a worker while we end the others, and a SIGKILLed process takes a
        # moment to go on a loaded machine: kill until none is left, for at most 30 s.
        deadline = time.monotonic() + 30
        while [p for p in _ours(temp_dir) if alive(p)] and time.monotonic() < deadline:
            kill_pids(_ours(temp_dir))
            time.sleep(0.2)
        assert not [p for p in _ours(temp_dir) if alive(p)]
        shutil.rmtree(temp_dir, ignore_errors=True)


@needs_lavapipe
def test_device_worker_runs_on_the_node_that_offers_the_device(two_nodes, workspace, tmp_path):
    address, env = two_nodes
    exp = workspace("two-nodes", EXPERIMENT)
    results = tmp_path / "results"
    done = subprocess.run([sys.executable, "-m", "farm.cli", "run", str(exp), "--address", address,
                           "--results-dir", str(results)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = run_folders(results)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    nodes = {n["node_id"]: n for n in manifest["ray"]["nodes"] if n["alive"]}
    assert len(nodes) == 2
    (owner,) = [n for n in nodes.values() if n["devices"] == ["native-lavapipe"]]
    assert manifest["devices"]["native-lavapipe"]["node_id"] == owner["node_id"]
    jobs = check_records(run_dir, {"native-lavapipe/matmul_f32_8x16x16"})
    assert list(jobs["status"]) == ["ok"]
