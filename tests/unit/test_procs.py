"""Processes from /proc: the command line, children and descendants the scheduler, the bench and
the fault tests use, on real processes started here."""

from __future__ import annotations

import os
import subprocess
import time

from farm.procs import child_pids, cmdline, descendants, process_alive, stat_fields


def test_children_descendants_and_command_lines_of_real_processes():
    # a shell of ours that starts a sleep of its own: a child and a grandchild
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        for _ in range(200):
            grand = child_pids(shell.pid, "sleep")
            if grand:
                break
            time.sleep(0.01)
        assert len(grand) == 1
        assert shell.pid in child_pids(os.getpid()) and shell.pid not in child_pids(os.getpid(), "sleep")
        assert {shell.pid, grand[0]} <= set(descendants(os.getpid()))
        assert cmdline(grand[0]) == ["sleep", "30"] and cmdline(shell.pid)[:2] == ["sh", "-c"]
        name, fields = stat_fields(grand[0])
        assert name == "sleep" and int(fields[1]) == shell.pid
    finally:
        for pid in [*child_pids(shell.pid), shell.pid]:
            os.kill(pid, 9)
        shell.wait(30)
    # reaped: gone for every question
    assert not process_alive(shell.pid) and cmdline(shell.pid) == [] and stat_fields(shell.pid) is None
    assert shell.pid not in descendants(os.getpid())
