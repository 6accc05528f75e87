"""Properties of engine.ids: GB 11643-1999 normalization and validation, scalar and polars."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import ids

AS_OF = date(2026, 6, 30)
VECTOR = "11010519491231002X"  # the standard's own example


@st.composite
def valid_ids(draw: st.DrawFn, first: date = date(1900, 1, 1), last: date = date(2025, 12, 31)) -> str:
    region = draw(st.from_regex(r"[1-9][0-9]{5}", fullmatch=True))
    born = draw(st.dates(min_value=first, max_value=last))
    sequence = draw(st.integers(0, 999))
    first17 = f"{region}{born:%Y%m%d}{sequence:03d}"
    return first17 + ids.check_char(first17)


_FULL = {str(i): chr(0xFF10 + i) for i in range(10)}


@st.composite
def dirty(draw: st.DrawFn, clean: str) -> str:
    """`clean` as people type it: full-width digits, lowercase x, spaces and hyphens inside,
    padding outside."""
    out = []
    for ch in clean:
        if ch.isdigit() and draw(st.booleans()):
            ch = _FULL[ch]
        elif ch == "X":
            ch = draw(st.sampled_from(["X", "x", "Ｘ", "ｘ"]))
        out.append(ch)
        out.append(draw(st.sampled_from(["", "", "", " ", "-", "\u3000", "－"])))
    pad = st.sampled_from(["", " ", "\t", "\u3000", "\u200b"])
    spelled = draw(pad) + "".join(out) + draw(pad)
    # as exports keep it text in Excel: ="…", or Excel's own apostrophe
    return draw(st.sampled_from(["{}", "{}", '="{}"', "'{}", " = \" {} \" "])).format(spelled)


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_the_check_character_is_iso_7064_mod_11_2(first17: str) -> None:
    total = sum(int(digit) * weight for digit, weight in zip(first17, ids.WEIGHTS, strict=True))
    assert ids.check_char(first17) == "10X98765432"[total % 11]


@pytest.mark.parametrize("text", ["1101051949123100", "110105194912310021", "11010519491231OO2",
                                  "１１０１０５１９４９１２３１００２"])
def test_a_check_character_needs_17_ascii_digits(text: str) -> None:
    with pytest.raises(ValueError):
        ids.check_char(text)


def _expr(fn, values: list[object]) -> list[object]:  # noqa: ANN001
    return pl.select(v=fn(pl.lit(pl.Series("v", values, dtype=pl.String)))).to_series().to_list()


def test_vector() -> None:
    assert ids.is_valid(VECTOR, AS_OF)
    assert ids.check_char(VECTOR[:17]) == "X"
    assert ids.normalize(" 110105-19491231-002x ") == VECTOR
    assert ids.birth_date(VECTOR) == date(1949, 12, 31)
    assert ids.sex(VECTOR) == "F"
    assert ids.problem(VECTOR, AS_OF) is None
    assert _expr(lambda s: ids.valid_expr(s, AS_OF), [VECTOR]) == [True]


@given(st.text())
def test_normalize_is_idempotent_on_any_text(text: str) -> None:
    once = ids.normalize(text)
    assert ids.normalize(once) == once


@given(st.data())
def test_normalize_is_idempotent_on_dirty_ids(data: st.DataObject) -> None:
    spelled = data.draw(dirty(data.draw(valid_ids())))
    once = ids.normalize(spelled)
    assert ids.normalize(once) == once


@given(valid_ids())
def test_generated_ids_validate(id_number: str) -> None:
    assert ids.is_valid(id_number, AS_OF)
    assert ids.problem(id_number, AS_OF) is None


@given(valid_ids(), st.integers(0, 17), st.sampled_from("0123456789X"))
def test_any_single_character_change_fails(id_number: str, position: int, new: str) -> None:
    if position < 17 and new == "X":
        new = "7"  # only the check position may hold X; still a change of one digit below
    if new == id_number[position]:
        return
    changed = id_number[:position] + new + id_number[position + 1 :]
    assert not ids.is_valid(changed, AS_OF)
    assert ids.problem(changed, AS_OF) is not None


@given(st.data())
def test_dirty_spelling_normalizes_back(data: st.DataObject) -> None:
    clean = data.draw(valid_ids())
    spelled = data.draw(dirty(clean))
    assert ids.normalize(spelled) == clean
    assert _expr(ids.normalized_expr, [spelled]) == [clean]


@given(valid_ids(first=date(1900, 1, 1), last=date(1999, 12, 31)))
def test_legacy_15_round_trip(id_number: str) -> None:
    legacy = id_number[:6] + id_number[8:17]  # drop the century "19" and the check character
    assert len(legacy) == 15
    assert ids.convert15(legacy) == id_number
    assert ids.normalize(legacy) == id_number
    assert _expr(ids.normalized_expr, [legacy]) == [id_number]
    assert _expr(lambda s: ids.legacy15_expr(ids.clean_expr(s)), [legacy]) == [True]


# Near-IDs: ASCII and other scripts' digits, full-width forms, separators, control characters
# that Python's \s takes and Rust's does not, letters whose upper case is longer.
_ALPHABET = "0123456789Xx -－\u3000１９Ｘ٠١٩०७\x1c\x1f\x85\xa0ßﬁ'\"=\u200b\ufeff\n"
near_ids = st.one_of(
    st.text(max_size=25),
    st.text(alphabet=_ALPHABET, min_size=14, max_size=20),
    st.from_regex(r"[0-9]{15}|[0-9]{17}[0-9Xx]|[0-9]{18}", fullmatch=True),
    valid_ids(),
    st.builds(lambda s: s[:6] + s[8:17], valid_ids(last=date(1999, 12, 31))),
)


@settings(max_examples=300)
@given(st.lists(near_ids, min_size=1, max_size=20))
def test_scalar_and_expression_agree(values: list[str]) -> None:
    normalized = [ids.normalize(v) for v in values]
    assert _expr(ids.normalized_expr, values) == normalized
    assert _expr(ids.clean_expr, values) == [ids.clean(v) for v in values]
    legacy = _expr(lambda s: ids.legacy15_expr(ids.clean_expr(s)).fill_null(False), values)
    assert [ids.normalize_legacy(v) for v in values] == list(zip(normalized, legacy, strict=True))
    for as_of in (None, AS_OF):
        expected = [ids.is_valid(n, as_of) for n in normalized]
        assert _expr(lambda s: ids.valid_expr(s, as_of), normalized) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X",  # the test vector in Arabic-Indic digits: not an ID
        "११०१०५१९४९१२३१००२X",  # ... in Devanagari digits
        "110105\x1f19491231002X",  # a control character inside
        "11010519491231002\u0425",  # Cyrillic Kha, not X
    ],
)
def test_foreign_digits_and_controls_agree(raw: str) -> None:
    normalized = ids.normalize(raw)
    assert _expr(ids.normalized_expr, [raw]) == [normalized]
    assert _expr(lambda s: ids.valid_expr(s, AS_OF), [normalized]) == [ids.is_valid(normalized, AS_OF)]


@pytest.mark.parametrize(
    ("raw", "mangled"),
    [
        ("3.20303E+17", True),
        ("3.20303199001011E+17", True),
        ("320303199001011000", True),  # Excel's 15 significant digits, check fails
        ("320303199001011234", False),  # some other invalid ID: not Excel's doing
        (VECTOR, False),
        ("", False),
        (None, False),
    ],
)
def test_excel_mangled(raw: str | None, mangled: bool) -> None:
    assert ids.excel_mangled(raw) is mangled
    if mangled:
        assert "Excel" in (ids.problem(raw, AS_OF) or "")


def test_birth_after_as_of_is_invalid() -> None:
    first17 = "11010520270101001"
    future = first17 + ids.check_char(first17)
    assert ids.is_valid(future) and not ids.is_valid(future, AS_OF)
    assert "as-of" in (ids.problem(future, AS_OF) or "")


_ID_SHAPED = st.from_regex(r"\A[0-9]{17}[0-9X]\Z")


@given(st.lists(st.one_of(_ID_SHAPED, st.text(max_size=20)), max_size=30))
def test_codes_round_trip_and_sort_as_the_ids(texts: list[str]) -> None:
    """An ID's code (engine.keyed's key) converts back to the same text, orders as the text does,
    and the scalar and column versions agree; other text has none."""
    frame = pl.DataFrame({"id_number": texts}, schema={"id_number": pl.String})
    coded = frame.with_columns(ids.code_expr(pl.col("id_number")).alias("code"))
    assert coded["code"].to_list() == [ids.code(t) for t in texts]
    shaped = coded.filter(pl.col("code").is_not_null())
    assert shaped.select(ids.from_code_expr(pl.col("code")))["code"].to_list() == shaped["id_number"].to_list()
    assert [ids.from_code(c) for c in shaped["code"].to_list()] == shaped["id_number"].to_list()
    assert shaped.sort("code")["id_number"].to_list() == sorted(shaped["id_number"].to_list())
    assert all(ids.code(t) is None for t in texts if len(t) != 18)


@given(st.lists(st.one_of(valid_ids(), _ID_SHAPED, st.text(max_size=19)), max_size=25),
       st.dates(date(1990, 1, 1), date(2030, 12, 31)), st.dates(date(1990, 1, 1), date(2030, 12, 31)))
def test_validity_judged_again_at_another_date_is_validity_judged_then(texts, judged_on, as_of) -> None:
    ids_ = pl.DataFrame({"id_number": texts}, schema={"id_number": pl.String})
    snapshot = ids_.with_columns(ids.valid_expr(pl.col("id_number"), judged_on).alias("id_valid"))
    expected = ids_.with_columns(ids.valid_expr(pl.col("id_number"), as_of).alias("id_valid"))
    assert ids.rejudged(snapshot, judged_on, as_of).equals(expected)


@st.composite
def judged_ids(draw: st.DrawFn) -> str | None:
    """Texts `ids.valid` must judge as `is_valid` does: 18-character IDs whose birth digits are
    any eight (month 13, 31 April, 29 February in 1900 and 2000, year 0000), with the right or
    a wrong check character; near-IDs of other lengths and scripts; nulls."""
    first17 = draw(st.from_regex(r"[0-9]{6}", fullmatch=True)) + draw(st.one_of(
        st.text(alphabet="0123456789", min_size=8, max_size=8),
        st.dates(min_value=date(1, 1, 1)).map(lambda d: f"{d.year:04d}{d.month:02d}{d.day:02d}"),
        st.sampled_from(["19000229", "20000229", "20240229", "20230229", "00001231", "20250431", "20251301",
                         "20250100"]),
    )) + draw(st.from_regex(r"[0-9]{3}", fullmatch=True))
    right = first17 + ids.check_char(first17)
    return draw(st.one_of(st.just(right), st.builds(lambda last: first17 + last, st.sampled_from("0123456789Xx")),
                          near_ids, st.none()))


@settings(max_examples=300)
@given(st.lists(judged_ids(), max_size=12), st.integers(0, 3), st.sampled_from([None, AS_OF, date(1990, 1, 1)]))
def test_the_numpy_kernel_judges_as_is_valid_does(values: list[str | None], rows_at_a_time: int,
                                                 as_of: date | None) -> None:
    from unittest import mock

    expected = [ids.is_valid(v, as_of) for v in values]
    checked = [v is not None and ids._ID18.match(v) is not None and ids.check_char(v[:17]) == v[17] for v in values]
    texts = pl.Series("id_number", values, dtype=pl.String)
    # A slice of a longer column (its Arrow offsets start past 0) and a column in two chunks
    padded = pl.Series("id_number", ["x", *values, VECTOR], dtype=pl.String).slice(1, len(values))
    chunked = pl.concat([texts.head(len(values) // 2), texts.tail(len(values) - len(values) // 2)], rechunk=False)
    # rows_at_a_time: the kernel's slices of a column (0: the module's own, 128k rows)
    with mock.patch.object(ids, "_KERNEL_ROWS", rows_at_a_time or ids._KERNEL_ROWS):
        for column in (texts, padded, chunked):
            assert ids.valid(column, as_of).to_list() == expected
            assert ids.checked(column).to_list() == checked
    assert pl.select(ids.valid_expr(pl.lit(texts), as_of)).to_series().to_list() == expected


def test_the_kernel_takes_a_column_of_nulls_and_of_another_type() -> None:
    assert ids.valid(pl.Series([None, None])).to_list() == [False, False]
    assert ids.valid(pl.Series([], dtype=pl.String)).to_list() == []
    assert ids.checked(pl.Series([110105194912310020], dtype=pl.Int64)).to_list() == [False]
    assert pl.select(ids.valid_expr(pl.lit(None), AS_OF)).item() is False
