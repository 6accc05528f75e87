"""Who may do what (api.access): every role against every endpoint, region scope (a caseworker
of one township cannot see, list, count or review another township's flags: it is answered as
if they did not exist), tokens, and ID masking for the auditor."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from store.models import Flag, FlagEvent
from store.users import add_user, disable_user

from .conftest import AS_OF, assert_error

FULL_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
MASKED_ID = re.compile(r"^\d{6}\*{8}[\dX]{4}$")
VISIT = {"action": "visit", "note": "入户核查"}


@pytest.fixture(scope="module")
def ids(api) -> dict[str, int]:
    """A flag of township A, one of township B (same county), one outside the county (of a
    person with an 18-character ID)."""
    return {"flag_a": api.flag_ids(api.city.township_a)[0], "flag_b": api.flag_ids(api.city.township_b)[0],
            "flag_out": api.flag_ids(api.city.elsewhere, where=sa.func.length(Flag.id_number) == 18)[0],
            "missing": 10**9}


def _members(api, region: str) -> list[dict]:
    roll = api.city.roll
    household = roll.filter(roll["region_code"].str.starts_with(region))["household_id"][0]
    return api.city.members(household)


# {description, user, method, path, body, expected status}; None as the user: no token at all.
TABLE = [
    ("anyone: health", None, "GET", "/health", None, 200),
    ("anyone: metrics", None, "GET", "/metrics", None, 200),
    *[(f"no token: {m} {p}", None, m, p, b, 401) for m, p, b in [
        ("GET", "/flags", None), ("GET", "/flags/{flag_a}", None), ("POST", "/flags/{flag_a}/events", VISIT),
        ("POST", "/checks", "members_a"), ("GET", "/runs", None), ("POST", "/runs", {}), ("GET", "/sources", None),
        ("GET", "/rules", None), ("GET", "/audit", None), ("GET", "/batches/1", None)]],
    *[(f"{u}: reads the catalogue, sources, runs and flags", u, "GET", p, None, 200)
      for u in ("cw_a", "cw_b", "sup", "aud", "sys") for p in ("/rules", "/sources", "/runs", "/runs/1", "/flags")],
    ("caseworker: own township's flag", "cw_a", "GET", "/flags/{flag_a}", None, 200),
    ("caseworker: a flag of the next township", "cw_a", "GET", "/flags/{flag_b}", None, 404),
    ("caseworker: a flag of another county", "cw_a", "GET", "/flags/{flag_out}", None, 404),
    ("supervisor: a flag of the county", "sup", "GET", "/flags/{flag_b}", None, 200),
    ("supervisor: a flag of another county", "sup", "GET", "/flags/{flag_out}", None, 404),
    ("auditor: any flag of the province", "aud", "GET", "/flags/{flag_out}", None, 200),
    ("system: any flag of the province", "sys", "GET", "/flags/{flag_out}", None, 200),
    ("caseworker: reviews own township's flag", "cw_a", "POST", "/flags/{flag_a}/events", VISIT, 201),
    ("caseworker: reviews the next township's flag", "cw_a", "POST", "/flags/{flag_b}/events", VISIT, 404),
    ("supervisor: reviews a flag of the county", "sup", "POST", "/flags/{flag_a}/events", VISIT, 201),
    ("supervisor: reviews a flag of another county", "sup", "POST", "/flags/{flag_out}/events", VISIT, 404),
    ("auditor: reads only", "aud", "POST", "/flags/{flag_a}/events", VISIT, 403),
    ("system: does not review", "sys", "POST", "/flags/{flag_a}/events", VISIT, 403),
    ("caseworker: checks a household of the township", "cw_a", "POST", "/checks", "members_a", 200),
    ("caseworker: checks a household of the next township", "cw_b", "POST", "/checks", "members_a", 403),
    ("supervisor: checks a household of the county", "sup", "POST", "/checks", "members_a", 200),
    ("system: checks a household", "sys", "POST", "/checks", "members_out", 200),
    ("auditor: does not check", "aud", "POST", "/checks", "members_a", 403),
    ("caseworker: does not start runs", "cw_a", "POST", "/runs", {}, 403),
    ("auditor: does not start runs", "aud", "POST", "/runs", {}, 403),
    ("auditor: does not upload batches", "aud", "POST", "/batches", "file", 403),
    ("caseworker: does not upload snapshots", "cw_a", "POST", "/sources/deaths/snapshots", "file", 403),
    ("supervisor: does not upload snapshots", "sup", "POST", "/sources/deaths/snapshots", "file", 403),
    ("auditor: reads the audit log", "aud", "GET", "/audit", None, 200),
    *[(f"{u}: does not read the audit log", u, "GET", "/audit", None, 403) for u in ("cw_a", "sup", "sys")],
    *[(f"{u}: no such batch", u, "GET", "/batches/999999", None, 404) for u in ("cw_a", "sup", "aud", "sys")],
]


@pytest.mark.parametrize(("description", "user", "method", "path", "body", "expected"), TABLE,
                         ids=[row[0] for row in TABLE])
def test_who_may_do_what(api, ids, description, user, method, path, body, expected):
    kwargs: dict = {}
    if body == "file":
        kwargs["files"] = {"file": ("deaths.csv", b"id_number,name,death_date\n", "text/csv")}
    elif isinstance(body, str):
        region = api.city.township_a if body == "members_a" else api.city.elsewhere
        kwargs["json"] = {"as_of": AS_OF.isoformat(), "members": _members(api, region)}
    elif body is not None:
        kwargs["json"] = body
    response = api.request(method, path.format(**ids), user, **kwargs)
    if expected >= 400:
        assert_error(response, expected, {401: "not_authenticated", 403: "forbidden", 404: "not_found"}[expected])
    else:
        assert response.status_code == expected, response.text


# ---- tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("description", "authorization"), [
    ("an unknown token", "Bearer cc_not-a-token"),
    ("an empty token", "Bearer "),
    ("another scheme", "Basic Y3dfYTpwYXNzd29yZA=="),
    ("a token without its scheme", "cc_not-a-token"),
])
def test_a_bad_token_is_a_401_with_the_error_shape(api, description, authorization):
    response = api.get("/flags", headers={"Authorization": authorization})
    assert_error(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_scheme_is_case_insensitive(api):
    assert api.get("/flags", headers={"Authorization": f"bearer {api.tokens['cw_a']}"}).status_code == 200


def test_a_disabled_users_token_stops_working(api):
    _, token = add_user(api.store, "leaver", "caseworker", api.city.township_a)
    disable_user(api.store, "leaver")
    assert_error(api.get("/flags", headers={"Authorization": f"Bearer {token}"}), 401, "not_authenticated")


# ---- region scope ------------------------------------------------------------------------------


def _count(api, region: str) -> int:
    with api.store.read() as session:
        return session.execute(sa.select(sa.func.count(Flag.id)).where(Flag.region_code.startswith(region))).scalar_one()


@pytest.mark.parametrize(("user", "region"), [("cw_a", "township_a"), ("cw_b", "township_b"), ("sup", "county")])
def test_the_list_and_its_total_hold_only_the_users_region(api, user, region):
    prefix = getattr(api.city, region)
    page = api.get("/flags?limit=1000", user).json()
    assert page["total"] == len(page["items"]) == _count(api, prefix) < _count(api, "")
    assert page["total"] > 0 and all(f["region_code"].startswith(prefix) for f in page["items"])


def test_asking_for_another_township_finds_nothing(api):
    for query in (f"region={api.city.township_b}", f"region={api.city.elsewhere}", f"region={api.city.township_b}1"):
        assert api.get(f"/flags?{query}", "cw_a").json() == {"total": 0, "limit": 50, "offset": 0, "items": []}
    household = api.get("/flags?limit=1", "cw_b").json()["items"][0]["household_id"]
    assert api.get(f"/flags?household={household}", "cw_a").json()["total"] == 0
    assert api.get(f"/flags?household={household}", "cw_b").json()["total"] > 0


def test_a_wider_region_asked_for_is_narrowed_to_the_users(api):
    own = api.get("/flags?limit=1000", "cw_a").json()
    for wider in (api.city.county, "32", "3"):
        assert api.get(f"/flags?region={wider}&limit=1000", "cw_a").json() == own
    assert api.get(f"/flags?region={api.city.township_b}", "sup").json()["total"] == _count(api, api.city.township_b)


def _same_but_for_the_id(one, other, one_id: int, other_id: int) -> None:
    assert one.status_code == other.status_code == 404
    assert one.headers["content-type"] == other.headers["content-type"]
    assert one.json()["error"] == other.json()["error"]
    assert one.json()["detail"].replace(str(one_id), "N") == other.json()["detail"].replace(str(other_id), "N")


def test_another_townships_flag_is_answered_as_if_it_did_not_exist(api, ids):
    flag_b, missing = ids["flag_b"], ids["missing"]
    _same_but_for_the_id(api.get(f"/flags/{flag_b}", "cw_a"), api.get(f"/flags/{missing}", "cw_a"), flag_b, missing)


def test_another_townships_flag_cannot_be_reviewed_and_is_left_as_it_was(api, ids):
    flag_b, missing = ids["flag_b"], ids["missing"]
    with api.store.read() as session:
        before = session.execute(sa.select(sa.func.count(FlagEvent.id)).where(FlagEvent.flag_id == flag_b)).scalar_one()
    for body in (VISIT, {"action": "dismiss", "reason": "x"}, {"action": "confirm", "confirm_action": "stop"}):
        _same_but_for_the_id(api.post(f"/flags/{flag_b}/events", "cw_a", json=body),
                             api.post(f"/flags/{missing}/events", "cw_a", json=body), flag_b, missing)
    with api.store.read() as session:
        after = session.execute(sa.select(sa.func.count(FlagEvent.id)).where(FlagEvent.flag_id == flag_b)).scalar_one()
    assert after == before


# ---- ID masking --------------------------------------------------------------------------------


def test_the_auditor_sees_ids_masked_also_inside_the_evidence(api, ids):
    page = api.get("/flags?limit=1000", "aud").json()
    assert page["total"] == _count(api, "")
    eighteen = [f for f in page["items"] if f["id_number"] and len(f["id_number"]) == 18]
    assert eighteen and all(MASKED_ID.match(f["id_number"]) for f in eighteen)
    assert not FULL_ID.search(json.dumps(page, ensure_ascii=False))
    detail = api.get(f"/flags/{ids['flag_out']}", "aud").json()
    assert detail["events"] and not FULL_ID.search(json.dumps(detail, ensure_ascii=False))


@pytest.mark.parametrize("user", ["cw_a", "sup", "sys"])
def test_those_who_act_on_the_person_see_ids_in_full(api, ids, user):
    with api.store.read() as session:
        stored = session.get(Flag, ids["flag_a"])
    flag = api.get(f"/flags/{ids['flag_a']}", user).json()
    assert flag["id_number"] == stored.id_number and flag["roll_id_number"] == stored.roll_id_number
    assert json.loads(stored.evidence) == flag["evidence"]


def test_masking_keeps_the_region_of_birth_and_the_last_four(api, ids):
    with api.store.read() as session:
        stored = session.get(Flag, ids["flag_out"])
    flag = api.get(f"/flags/{ids['flag_out']}", "aud").json()
    assert flag["id_number"] == stored.id_number[:6] + "********" + stored.id_number[-4:]


MASKING = [  # {description, text, expected}
    {"description": "an ID in a record", "text": '{"id_number":"320303198105141096"}',
     "expected": '{"id_number":"320303********1096"}'},
    {"description": "a legacy 15-digit ID", "text": '"810514109" 320303810514109',
     "expected": '"810514109" 320303*****4109'},
    {"description": "hyphens between the digits", "text": "320303-19810514-1096",
     "expected": "320303-********-1096"},
    {"description": "spaces, full-width digits and a lowercase x",
     "text": "３２０３０３ 1981 0514 109x", "expected": "３２０３０３ **** **** 109x"},
    {"description": "an x inside a mistyped ID", "text": "3203031981x5141096",
     "expected": "320303********1096"},
    {"description": "a birth date beside the masked ID", "text": '{"birth_date": "1946-07-01","age":79}',
     "expected": '{"birth_date": "****-**-**","age":79}'},
    {"description": "amounts, dates and phone numbers stay", "text":
     '{"balance":123456.78,"settled_on":"2026-06-30","phone":"13812345678","records":[1200.0,300.5]}',
     "expected": '{"balance":123456.78,"settled_on":"2026-06-30","phone":"13812345678","records":[1200.0,300.5]}'},
]


@pytest.mark.parametrize("case", MASKING, ids=[c["description"] for c in MASKING])
def test_ids_are_masked_however_they_are_written(case):
    from api.access import mask_evidence

    assert mask_evidence(case["text"]) == case["expected"]
