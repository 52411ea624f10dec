"""matmul-wasm-simd in real headless Chromium: probe, correctness of every config of representative
spaces on small ragged shapes (threads sharing one memory included), failures as records, tune()."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from farm.drivers.base import BrowserOptions
from farm.drivers.playwright_driver import PlaywrightDriver
from jit_core.caps import DeviceCaps
from jit_core.ops import MatMul
from jit_core.protocol import KernelSource, MeasureSpec, make_batch
from jit_core.reference import check_positions
from jit_core.space import Config
from jit_core.templates import get_template
from jit_core.tuner import TuneOptions, tune
from jit_core.wasm.encoder import Func, Module
from tests.template_checks import ONE_RUN, assert_all_correct
from tests.tuning_checks import assert_confirmed_winner

CHROMIUM = BrowserOptions().executable_path
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and Path(CHROMIUM).is_file()), reason=f"no Chromium at {CHROMIUM}: run the README's setup command"),
]
T = get_template("matmul-wasm-simd")
RAGGED = [MatMul(17, 23, 19), MatMul(5, 37, 70, batch=3), MatMul(1, 64, 33), MatMul(70, 90, 50)]


@pytest.fixture(scope="module")
def driver():
    drv = PlaywrightDriver(BrowserOptions())
    drv.open()
    yield drv
    drv.close()


@pytest.fixture(scope="module")
def caps(driver):
    return DeviceCaps.from_probe(driver.probe())


def test_probe_reports_simd_relaxed_simd_threads_and_the_cpu(driver, caps):
    wasm = driver.probe()["wasm"]
    assert wasm["simd"] is True and wasm["relaxedSimd"] is True
    assert wasm["threads"] is True  # the harness server makes the page cross-origin isolated
    assert caps.cpu_arch in ("x86-64", "arm64") and caps.hardware_concurrency >= 1
    assert caps.simd_registers in (16, 32)


@pytest.mark.parametrize("op", RAGGED, ids=lambda op: op.key())
def test_every_config_of_the_lite_space_is_correct(driver, caps, op):
    configs = list(T.space(op, caps))
    assert configs
    assert_all_correct(driver, T, op, configs, seed=5)


def test_every_register_tile_threads_and_packing_is_correct_beyond_the_lite_space(driver):
    """A wider grid than any lite space: every register tile, small cache tiles with ragged
    edges in M, N and K, 1-3 threads, packing on and off, FMA on and off."""
    op = MatMul(37, 45, 29, batch=2)
    configs = [Config(MR=mr, NR=nr, MB=mb, NB=nb, KB=kb, UK=uk, T=t, PB=pb, FMA=fma)
               for mr, nr in itertools.product((1, 2, 4, 8), (4, 8, 16, 32))
               for mb, nb, kb, uk, t, pb, fma in [(8, 32, 16, 4, 3, 1, 1), (16, 32, 8, 1, 2, 0, 0), (32, 64, 32, 2, 1, 1, 0)]
               if mr <= mb and nr <= nb]
    assert_all_correct(driver, T, op, configs, seed=7, chunk=24)


def _kernel(binary: bytes, threads: int = 1) -> KernelSource:
    return KernelSource(";; test", "run", (1, 1, 1), (1, 1, 1), kind="wasm", binary=binary, threads=threads, units=2)


def test_broken_and_trapping_modules_are_records_and_the_batch_goes_on(driver):
    op = MatMul(8, 8, 8)
    good = T.render(op, Config.from_key("MR=4,NR=8,MB=16,NB=16,KB=16,UK=1,T=1,PB=0,FMA=0"))

    def trapping(shared: bool) -> bytes:
        m = Module()
        f = Func((0x7F,) * 6)
        f.op("unreachable")
        m.import_memory("env", "memory", min_pages=1, max_pages=65536 if shared else None, shared=shared)
        m.add(f, export="run")
        return m.encode()

    kernels = [("broken", _kernel(b"\x00asm\x01\x00\x00\x00\x01")), ("trap", _kernel(trapping(False))),
               ("trap-threads", _kernel(trapping(True), threads=2)),
               ("unshared-on-threads", _kernel(trapping(False), threads=2)), ("good", good)]
    res = driver.run_batch(make_batch(op, kernels, seed=1, measure=ONE_RUN, check_positions=check_positions(op, 0)))
    assert [r.error_class for r in res] == ["compile", "runtime", "runtime", "compile", None]
    assert res[4].ok and res[4].values is not None


def test_tune_finds_a_checked_winner_with_the_same_loop_and_records(driver, caps):
    op = MatMul(96, 128, 64)
    opts = TuneOptions(budget_s=60, max_evals=6, batch_size=3,
                       measure=MeasureSpec(warmup=1, samples=3, min_sample_ms=2, max_reps=16))
    result = tune(op, T, caps, driver, options=opts)
    assert sum(t.phase == "search" for t in result.trials) == 6 and all(t.ok and t.check_ok for t in result.trials)
    assert_confirmed_winner(result)
    assert result.best is not None and result.best.timer_kind == "wall"
    assert all(t.compile_ms is not None and t.compile_ms >= 0 for t in result.trials)
