"""The harness-page protocol shared by every driver that runs ``farm/harness/static`` in a browser.

A page driver (Playwright, Appium) only knows how to evaluate JavaScript in the page. Everything
else is here, once: the JS that awaits ``window.jitfarm[method](arg)`` bounded by a timeout, the
checks on its JSON answers, and the rule for batches whose candidates a wedged GPU process could
not run (restart the browser, run them once more).
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
from typing import Any

from farm.drivers.base import DeviceDriver, DriverError
from jit_core.protocol import Batch, CandidateResult

log = logging.getLogger(__name__)

TIMEOUT_KEY = "__jitfarmCallTimeout"
ERROR_KEY = "__jitfarmCallError"

# An async JS function of one argument ``[method, arg, timeoutMs]``. The page races the call
# against ``timeoutMs`` because neither page.evaluate nor WebDriver bound an async call reliably.
CALL_FUNCTION = """async ([method, arg, timeoutMs]) => {
  let timer = null;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve({%s: true}), timeoutMs);
  });
  try {
    return await Promise.race([Promise.resolve().then(() => window.jitfarm[method](arg)), late]);
  } finally {
    clearTimeout(timer);
  }
}""" % TIMEOUT_KEY

# The same call for WebDriver's execute_async_script (arguments: method, arg, timeoutMs, callback).
# The answer travels as one JSON string: WebDriver's own serialization of large nested objects is
# slow and turns some values (element-like objects, -0) into something else.
ASYNC_SCRIPT = (
    "const done = arguments[arguments.length - 1];\n"
    f"({CALL_FUNCTION})([arguments[0], arguments[1], arguments[2]])\n"
    "  .then((answer) => done(JSON.stringify(answer === undefined ? null : answer)),\n"
    f"        (err) => done(JSON.stringify({{{ERROR_KEY}: String(err && err.stack || err)}})));"
)

READY_FUNCTION = "() => window.jitfarmReady === true || !!window.jitfarmLoadError"
LOAD_ERROR_FUNCTION = "() => window.jitfarmLoadError"
WEDGED_FUNCTION = "() => window.jitfarm.wedged()"
VERSION_FUNCTION = "() => window.jitfarm.version"
# The GL renderer string Chrome reports to pages (on a phone e.g. "Adreno (TM) 740"): a covariate.
GPU_RENDERER_FUNCTION = """() => {
  try {
    const gl = document.createElement('canvas').getContext('webgl');
    const ext = gl && gl.getExtension('WEBGL_debug_renderer_info');
    return ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : (gl ? gl.getParameter(gl.RENDERER) : null);
  } catch (e) { return null; }
}"""


def page_url(server_url: str, feature_level: str) -> str:
    """The harness page's URL on a started HarnessServer (``server_url`` has no trailing slash)."""
    return f"{server_url}/index.html?featureLevel={feature_level}"


def decode_async_answer(raw: Any) -> Any:
    """The value of an ASYNC_SCRIPT call from the JSON string the page sent back; a JS exception
    in the call raises DriverError('harness', ...)."""
    if not isinstance(raw, str):
        raise DriverError("harness", f"harness call answered {type(raw).__name__}, expected a JSON string")
    try:
        answer = json.loads(raw)
    except ValueError as e:
        raise DriverError("harness", f"harness call answered malformed JSON: {e}") from e
    if isinstance(answer, dict) and ERROR_KEY in answer:
        raise DriverError("harness", f"harness call failed: {answer[ERROR_KEY]}")
    return answer


def is_call_timeout(answer: Any) -> bool:
    return isinstance(answer, dict) and bool(answer.get(TIMEOUT_KEY))


def check_batch_answers(answers: Any, batch: Batch) -> list[dict[str, Any]]:
    """``answers`` if it is one JSON result per candidate of ``batch``, else DriverError('harness')."""
    if not isinstance(answers, list) or len(answers) != len(batch.candidates):
        got = len(answers) if isinstance(answers, list) else type(answers).__name__
        raise DriverError("harness", f"runBatch answered {got} results for {len(batch.candidates)} candidates")
    return answers


