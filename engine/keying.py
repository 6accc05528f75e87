"""The valid IDs one keying error from a mistyped one: a digit substituted, two adjacent ones
swapped, one inserted or one dropped (engine.resolve's `edit` candidates).

GB 11643's weights are distinct units mod 11, so for 17 digits and a check character the digit
that fits at each place follows by arithmetic (Σ digit × weight mod 11): `neighbours` finds a
spelling's repairs without trying all of its ~400 edits, and `neighbour_codes` does the same
over columns of many spellings at once.
"""

from __future__ import annotations

import operator
from datetime import date
from functools import lru_cache

import numpy as np
import polars as pl

from engine.ids import CHECK_CHARS, WEIGHTS, birth_of, check_char, code, is_valid, normalize

__all__ = ["agreeing_codes", "neighbours", "neighbour_codes"]


@lru_cache(maxsize=1 << 16)
def _birth_cached(digits8: str) -> date | None:
    return birth_of(digits8)  # the candidates of one spelling mostly share their birth date

_INVERSE = tuple(pow(w, -1, 11) for w in WEIGHTS)  # per place; the weights are units mod 11
_ALPHABET = "0123456789X"


def _edits(text: str, lengths: tuple[int, ...]) -> set[str]:
    """Every string one substitution, adjacent transposition, insertion or deletion away from
    `text`, keeping only the given lengths."""
    n, out = len(text), set()
    if n in lengths:
        out |= {text[:i] + c + text[i + 1 :] for i in range(n) for c in _ALPHABET if c != text[i]}
        out |= {text[:i] + text[i + 1] + text[i] + text[i + 2 :] for i in range(n - 1) if text[i] != text[i + 1]}
    if n + 1 in lengths:
        out |= {text[:i] + c + text[i:] for i in range(n + 1) for c in _ALPHABET}
    if n - 1 in lengths:
        out |= {text[:i] + text[i + 1 :] for i in range(n)}
    return out


def _repairs18(text: str) -> set[str]:
    """The single substitutions and adjacent transpositions of 17 digits + check character
    that satisfy the check character: one digit per position at most, found by arithmetic
    (Σ digit × weight mod 11) instead of trying all 190 spellings."""
    digits = [ord(c) - 48 for c in text[:17]]
    total = sum(map(operator.mul, digits, WEIGHTS)) % 11
    wanted = CHECK_CHARS.index(text[17])
    out = set()
    for i, d in enumerate(digits):
        fixed = (d + (wanted - total) * _INVERSE[i]) % 11
        if fixed <= 9 and fixed != d:
            out.add(text[:i] + str(fixed) + text[i + 1 :])
    if CHECK_CHARS[total] != text[17]:
        out.add(text[:17] + CHECK_CHARS[total])
    for i in range(16):
        a, b = digits[i], digits[i + 1]
        if a != b and (total + (WEIGHTS[i] - WEIGHTS[i + 1]) * (b - a)) % 11 == wanted:
            out.add(text[:i] + text[i + 1] + text[i] + text[i + 2 :])
    if text[17] != "X" and text[16] != text[17]:  # the last digit swapped with the check
        swapped = (total + WEIGHTS[16] * (int(text[17]) - digits[16])) % 11
        if CHECK_CHARS[swapped] == text[16]:
            out.add(text[:16] + text[17] + text[16])
    return out


def _insertions17(text: str) -> set[str]:
    """An 18-character ID with one of its first 17 digits dropped (17 characters, the check
    character last): the digit that fits at each place, by the same arithmetic."""
    digits = [int(c) for c in text[:16]]
    wanted = CHECK_CHARS.index(text[16])
    # before[i]: Σ of the digits left of place i at their own weights; after[i]: of the digits
    # from place i on, each shifted one place right by the insertion.
    before = [0] * 17
    for i, d in enumerate(digits):
        before[i + 1] = before[i] + d * WEIGHTS[i]
    after = [0] * 17
    for i in range(15, -1, -1):
        after[i] = after[i + 1] + digits[i] * WEIGHTS[i + 1]
    out = set()
    for i in range(17):
        fixed = ((wanted - before[i] - after[i]) * _INVERSE[i]) % 11
        if fixed <= 9:
            out.add(text[:i] + str(fixed) + text[i:])
    if text[16] != "X":  # or the check character itself was dropped
        out.add(text + check_char(text))
    return out


