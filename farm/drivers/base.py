"""The one protocol every device driver implements (Playwright, Appium, native wgpu)."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from jit_core.protocol import Batch, CandidateResult


class DriverError(Exception):
    """The device itself could not do what was asked (browser did not start, page crashed,
    session lost). ``error_class`` is one of: infra, device, harness. Failures of a single
    kernel are never a DriverError: they are CandidateResults with ok=False."""

    def __init__(self, error_class: str, message: str):
        super().__init__(message)
        self.error_class = error_class
        self.message = message

    def __reduce__(self) -> tuple:
        # Crosses process boundaries (Ray): rebuild from both fields, not from Exception.args.
        return (type(self), (self.error_class, self.message))


@dataclass(frozen=True)
class BrowserOptions:
    """How to start one browser for a device. ``args`` are extra command-line flags; Chromium
    keeps only the last ``--enable-features=``, so drivers merge them. ``env`` is extra environment
    for the browser process (e.g. VK_ICD_FILENAMES for lavapipe). ``feature_level`` is the WebGPU
    adapter feature level the harness asks for ('core' or 'compatibility')."""

    browser: str = "chromium"  # chromium | firefox | webkit
    executable_path: str | None = "/usr/lib/chromium/chromium"
    channel: str | None = None  # e.g. "chrome", "msedge" on machines that have them
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    headless: bool = True
    feature_level: str = "core"
    launch_timeout_s: float = 60.0
    call_timeout_s: float = 600.0


@dataclass(frozen=True)
class NativeOptions:
    """How to open a native WebGPU adapter through wgpu-native. ``adapter_match`` is a
    case-insensitive substring of the adapter's name/description that must match (e.g.
    'llvmpipe', 'NVIDIA'); ``env`` is set before the first adapter request (e.g. VK_ICD_FILENAMES)."""

    power_preference: str = "high-performance"
    adapter_match: str | None = None
    backend: str | None = None  # "vulkan", "metal", "dx12", ... (None: wgpu's choice)
    env: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class DeviceDriver(abc.ABC):
    """Opens one device, probes it, runs protocol batches and baselines on it, closes it.

    Contract: ``open()`` before anything else (raises DriverError('infra', ...) when the device
    cannot be reached); ``probe()`` returns the Probe JSON of farm/harness/PROTOCOL.md;
    ``run_batch()`` returns one CandidateResult per candidate in order; ``run_baseline()`` returns
    the BaselineResult JSON; ``close()`` is idempotent and never raises. Usable as a context manager.
    """

    kind: str = "abstract"

    @abc.abstractmethod
    def open(self) -> None: ...

    @abc.abstractmethod
    def probe(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def run_batch(self, batch: Batch) -> list[CandidateResult]: ...

    def run_baseline(self, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": False,
            "errorClass": "harness",
            "error": f"{self.kind} driver has no baselines",
            "library": spec.get("library"),
            "backendRequested": spec.get("backend"),
            "backendUsed": None,
            "samplesMs": [],
        }

    def versions(self) -> dict[str, str]:
        """Versions of what this driver runs (browser, libraries), for the run manifest."""
        return {}

    def open_phases(self) -> dict[str, float]:
        """Seconds each step of the last ``open()`` took (e.g. ``playwright_s``, ``browser_s``,
        ``page_s``), recorded with the run's timing; {} where the driver does not break it down."""
        return {}

    def covariates(self) -> dict[str, Any]:
        """Device state worth recording with the run (phones: battery level and temperature,
        thermal status, Chrome version, GPU renderer); {} when the driver cannot read any."""
        return {}

    def before_job(self) -> dict[str, Any]:
        """Called before each job: waits for the device's cool-down rule if it has one, then
        returns ``covariates()``."""
        return self.covariates()

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "DeviceDriver":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
