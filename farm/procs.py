"""Whether a process of this machine still runs: for the scheduler (a job sent ahead starts only
while the driver process runs) and for the tests that kill processes."""

from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs; a zombie (ended, not yet reaped) does
    not. Without /proc the signal check is all there is."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return not Path("/proc/self").exists()  # gone since the signal check, or no /proc here
    return stat[stat.rindex(")") + 2] != "Z"
