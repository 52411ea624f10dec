"""Space.build shares the enumeration and the verdicts of keyed rules between builds: the spaces
are the same as without sharing, config for config, in the same order, with the same counts."""

import pickle

import pytest

from jit_core.ops import MatMul
from jit_core.space import Config, Param, Rule, Space
from jit_core.templates import get_template
from tests.caps_profiles import COMPAT, LLVMPIPE, NVIDIA, SWIFTSHADER

OPS = [MatMul(m, 8, 8) for m in (1, 2, 7, 16, 17, 100, 200)] + [
    MatMul(128, 128, 128), MatMul(1, 768, 3072), MatMul(127, 129, 65), MatMul(64, 32, 48, batch=2),
    MatMul(64, 64, 64, bias=True, act="relu")]


def _unshared(space_fn, op, caps) -> Space:
    """The same space built with every rule's key dropped and a canonicalizer seen for the first
    time: nothing can come from an earlier build."""
    captured = {}

    def capture(params, rules, *, canonicalize=None, prior=None):
        captured.update(params=params, rules=rules, canonicalize=canonicalize, prior=prior)

    with pytest.MonkeyPatch.context() as mp:  # only to read what the template passes to Space.build
        mp.setattr(Space, "build", staticmethod(capture))
        space_fn(op, caps)
    canon = captured["canonicalize"]
    fresh = (lambda c: canon(c)) if canon is not None else (lambda c: c)
    rules = [Rule(r.name, r.source, r.predicate, r.doc) for r in captured["rules"]]
    return Space.build(captured["params"], rules, canonicalize=fresh, prior=captured["prior"])


@pytest.mark.parametrize("name", ["matmul-wgsl", "matmul-wgsl-vec4", "matmul-wgsl-gemv"])
def test_shared_builds_equal_unshared_builds_config_for_config(name):
    template = get_template(name)
    ops = OPS[::4] if name == "matmul-wgsl-vec4" else OPS  # its space takes 0.25 s to build unshared
    for caps in (SWIFTSHADER, LLVMPIPE, NVIDIA, COMPAT):
        for op in ops:
            shared = template.space(op, caps)
            again = get_template(name).space(op, caps)  # a new instance hits what the first built
            plain = _unshared(template.space, op, caps)
            for s in (shared, again):
                assert [c.key() for c in s] == [c.key() for c in plain], (op, caps.device)
                assert (s.raw_size, s.duplicates, s.removed) == (plain.raw_size, plain.duplicates, plain.removed)


def test_keyed_rules_are_evaluated_once_per_key_and_unkeyed_rules_every_build():
    calls = {"keyed": 0, "plain": 0}

    def keyed(limit):
        def pred(c):
            calls["keyed"] += 1
            return c["X"] <= limit
        return Rule("x-le-limit", "ours", pred, key=limit)

    def plain(c):
        calls["plain"] += 1
        return c["Y"] != 2

    params = [Param("X", (1, 2, 4)), Param("Y", (1, 2))]
    a = Space.build(params, [keyed(2), Rule("y-not-2", "ours", plain)])
    assert calls == {"keyed": 6, "plain": 4}
    b = Space.build(params, [keyed(2), Rule("y-not-2", "ours", plain)])
    assert calls == {"keyed": 6, "plain": 8}  # same key: verdicts reused; the unkeyed rule ran again
    c = Space.build(params, [keyed(4), Rule("y-not-2", "ours", plain)])
    assert calls["keyed"] == 12  # another key: evaluated afresh
    assert [x.key() for x in a] == [x.key() for x in b] == ["X=1,Y=1", "X=2,Y=1"]
    assert a.removed == b.removed == {"x-le-limit": 2, "y-not-2": 2}
    assert [x.key() for x in c] == ["X=1,Y=1", "X=2,Y=1", "X=4,Y=1"] and c.removed == {"x-le-limit": 0, "y-not-2": 3}


def test_rule_key_must_be_hashable():
    with pytest.raises(ValueError, match="hashable"):
        Rule("r", "ours", lambda c: True, key=[1])


def test_config_lookup_pickling_and_missing_names():
    c = Config(BM=64, BN=32)
    assert (c["BM"], c["BN"], c.get("XX"), "BN" in c, "XX" in c) == (64, 32, None, True, False)
    with pytest.raises(KeyError):
        c["XX"]
    d = pickle.loads(pickle.dumps(c))
    assert d == c and hash(d) == hash(c) and d["BN"] == 32 and d.key() == "BM=64,BN=32"