def _shaped(text: str) -> int:
    """18 or 17 for ASCII digits ending in a check character (what _repairs18 and _insertions17
    take: str.isdigit alone takes other scripts' digits too), else 0."""
    if text.isascii() and len(text) in (17, 18) and text[:-1].isdigit() and text[-1] in CHECK_CHARS:
        return len(text)
    return 0


def neighbours(text: str, as_of: date | None = None) -> set[str]:
    """Valid IDs (normalized, 18 characters) one keying error away from the cleaned `text`:
    one character substituted, two adjacent ones swapped, one inserted or one dropped; the
    neighbours of a 15-digit spelling are legacy IDs, converted.

    GB 11643's check character catches every single substitution and adjacent transposition
    (the weights are distinct units mod 11), so a valid 18-character ID has no valid neighbour
    of those kinds: this is the set of repairs of an invalid ID."""
    fast = None
    shaped = _shaped(text)
    if shaped == 18:
        fast = _repairs18(text)
    elif shaped == 17:
        fast = _insertions17(text)
    if fast is not None:
        # The check character holds by construction: only the birth date is left to check.
        found = set()
        for candidate in fast:
            born = _birth_cached(candidate[6:14])
            if born is not None and (as_of is None or born <= as_of):
                found.add(candidate)
        return found
    spellings = _edits(text, (15, 18))
    found = set()
    for spelling in spellings:
        candidate = normalize(spelling) if len(spelling) == 15 else spelling
        if candidate is not None and candidate != text and is_valid(candidate, as_of):
            found.add(candidate)
    return found


