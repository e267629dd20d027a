"""LatencyHistogram: accuracy against numpy, merging, serialisation."""

import json

import numpy as np
import pytest

from actors.histogram import CEILING_NS, FLOOR_NS, LatencyHistogram

PERCENTILES = [0, 1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100]


def lognormal_ns(seed: int, size: int) -> np.ndarray:
    """Latencies around 200 µs with a long tail, some below 1 µs."""
    rng = np.random.default_rng(seed)
    return rng.lognormal(mean=np.log(200_000), sigma=2.0, size=size).astype(np.int64)


def histogram_of(values: np.ndarray) -> LatencyHistogram:
    histogram = LatencyHistogram()
    histogram.record_many(values)
    return histogram


@pytest.mark.parametrize(("seed", "size"), [(1, 10), (2, 1_000), (3, 200_000)])
def test_percentiles_within_one_percent_of_numpy(seed, size):
    values = lognormal_ns(seed, size)
    histogram = histogram_of(values)
    for p in [*PERCENTILES, *np.linspace(0, 100, 201)]:
        exact = np.percentile(values, p)
        if exact >= FLOOR_NS:
            assert histogram.percentile(p) == pytest.approx(exact, rel=0.01), p


def test_float_values_within_one_percent():
    values = np.random.default_rng(4).uniform(FLOOR_NS, 1e10, 5_000)
    histogram = histogram_of(values)
    for p in PERCENTILES:
        assert histogram.percentile(p) == pytest.approx(np.percentile(values, p), rel=0.01)


def test_count_min_max_mean_are_exact():
    values = lognormal_ns(5, 10_000)
    histogram = histogram_of(values)
    assert histogram.count == values.size
    assert histogram.min == values.min() and histogram.max == values.max()
    assert histogram.mean == pytest.approx(values.mean(), rel=1e-12)
    assert histogram.percentile(0) == values.min() and histogram.percentile(100) == values.max()


def test_record_and_record_many_agree():
    values = lognormal_ns(6, 2_000)
    one_by_one = LatencyHistogram()
    for value in values:
        one_by_one.record(int(value))
    at_once = histogram_of(values)
    assert np.array_equal(one_by_one.counts, at_once.counts)
    assert (one_by_one.min, one_by_one.max) == (at_once.min, at_once.max)
    assert one_by_one.mean == pytest.approx(at_once.mean)
    in_small_arrays = LatencyHistogram()  # the path for a few values at a time
    for part in np.array_split(values, 400):
        in_small_arrays.record_many(part)
    assert np.array_equal(in_small_arrays.counts, at_once.counts)


def test_every_value_lands_in_the_bucket_a_binary_search_over_the_edges_gives():
    # record_many finds buckets from logarithms: right on, and either side of, every edge.
    edges = FLOOR_NS * 1.01 ** np.arange(2_900.0)
    edges = edges[edges <= CEILING_NS * 1.02]
    values = np.concatenate(
        [edges, np.nextafter(edges, 0), np.nextafter(edges, np.inf), [0.0, 1.0, np.inf]]
    )
    histogram = LatencyHistogram()
    histogram.record_many(values)
    one_by_one = LatencyHistogram()
    for value in values:
        one_by_one.record(float(value))  # record() bisects the edges
    np.testing.assert_array_equal(histogram.counts, one_by_one.counts)


def test_merging_equals_recording_everything_in_one():
    values = lognormal_ns(7, 30_000)
    merged = LatencyHistogram()
    for part in np.array_split(values, 3):
        assert merged.merge(histogram_of(part)) is merged
    merged.merge(LatencyHistogram())  # an empty one changes nothing
    whole = histogram_of(values)
    assert np.array_equal(merged.counts, whole.counts)
    assert (merged.count, merged.min, merged.max) == (whole.count, whole.min, whole.max)
    assert merged.mean == pytest.approx(whole.mean)
    assert [merged.percentile(p) for p in PERCENTILES] == [whole.percentile(p) for p in PERCENTILES]


def test_serialisation_round_trip():
    histogram = histogram_of(lognormal_ns(8, 5_000))
    data = json.loads(json.dumps(histogram.to_dict()))
    assert len(data["buckets"]) == np.count_nonzero(histogram.counts)  # compact
    copy = LatencyHistogram.from_dict(data)
    assert np.array_equal(copy.counts, histogram.counts)
    assert (copy.count, copy.min, copy.max, copy.mean) == (
        histogram.count,
        histogram.min,
        histogram.max,
        histogram.mean,
    )
    assert copy.percentiles_ms() == histogram.percentiles_ms()
    empty = LatencyHistogram.from_dict(LatencyHistogram().to_dict())
    assert empty.count == 0 and not empty.counts.any()


def test_from_dict_refuses_other_layouts_and_bad_counts():
    data = histogram_of(np.array([5_000, 6_000])).to_dict()
    with pytest.raises(ValueError, match="layout"):
        LatencyHistogram.from_dict({**data, "layout": [1000, 1.02, 100]})
    with pytest.raises(ValueError, match="add up"):
        LatencyHistogram.from_dict({**data, "count": 3})


def test_small_and_huge_values():
    histogram = LatencyHistogram()
    histogram.record_many(np.array([0, 10, 999]))
    assert histogram.counts[0] == 3 and histogram.min == 0 and histogram.max == 999
    histogram.record(10 * CEILING_NS)
    assert histogram.counts[-1] == 1 and histogram.max == 10 * CEILING_NS
    assert histogram.percentile(100) == 10 * CEILING_NS


def test_single_sample_is_reported_exactly():
    histogram = LatencyHistogram()
    histogram.record(123_456)
    assert all(histogram.percentile(p) == 123_456 for p in PERCENTILES)


def test_empty_histogram():
    histogram = LatencyHistogram()
    assert histogram.count == 0 and histogram.mean == 0.0 and histogram.percentile(99) == 0.0
    assert histogram.percentiles_ms() == {"p50": 0, "p90": 0, "p99": 0, "p999": 0, "max": 0}


def test_percentiles_ms():
    histogram = histogram_of(np.full(100, 2_500_000))
    assert histogram.percentiles_ms() == {
        "p50": 2.5,
        "p90": 2.5,
        "p99": 2.5,
        "p999": 2.5,
        "max": 2.5,
    }


def test_reset():
    histogram = histogram_of(lognormal_ns(9, 100))
    histogram.reset()
    assert histogram.count == 0 and not histogram.counts.any() and histogram.max == 0


@pytest.mark.parametrize("bad", [-1, float("nan")])
def test_negative_or_nan_values_are_refused(bad):
    with pytest.raises(ValueError):
        LatencyHistogram().record(bad)
    with pytest.raises(ValueError):
        LatencyHistogram().record_many(np.array([5.0, bad]))


@pytest.mark.parametrize("p", [-0.1, 100.1])
def test_percentile_out_of_range(p):
    with pytest.raises(ValueError):
        LatencyHistogram().percentile(p)
