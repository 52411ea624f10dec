"""AndroidCdpDriver's path after the adb forward: Playwright connect_over_cdp to a running Chrome,
a new tab with the harness, the protocol through it. Here the Chrome is a headless Chromium the
test starts with a DevTools port (what `adb forward ... localabstract:chrome_devtools_remote`
gives on a phone); the adb half is unit-tested with the transcript in tests/unit/test_adb.py."""

from __future__ import annotations

import signal
import socket
import socketserver
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from farm.drivers.adb import Adb, AdbResult
from farm.drivers.android_cdp import CHROME_ACTIVITY, AndroidCdpDriver
from farm.drivers.android_options import AndroidOptions, CooldownRule
from farm.drivers.base import BrowserOptions, DriverError
from farm.drivers.playwright_driver import QUIET_CHROMIUM_ARGS
from jit_core.ops import MatMul
from jit_core.protocol import MeasureSpec, make_batch
from jit_core.reference import check_outputs, check_positions
from jit_core.space import Config
from jit_core.templates import get_template

CHROMIUM = BrowserOptions().executable_path

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def devtools_endpoint(tmp_path_factory):
    if not (CHROMIUM and Path(CHROMIUM).is_file()):
        pytest.skip(f"no Chromium at {CHROMIUM}: run the README's setup command")
    profile = tmp_path_factory.mktemp("cdp-profile")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-webgpu",
         "--enable-unsafe-swiftshader", *QUIET_CHROMIUM_ARGS, "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert port_file.is_file(), "Chromium did not open its DevTools port"
        yield f"http://127.0.0.1:{port_file.read_text().split()[0]}", proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def test_connect_over_cdp_runs_the_harness_in_a_new_tab_and_leaves_the_browser_running(devtools_endpoint):
    endpoint, proc = devtools_endpoint
    drv = AndroidCdpDriver(BrowserOptions(call_timeout_s=120), endpoint_url=endpoint)
    drv.open()
    try:
        probe = drv.probe()
        assert probe["adapter"]["architecture"] == "swiftshader"
        op = MatMul(M=16, N=16, K=16)
        template = get_template("matmul-wgsl")
        from jit_core.caps import DeviceCaps

        config = template.space(op, DeviceCaps.from_probe(probe)).configs[0]
        positions = check_positions(op, 8, 3)
        batch = make_batch(op, [("c0", template.render(op, Config(config)))], seed=3,
                           measure=MeasureSpec(warmup=1, samples=2, min_sample_ms=1.0, max_reps=8),
                           check_positions=positions)
        (res,) = drv.run_batch(batch)
        assert res.ok and check_outputs(op, 3, positions, res.values).ok
        cov = drv.covariates()
        assert cov["chrome_version"].startswith("156") and "SwiftShader" in cov["gpu_renderer"]
    finally:
        drv.close()
    assert proc.poll() is None, "closing the driver closes its tab, not the phone's browser"


def test_android_options_or_endpoint_exactly_one():
    with pytest.raises(ValueError):
        AndroidCdpDriver(BrowserOptions(), AndroidOptions(), endpoint_url="http://127.0.0.1:1")
    with pytest.raises(ValueError):
        AndroidCdpDriver(BrowserOptions())


def test_unreachable_endpoint_is_an_infra_error():
    drv = AndroidCdpDriver(BrowserOptions(launch_timeout_s=5), endpoint_url="http://127.0.0.1:9")
    with pytest.raises(DriverError) as err:
        drv.open()
    assert err.value.error_class == "infra"


class ForwardingAdbStandIn:
    """An in-process stand-in for adb with a phone whose Chrome is the local Chromium: ``forward
    tcp:X localabstract:chrome_devtools_remote`` really forwards 127.0.0.1:X to that Chromium's
    DevTools port (a thread per connection), ``reverse`` is a no-op (the phone's loopback is the
    host's here), ``shell`` answers the few commands the driver sends. Records every call."""

    def __init__(self, devtools_port: int):
        self.devtools_port = devtools_port
        self.calls: list[tuple[str, ...]] = []
        self.servers: dict[int, Any] = {}

    def __call__(self, argv: list[str], timeout_s: float) -> AdbResult:
        self.calls.append(tuple(argv))
        if argv == ["devices"]:
            return AdbResult(0, "List of devices attached\nLOCAL1\tdevice\n")
        _, serial, verb, *rest = argv
        if verb == "forward" and rest[0] == "--remove":
            server = self.servers.pop(int(rest[1].split(":")[1]), None)
            if server is not None:
                server.shutdown()
                server.server_close()
            return AdbResult(0, "")
        if verb == "forward":
            port = int(rest[0].split(":")[1])
            assert rest[1] == "localabstract:chrome_devtools_remote"
            self.servers[port] = _forwarder(port, self.devtools_port)
            return AdbResult(0, "")
        if verb == "reverse":
            return AdbResult(0, "")
        if verb == "shell" and rest[0].startswith("am start"):
            return AdbResult(0, "Starting: Intent { act=android.intent.action.VIEW dat=about:blank }\n")
        if verb == "shell" and rest[0] == "dumpsys battery":
            return AdbResult(0, "Current Battery Service state:\n  level: 64\n  temperature: 298\n")
        return AdbResult(1, "", f"error: unknown command {' '.join(argv)}")


def _forwarder(listen_port: int, target_port: int) -> Any:
    class Pipe(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            upstream = socket.create_connection(("127.0.0.1", target_port))

            def pump(src: socket.socket, dst: socket.socket) -> None:
                try:
                    while data := src.recv(65536):
                        dst.sendall(data)
                except OSError:
                    pass
                finally:
                    for s in (src, dst):
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass

            t = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
            t.start()
            pump(self.request, upstream)
            t.join(5)
            upstream.close()

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", listen_port), Pipe)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def test_the_android_path_forwards_devtools_with_adb_and_removes_the_ports_at_close(devtools_endpoint):
    endpoint, proc = devtools_endpoint
    stand_in = ForwardingAdbStandIn(int(endpoint.rsplit(":", 1)[1]))
    android = AndroidOptions(cooldown=CooldownRule(max_battery_temp_c=35.0, max_wait_s=5, poll_s=1))
    drv = AndroidCdpDriver(BrowserOptions(call_timeout_s=120), android, adb=Adb(android, runner=stand_in))
    drv.open()
    try:
        assert drv.probe()["webgpu"]
        harness_port = drv._server.port
        state = drv.before_job()
        assert state["battery_temp_c"] == pytest.approx(29.8) and state["cooled"] is True
        assert state["chrome_version"].startswith("156")
    finally:
        drv.close()
    calls = [c[2:] for c in stand_in.calls if c[:2] == ("-s", "LOCAL1")]
    reverse = next(c for c in calls if c[0] == "reverse")
    forward = next(c for c in calls if c[0] == "forward")
    assert reverse[1] == reverse[2] == f"tcp:{harness_port}"  # the phone reaches the harness on its loopback
    assert forward[2] == "localabstract:chrome_devtools_remote"
    assert ("shell", f"am start -n com.android.chrome/{CHROME_ACTIVITY} -d about:blank") in calls
    assert calls[-2:] == [("forward", "--remove", forward[1]), ("reverse", "--remove", reverse[1])]
    assert calls.index(reverse) < calls.index(forward) and not stand_in.servers
    assert proc.poll() is None
