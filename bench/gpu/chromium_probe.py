"""Does WebGPU in headless Chromium reach this machine's GPU? Standard library only (plus the repo).

Starts Chromium over its debugging pipe (farm/drivers/cdp_pipe.py: no Playwright needed), loads
the harness page from the loopback harness server, prints what ``window.jitfarm.probe()`` sees for
each flag set tried, and, with ``--batch``, times one matmul kernel there with the harness protocol.
Used on GPU servers that reach no package registry (bench/gpu/run_chromium.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from farm.drivers.cdp_pipe import CdpError, CdpLaunch, CdpPipe  # noqa: E402
from farm.harness.server import HarnessServer  # noqa: E402
from jit_core.ops import MatMul  # noqa: E402
from jit_core.protocol import CandidateResult, MeasureSpec, make_batch  # noqa: E402
from jit_core.reference import check_outputs, check_positions  # noqa: E402
from jit_core.space import Config  # noqa: E402
from jit_core.templates import get_template  # noqa: E402

BASE = ("--headless=new", "--no-sandbox", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--enable-unsafe-webgpu",
        "--enable-webgpu-developer-features")
VARIANTS = {
    # The recipe for NVIDIA GPUs in headless Chrome (developer.chrome.com, "supercharge web AI
    # testing"): without --disable-vulkan-surface the headless GPU process leaves Vulkan off.
    "vulkan-nosurface": ("--use-angle=vulkan", "--enable-features=Vulkan", "--disable-vulkan-surface",
                         "--ignore-gpu-blocklist"),
    "vulkan-nosurface-angle": ("--enable-features=Vulkan,VulkanFromANGLE,DefaultANGLEVulkan", "--use-angle=vulkan",
                               "--use-vulkan=native", "--disable-vulkan-surface", "--ignore-gpu-blocklist"),
    "vulkan": ("--enable-features=Vulkan,WebGPUService", "--use-vulkan=native", "--ignore-gpu-blocklist",
               "--use-angle=vulkan"),
    "angle-swiftshader-gl": ("--enable-features=Vulkan", "--use-angle=swiftshader", "--ignore-gpu-blocklist"),
    "vulkan-default-adapter": ("--enable-features=Vulkan,VulkanFromANGLE,DefaultANGLEVulkan", "--use-vulkan=native",
                               "--use-angle=vulkan", "--ignore-gpu-blocklist", "--use-webgpu-adapter=default",
                               "--enable-dawn-features=allow_unsafe_apis"),
    "vulkan-high-perf": ("--enable-features=Vulkan", "--use-vulkan=native", "--use-angle=vulkan", "--ignore-gpu-blocklist",
                         "--use-webgpu-power-preference=force-high-performance"),
    "default": ("--ignore-gpu-blocklist",),
}


ADAPTERS_JS = """(async () => {
  const out = {};
  for (const [name, opts] of [["none", undefined], ["high-performance", {powerPreference: "high-performance"}],
                              ["low-power", {powerPreference: "low-power"}], ["compatibility", {featureLevel: "compatibility"}],
                              ["fallback", {forceFallbackAdapter: true}]]) {
    try {
      const a = await navigator.gpu.requestAdapter(opts);
      out[name] = a ? {vendor: a.info.vendor, architecture: a.info.architecture, device: a.info.device,
                       description: a.info.description, fallback: a.info.isFallbackAdapter ?? a.isFallbackAdapter} : null;
    } catch (e) { out[name] = String(e); }
  }
  return out;
})()"""

DEEP_TEXT_JS = """(() => {
  const parts = [];
  const walk = (n) => {
    if (n.nodeType === 3) parts.push(n.textContent);
    if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of n.childNodes) walk(c);
    if (n.nodeType === 1 && ["TR", "DIV", "LI", "H3", "P"].includes(n.tagName)) parts.push("\\n");
  };
  walk(document.documentElement);
  return parts.join(" ").replace(/[ \\t]+/g, " ");
})()"""


def dawn_info(b: CdpPipe, timeout_s: float) -> str:
    """The 'Dawn Info' part of chrome://gpu: the adapters the GPU process's Dawn found, and why not."""
    try:
        session = b.open_page("chrome://gpu", timeout_s=timeout_s)
        text, deadline = "", time.monotonic() + 15
        while time.monotonic() < deadline:  # the page fills its sections as the GPU process answers
            time.sleep(1)
            text = b.evaluate(session, DEEP_TEXT_JS) or ""
            i, j = text.find("Dawn Info"), text.find("Compositor Information")
            if i >= 0 and j - i > 200:
                break
        i = text.find("Dawn Info")
        head = text[text.find("Graphics Feature Status"):][:1500]
        return (text[i:i + 6000] if i >= 0 else text[-3000:]) + "\n---\n" + head
    except CdpError as e:
        return f"chrome://gpu: {e}"


