"""engine.canonical: a few canonical rows read without a query give exactly the frame the usual
reading gives; any other cell sends the whole table the usual way."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import canonical, loaders
from schemas import ROLL, SOURCES

from .test_ids import dirty, valid_ids

AS_OF = date(2026, 6, 30)
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DATES = (date(1900, 1, 1), date(2199, 12, 31))


def _canonical_cell(kind: str, codes: dict[str, str] | None) -> st.SearchStrategy[str]:
    if kind == "id":
        return valid_ids()
    if kind == "region":
        return st.from_regex(r"[0-9]{6,12}", fullmatch=True)
    if kind == "code":
        return st.sampled_from(sorted(codes or {}))
    if kind == "date":
        return st.dates(min_value=DATES[0], max_value=DATES[1]).map(date.isoformat)
    if kind in ("money", "number"):
        return st.from_regex(r"[0-9]{1,7}(\.[0-9]{1,4})?", fullmatch=True)
    return st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=6).filter(
        lambda t: t.strip() == t and t.isprintable())


def _other_cell(kind: str, codes: dict[str, str] | None) -> st.SearchStrategy[str | None]:
    """Spellings only the usual reading takes (or rejects)."""
    common = st.sampled_from(["", " ", "  x ", "\u3000", "\x1c"])
    if kind == "id":
        return st.one_of(common, valid_ids().flatmap(dirty), valid_ids().map(lambda i: i[:17] + "0"),
                         valid_ids(first=date(2027, 1, 1), last=date(2030, 1, 1)),
                         valid_ids(last=date(1999, 12, 31)).map(lambda i: i[:6] + i[8:17]),  # legacy 15
                         st.sampled_from(["3.20303E+17", "320303-19800101-1235", "320303198001011", "x"]))
    if kind == "region":
        return st.one_of(common, st.from_regex(r"[0-9]{1,5}|[0-9]{13}|3203a1", fullmatch=True))
    if kind == "code":
        return st.one_of(common, st.sampled_from([*(codes or {}).values(), "DIBAO", "Dibao ", "unknown"]))
    if kind == "date":
        return st.one_of(common, st.sampled_from(["2026/1/5", "20260105", "2026-13-01", "1899-12-31", "2026-1-5",
                                                  "2026年1月5日", "0226-03-01", "2026-02-30", "2026/01/05",
                                                  "2026/02/30", "20260230", "2026/01-05", "18991231", "202601"]))
    if kind in ("money", "number"):
        return st.one_of(common, st.sampled_from(["1,234.5", "-1", "-0", "1e-05", ".5", "5.", "+3", "1" * 20]))
    return st.one_of(common, st.sampled_from([" 张伟", "张伟 ", "\u00a0a", "a\u2028"]))


@st.composite
def tables(draw: st.DrawFn, key: str, canonical_only: bool) -> pl.DataFrame:
    ds = SOURCES[key] if key != "roll" else ROLL
    height = draw(st.integers(1, 6))
    columns: dict[str, list[str | None]] = {}
    for c in ds.columns:
        if not c.required and draw(st.integers(0, 4)) == 0:
            continue  # an optional column left out
        cells: list[str | None] = []
        for _ in range(height):
            choice = draw(st.integers(0, 9))
            if not c.required and choice == 0:
                cells.append(None)
            elif choice == 1 and not canonical_only:
                cells.append(draw(_other_cell(c.kind, c.codes)))
            else:
                cells.append(draw(_canonical_cell(c.kind, c.codes)))
        columns[c.name] = cells
    return pl.DataFrame(columns, schema=dict.fromkeys(columns, pl.String))


def _usual(df: pl.DataFrame, key: str, first_row: int) -> loaders.Loaded:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(canonical, "read", lambda df, *_: (None, list(range(df.height)), []))
        return loaders.load_frame(df, key, "f.csv", AS_OF, first_row=first_row)


def _same(one: loaders.Loaded, other: loaders.Loaded) -> None:
    assert one.frame.schema == other.frame.schema and one.frame.equals(other.frame), (one.frame, other.frame)
    assert one.rejects.schema == other.rejects.schema and one.rejects.equals(other.rejects)
    assert one.problems == other.problems and one.warnings == other.warnings


KEYS = ["roll", "deaths", "vehicles", "property", "housing_fund", "cadre_relatives"]
REJECTING = {key: set() if key == "roll" else {"id_number"} for key in KEYS}


@SETTINGS
@given(st.sampled_from(KEYS).flatmap(lambda key: st.tuples(st.just(key), tables(key, canonical_only=True))),
       st.integers(0, 5))
def test_canonical_tables_are_read_without_a_query_as_the_usual_reading_reads_them(keyed, first_row):
    key, df = keyed
    ds = ROLL if key == "roll" else SOURCES[key]
    has_month = any(c.kind == "month" for c in ds.columns if c.name in df.columns or c.default is not None)
    frame, others, warnings = canonical.read(df, ds, AS_OF, first_row, DATES, "f.csv", REJECTING[key])
    assert (frame is None) == has_month  # months are left to the usual reading
    assert others == ([] if frame is not None else list(range(df.height))) and warnings == []
    _same(loaders.load_frame(df, key, "f.csv", AS_OF, first_row=first_row), _usual(df, key, first_row))


@SETTINGS
@given(st.sampled_from(KEYS).flatmap(lambda key: st.tuples(st.just(key), tables(key, canonical_only=False))))
def test_rows_with_any_other_cell_are_read_the_usual_way_and_numbered_as_they_were(keyed):
    key, df = keyed
    _same(loaders.load_frame(df, key, "f.csv", AS_OF, first_row=2), _usual(df, key, 2))


@pytest.mark.parametrize("description, change, usual", [
    ("a label for a code", {"program": "低保"}, [1]),
    ("an invalid ID: kept, with a warning", {"id_number": "320303198001011230"}, []),
    ("an ID with spaces and full-width digits", {"id_number": " １１0105 19491231 002x"}, []),
    ("an ID that cleans to nothing", {"id_number": " - "}, [1]),
    ("a legacy 15-digit ID", {"id_number": "110105491231002"}, []),
    ("an ID Excel turned into a number", {"id_number": "3.20303E+17"}, []),
    ("a date written with slashes", {"enrolled_on": "2020/01/05"}, [1]),
    ("an amount with a thousands separator", {"benefit_monthly": "1,200"}, [1]),
    ("a name with a space after it", {"name": "张伟 "}, [1]),
    ("an empty required cell", {"name": None}, [1]),
    ("a column the roll does not have: every row", {"备注": "x"}, [0, 1]),
])
def test_one_other_cell_sends_its_row_the_usual_way(description, change, usual):
    row = {"program": "dibao", "household_id": "H1", "id_number": "11010519491231002X", "name": "张伟",
           "region_code": "110105001", "benefit_monthly": "800.0", "enrolled_on": "2020-01-05"}
    plain = pl.DataFrame([row, row], schema=dict.fromkeys(row, pl.String))
    assert canonical.read(plain, ROLL, AS_OF, 0, DATES, "f.csv", set())[1] == []
    changed = pl.DataFrame([row, {**row, **change}], schema=dict.fromkeys({**row, **change}, pl.String))
    frame, others, _ = canonical.read(changed, ROLL, AS_OF, 0, DATES, "f.csv", set())
    assert others == usual and (frame is None or frame.height == 2 - len(usual))
    _same(loaders.load_frame(changed, "roll", "f.csv", AS_OF, first_row=0), _usual(changed, "roll", 0))
