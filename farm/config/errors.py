"""Errors a user can fix: each names the file, the key and what to do."""

from __future__ import annotations


class UserError(Exception):
    """Misuse at the boundary (bad YAML, unknown device, missing browser). The CLI prints it as
    one line and exits with status 2; nothing runs and nothing is written."""

    exit_code = 2


class ConfigError(UserError):
    """An invalid value in a config file: ``file: key: problem. Fix: what to do``."""

    def __init__(self, file: str, key: str, problem: str, fix: str):
        self.file, self.key, self.problem, self.fix = file, key, problem, fix
        where = f"{file}: {key}: " if key else f"{file}: "
        super().__init__(f"{where}{problem}. Fix: {fix}")
