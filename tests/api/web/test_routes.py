"""The pages' answers to what a browser sends outside the happy path, without a browser: the
app driven through its ASGI interface (tests/api/conftest's `api`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..conftest import assert_error, open_api

PAGE = {"Accept": "text/html,application/xhtml+xml"}


def signed_in(api, user: str = "cw_a"):
    client = api.client
    client.cookies.clear()
    response = client.post("/login", data={"token": api.tokens[user], "next": "/flags"}, follow_redirects=False)
    assert response.status_code == 303
    return client


def test_a_path_no_page_has_is_a_page_for_a_browser_and_json_for_a_program(api):
    client = signed_in(api)
    for path in ("/batches/", "/no-such-page", "/static/none.css"):
        answer = client.get(path, headers=PAGE)
        assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html"), path
        assert "未找到" in answer.text and "not_found" not in answer.text
    assert_error(api.get("/no-such-endpoint", "sys"), 404, "not_found")  # the API's clients: JSON


LINKS = [  # {description, asked, expected: where the page is then asked for}
    {"description": "a page number that is not one", "asked": "/flags?page=abc&status=all",
     "expected": "/flags?status=all"},
    {"description": "a page number below the first", "asked": "/flags?page=-1", "expected": "/flags"},
    {"description": "a flag mark that is not a number", "asked": "/login?expired=abc", "expected": "/login"},
]


@pytest.mark.parametrize("case", LINKS, ids=[c["description"] for c in LINKS])
def test_a_query_a_person_edited_is_dropped_not_an_english_error(api, case):
    client = signed_in(api)
    answer = client.get(case["asked"], headers=PAGE, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == case["expected"]
    assert client.get(case["expected"], headers=PAGE).status_code == 200


def test_a_path_that_names_nothing_is_not_found(api):
    client = signed_in(api)
    answer = client.get("/flags/abc", headers=PAGE)
    assert answer.status_code == 404 and "未找到" in answer.text and "Input should" not in answer.text


def test_signing_out_again_in_another_tab_lands_on_the_sign_in_page(api):
    client = signed_in(api)
    client.cookies.clear()  # signed out in the other tab: the cookie is gone, this tab's form is old
    answer = client.post("/logout", data={"csrf": "an old tab's token"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"


@pytest.fixture(scope="module")
def small(template, city, tmp_path_factory) -> Iterator:
    yield from open_api(template, city, tmp_path_factory.mktemp("small-pages"), max_upload_mb=1 / 64)


def test_an_upload_over_the_limit_is_a_page_saying_so(small):
    client = signed_in(small)
    content = b"x" * (1 << 15)
    answer = client.post("/upload", files={"file": ("roll.csv", content, "text/csv")}, headers=PAGE)
    assert answer.status_code == 413 and answer.headers["content-type"].startswith("text/html")
    assert "文件过大" in answer.text and "/upload" in answer.text
    assert_error(small.post("/batches", "sys", files={"file": ("roll.csv", content, "text/csv")}), 413, "too_large")


def test_another_townships_upload_is_not_among_the_dashboards_runs(api):
    content = api.city.paths["roll"].read_bytes()
    sent = api.post("/batches", "cw_b", files={"file": ("roll.csv", content, "text/csv")}, data={"as_of": "2026-06-30"})
    theirs = api.wait(f"/batches/{sent.json()['id']}", "cw_b")
    assert theirs["status"] == "completed" and theirs["run_id"]
    client = signed_in(api, "cw_a")
    page = client.get("/dashboard", headers=PAGE).text
    assert f"/runs/{theirs['run_id']}/report.xlsx" not in page
    assert "/runs/1/report.xlsx" in page  # the roll's run is everyone's


def test_a_batch_page_lists_the_first_flags_and_says_the_download_has_all(api, monkeypatch):
    import api.web.batches as batch_pages

    monkeypatch.setattr(batch_pages, "FLAGS_SHOWN", 3)
    content = api.city.paths["roll"].read_bytes()
    sent = api.post("/batches", "sys", files={"file": ("roll.csv", content, "text/csv")}, data={"as_of": "2026-06-30"})
    batch = api.wait(f"/batches/{sent.json()['id']}")
    assert batch["flags"] > 3
    client = signed_in(api, "sys")
    page = client.get(f"/batches/{batch['id']}", headers=PAGE).text
    listed = page.split('aria-label="本批发现的预警"', 1)[1].split("</table>", 1)[0]
    assert listed.count("<tr>") == 1 + 3 and f"发现的预警（{batch['flags']} 条）" in page
    assert "按优先顺序列出前 3 条" in page


def test_a_batch_links_to_its_own_flags_in_the_list(api):
    text = api.city.paths["roll"].read_bytes().decode("gb18030").splitlines()
    part = "\r\n".join(text[:200]).encode("gb18030")
    sent = api.post("/batches", "sys", files={"file": ("part.csv", part, "text/csv")}, data={"as_of": "2026-06-30"})
    batch = api.wait(f"/batches/{sent.json()['id']}")
    assert batch["status"] == "completed" and 0 < batch["flags"]
    client = signed_in(api, "sys")
    link = f"/flags?status=all&amp;run={batch['run_id']}"
    assert link in client.get(f"/batches/{batch['id']}", headers=PAGE).text
    listed = client.get(link.replace("&amp;", "&"), headers=PAGE).text
    assert f'共 <span data-total>{batch["flags"]}</span> 条' in listed
    assert f"只显示第 {batch['run_id']} 次比对发现的预警" in listed
    assert f'name="run" value="{batch["run_id"]}"' in listed  # kept when the filters change
    everything = client.get("/flags?status=all", headers=PAGE).text
    assert f'共 <span data-total>{batch["flags"]}</span> 条' not in everything
    # The dashboard's count of what the run found opens the same list.
    dashboard = client.get("/dashboard", headers=PAGE).text
    assert f'<a href="{link}" aria-label="查看比对 {batch["run_id"]} 发现的 {batch["flags"]} 条预警">' in dashboard
    # an edited query: said, and ignored
    edited = client.get("/flags?status=all&run=x1", headers=PAGE).text
    assert "没有比对“x1”" in edited and "只显示第" not in edited
