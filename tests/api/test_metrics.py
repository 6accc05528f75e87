"""api.metrics: what /metrics counts, as Prometheus reads it."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from api.metrics import Metrics


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(metrics.render().decode())
            for sample in family.samples}


def test_each_answer_is_counted_and_timed_by_method_route_and_status():
    metrics = Metrics()
    for seconds in (0.004, 0.006, 0.030):
        metrics.answered("POST", "/checks", 200, seconds)
    metrics.answered("POST", "/checks", 422, 0.001)
    metrics.answered("GET", "/flags/{flag_id}", 200, 0.002)
    found = _samples(metrics)
    ok = (("method", "POST"), ("route", "/checks"), ("status", "200"))
    assert found[("crosscheck_http_requests_total", ok)] == 3
    assert found[("crosscheck_http_requests_total", (("method", "POST"), ("route", "/checks"), ("status", "422")))] == 1
    assert found[("crosscheck_http_requests_total", (("method", "GET"), ("route", "/flags/{flag_id}"),
                                                     ("status", "200")))] == 1
    # The latency is by method and route, whatever the status: four POST /checks.
    timed = (("method", "POST"), ("route", "/checks"))
    assert found[("crosscheck_http_request_seconds_count", timed)] == 4
    assert abs(found[("crosscheck_http_request_seconds_sum", timed)] - 0.041) < 1e-9
    assert found[("crosscheck_http_request_seconds_bucket", tuple(sorted((*timed, ("le", "0.005")))))] == 2


def test_two_apps_do_not_share_counts():
    first, second = Metrics(), Metrics()
    first.answered("POST", "/checks", 200, 0.01)
    ok = (("method", "POST"), ("route", "/checks"), ("status", "200"))
    assert _samples(first)[("crosscheck_http_requests_total", ok)] == 1
    assert ("crosscheck_http_requests_total", ok) not in _samples(second)
