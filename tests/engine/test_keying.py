"""Properties of engine.keying: the valid IDs one keying error from a spelling, found by
arithmetic, are exactly those that trying every edit finds."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine import ids, keying
from engine.scores import Reading

from .test_ids import AS_OF, near_ids, valid_ids


def _brute_neighbours(text: str) -> set[str]:
    """Every spelling one edit away, tried one by one (what neighbours' arithmetic avoids)."""
    found = set()
    for spelling in keying._edits(text, (15, 18)):
        candidate = ids.normalize(spelling) if len(spelling) == 15 else spelling
        if candidate and candidate != text and ids.is_valid(candidate, AS_OF):
            found.add(candidate)
    return found


@st.composite
def keying_errors(draw: st.DrawFn) -> tuple[str, str]:
    """A valid ID and a spelling of it with one keying error (or a 15-digit legacy form)."""
    pid = draw(valid_ids())
    kind = draw(st.sampled_from(["substitute", "swap", "drop", "add", "legacy"]))
    place = draw(st.integers(0, 17))
    char = draw(st.sampled_from("0123456789X"))
    if kind == "substitute":
        return pid, pid[:place] + char + pid[place + 1 :]
    if kind == "swap":
        place = min(place, 16)
        return pid, pid[:place] + pid[place + 1] + pid[place] + pid[place + 2 :]
    if kind == "drop":
        return pid, pid[:place] + pid[place + 1 :]
    if kind == "add":
        return pid, pid[:place] + char + pid[place:]
    return pid, pid[:6] + pid[8:17]


@settings(max_examples=300)
@given(keying_errors())
def test_neighbours_are_every_valid_id_one_keying_error_away(error: tuple[str, str]) -> None:
    pid, text = error
    found = keying.neighbours(text, AS_OF)
    assert found == _brute_neighbours(text)
    if not ids.is_valid(ids.normalize(text), AS_OF) and len(text) != 15:
        assert pid in found  # the error is always undone


_SPELLINGS = st.one_of(keying_errors().map(lambda error: error[1]), near_ids.map(lambda raw: ids.clean(raw) or ""))


@settings(max_examples=200)
@given(st.lists(_SPELLINGS, max_size=12), st.sampled_from([None, AS_OF, date(1990, 1, 1)]))
@example(["١١٠١٠٥١٩٤٩١٢٣١٠٠٢1", "١١٠١٠٥١٩٤٩١٢٣١٠٠X"], AS_OF)  # other scripts' digits, as a roll may hold them
def test_neighbours_over_columns_are_the_neighbours_one_by_one(texts: list[str], as_of: date | None) -> None:
    """engine.resolve looks a roll's invalid IDs' neighbours up all at once (keying.neighbour_codes):
    per spelling, the codes of exactly what keying.neighbours finds."""
    at, codes = keying.neighbour_codes(texts, as_of)
    found: list[set[str]] = [set() for _ in texts]
    for index, value in zip(at.tolist(), codes.tolist(), strict=True):
        found[index].add(ids.from_code(value))
    assert len(codes) == sum(len(each) for each in found)  # each neighbour of a spelling once
    assert found == [keying.neighbours(text, as_of) for text in texts]


@pytest.mark.parametrize("digits8", ["19000229", "20000229", "20010229", "20240229", "00000101", "00010101",
                                     "99991231", "20241301", "20240100", "20240431", "20240430", "19491001"])
def test_birth_dates_over_columns_are_read_as_one_by_one(digits8: str) -> None:
    first17 = np.array([int(f"320303{digits8}123")], dtype=np.int64)
    born = ids.birth_of(digits8)
    assert keying._born_by(first17, None).tolist() == [born is not None]
    assert keying._born_by(first17, date(2024, 4, 30)).tolist() == [born is not None and born <= date(2024, 4, 30)]


@given(valid_ids())
def test_a_valid_id_has_no_valid_neighbour_of_one_substitution_or_swap(id_number: str) -> None:
    assert keying._repairs18(id_number) == set()


@pytest.mark.parametrize("kept, rounded", [("320303198001011", False), ("32030319800102", True),
                                           ("3203031980010", True), ("320303198001011235", True)])
def test_agreeing_codes_are_every_id_excels_damage_could_have_left_as_kept(kept, rounded):
    # Every 18-digit number around kept's range, tried one by one (an ID ending in X is text to
    # Excel: it is never damaged).
    reading = Reading("", kept, rounded)
    scale = 10 ** (18 - len(kept))
    around = range(int(kept) * scale - scale, int(kept) * scale + scale)
    expected = {ids.code(str(n)) for n in around
                if ids.check_char(str(n)[:17]) == str(n)[17] and reading.agrees(str(n))}
    assert expected and set(keying.agreeing_codes(kept, rounded).tolist()) == expected