class HarnessPageDriver(DeviceDriver):
    """A device whose kernels run in the harness page of a browser.

    Contract for subclasses: ``_evaluate_call(method, arg, timeout_ms)`` runs CALL_FUNCTION in the
    page and returns its answer, raising DriverError('device', ...) when the page or browser is
    gone and DriverError('harness', ...) for anything else; ``_page_wedged()`` says whether the
    page's GPU process stopped answering (never raises); ``_restart(why)`` replaces the browser and
    reloads the page, raising DriverError('device', ...) when it cannot. ``call_timeout_s`` bounds
    one call. This class then provides ``probe``, ``run_batch``, ``run_baseline`` with the same
    behaviour for every page driver: once a call fails as a device failure or runs past its
    timeout, every later call raises DriverError('device', ...) until the driver is reopened.
    """

    call_timeout_s: float = 600.0

    def __init__(self) -> None:
        self._crashed: str | None = None
        self._closing = False

    # ------------------------------------------------------------------------------ for subclasses
    @abc.abstractmethod
    def _is_open(self) -> bool: ...

    @abc.abstractmethod
    def _evaluate_call(self, method: str, arg: Any, timeout_ms: int) -> Any: ...

    @abc.abstractmethod
    def _page_wedged(self) -> bool: ...

    @abc.abstractmethod
    def _restart(self, why: str) -> None: ...

    @property
    def label(self) -> str:
        return self.kind

    # ---------------------------------------------------------------------------------- protocol
    def probe(self) -> dict[str, Any]:
        return self._call("probe")

    def run_baseline(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call("runBaseline", spec)

    def run_batch(self, batch: Batch) -> list[CandidateResult]:
        """Run ``batch`` in the page. If a runaway kernel wedged the GPU process (the page then
        answers the candidates it could not run with ``notRun``), the browser is restarted and
        those candidates are run once more; any still not run stay ``device-lost`` results."""
        answers = self._run_batch_json(batch)
        not_run = [i for i, a in enumerate(answers) if a.get("notRun")]
        if not_run or self._page_wedged():
            first = answers[not_run[0]].get("error") if not_run else "wedged"
            self._restart(f"the GPU process stopped answering: {first}")
            if not_run:
                retry = dataclasses.replace(batch, candidates=tuple(batch.candidates[i] for i in not_run))
                for i, a in zip(not_run, self._run_batch_json(retry)):
                    answers[i] = a
                if any(answers[i].get("notRun") for i in not_run) or self._page_wedged():
                    self._restart("the GPU process stopped answering again")
        return [CandidateResult.from_json(a) for a in answers]

    def _run_batch_json(self, batch: Batch) -> list[dict[str, Any]]:
        return check_batch_answers(self._call("runBatch", batch.to_json()), batch)

    def _call(self, method: str, arg: Any = None) -> Any:
        """Await ``window.jitfarm[method](arg)`` in the page, bounded by call_timeout_s."""
        if not self._is_open():
            raise DriverError("device", "driver is not open (call open() first, or the browser was closed)")
        if self._crashed:
            raise DriverError("device", f"{self._crashed}; reopen the driver")
        answer = self._evaluate_call(method, arg, int(self.call_timeout_s * 1000))
        if is_call_timeout(answer):
            # The call is still running in the page: its state is unknown, so the page is unusable.
            self._mark_crashed(f"call exceeded call_timeout_s={self.call_timeout_s}")
            raise DriverError("device", f"{self._crashed}; reopen the driver")
        return answer

    def _mark_crashed(self, why: str) -> None:
        if self._closing:
            return
        if not self._crashed:
            self._crashed = why
            log.error("%s: %s", self.label, why)
