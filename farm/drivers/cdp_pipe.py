"""A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``, standard library only.

For machines where Playwright cannot be installed (a GPU server that reaches no package registry):
Chromium reads NUL-terminated JSON commands on its fd 3 and writes answers and events on its fd 4.
This module starts the browser with those two pipes, sends commands (optionally into a page session
attached with ``flatten``), and waits for their answers. It does not try to be a general CDP
library: no event subscriptions beyond what ``open_page`` and ``evaluate`` need.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any


class CdpError(RuntimeError):
    """A CDP command failed, timed out, or the browser went away."""


@dataclass(frozen=True)
class CdpLaunch:
    """How to start the browser: executable, flags (``--remote-debugging-pipe`` and a fresh
    ``--user-data-dir`` are added), extra environment, and the timeout of one command."""

    executable: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    user_data_dir: str | None = None
    command_timeout_s: float = 120.0


class CdpPipe:
    """One browser process driven over its debugging pipe. ``call`` sends a command and returns its
    ``result``; ``open_page`` creates a tab and returns a session id; ``evaluate`` runs JavaScript in
    it (awaiting promises) and returns the value. ``close`` ends the browser and never raises."""

    def __init__(self, launch: CdpLaunch):
        self.launch = launch
        self._next_id = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._closed = False
        self.stderr_tail: list[str] = []
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # bash (dash takes single-digit fds only) puts the child's ends on fds 3 and 4 of the
        # exec'd browser (no preexec_fn, which is unsafe with threads).
        argv = ["/bin/bash", "-c", f'exec "$@" 3<&{to_child_r} 4>&{from_child_w}', "bash",
                launch.executable, "--remote-debugging-pipe", *launch.args]
        if launch.user_data_dir:
            argv.append(f"--user-data-dir={launch.user_data_dir}")
        argv.append("about:blank")
        env = {**os.environ, **dict(launch.env)}
        try:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, pass_fds=(to_child_r, from_child_w))
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        threading.Thread(target=self._read_loop, daemon=True).start()
        threading.Thread(target=self._stderr_loop, daemon=True).start()

    # ----- transport

    def _read_loop(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                if "id" in msg:
                    with self._cond:
                        self._answers[msg["id"]] = msg
                        self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _stderr_loop(self) -> None:
        assert self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, b""):
            self.stderr_tail.append(line.decode(errors="replace").rstrip())
            del self.stderr_tail[:-40]

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout_s: float | None = None) -> dict[str, Any]:
        with self._cond:
            self._next_id += 1
            msg_id = self._next_id
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        try:
            os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        except OSError as e:
            raise CdpError(f"{method}: browser pipe closed ({e}); stderr: {self._tail()}") from None
        deadline = time.monotonic() + (timeout_s or self.launch.command_timeout_s)
        with self._cond:
            while msg_id not in self._answers:
                left = deadline - time.monotonic()
                if self._closed:
                    raise CdpError(f"{method}: browser exited (code {self.proc.poll()}); stderr: {self._tail()}")
                if left <= 0:
                    raise CdpError(f"{method}: no answer in {timeout_s or self.launch.command_timeout_s:.0f} s")
                self._cond.wait(left)
            answer = self._answers.pop(msg_id)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error'].get('message')} {answer['error'].get('data', '')}".strip())
        return answer.get("result", {})

    def _tail(self) -> str:
        return " | ".join(self.stderr_tail[-8:]) or "(empty)"

    # ----- pages

    def open_page(self, url: str, *, timeout_s: float = 60.0) -> str:
        """A new tab at ``url``, attached in flatten mode; returns its session id once loaded."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=session)
        self.call("Runtime.enable", session=session)
        self.call("Page.navigate", {"url": url}, session=session, timeout_s=timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.evaluate(session, "document.readyState", timeout_s=timeout_s)
            if state == "complete":
                return session
            time.sleep(0.05)
        raise CdpError(f"{url} did not finish loading in {timeout_s:.0f} s")

    def evaluate(self, session: str, expression: str, *, timeout_s: float | None = None) -> Any:
        """The JSON value of ``expression`` in the page (promises awaited); a thrown error is a CdpError."""
        res = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                             "returnByValue": True}, session=session, timeout_s=timeout_s)
        if "exceptionDetails" in res:
            det = res["exceptionDetails"]
            text = (det.get("exception") or {}).get("description") or det.get("text")
            raise CdpError(f"page threw: {text}")
        return (res.get("result") or {}).get("value")

    def version(self) -> dict[str, Any]:
        return self.call("Browser.getVersion")

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close", timeout_s=5)
                except CdpError:
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            for fd in (self._to_child, self._from_child):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> "CdpPipe":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

