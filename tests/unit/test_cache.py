"""TuneCache: winners keyed by op, template version and device fingerprint, persisted as JSON."""

import json

from jit_core.cache import TuneCache
from jit_core.ops import MatMul
from jit_core.tuner import TrialRecord, TuneResult


def _result(op, best_ms, version="1", fp="abc", key="BM=32,BN=32,BK=16,TM=4,TN=4,SH=1"):
    best = None if best_ms is None else TrialRecord(0, {}, key, True, median_ms=best_ms, timer_kind="wall")
    return TuneResult(op, "matmul-wgsl", version, fp, best, [best] if best else [], 10, 1536, 1.0, "space-exhausted")


def test_put_then_get_round_trips_through_the_file(tmp_path):
    path = tmp_path / "cache.json"
    op = MatMul(64, 64, 64)
    TuneCache(path).put(_result(op, 1.5))
    entry = TuneCache(path).get(op, "matmul-wgsl", "1", "abc")
    assert entry is not None and entry.median_ms == 1.5 and entry.config["BM"] == 32
    assert json.loads(path.read_text())["format"] == 1


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
