"""Config, Param, Rule and Space: the reusable pieces every template's search space is made of."""

import pytest

from jit_core.space import Config, Param, Rule, Space


def test_config_is_ordered_hashable_and_keyed():
    c = Config({"BM": 64, "BN": 32, "SH": 1})
    assert c.key() == "BM=64,BN=32,SH=1"
    assert list(c) == ["BM", "BN", "SH"]
    assert c["BN"] == 32 and c.as_dict() == {"BM": 64, "BN": 32, "SH": 1}
    assert Config.from_key(c.key()) == c
    assert hash(Config(BM=64, BN=32, SH=1)) == hash(c)
    assert len({c, Config(BM=64, BN=32, SH=1)}) == 1
    assert c == {"SH": 1, "BM": 64, "BN": 32}  # equal to a plain dict with the same values


def test_config_is_immutable_and_replace_makes_a_copy():
    c = Config(BM=64, BK=16)
    d = c.replace(BK=8)
    assert (c["BK"], d["BK"], d.key()) == (16, 8, "BM=64,BK=8")
    with pytest.raises(KeyError):
        c.replace(XX=1)
    with pytest.raises(TypeError):
        c["BM"] = 1  # type: ignore[index]


def test_config_rejects_non_integers_and_duplicates():
    with pytest.raises(ValueError):
        Config(BM=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Config([("A", 1), ("A", 2)])
    with pytest.raises(ValueError):
        Config.from_key("BM64")


def test_rule_source_must_be_known():
    with pytest.raises(ValueError, match="source"):
        Rule("r", "folklore", lambda c: True)


def _toy_space() -> Space:
    params = [Param("X", (1, 2, 4)), Param("Y", (1, 2, 4)), Param("Z", (0, 1))]
    rules = [
        Rule("x-le-y", "ours", lambda c: c["X"] <= c["Y"], "X <= Y"),
        Rule("no-4-4", "nnJIT", lambda c: not (c["X"] == 4 and c["Y"] == 4), "not both 4"),
    ]
    # Z=0 ignores X: canonicalize it to 1 (creates duplicates)
    canon = lambda c: c.replace(X=1) if c["Z"] == 0 else c  # noqa: E731
    return Space.build(params, rules, canonicalize=canon, prior=lambda c: -c["Y"])


def test_space_counts_add_up():
    s = _toy_space()
    r = s.report()
    assert r["raw_size"] == 18
    assert r["duplicates"] == 6  # Z=0 rows collapse from 9 to 3
    assert r["size"] + r["duplicates"] + sum(r["removed"].values()) == r["raw_size"]
    assert r["removed"] == {"x-le-y": 3, "no-4-4": 1}
    assert [x["source"] for x in r["rules"]] == ["ours", "nnJIT"]
    assert len(set(s.configs)) == len(s)


def test_space_orders_by_prior_stably_and_counts_first_rejecting_rule():
    s = _toy_space()
    ys = [c["Y"] for c in s]
    assert ys == sorted(ys, reverse=True)
    assert s.rejected_by(Config(X=4, Y=1, Z=1)) == "x-le-y"
    assert s.rejected_by(Config(X=4, Y=4, Z=1)) == "no-4-4"
    assert Config(X=1, Y=4, Z=0) in s and Config(X=2, Y=4, Z=0) not in s
