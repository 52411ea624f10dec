"""What a run records about itself: versions, git state, the resolved experiment."""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
import sys
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

from farm.config.experiments import ExperimentSpec

HARNESS_DIR = Path(__file__).resolve().parent.parent / "harness"
REPO_DIR = Path(__file__).resolve().parent.parent.parent


def new_run_id(name: str) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{name}-{uuid.uuid4().hex[:6]}"


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("jitfarm", "ray", "playwright", "numpy", "pandas", "pyarrow", "wgpu", "appium-python-client"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    lock = HARNESS_DIR / "package-lock.json"
    if lock.exists():
        pkgs = json.loads(lock.read_text()).get("packages", {})
        for key, info in pkgs.items():
            if key.startswith("node_modules/") and key.count("node_modules/") == 1:
                name = key[len("node_modules/"):]
                if name.startswith(("@tensorflow/", "onnxruntime")):
                    out[f"npm:{name}"] = info.get("version", "?")
    return out


def initial_manifest(exp: ExperimentSpec, run_id: str, argv: list[str] | None = None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(),
        "status": "running",
        "command": argv if argv is not None else sys.argv,
        "experiment": exp.to_dict(),
        "device_configs": {d.id: d.to_dict() for d in exp.devices},
        "versions": package_versions(),
        "git": git_state(),
        "host": {"platform": platform.platform(), "machine": platform.machine()},
        "devices": {},
    }


def drift(manifest: dict[str, Any]) -> list[str]:
    """How this machine differs from the one that wrote ``manifest``: package versions, git commit,
    uncommitted changes. (Browser versions are compared per device once the devices are open.)"""
    notes = []
    now, then = package_versions(), manifest.get("versions", {})
    for name in sorted(set(now) | set(then)):
        if now.get(name) != then.get(name):
            notes.append(f"{name}: recorded {then.get(name, 'absent')}, here {now.get(name, 'absent')}")
    git_now, git_then = git_state(), manifest.get("git", {})
    if git_now.get("commit") != git_then.get("commit"):
        notes.append(f"git commit: recorded {git_then.get('commit')}, here {git_now.get('commit')}")
    if git_now.get("dirty") or git_then.get("dirty"):
        notes.append(f"uncommitted changes: recorded run {bool(git_then.get('dirty'))}, here {bool(git_now.get('dirty'))}")
    return notes
