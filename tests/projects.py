"""A small jitfarm project in a temporary folder, for the tests that run `jitfarm run` end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_project(folder: Path, name: str, experiment: str) -> Path:
    """Copies device_configs/ into ``folder`` and writes ``experiments/<name>.yaml``; returns its path."""
    if not (folder / "device_configs").exists():
        shutil.copytree(ROOT / "device_configs", folder / "device_configs")
    (folder / "experiments").mkdir(exist_ok=True)
    path = folder / "experiments" / f"{name}.yaml"
    path.write_text(experiment)
    return path


def run_folders(results: Path) -> list[Path]:
    """The run folders under ``results`` (those with a manifest; beside them lie the history index
    and the kernel cache), oldest first."""
    return sorted(p for p in results.iterdir() if (p / "manifest.json").exists()) if results.is_dir() else []


def run_cli(experiment: Path, results: Path, *args: str) -> tuple[int, Path]:
    """``jitfarm run EXPERIMENT --results-dir RESULTS ARGS...`` in this process: the exit code and
    the one run folder it added."""
    from farm.cli import main

    before = set(run_folders(results))
    code = main(["run", str(experiment), "--results-dir", str(results), *args])
    added = set(run_folders(results)) - before
    assert len(added) == 1, f"expected one new run folder, got {sorted(added)}"
    return code, added.pop()
