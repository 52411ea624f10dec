"""TuneCache: winners keyed by op, template version and device fingerprint, persisted as JSON;
plan_tune: reuse on the same device, warm start on a device of the same vendor and architecture."""

import dataclasses
import json

from jit_core.cache import FORMAT_VERSION, TuneCache, plan_tune
from jit_core.ops import MatMul
from jit_core.space import Config
from jit_core.tuner import TrialRecord, TuneOptions, TuneResult
from tests.caps_profiles import LLVMPIPE, NVIDIA


def _result(op, best_ms, version="1", fp="abc", key="BM=32,BN=32,BK=16,TM=4,TN=4,SH=1"):
    best = None if best_ms is None else TrialRecord(0, {}, key, True, median_ms=best_ms, timer_kind="wall")
    return TuneResult(op, "matmul-wgsl", version, fp, best, [best] if best else [], 10, 1536, 1.0, "space-exhausted")


def test_put_then_get_round_trips_through_the_file(tmp_path):
    path = tmp_path / "cache.json"
    op = MatMul(64, 64, 64)
    TuneCache(path).put(_result(op, 1.5))
    entry = TuneCache(path).get(op, "matmul-wgsl", "1", "abc")
    assert entry is not None and entry.median_ms == 1.5 and entry.config["BM"] == 32
    assert json.loads(path.read_text())["format"] == FORMAT_VERSION


def test_other_template_version_fingerprint_or_op_miss():
    cache = TuneCache()
    op = MatMul(64, 64, 64)
    cache.put(_result(op, 1.5))
    assert cache.get(op, "matmul-wgsl", "2", "abc") is None
    assert cache.get(op, "matmul-wgsl", "1", "other") is None
    assert cache.get(MatMul(64, 64, 65), "matmul-wgsl", "1", "abc") is None


def test_a_tune_without_winner_changes_nothing():
    cache = TuneCache()
    assert cache.put(_result(MatMul(8, 8, 8), None)) is None and len(cache) == 0


KEYS = ["BM=32,BN=32,BK=16,TM=4,TN=4,SH=1", "BM=64,BN=32,BK=16,TM=4,TN=4,SH=1",
        "BM=32,BN=64,BK=16,TM=4,TN=4,SH=1", "BM=64,BN=64,BK=16,TM=4,TN=4,SH=1", "BM=16,BN=16,BK=16,TM=4,TN=4,SH=1"]


def _tuned(op, caps, costs):
    """A result whose trials have the given costs (None: failed), in KEYS order."""
    trials = [TrialRecord(i, Config.from_key(k).as_dict(), k, c is not None, median_ms=c)
              for i, (k, c) in enumerate(zip(KEYS, costs))]
    best = min((t for t in trials if t.ok), key=lambda t: t.median_ms)
    return TuneResult(op, "matmul-wgsl", "2", caps.fingerprint(), best, trials, 5, 3072, 1.0, "space-exhausted")


def test_entry_keeps_the_winner_then_runners_up_without_failures():
    cache = TuneCache()
    op = MatMul(64, 64, 64)
    entry = cache.put(_tuned(op, LLVMPIPE, [3.0, None, 1.0, 2.0, 4.0]), LLVMPIPE)
    assert [c.key() for c in entry.configs()] == [KEYS[2], KEYS[3], KEYS[0], KEYS[4]]
    assert entry.vendor == LLVMPIPE.vendor


def test_same_device_reuses_only_the_cached_winners():
    cache = TuneCache()
    op = MatMul(64, 64, 64)
    cache.put(_tuned(op, LLVMPIPE, [3.0, None, 1.0, 2.0, 4.0]), LLVMPIPE)
    plan = plan_tune(cache, op, "matmul-wgsl", "2", LLVMPIPE, TuneOptions(), retime=2)
    assert plan.mode == "reuse" and plan.options.max_evals == 2
    assert [c.key() for c in plan.options.start] == [KEYS[2], KEYS[3]]


def test_similar_device_warm_starts_and_other_vendors_start_cold():
    cache = TuneCache()
    op = MatMul(64, 64, 64)
    cache.put(_tuned(op, LLVMPIPE, [3.0, None, 1.0, 2.0, 4.0]), LLVMPIPE)
    other_build = dataclasses.replace(LLVMPIPE, description="llvmpipe, newer Mesa")
    assert other_build.fingerprint() != LLVMPIPE.fingerprint()
    plan = plan_tune(cache, op, "matmul-wgsl", "2", other_build, TuneOptions(max_evals=50))
    assert plan.mode == "warm-start" and plan.options.max_evals == 50 and plan.options.start[0].key() == KEYS[2]
    assert plan_tune(cache, op, "matmul-wgsl", "2", NVIDIA, TuneOptions()).mode == "cold"
    assert plan_tune(cache, op, "matmul-wgsl", "3", other_build, TuneOptions()).mode == "cold"
    assert plan_tune(None, op, "matmul-wgsl", "2", LLVMPIPE, TuneOptions()).mode == "cold"


def test_two_writers_of_one_file_keep_both_entries(tmp_path):
    path = tmp_path / "kernel-cache.json"
    a, b = TuneCache(path), TuneCache(path)
    a.put(_tuned(MatMul(64, 64, 64), LLVMPIPE, [1.0] * 5), LLVMPIPE)
    b.put(_tuned(MatMul(32, 32, 32), NVIDIA, [1.0] * 5), NVIDIA)
    assert len(TuneCache(path)) == 2


def test_a_file_of_another_format_is_ignored(tmp_path):
    path = tmp_path / "kernel-cache.json"
    path.write_text(json.dumps({"format": 1, "entries": {"x": {"config_key": "A=1"}}}))
    assert len(TuneCache(path)) == 0


def test_a_file_rewritten_by_another_writer_is_read_again(tmp_path):
    path = tmp_path / "kernel-cache.json"
    a = TuneCache(path)
    a.put(_tuned(MatMul(64, 64, 64), LLVMPIPE, [1.0] * 5), LLVMPIPE)
    assert len(TuneCache(path)) == 1  # read back from what ``a`` wrote
    TuneCache(path).put(_tuned(MatMul(32, 32, 32), NVIDIA, [1.0] * 5), NVIDIA)
    a.put(_tuned(MatMul(16, 16, 16), LLVMPIPE, [1.0] * 5), LLVMPIPE)
    fresh = TuneCache(path)
    assert len(fresh) == 3 and fresh.get(MatMul(32, 32, 32), "matmul-wgsl", "2", NVIDIA.fingerprint()) is not None
    assert json.loads(path.read_text())["format"] == 2
