"""api.fast_checks: POST /checks answered beside FastAPI's request machinery must answer exactly
what FastAPI's route answers — the same status and the same bytes — and leave the same traces
(audit log, metrics). Each request below is sent to two apps on copies of one store, one with
the fast path and one without."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

import api.fast_checks as fast_checks

from .conftest import AS_OF, Api, open_api

LIMIT_MB = 16 / 1024


@pytest.fixture(scope="module")
def pair(template, city, tmp_path_factory) -> Iterator[tuple[Api, Api]]:
    # Uploads limited to 16 kB: a household's check is ~1 kB, and a body over the limit is a case.
    fast = open_api(template, city, tmp_path_factory.mktemp("fast"), max_upload_mb=LIMIT_MB)
    slow = open_api(template, city, tmp_path_factory.mktemp("slow"), max_upload_mb=LIMIT_MB, fast_checks=False)
    yield next(fast), next(slow)
    for generator in (fast, slow):
        generator.close()


@pytest.fixture
def answered(monkeypatch) -> list[int]:
    """The status of every answer the fast path gave itself (not handed to FastAPI)."""
    statuses: list[int] = []
    response = fast_checks._response

    def counting(route: Any, answer: Any) -> Any:
        statuses.append(200)
        return response(route, answer)

    monkeypatch.setattr(fast_checks, "_response", counting)
    return statuses


def _household(api: Api, region: str, flagged: bool) -> str:
    roll = api.city.roll.filter(pl.col("region_code").str.starts_with(region))
    households = roll.get_column("household_id").unique().sort().to_list()
    return next(h for h in households if bool(api.city.truth_rules(h)) == flagged)


def _body(api: Api, region: str, flagged: bool = True, **more: Any) -> dict[str, Any]:
    household = _household(api, region, flagged)
    return {"household_id": household, "as_of": AS_OF.isoformat(), "members": api.city.members(household), **more}


def _invalid_id(api: Api) -> dict[str, Any]:
    body = _body(api, api.city.township_a, flagged=False)
    member = body["members"][0]
    member["id_number"] = member["id_number"][:-1] + ("0" if member["id_number"][-1] != "0" else "1")
    return body


def _bad_program(api: Api) -> dict[str, Any]:
    body = _body(api, api.city.township_a)
    body["members"][0]["program"] = "no-such-program"
    return body


CASES = [  # {description, user, body, headers, query, taken: answered by the fast path itself}
    {"description": "a household with findings", "user": "cw_a",
     "body": lambda api: _body(api, api.city.township_a), "taken": True},
    {"description": "a clean household", "user": "sys",
     "body": lambda api: _body(api, api.city.township_b, flagged=False), "taken": True},
    {"description": "an invalid ID: a warning and a flag", "user": "sys", "body": _invalid_id, "taken": True},
    {"description": "JSON with a charset", "user": "sys", "headers": {"Content-Type": "application/json; charset=utf-8"},
     "content": lambda: json.dumps({"as_of": AS_OF.isoformat(), "members": [
         {"id_number": "110101199003070030", "name": "张三", "program": "dibao", "region_code": "320303001",
          "benefit_monthly": 500.0}]}).encode(), "taken": True},
    {"description": "one rule only", "user": "sys",
     "body": lambda api: _body(api, api.city.township_a, rules=["deceased"]), "taken": True},
    {"description": "a region outside the token: 403 from the endpoint", "user": "cw_a",
     "body": lambda api: _body(api, api.city.township_b), "taken": False},
    {"description": "an unknown program: 422 from FastAPI", "user": "sys", "body": _bad_program, "taken": False},
    {"description": "recording: FastAPI's path", "user": "sys",
     "body": lambda api: {**_body(api, api.city.township_a), "household_id": "APP-FAST-1", "record": True},
     "taken": False},
    {"description": "a role that may not check: 403", "user": "aud",
     "body": lambda api: _body(api, api.city.township_a), "taken": False},
    {"description": "no token: 401", "user": None, "body": lambda api: _body(api, api.city.township_a),
     "taken": False},
    {"description": "a token never seen: 401", "user": None, "headers": {"Authorization": "Bearer guessed"},
     "body": lambda api: _body(api, api.city.township_a), "taken": False},
    {"description": "a query parameter: 422", "user": "sys", "query": {"verbose": "1"},
     "body": lambda api: _body(api, api.city.township_a), "taken": False},
    {"description": "not JSON: 422", "user": "sys", "content": b"{not json",
     "headers": {"Content-Type": "application/json"}, "taken": False},
    {"description": "arrays nested 5,000 deep: 400, not a RecursionError's 500", "user": "sys",
     "content": b"[" * 5_000 + b"]" * 5_000, "headers": {"Content-Type": "application/json"}, "taken": False,
     "status": 400},
    {"description": "a text body: 422", "user": "sys", "content": b"members=1",
     "headers": {"Content-Type": "text/plain"}, "taken": False},
    # Sent in chunks, without a Content-Length: refused while it is read.
    {"description": "a body over the upload limit: 413", "user": "sys",
     "content": lambda: iter([b'{"members": [' + b" " * 8192] * 3), "taken": False},
]


@pytest.mark.parametrize("case", CASES, ids=[case["description"] for case in CASES])
def test_the_fast_path_answers_what_fastapi_answers(pair, answered, case):
    fast, slow = pair
    sent = []
    for api in pair:
        if case["user"]:  # the fast path takes only a token the server has cached (for 5 s): read once
            assert api.get("/rules", case["user"]).status_code == 200
        kwargs: dict[str, Any] = {"headers": case.get("headers", {}), "params": case.get("query")}
        if "content" in case:
            kwargs["content"] = case["content"]() if callable(case["content"]) else case["content"]
        else:
            kwargs["json"] = case["body"](api)
        sent.append(api.post("/checks", case["user"], **kwargs))
    fast_answer, slow_answer = sent
    assert fast_answer.status_code == slow_answer.status_code, (fast_answer.text, slow_answer.text)
    assert fast_answer.status_code == case.get("status", fast_answer.status_code)
    assert fast_answer.headers["content-type"] == slow_answer.headers["content-type"]
    assert fast_answer.content == slow_answer.content
    assert len(answered) == (1 if case["taken"] else 0), case["description"]


def test_a_check_the_fast_path_answered_is_audited_and_counted(pair, answered):
    fast, _ = pair
    assert fast.get("/rules", "cw_a").status_code == 200  # the token cached
    response = fast.post("/checks", "cw_a", json=_body(fast, fast.city.township_a))
    assert response.status_code == 200 and answered == [200]
    entries = fast.get("/audit", "aud", params={"limit": 1000, "user": "cw_a"}).json()["items"]
    entry = next(e for e in entries if e["method"] == "POST" and e["path"] == "/api/v1/checks")
    assert (entry["user_name"], entry["role"], entry["action"], entry["status_code"]) == ("cw_a", "caseworker",
                                                                                          "write", 200)
    assert entry["detail"]["route"] == "/checks"
    metrics = fast.client.get("/api/v1/metrics").text
    assert 'crosscheck_http_requests_total{method="POST",route="/checks",status="200"}' in metrics
