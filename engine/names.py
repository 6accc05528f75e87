"""Personal names: the one normalization every comparison uses, and how alike two names are.

    key("阿卜杜 • 热合曼") == "阿卜杜·热合曼"        (white space dropped, middle dots folded)
    key("ＪＯＨＮ　Ｌｉ") == "JOHNLi"                (full-width forms as ASCII, as in an ID)
    homophones("张伟", "章玮") is True                 (every character can be read the same)
    similarity("张伟", "章伟") == 95.0                 (0–100, see below)

Hukou spells a name as the registrar typed it; the roll as the township typed it. Spaces and the
many middle-dot look-alikes are spelling (docs/design.md, name_mismatch), so `key` removes them
and `key_expr` does the same over a polars column (the two must agree; tests hold them to it).

Characters that sound alike are the commonest name typo of a Chinese input method (张/章, 王/汪,
军/俊): the typist picks the wrong character from the pinyin candidates. `similarity` therefore
scores a name on its characters and on its pinyin: 100 when the keys are equal, 95 when the names
are homophones (pypinyin, all readings of heteronyms such as 曾 ceng/zeng, tones ignored), and
otherwise 0.9 × the better rapidfuzz ratio of the characters or of the pinyin syllables — so a
name that is neither equal nor a homophone never reaches 90 (`COMPATIBLE`).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

import polars as pl
from rapidfuzz import fuzz

# pypinyin is asked about one character at a time (`readings`, `_syllable`), which its phrase
# table (47,000 words) never answers: without it pypinyin loads in 0.04 s, not 0.19 s, and
# answers the same for every one of its 41,923 characters (tests/engine/test_names.py). Its own
# switch, read when pypinyin is first imported; a process that imported it before keeps its
# phrases.
os.environ.setdefault("PYPINYIN_NO_PHRASES", "1")

__all__ = ["DOTS", "SPACE", "FULL_WIDTH", "HALF_WIDTH", "KEY_VERSION", "COMPATIBLE", "key", "key_expr", "load", "readings", "homophones", "similarity", "key_similarity"]

# Middle-dot look-alikes that other systems write instead of U+00B7 (folded to '·'): bullets,
# katakana and Greek middle dots, operators, small and half-width stops, the sinological dot.
DOTS = r"[•‧・･‐\.．·\u0387\u02d9\u16eb\u2024\u2219\u22c5\u2e31\u2e33\ufe52\ua78f]"
# Full-width forms of ASCII (Ｊｏｈｎ, １): folded to ASCII first, as an ID's digits are.
FULL_WIDTH = "".join(chr(c) for c in range(0xFF01, 0xFF5F))
HALF_WIDTH = "".join(chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F))
_HALVED = str.maketrans(FULL_WIDTH, HALF_WIDTH)
# What `key` folds changed in version 2 (full width, more dots): keyed snapshots' name indexes
# made with another version are made again on reading (engine.keyed).
KEY_VERSION = 2
# White space: the characters polars' (Rust's) \s matches, spelled out. Python's \s also matches
# \x1c-\x1f, and Java's (Spark's) only the ASCII six, so U+3000, the space a Chinese input method
# types, would stay in a name on Spark: spelled out, the three engines agree.
SPACE = "[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_SPACE = re.compile(SPACE)
_DOT = re.compile(DOTS)

EQUAL = 100.0
HOMOPHONE = 95.0
COMPATIBLE = 90.0  # at or above: the same name, or the same name typed with a homophone
_OTHER = 0.9  # a scale below COMPATIBLE for names that are neither


def key(name: str | None) -> str:
    """The name as compared: full-width forms as ASCII, no white space, middle-dot variants
    folded to '·'."""
    if name is None:
        return ""
    return _DOT.sub("·", _SPACE.sub("", name.translate(_HALVED)))


def key_expr(name: pl.Expr) -> pl.Expr:
    """Column version of `key`."""
    halved = name.str.replace_many(list(FULL_WIDTH), list(HALF_WIDTH))
    return halved.str.replace_all(SPACE, "").str.replace_all(DOTS, "·")


def load() -> None:
    """Load pypinyin's tables now (~0.04 s, ~100,000 objects), not at the first name compared:
    a long-running process does it before gc.freeze(), so that the check that first compares
    names does not wait for it, and no full collection scans the tables afterwards."""
    readings("张")
    _syllable("张")


@lru_cache(maxsize=8192)
def readings(char: str) -> frozenset[str]:
    """Toneless pinyin readings of one character (all of a heteronym's); itself if not Han."""
    from pypinyin import Style, pinyin  # imported on first use: loading it takes ~0.04 s

    found = pinyin(char, style=Style.NORMAL, heteronym=True, errors=lambda c: [c])
    return frozenset(r for group in found for r in group) or frozenset({char})


def homophones(a: str, b: str) -> bool:
    """True when the two name keys have the same length and every character of one can be
    read like the character at the same place in the other."""
    return _homophones(key(a), key(b))


def _homophones(a: str, b: str) -> bool:
    return len(a) == len(b) and all(x == y or readings(x) & readings(y) for x, y in zip(a, b, strict=True))


@lru_cache(maxsize=8192)
def _syllable(char: str) -> str:
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(char, style=Style.NORMAL, errors=lambda c: list(c))[0]


def _syllables(name: str) -> str:
    """The name's most common reading, one syllable per character (cached per character:
    pypinyin on whole names costs ~30 µs each)."""
    return " ".join(_syllable(c) for c in name)


def similarity(a: str | None, b: str | None) -> float:
    """0–100: 100 equal keys, 95 homophones, else 0.9 × max(char ratio, pinyin ratio)."""
    return key_similarity(key(a), key(b))


@lru_cache(maxsize=65536)
def key_similarity(ka: str, kb: str) -> float:
    """`similarity` of two names already reduced to their keys."""
    if not ka or not kb:
        return 0.0
    if ka == kb:
        return EQUAL
    if _homophones(ka, kb):
        return HOMOPHONE
    best = max(fuzz.ratio(ka, kb), fuzz.ratio(_syllables(ka), _syllables(kb)))
    return round(_OTHER * best, 2)
