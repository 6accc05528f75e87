"""POST /batches (202 at once, the work in the background), GET /batches/{id} (progress and the
problems row by row), GET /batches/{id}/flags as JSON, CSV and XLSX; files that cannot be used,
uploads over the size limit and XLSX bombs."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import polars as pl
import pytest
import sqlalchemy as sa

from store.models import Batch, Flag, FlagEvent

from ..conftest import AS_OF, assert_error, open_api

# CONTRACTS.md §4: the flags' columns, in this order, first.
CONTRACT_COLUMNS = ["rule_id", "severity", "cadence", "program", "household_id", "id_number", "roll_id_number", "name",
                    "region_code", "source", "match_method", "match_score", "evidence", "overpayment", "as_of"]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _upload(api, user: str, name: str, content: bytes, as_of: str | None = AS_OF.isoformat(), mime: str = "text/csv"):
    data = {"as_of": as_of} if as_of is not None else {}
    return api.post("/batches", user, files={"file": (name, content, mime)}, data=data)


def _batches(api) -> int:
    with api.store.read() as session:
        return session.execute(sa.select(sa.func.count(Batch.id))).scalar_one()


def _pairs(flags) -> set[tuple[str, str]]:
    return {(f["household_id"], f["rule_id"]) for f in flags}


def _truth(api, where=None) -> set[tuple[str, str]]:
    truth = api.city.generated.truth
    if where is not None:
        households = api.city.roll.filter(where).get_column("household_id").unique()
        truth = truth.filter(pl.col("household_id").is_in(households.implode()))
    return set(truth.select("household_id", "rule_id").iter_rows())


@pytest.fixture(scope="module")
def roll_bytes(api) -> bytes:
    """The generated roll as bureaus send it: GBK CSV with Chinese headers."""
    return api.city.paths["roll"].read_bytes()


@pytest.fixture(scope="module")
def done(api, roll_bytes) -> dict:
    """The whole roll uploaded by the system user, and the batch once it is finished."""
    response = _upload(api, "sys", "roll.csv", roll_bytes)
    assert response.status_code == 202, response.text
    first = response.json()
    assert first["status"] == "queued" and first["progress"] == 0 and first["by"] == "sys"
    assert response.headers["location"] == f"/api/v1/batches/{first['id']}"
    return api.wait(f"/batches/{first['id']}")


def test_a_whole_roll_is_checked_in_the_background(api, done):
    assert done["status"] == "completed", done["error"]
    assert done["progress"] == 1 and done["finished_at"] and done["run_id"]
    assert done["rows"] == api.city.roll.height and done["rejects"] == 0 and done["problems"] == []
    assert done["households"] == api.city.roll.get_column("household_id").n_unique()
    assert done["file_name"] == "roll.csv" and done["as_of"] == AS_OF.isoformat()


def test_its_flags_are_the_ground_truth(api, done):
    flags = api.get(f"/batches/{done['id']}/flags", "sys").json()
    assert len(flags) == done["flags"]
    assert _pairs(flags) == _truth(api)
    assert all(f["flag_id"] is not None for f in flags)  # recorded: they are the store's flags


def test_its_flags_as_csv_have_the_contracts_columns_first(api, done):
    response = api.get(f"/batches/{done['id']}/flags?format=csv", "sys")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Excel opens it right
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    header = list(rows[0])
    assert header[:len(CONTRACT_COLUMNS)] == CONTRACT_COLUMNS
    assert len(rows) == done["flags"] and _pairs(rows) == _truth(api)


def test_its_flags_as_xlsx(api, done):
    response = api.get(f"/batches/{done['id']}/flags?format=xlsx", "sys")
    assert response.status_code == 200 and response.headers["content-type"] == XLSX
    book = openpyxl.load_workbook(io.BytesIO(response.content), read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert list(rows[0][:len(CONTRACT_COLUMNS)]) == CONTRACT_COLUMNS and len(rows) == done["flags"] + 1
    assert book.sheetnames[1:] == ["预警明细", "汇总"]


def test_an_unknown_format_is_refused(api, done):
    assert_error(api.get(f"/batches/{done['id']}/flags?format=pdf", "sys"), 422, "invalid_request")


def test_a_missing_batch_is_a_404(api):
    assert_error(api.get("/batches/999999", "sys"), 404, "not_found")
    assert_error(api.get("/batches/999999/flags", "sys"), 404, "not_found")


def test_the_auditor_reads_a_batch_with_ids_masked(api, done):
    full = api.get(f"/batches/{done['id']}/flags", "sys").json()
    masked = api.get(f"/batches/{done['id']}/flags", "aud").json()
    assert [f["flag_id"] for f in masked] == [f["flag_id"] for f in full]
    for seen, whole in zip(masked, full, strict=True):
        for name in ("id_number", "roll_id_number"):
            assert (seen[name] is None) == (whole[name] is None)
            if whole[name] and len(whole[name]) == 18:
                assert seen[name] == whole[name][:6] + "********" + whole[name][-4:]
            elif whole[name]:
                assert seen[name] != whole[name] and "*" in seen[name]
    ids = {f["id_number"] for f in full if f["id_number"] and len(f["id_number"]) == 18}
    for form in ("json", "csv", "xlsx"):
        content = api.get(f"/batches/{done['id']}/flags?format={form}", "aud").content
        text = content.decode("utf-8-sig") if form != "xlsx" else _xlsx_text(content)
        assert ids and not [number for number in ids if number in text], form  # nor inside the evidence


def _xlsx_text(content: bytes) -> str:
    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    return " ".join(str(cell) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True) for cell in row)


def test_a_caseworker_does_not_see_a_batch_wider_than_their_township(api, done):
    for user in ("cw_a", "cw_b", "sup"):
        assert_error(api.get(f"/batches/{done['id']}", user), 404, "not_found")
        assert_error(api.get(f"/batches/{done['id']}/flags", user), 404, "not_found")


# ---- a caseworker's batch: rows of another township refused row by row ------------------------


@pytest.fixture(scope="module")
def township_batch(api, roll_bytes) -> dict:
    response = _upload(api, "cw_a", "名册.csv", roll_bytes)
    assert response.status_code == 202, response.text
    return api.wait(f"/batches/{response.json()['id']}", "cw_a")


def test_rows_outside_the_uploaders_township_are_refused_row_by_row(api, township_batch):
    a = api.city.township_a
    outside = api.city.roll.filter(~pl.col("region_code").str.starts_with(a))
    assert township_batch["status"] == "completed", township_batch["error"]
    assert township_batch["rejects"] == outside.height and township_batch["rows"] == api.city.roll.height - outside.height
    problems = township_batch["problems"]
    assert [(p["row"], p["column"], p["value"]) for p in problems] == \
        [(r, "region_code", code) for r, code in outside.select("_row", "region_code").sort("_row").iter_rows()]
    assert all(a in p["message"] for p in problems)
    flags = api.get(f"/batches/{township_batch['id']}/flags", "cw_a").json()
    assert flags and _pairs(flags) == _truth(api, pl.col("region_code").str.starts_with(a))


def test_another_township_cannot_see_it(api, township_batch):
    assert_error(api.get(f"/batches/{township_batch['id']}", "cw_b"), 404, "not_found")
    assert api.get(f"/batches/{township_batch['id']}", "sup").status_code == 200  # the county holds it


def test_rows_of_a_household_with_flags_in_another_township_are_refused(api, roll_bytes):
    """A household id of township B on rows of township A (a typo, or worse): recording them
    would clear B's flags or take them over, so those rows are refused and B's flags kept."""
    from store.models import Flag

    a, b = api.city.township_a, api.city.township_b
    with api.store.read() as session:
        flag_b = session.scalars(sa.select(Flag).where(Flag.region_code.startswith(b))).first()
    lines = roll_bytes.decode("gb18030").splitlines()
    rows = api.city.roll.filter(pl.col("region_code").str.starts_with(a)).sort("_row")
    victim = rows.get_column("household_id")[0]
    kept = [lines[0]]
    taken = []
    for row, household in rows.select("_row", "household_id").iter_rows():
        line = lines[row - 1]
        if household == victim:
            line = line.replace(f",{victim},", f",{flag_b.household_id},", 1)
            taken.append(len(kept) + 1)
        kept.append(line)
    response = _upload(api, "cw_a", "mixed-up.csv", ("\r\n".join(kept) + "\r\n").encode("gb18030"))
    batch = api.wait(f"/batches/{response.json()['id']}", "cw_a")
    assert batch["status"] == "completed", batch["error"]
    assert [(p["row"], p["column"], p["value"]) for p in batch["problems"]] == \
        [(row, "household_id", flag_b.household_id) for row in taken]
    assert batch["rows"] == len(kept) - 1 - len(taken)
    with api.store.read() as session:
        after = session.get(Flag, flag_b.id)
    assert (after.status, after.region_code, after.last_run_id) == (flag_b.status, flag_b.region_code, flag_b.last_run_id)


# ---- bad files ----------------------------------------------------------------------------------


def _bad_rows(roll_bytes: bytes) -> tuple[bytes, dict[int, tuple[str, str]]]:
    """The roll with three rows spoilt: {row number as Excel shows it: (column, value)}."""
    lines = roll_bytes.decode("gb18030").splitlines()
    spoilt = {}
    for line_no, column, position, value in ((5, "benefit_monthly", 5, "八百"), (9, "program", 0, "养老"),
                                             (14, "name", 3, "")):
        cells = lines[line_no].split(",")
        cells[position] = value
        lines[line_no] = ",".join(cells)
        spoilt[line_no + 1] = (column, value)
    return ("\r\n".join(lines) + "\r\n").encode("gb18030"), spoilt


def test_bad_rows_are_listed_with_their_values_and_the_rest_is_checked(api, roll_bytes):
    content, spoilt = _bad_rows(roll_bytes)
    response = _upload(api, "sys", "roll-with-errors.csv", content)
    assert response.status_code == 202, response.text
    batch = api.wait(f"/batches/{response.json()['id']}")
    assert batch["status"] == "completed", batch["error"]
    found = {p["row"]: (p["column"], p["value"] if p["value"] is not None else "") for p in batch["problems"]}
    assert found == spoilt
    assert all(p["message"] and p["file"] == "roll-with-errors.csv" for p in batch["problems"])
    assert batch["rejects"] == 3 and batch["rows"] == api.city.roll.height - 3
    flags = api.get(f"/batches/{batch['id']}/flags", "sys").json()
    rejected = set(api.city.roll.filter(pl.col("_row").is_in(list(spoilt))).get_column("household_id"))
    assert {p for p in _truth(api) if p[0] not in rejected} <= _pairs(flags)


def test_a_rejected_row_clears_nothing_of_its_household(api, roll_bytes, done):
    """A row the batch rejected was not looked at: its person's flag, and its household's, are
    not "not found any more" (they were cleared before, and the caseworker was told to upload
    the row again)."""
    sizes = api.city.roll.group_by("household_id").len()
    shared = sizes.filter(pl.col("len") > 1).get_column("household_id").to_list()  # others' rows are checked
    with api.store.read() as session:
        flag = session.scalars(sa.select(Flag).where(Flag.status == "open", Flag.level == "person",
                                                     Flag.rule_id != "id_invalid", Flag.household_id.in_(shared))
                               .order_by(Flag.id)).first()
    assert flag is not None
    row = api.city.roll.filter(pl.col("id_number") == flag.roll_id_number).get_column("_row")[0]
    lines = roll_bytes.decode("gb18030").splitlines()
    cells = lines[row - 1].split(",")
    cells[5] = "八百元"
    lines[row - 1] = ",".join(cells)
    response = _upload(api, "sys", "roll-one-bad.csv", ("\r\n".join(lines) + "\r\n").encode("gb18030"))
    batch = api.wait(f"/batches/{response.json()['id']}")
    assert batch["status"] == "completed" and batch["rejects"] == 1
    with api.store.read() as session:
        cleared = session.scalars(sa.select(Flag.id).join(FlagEvent, FlagEvent.flag_id == Flag.id).where(
            FlagEvent.run_id == batch["run_id"], FlagEvent.kind == "cleared",
            Flag.household_id == flag.household_id)).all()
        assert cleared == [] and session.get(Flag, flag.id).status == "open"


def test_a_header_alone_fails_saying_there_are_no_rows(api, roll_bytes):
    header = roll_bytes.decode("gb18030").splitlines()[0]
    response = _upload(api, "sys", "template.csv", (header + "\r\n").encode("gb18030"))
    batch = api.wait(f"/batches/{response.json()['id']}")
    assert batch["status"] == "failed" and "没有数据行" in batch["error"] and batch["run_id"] is None


def test_rows_kept_with_a_warning_and_rows_passed_over_are_listed_as_warnings(api, roll_bytes):
    text = roll_bytes.decode("gb18030").splitlines()
    header, first, second = text[0], text[1].split(","), text[2]
    at = header.split(",").index("身份证号")
    first[at] = f"{int(first[at][:17]) * 10:.5E}" if first[at][:17].isdigit() else "3.20303E+17"  # Excel's damage
    body = "\n".join([header, ",".join(first), second, "合计" + "," * header.count(",")]) + "\n"
    response = _upload(api, "sys", "warned.csv", body.encode("gb18030"))
    assert response.status_code == 202, response.text
    batch = api.wait(f"/batches/{response.json()['id']}")
    assert batch["status"] == "completed", batch["error"]
    assert batch["rows"] == 2 and batch["rejects"] == 0 and batch["problems"] == []
    assert [(w["row"], w["column"]) for w in batch["warnings"]] == [(2, "id_number"), (4, None)]
    assert "Excel" in batch["warnings"][0]["message"] and "合计" in batch["warnings"][1]["message"]


def test_an_excel_97_roll_is_checked_as_an_xlsx_one(api):
    legacy = Path(__file__).parents[2] / "engine" / "data" / "roll.xls"  # a title, a 合计 row, a date cell
    response = _upload(api, "sys", "名册.xls", legacy.read_bytes(), mime="application/vnd.ms-excel")
    assert response.status_code == 202, response.text
    batch = api.wait(f"/batches/{response.json()['id']}")
    assert batch["status"] == "completed", batch["error"]
    assert (batch["rows"], batch["households"], batch["rejects"], batch["file_name"]) == (3, 2, 0, "名册.xls")


@pytest.mark.parametrize(("name", "content"), [
    ("roll.pdf", b"%PDF-1.4 not a roll"),
    ("roll.docx", b"PK\x03\x04 a word document"),
    ("roll.parquet", b"PAR1 a source, not a roll upload"),
])
def test_a_file_that_is_not_csv_or_xlsx_is_refused_at_once(api, name, content):
    before = _batches(api)
    detail = assert_error(_upload(api, "sys", name, content), 422, "invalid_input")
    assert ".csv" in detail and ".xlsx" in detail
    assert _batches(api) == before


@pytest.mark.parametrize(("description", "name", "content", "words"), [
    ("an empty file", "roll.csv", b"", "empty"),
    ("a spreadsheet that is not one", "roll.xlsx", b"PK\x03\x04 broken zip", "roll.xlsx"),
    ("a table without the roll's columns", "roll.csv", "姓名,电话\n张三,123\n".encode(), "id_number"),
    ("binary noise named as nothing", "upload", bytes(range(256)) * 4, "upload"),
])
def test_a_file_that_cannot_be_read_fails_with_a_clear_reason(api, description, name, content, words):
    response = _upload(api, "sys", name, content)
    assert response.status_code == 202, response.text
    batch = api.wait(f"/batches/{response.json()['id']}")
    assert batch["status"] == "failed", description
    assert batch["error"] and "internal error" not in batch["error"]
    assert str(api.settings.data_dir) not in str(batch)  # named as uploaded, not by the server's path
    assert words in batch["error"] + " ".join(p["message"] + (p["column"] or "") for p in batch["problems"])
    assert_error(api.get(f"/batches/{batch['id']}/flags", "sys"), 404, "not_found")


def test_an_as_of_that_is_not_a_date_is_named(api, roll_bytes):
    detail = assert_error(_upload(api, "sys", "roll.csv", roll_bytes, as_of="30/06/2026"), 422, "invalid_request")
    assert [item["field"] for item in detail] == ["as_of"]


def test_without_as_of_the_batch_is_of_today(api):
    from datetime import date

    response = _upload(api, "sys", "roll.csv", b"", as_of=None)
    assert response.status_code == 202 and response.json()["as_of"] == date.today().isoformat()


# ---- sizes --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(template, city, tmp_path_factory) -> Iterator:
    """An app whose uploads may be 16 KiB, and whose XLSX may expand to 2 MiB."""
    yield from open_api(template, city, tmp_path_factory.mktemp("small"), max_upload_mb=1 / 64,
                        xlsx_max_expanded_mb=2)


def _leftovers(api) -> list[Path]:
    uploads = api.settings.data_dir / "uploads"
    return [p for p in uploads.rglob("*") if p.is_file()] if uploads.exists() else []


def test_an_upload_over_the_limit_is_refused_before_it_is_read(small, roll_bytes):
    assert len(roll_bytes) > 16 * 1024
    before = _batches(small)
    detail = assert_error(_upload(small, "sys", "roll.csv", roll_bytes), 413, "too_large")
    assert "MB" in detail
    assert _batches(small) == before and _leftovers(small) == []
    refused = [e for e in small.get("/audit?user=sys", "aud").json()["items"] if e["path"] == "/api/v1/batches"]
    assert refused and refused[0]["status_code"] == 413 and refused[0]["action"] == "write"  # and whose it was


def test_a_streamed_upload_over_the_limit_is_refused_too(small, roll_bytes):
    """No Content-Length (chunked): refused as soon as the limit is passed."""
    boundary = "crosscheck-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"roll.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode()

    def body() -> Iterator[bytes]:
        yield head
        for start in range(0, len(roll_bytes), 8192):
            yield roll_bytes[start:start + 8192]
        yield f"\r\n--{boundary}--\r\n".encode()

    before = _batches(small)
    response = small.post("/batches", "sys", content=body(),
                          headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert_error(response, 413, "too_large")
    assert _batches(small) == before and _leftovers(small) == []


def test_an_upload_under_the_limit_is_accepted(small, roll_bytes):
    part = "\r\n".join(roll_bytes.decode("gb18030").splitlines()[:40]).encode("gb18030")
    response = _upload(small, "sys", "part.csv", part)
    assert response.status_code == 202, response.text
    assert small.wait(f"/batches/{response.json()['id']}")["status"] == "completed"


def _bomb() -> bytes:
    """A 10 KB XLSX whose sheet expands to 10 MB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<sheetData>" + "0" * 10_000_000 + "</sheetData>")
    return buffer.getvalue()


def test_an_xlsx_bomb_is_refused(small):
    bomb = _bomb()
    assert len(bomb) < 16 * 1024
    before = _batches(small)
    detail = assert_error(_upload(small, "sys", "roll.xlsx", bomb, mime=XLSX), 413, "too_large")
    assert "XLSX" in str(detail)
    assert _batches(small) == before and _leftovers(small) == []
