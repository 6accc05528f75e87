"""Every error answer has one shape, {"error": ..., "detail": ...}, whatever raised it: the
engine's and the store's errors, request validation, HTTP errors of the framework, and bugs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from engine.errors import StoreBusy

from .conftest import AS_OF, assert_error, open_api


def test_an_unknown_path_is_a_404(api):
    assert_error(api.get("/no/such/thing", "sys"), 404, "not_found")


def test_a_method_the_path_does_not_take_is_a_405_listing_those_it_does(api):
    response = api.request("DELETE", "/runs", "sys")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"
    response = api.request("PUT", "/flags/1/events", "sup")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


def test_a_body_that_is_not_json_is_named(api):
    response = api.post("/checks", "sys", content=b"{not json", headers={"Content-Type": "application/json"})
    detail = assert_error(response, 422, "invalid_request")
    assert detail[0]["in"] == "body" and detail[0]["message"]


def test_a_body_that_is_not_utf8_is_a_400(api):
    response = api.post("/runs", "sys", content=b'{"as_of": "\xff"}', headers={"Content-Type": "application/json"})
    assert "0xFF at offset 11" in assert_error(response, 400, "bad_request")


def test_a_gbk_body_is_named_as_not_utf8(api):
    """A bureau's system sending its JSON in GBK hears what to change, and where it went wrong."""
    body = '{"as_of": "2026-06-30", "members": [{"name": "张三"}]}'.encode("gbk")
    detail = assert_error(api.post("/checks", "sys", content=body, headers={"Content-Type": "application/json"}),
                          400, "bad_request")
    assert "not UTF-8" in detail and f"offset {body.index(chr(0x5f20).encode('gbk'))}" in detail, detail


def test_a_validation_error_names_where_each_problem_is(api):
    detail = assert_error(api.get("/flags?limit=x&offset=-1", "sys"), 422, "invalid_request")
    assert {(item["field"], item["in"]) for item in detail} == {("limit", "query"), ("offset", "query")}
    assert all(item["message"] for item in detail)
    detail = assert_error(api.get("/flags/abc", "sys"), 422, "invalid_request")
    assert detail == [{"field": "flag_id", "in": "path", "message": detail[0]["message"]}]


@pytest.fixture(scope="module")
def api_in_thread(template, city, tmp_path_factory):
    """The checker in the server's own process, where a test can make it fail."""
    yield from open_api(template, city, tmp_path_factory.mktemp("api"), check_process=False)


def test_a_busy_store_is_a_503_with_retry_after(api_in_thread, monkeypatch):
    api = api_in_thread
    def busy(*args, **kwargs):
        raise StoreBusy("run 7 holds the store")

    monkeypatch.setattr(api.client.app.state.crosscheck.checker, "current", busy)
    members = api.city.members(api.city.roll["household_id"][0])
    response = api.post("/checks", "sys", json={"as_of": AS_OF.isoformat(), "members": members})
    assert assert_error(response, 503, "busy") == "run 7 holds the store"
    assert response.headers["retry-after"] == "5"


def test_a_bug_is_a_500_without_its_traceback(api_in_thread, monkeypatch):
    api = api_in_thread
    def bug(*args, **kwargs):
        raise KeyError("secret internals")

    monkeypatch.setattr(api.client.app.state.crosscheck.checker, "current", bug)
    members = api.city.members(api.city.roll["household_id"][0])
    client = TestClient(api.client.app, raise_server_exceptions=False)  # the running app, as a server answers
    response = client.post("/api/v1/checks", json={"members": members}, headers=api.auth("sys"))
    detail = assert_error(response, 500, "internal_error")
    assert "KeyError" in detail and "secret internals" not in detail and "Traceback" not in response.text


@pytest.mark.parametrize("path", ["/flags", "/runs", "/audit", "/sources"])
def test_an_error_of_a_refused_user_has_the_shape_too(api, path):
    assert_error(api.get(path, headers={"Authorization": "Bearer nobody"}), 401, "not_authenticated")


def test_a_check_that_takes_too_long_is_a_503_and_the_checker_goes_on(api_in_thread, monkeypatch):
    api = api_in_thread
    members = api.city.members(api.city.roll["household_id"][0])
    body = {"as_of": AS_OF.isoformat(), "members": members}
    monkeypatch.setattr(api.client.app.state.crosscheck.settings, "check_timeout", 1e-6)
    response = api.post("/checks", "sys", json=body)
    assert "CROSSCHECK_CHECK_TIMEOUT" in assert_error(response, 503, "busy")
    assert response.headers["retry-after"] == "5"
    monkeypatch.setattr(api.client.app.state.crosscheck.settings, "check_timeout", 60.0)
    assert api.post("/checks", "sys", json=body).status_code == 200  # the answer nobody waited for harmed nothing
