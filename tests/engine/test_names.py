"""engine.names: the name key (scalar and polars agree), homophones, similarity."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import names
from fixtures.population import HOMOPHONES


@given(st.lists(st.text(alphabet="张伟王 \u3000\t·•‧・･‐.．阿卜杜热合曼xＸｘ１Ｊｏ\u0387\u2219\ua78f\ufe52",
                        max_size=8), min_size=1, max_size=10))
def test_key_and_key_expr_agree(values: list[str]) -> None:
    column = pl.select(names.key_expr(pl.lit(pl.Series(values, dtype=pl.String)))).to_series().to_list()
    assert column == [names.key(v) for v in values]


def test_space_is_polars_white_space_spelled_out() -> None:
    # Spelled out so that Spark (Java's \s: ASCII only) drops what polars drops, U+3000 above all.
    characters = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    column = pl.Series(characters)
    by_polars = column.filter(column.str.contains(r"^\s$")).to_list()
    assert by_polars == column.filter(column.str.contains(f"^{names.SPACE}$")).to_list()
    assert "\u3000" in by_polars and "\x1c" not in by_polars
    assert [c for c in characters if names.key(f"a{c}b") == "ab"] == by_polars


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("张伟", "张伟", 100.0),
        ("ＪＯＨＮ", "JOHN", 100.0),  # full-width forms, as CONTRACTS §3 name_mismatch folds them
        ("李１", "李1", 100.0),
        ("阿卜杜\u0387热合曼", "阿卜杜·热合曼", 100.0),  # Greek ano teleia
        ("阿卜杜\ua78f热合曼", "阿卜杜·热合曼", 100.0),  # sinological dot
        ("阿卜杜\u2219热合曼", "阿卜杜·热合曼", 100.0),  # bullet operator
        ("张 伟", "张\u3000伟", 100.0),
        ("阿卜杜·热合曼", "阿卜杜•热合曼", 100.0),
        ("张伟", "章伟", 95.0),  # homophone surname
        ("王芳", "汪芳", 95.0),
        ("曾伟", "增伟", 95.0),  # 曾 is read ceng or zeng: any reading counts
        ("张伟", "张玮", 95.0),
        ("张伟", "张伟强", 72.0),  # 0.9 × 80 (characters)
        ("张伟", "李娜", 12.86),  # 0.9 × the pinyin ratio of "zhang wei" and "li na"
        ("张伟", None, 0.0),
    ],
)
def test_similarity(a: str, b: str | None, expected: float) -> None:
    assert names.similarity(a, b) == expected


def test_no_other_name_reaches_compatible() -> None:
    others = [("张伟强", "张伟刚"), ("张伟", "张强"), ("王芳", "王方芳"), ("李娜", "黎那娜")]
    assert all(names.similarity(a, b) < names.COMPATIBLE for a, b in others)


def test_the_fixture_homophones_are_homophones() -> None:
    assert HOMOPHONES and all(names.homophones(a, b) and a != b for a, b in HOMOPHONES.items())


def test_load_imports_the_pinyin_tables_before_any_name_is_compared():
    import subprocess
    import sys

    code = ("import sys; from engine import names; assert 'pypinyin' not in sys.modules; "
            "names.load(); assert 'pypinyin' in sys.modules; assert names.readings.cache_info().currsize")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_pypinyins_phrases_every_character_reads_as_with_them():
    """names asks pypinyin about single characters only, so it loads pypinyin without its phrase
    table: each of pypinyin's characters reads the same as in a process that has the phrases."""
    import os
    import subprocess
    import sys

    code = ("import os, sys, json; from engine import names; from pypinyin import constants; "
            "assert bool(constants.PHRASES_DICT) == (os.environ.get('PYPINYIN_NO_PHRASES') == ''); "
            "from pypinyin.pinyin_dict import pinyin_dict; "
            "json.dump([[sorted(names.readings(chr(c))), names._syllable(chr(c))] for c in sorted(pinyin_dict)], sys.stdout)")
    with_phrases = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                                  env={**os.environ, "PYPINYIN_NO_PHRASES": ""}).stdout
    without = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if k != "PYPINYIN_NO_PHRASES"}).stdout
    assert len(with_phrases) > 400_000 and with_phrases == without
