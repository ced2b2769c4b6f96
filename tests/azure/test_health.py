"""The rolling health view's rules (apps/azure/health.py), fed as the stream reader feeds it;
the end-to-end paths (real 429s from the simulator, the banner) are in tests/chat."""

import pytest
from django.core.cache import cache

from apps.azure import health

KEY = ("eu", "gpt-4o-eu")


@pytest.fixture(autouse=True)
def _fresh():
    health.forget()
    cache.delete(health.cache_key(*KEY))
    yield
    health.forget()
    cache.delete(health.cache_key(*KEY))


def test_a_429_cools_the_deployment_down_for_its_retry_after_and_a_success_ends_it():
    health.record(KEY, outcome=health.RATE_LIMITED, status=429, retry_after=30)
    assert health.state(KEY) == health.RATE_LIMITED
    assert 29 < health.cooling(KEY) <= 30
    (entry,) = health.shared([KEY]).values()
    assert entry["state"] == health.RATE_LIMITED and 29 < health.shared_cooling(entry) <= 30
    health.record(KEY, outcome=health.OK, latency=0.2)
    assert health.state(KEY) == health.OK and health.cooling(KEY) == 0
    assert health.shared([KEY]) == {}, "ok again: the shared entry is gone"


def test_a_429_without_retry_after_rests_the_default_and_a_huge_one_is_capped():
    health.record(KEY, outcome=health.RATE_LIMITED, status=429)
    assert 0 < health.cooling(KEY) <= health.DEFAULT_COOL_DOWN
    health.record(KEY, outcome=health.RATE_LIMITED, status=429, retry_after=10**9)
    assert health.cooling(KEY) <= health.MAX_COOL_DOWN


def test_failing_is_most_of_the_latest_calls_with_the_latest_failed():
    health.record(KEY, outcome=health.OK, latency=0.1)
    health.record(KEY, outcome=health.OK, latency=0.1)
    health.record(KEY, outcome=health.FAILING, status=500)
    assert health.state(KEY) == health.OK, "one error among good calls is not a banner"
    health.record(KEY, outcome=health.FAILING, status=503)
    assert health.state(KEY) == health.FAILING
    assert health.shared([KEY])[KEY]["state"] == health.FAILING
    health.record(KEY, outcome=health.OK, latency=0.1)
    assert health.state(KEY) == health.OK


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (429, "rate_limited", health.RATE_LIMITED),
        (500, "upstream_error", health.FAILING),
        (None, "upstream_unreachable", health.FAILING),
        (None, "upstream_stalled", health.FAILING),
        (401, "auth_failed", health.FAILING),
        (404, "deployment_not_found", health.FAILING),
        (400, "content_filter_prompt", health.OK),
        (400, "context_length_exceeded", health.OK),
        (400, "bad_request", health.OK),
    ],
)
def test_what_counts_against_a_deployment(status, code, outcome):
    assert health.outcome_of(status=status, code=code) == outcome


def test_the_admin_snapshot_has_rates_and_first_chunk_latency():
    for latency in (0.1, 0.2, 0.3, 0.4):
        health.record(KEY, outcome=health.OK, latency=latency)
    health.record(KEY, outcome=health.FAILING, status=500)
    health.record(("us", "gpt-4o-us"), outcome=health.OK, latency=1.0)
    rows = {(r["group"], r["deployment"]): r for r in health.snapshot()}
    row = rows[KEY]
    assert row["calls"] == 5
    assert row["error_rate"] == pytest.approx(0.2) and row["rate_limited_rate"] == 0
    assert row["latency_p50"] == pytest.approx(0.25)
    assert row["latency_p95"] == pytest.approx(0.4)
    assert rows[("us", "gpt-4o-us")]["calls"] == 1
