"""Findings of a sweep: regression per layout, where the time goes, layouts compared."""

from lab.findings import findings


def point(layout, n, ops, p99=5.0, busy=None):
    actors = {
        "engine-0": {"busy": 0.3, "messages": 100, "us_per_message": 2.0},
        "backend-0": {"busy": busy or 0.6, "messages": 100, "us_per_message": 9.0},
        "collector-0": {"busy": 0.0, "messages": 0, "us_per_message": 0.0},
    }
    return {
        "values": {"layout": layout, "topology.backends": n},
        "n": n,
        "orders_per_s": {"mean": ops, "ci_low": ops, "ci_high": ops, "runs": [ops]},
        "p99_ms": {"mean": p99},
        "actors": actors,
    }


def test_a_drop_at_more_backends_is_called_a_regression():
    out = findings([point("compose", 4, 3163), point("compose", 8, 2689)], "topology.backends")
    assert "compose: topology.backends=8 gave 2,689 orders/s against 3,163" in out[0]
    assert "(-15%): a regression" in out[0]


def test_a_rise_is_a_gain_and_small_changes_are_no_gain():
    gain = findings([point("a", 1, 1000), point("a", 2, 1800)], "N")[0]
    flat = findings([point("a", 1, 1000), point("a", 2, 1020)], "N")[0]
    assert "a gain of 80% for 2.0x the N" in gain
    assert "no gain" in flat


def test_the_busiest_stage_comes_first_in_where_the_time_goes():
    out = findings([point("a", 1, 1000), point("a", 2, 900, busy=0.95)], "N")
    assert "backend 95% busy (9.0 µs/message), engine 30% busy" in out[1]
    assert "collector" not in out[1]


def test_layouts_are_compared_at_the_same_n():
    pts = [
        point("single-host", 4, 3000),
        point("single-host", 8, 2600),
        point("three-node", 4, 2000),
        point("three-node", 8, 2500),
    ]
    out = findings(pts, "topology.backends")
    assert (
        "At topology.backends=4, three-node gave 2,000 orders/s against single-host's 3,000 (-33%)."
        in out
    )
    assert (
        "At topology.backends=8, three-node gave 2,500 orders/s against single-host's 2,600 (-4%)."
        in out
    )