def neighbour_codes(texts: list[str], as_of: date | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`neighbours` of many cleaned spellings at once, as codes: (the index of the spelling in
    `texts`, a neighbour's code) pairs, each neighbour of a spelling once. The 18-character and
    17-character shapes (nearly every invalid ID) by _repairs18's and _insertions17's arithmetic
    over columns of digits; other spellings (15 digits, say) through `neighbours`. A city's
    3,302 invalid IDs: ~70 ms one by one, a few ms over columns."""
    at: list[np.ndarray] = []
    found: list[np.ndarray] = []
    shaped = {18: [], 17: []}
    for index, text in enumerate(texts):
        if length := _shaped(text):
            shaped[length].append(index)
        else:
            codes_ = [code(n) for n in neighbours(text, as_of)]
            at.append(np.full(len(codes_), index, dtype=np.int64))
            found.append(np.array(codes_, dtype=np.int64))
    for length, make in ((18, _repairs18_codes), (17, _insertions17_codes)):
        if shaped[length]:
            rows = np.array(shaped[length], dtype=np.int64)
            chars = np.frombuffer("".join(texts[i] for i in shaped[length]).encode("ascii"),
                                  dtype=np.uint8).reshape(-1, length)
            which, candidates = make(chars)
            at.append(rows[which])
            found.append(candidates)
    if not at:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = pl.DataFrame({"at": np.concatenate(at), "code": np.concatenate(found)}).unique().sort("at", "code")
    spelling, codes_ = pairs.get_column("at").to_numpy(), pairs.get_column("code").to_numpy()
    born = _born_by(codes_ // 11, as_of)
    return spelling[born], codes_[born]


_W = np.array(WEIGHTS, dtype=np.int64)
_INV = np.array(_INVERSE, dtype=np.int64)
_POW = 10 ** np.arange(16, -1, -1, dtype=np.int64)  # the place values of 17 digits
_WANTED = np.full(256, -1, dtype=np.int64)  # a check character's byte -> its index in CHECK_CHARS
_WANTED[np.frombuffer(CHECK_CHARS.encode(), dtype=np.uint8)] = np.arange(11)
_VALUE_OF = np.array([10 if c == "X" else int(c) for c in CHECK_CHARS], dtype=np.int64)  # index -> code's check


def agreeing_codes(kept: str, rounded: bool) -> np.ndarray:
    """The codes (ids.code) of the 18-digit IDs with a right check character that
    scores.Reading(kept=kept, rounded=rounded).agrees with: those whose number, cut (or
    rounded) to len(kept) digits, is `kept` (engine.resolve.reachable: Excel's damage)."""
    scale = 10 ** (18 - len(kept))
    low = int(kept) * scale - (scale // 2 if rounded else 0)
    high = low + scale  # the numbers that agree: low <= number < high
    first17 = np.arange(low // 10, (high - 1) // 10 + 1, dtype=np.int64)
    check = _VALUE_OF[((first17[:, None] // _POW) % 10 @ _W) % 11]
    number = first17 * 10 + check
    agrees = (check < 10) & (number >= low) & (number < high)  # an ID ending in X stays text in Excel
    return (first17 * 11 + check)[agrees]


def _repairs18_codes(chars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """_repairs18 over rows of 18 bytes: (row, candidate code) pairs."""
    digits = chars[:, :17].astype(np.int64) - 48
    wanted = _WANTED[chars[:, 17]]
    check = _VALUE_OF[wanted]
    total = (digits @ _W) % 11
    first17 = digits @ _POW
    rows = np.arange(len(chars))
    parts = []
    # one digit substituted: the one that fits at each place
    fixed = (digits + ((wanted - total)[:, None] * _INV[None, :])) % 11
    ok = (fixed <= 9) & (fixed != digits)
    parts.append((np.broadcast_to(rows[:, None], ok.shape)[ok],
                  ((first17[:, None] + (fixed - digits) * _POW[None, :]) * 11 + check[:, None])[ok]))
    # the check character itself mistyped
    ok = total != wanted
    parts.append((rows[ok], (first17 * 11 + _VALUE_OF[total])[ok]))
    # two adjacent digits swapped
    left, right = digits[:, :16], digits[:, 1:]
    ok = (left != right) & ((total[:, None] + (_W[:16] - _W[1:])[None, :] * (right - left)) % 11 == wanted[:, None])
    swapped = first17[:, None] + (right - left) * _POW[None, :16] + (left - right) * _POW[None, 1:]
    parts.append((np.broadcast_to(rows[:, None], ok.shape)[ok], (swapped * 11 + check[:, None])[ok]))
    # the last digit swapped with the check character (a digit)
    last = chars[:, 17].astype(np.int64) - 48
    ok = (chars[:, 17] != ord("X")) & (digits[:, 16] != last)
    turned = (total + _W[16] * (last - digits[:, 16])) % 11
    ok &= np.frombuffer(CHECK_CHARS.encode(), dtype=np.uint8)[turned] == chars[:, 16]
    parts.append((rows[ok], ((first17 + last - digits[:, 16]) * 11 + digits[:, 16])[ok]))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _insertions17_codes(chars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """_insertions17 over rows of 17 bytes: (row, candidate code) pairs."""
    digits = chars[:, :16].astype(np.int64) - 48
    wanted = _WANTED[chars[:, 16]]
    rows = np.arange(len(chars))
    # before[:, i]: Σ of the digits left of place i at their weights; after[:, i]: of the digits
    # from place i on, each at the weight of the place to its right.
    before = np.zeros((len(chars), 17), dtype=np.int64)
    before[:, 1:] = np.cumsum(digits * _W[None, :16], axis=1)
    after = np.zeros((len(chars), 17), dtype=np.int64)
    after[:, :16] = np.cumsum((digits * _W[None, 1:])[:, ::-1], axis=1)[:, ::-1]
    fixed = ((wanted[:, None] - before - after) * _INV[None, :]) % 11
    ok = fixed <= 9
    # `fixed` inserted at place i: the i digits left of it move one place up, the others stay
    value16 = digits @ _POW[1:]
    left, right = value16[:, None] // _POW[None, :], value16[:, None] % _POW[None, :]
    first17 = left * _POW[None, :] * 10 + fixed * _POW[None, :] + right
    check = _VALUE_OF[wanted]
    parts = [(np.broadcast_to(rows[:, None], ok.shape)[ok], (first17 * 11 + check[:, None])[ok])]
    # or the check character itself was dropped: the 17 characters are the digits
    ok = chars[:, 16] != ord("X")
    all17 = np.concatenate([digits, (chars[:, 16:17].astype(np.int64) - 48)], axis=1)
    parts.append((rows[ok], ((all17 @ _POW) * 11 + _VALUE_OF[(all17 @ _W) % 11])[ok]))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _born_by(first17: np.ndarray, as_of: date | None) -> np.ndarray:
    """Whether the birth date in each 17 digits is a real date (as `ids.birth_of` reads it), on or
    before `as_of`: by arithmetic, as strings parsed as dates cost ten times as much."""
    yyyymmdd = (first17 // 1000) % 100_000_000
    year, month, day = yyyymmdd // 10_000, (yyyymmdd // 100) % 100, yyyymmdd % 100
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    days = _DAYS[np.clip(month, 0, 12)] + ((month == 2) & leap)
    ok = (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= days)
    if as_of is not None:
        ok &= yyyymmdd <= as_of.year * 10_000 + as_of.month * 100 + as_of.day
    return ok