def time_kernels(b: CdpPipe, session: str, specs: list[str], timeout_s: float) -> list[dict]:
    """Each spec 'MxNxK:TEMPLATE:CONFIG' rendered, compiled and timed in the page (harness protocol,
    GPU timestamps when the adapter has them) and checked against numpy."""
    rows = []
    for spec in specs:
        shape, template_name, config = spec.split(":", 2)
        m, n, k = (int(x) for x in shape.split("x"))
        op = MatMul(M=m, N=n, K=k)
        template = get_template(template_name)
        cfg = Config(dict((kv.split("=")[0], int(kv.split("=")[1])) for kv in config.split(",")))
        positions = check_positions(op, 64, 1)
        measure = MeasureSpec(warmup=10, samples=5, min_sample_ms=10, max_reps=256, timeout_ms=timeout_s * 1e3)
        batch = make_batch(op, [("k", template.render(op, cfg))], seed=1, measure=measure, check_positions=positions)
        raw = b.evaluate(session, f"window.jitfarm.runBatch({json.dumps(batch.to_json())})", timeout_s=timeout_s)
        res = CandidateResult.from_json(raw[0])
        check = check_outputs(op, 1, positions, res.values) if res.ok else None
        med = sorted(res.samples_ms)[len(res.samples_ms) // 2] if res.samples_ms else None
        row = {"shape": shape, "template": template_name, "config": config, "ok": res.ok,
               "check_ok": bool(check and check.ok), "error": res.error, "timer": res.timer_kind,
               "median_ms": med, "samples_ms": res.samples_ms, "compile_ms": res.compile_ms,
               "gflops": (2 * m * n * k / (med * 1e6)) if med else None}
        print(f"  {shape} {template_name} {config}: {med} ms ({row['gflops'] and round(row['gflops'])} GFLOP/s, "
              f"timer {res.timer_kind}, check {row['check_ok']}, error {res.error})", flush=True)
        rows.append(row)
    return rows


def probe(executable: str, flags: tuple[str, ...], url: str, timeout_s: float, kernels: list[str],
          force: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="jitfarm-cdp-") as profile:
        t0 = time.perf_counter()
        launch = CdpLaunch(executable=executable, args=BASE + flags, user_data_dir=profile, command_timeout_s=timeout_s)
        out: dict = {"flags": list(flags)}
        try:
            with CdpPipe(launch) as b:
                out["browser"] = b.version().get("product")
                session = b.open_page(url, timeout_s=timeout_s)
                out["load_s"] = round(time.perf_counter() - t0, 2)
                out["ready"] = b.evaluate(session, "new Promise(r => { const t = () => (window.jitfarmReady || window.jitfarmLoadError) ? r(window.jitfarmLoadError || true) : setTimeout(t, 50); t(); })")
                # Asked first: right after start, Chromium may answer null while its GPU process
                # is still enumerating adapters (seen with NVIDIA), and the harness caches the answer.
                out["adapters"] = b.evaluate(session, ADAPTERS_JS, timeout_s=timeout_s)
                out["probe"] = b.evaluate(session, "window.jitfarm.probe()", timeout_s=timeout_s)
                try:
                    info = b.call("SystemInfo.getInfo")
                    gpu = info.get("gpu") or {}
                    out["gpu_info"] = {"devices": gpu.get("devices"), "featureStatus": (gpu.get("featureStatus") or {}),
                                       "driverBugWorkarounds": len(gpu.get("driverBugWorkarounds") or [])}
                except CdpError as e:
                    out["gpu_info"] = {"error": str(e)}
                out["dawn_info"] = dawn_info(b, timeout_s)
                adapter = (out["probe"] or {}).get("adapter") or {}
                if kernels and adapter and (force or not adapter.get("isFallbackAdapter")):
                    out["kernels"] = time_kernels(b, session, kernels, timeout_s)
                out["stderr_tail"] = b.stderr_tail[-6:]
        except CdpError as e:
            out["error"] = str(e)
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chromium", required=True, help="path of the chromium executable")
    ap.add_argument("--variants", default="vulkan,default")
    ap.add_argument("--timeout-s", type=float, default=60)
    ap.add_argument("--out", default=None, help="write the JSON answer here too")
    ap.add_argument("--kernel", action="append", default=[],
                    help="MxNxK:TEMPLATE:CONFIG to time when a non-fallback adapter is found (repeatable)")
    ap.add_argument("--force-kernels", action="store_true", help="time the kernels on a fallback adapter too")
    args = ap.parse_args()
    answers = []
    with HarnessServer() as server:
        url = f"{server.url}/index.html?featureLevel=core"
        for name in args.variants.split(","):
            res = probe(args.chromium, VARIANTS[name], url, args.timeout_s, args.kernel, args.force_kernels)
            res["variant"] = name
            adapter = ((res.get("probe") or {}).get("adapter")) or {}
            print(f"[{name}] browser={res.get('browser')} adapter={adapter.get('vendor')}/{adapter.get('architecture')}"
                  f"/{adapter.get('device')} fallback={adapter.get('isFallbackAdapter')} error={res.get('error') or (res.get('probe') or {}).get('error')}",
                  flush=True)
            answers.append(res)
    text = json.dumps(answers, indent=1, default=str)
    if args.out:
        Path(args.out).write_text(text)
    print(text[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
