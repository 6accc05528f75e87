"""How alike a roll row and a hukou candidate are (engine.resolve's step 2, one pair at a time).

    reading(raw) -> Reading     what a roll ID's spelling still says, Excel's damage included
    score(spelling, roll name key, roll region, candidate id, name key, region)
        -> (score, id_score, name_score, region_score, edits)

`id_score` is 100 − EDIT_COST per keying error (optimal string alignment: a swap of two
adjacent digits is one edit), or for Excel's damage 100 × the digits Excel kept ÷ 18 when the
candidate agrees with all of them; `name_score` is names.similarity; `region_score` 100 where
the roll says, 60 the same township, 30 the same county. The total weighs them 10 : 9 : 1.
engine.resolve scores a roll's pairs over columns with the same arithmetic (its `_scored`, held
equal to `score` by a property test).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from rapidfuzz.distance import OSA

from . import ids, names

__all__ = ["EDIT_COST", "ID_WEIGHT", "NAME_WEIGHT", "REGION_WEIGHT", "Reading", "reading", "region_score", "score"]

EDIT_COST = 20.0  # id_score lost per edit
ID_WEIGHT, NAME_WEIGHT, REGION_WEIGHT = 10, 9, 1  # out of 20

# After ids.clean (upper case, no spaces): 3.20303E+17, 3.203031990E17, ...
_SCIENTIFIC = re.compile(r"^([0-9])(?:\.([0-9]+))?E\+?([0-9]+)$")
_EXCEL_CUT = re.compile(r"^[0-9]{15}000$")


# ---- what a spelling still says ------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """A roll ID spelling as evidence: the cleaned text, and for Excel damage the leading digits
    Excel kept (`kept`): cut to 15 (Excel stores 15 significant digits and turns the rest into
    zeros), or rounded to the digits its scientific display shows (`rounded`)."""

    text: str
    kept: str = ""
    rounded: bool = False

    def agrees(self, candidate: str) -> bool:
        """True when Excel's damage of `candidate` could have left `kept`."""
        if not self.kept or not candidate.isdigit():  # an ID ending in X stays text in Excel
            return False
        scale = 10 ** (18 - len(self.kept))
        value = (int(candidate) + scale // 2) if self.rounded else int(candidate)
        return value // scale == int(self.kept)

    def edits(self, candidate: str) -> int:
        """Keying errors between the spelling and `candidate` (a 15-digit spelling is compared
        with the candidate's legacy form)."""
        if len(self.text) == 15 and candidate[6:8] == "19":
            return OSA.distance(self.text, candidate[:6] + candidate[8:17])
        return OSA.distance(self.text, candidate)

    def id_score(self, candidate: str) -> tuple[float, int]:
        edits = self.edits(candidate)
        found = max(0.0, 100.0 - EDIT_COST * edits)
        if self.agrees(candidate):
            found = max(found, round(100.0 * len(self.kept) / 18, 2))
        return found, edits

    def born14(self, as_of: date | None) -> str | None:
        """Region and birth date (the first 14 characters) when the spelling still has them."""
        head = self.kept if len(self.kept) >= 15 else self.text
        if len(head) < 14 or not head[:14].isdigit():
            return None
        born = ids.birth_date(head[:14] + "0000")
        return head[:14] if born is not None and (as_of is None or born <= as_of) else None


def reading(raw: object) -> Reading:
    """Read a roll spelling: Excel's scientific notation of an 18-digit number (`3.20303E+17`)
    keeps its mantissa's digits, rounded; an invalid 18-digit number ending in 000 keeps its
    first 15, cut."""
    text = ids.clean(raw) or ""
    scientific = _SCIENTIFIC.match(text)
    if scientific:
        head, tail, exponent = scientific.groups()
        digits = (head + (tail or "")).rstrip("0") or "0"
        if int(exponent) == 17 and len(digits) <= 18:
            return Reading(text, digits, rounded=True)
        return Reading(text)
    if _EXCEL_CUT.match(text) and not ids.is_valid(text):
        return Reading(text, text[:15])
    return Reading(text)


# ---- scores ----------------------------------------------------------------------------------


def region_score(roll_region: str | None, hukou_region: str | None) -> float:
    """100 where the roll says (its code is a prefix of hukou's, or the reverse), 60 same
    township (9 digits), 30 same county (6 digits), else 0."""
    if not roll_region or not hukou_region:
        return 0.0
    if hukou_region.startswith(roll_region) or roll_region.startswith(hukou_region):
        return 100.0
    if len(roll_region) >= 9 and len(hukou_region) >= 9 and roll_region[:9] == hukou_region[:9]:
        return 60.0
    return 30.0 if roll_region[:6] == hukou_region[:6] else 0.0


def score(spelling: Reading, roll_name_key: str, roll_region: str | None, candidate_id: str,
          candidate_name_key: str, candidate_region: str | None) -> tuple[float, float, float, float, int]:
    """One hukou candidate against a roll row: (score, id_score, name_score, region_score,
    edits). Names are given as names.key values."""
    id_part, edits = spelling.id_score(candidate_id)
    name_part = names.key_similarity(roll_name_key, candidate_name_key)
    region_part = region_score(roll_region, candidate_region)
    total = round((ID_WEIGHT * id_part + NAME_WEIGHT * name_part + REGION_WEIGHT * region_part) / 20, 2)
    return total, id_part, name_part, region_part, edits
