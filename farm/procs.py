"""Processes of this machine, from /proc (Linux): whether one still runs, its command line, its
children and descendants. For the scheduler (a job sent ahead starts only while the driver process
runs), the Playwright driver (the browser's real command line), bench/farm.py (the CPU of Ray's
processes) and the tests that kill processes."""

from __future__ import annotations

import os
from pathlib import Path


def stat_fields(pid: int) -> tuple[str, list[str]] | None:
    """(name, fields) of ``/proc/<pid>/stat``: the executable's name, then the fields after it
    (``fields[0]`` the state, ``[1]`` the parent's PID, ``[11]``/``[12]`` user/system CPU in clock
    ticks); None when the process is gone or there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs; a zombie (ended, not yet reaped) does
    not. Without /proc the signal check is all there is."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    stat = stat_fields(pid)
    if stat is None:
        return not Path("/proc/self").exists()  # gone since the signal check, or no /proc here
    return stat[1][0] != "Z"


def cmdline(pid: int) -> list[str]:
    """The process's argv ([] when it is gone, a zombie or a kernel thread)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    args = [a.decode(errors="replace") for a in raw.split(b"\0")]
    return args[:-1] if args and args[-1] == "" else args


def _live_parents() -> dict[int, tuple[int, str]]:
    """PID -> (parent PID, name) of every live (not zombie) process, in one pass over /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := stat_fields(int(entry))) is not None and stat[1][0] != "Z":
            out[int(entry)] = (int(stat[1][1]), stat[0])
    return out


def child_pids(pid: int, name: str | None = None) -> list[int]:
    """The live children of ``pid`` (only those whose executable name is ``name``, when given)."""
    return [p for p, (ppid, comm) in _live_parents().items() if ppid == pid and (name is None or comm == name)]


def descendants(root: int) -> list[int]:
    """Every live process below ``root``, by the parent links at the time of the call."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in _live_parents().items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
