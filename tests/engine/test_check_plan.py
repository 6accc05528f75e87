"""engine.check_plan: the households made in Python equal engine.run.households_of's."""

from __future__ import annotations

import narwhals as nw
import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from engine.check_plan import households_in
from engine.run import households_of, prepared

ROWS = st.lists(
    st.tuples(
        st.sampled_from(["H1", "H2", "H3", None]),
        st.sampled_from(["320303196001010011", "320303196001010020", "320303196001010038", None]),
        st.sampled_from(["户主", "子女", "配偶", None]),
        st.sampled_from(["320303001", "320302002", None]),
    ),
    min_size=1,
    max_size=12,
)


def _roll(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"household_id": pl.String, "id_number": pl.String, "relation": pl.String,
                                      "region_code": pl.String}, orient="row").with_columns(
        pl.lit("dibao").alias("program"), pl.lit(800.0).alias("benefit_monthly"))


@given(ROWS)
def test_the_households_are_households_of(rows):
    roll = _roll(rows)
    expected = households_of(nw.from_native(prepared(roll.lazy()))).to_native().collect()
    made = households_in(roll, expected.schema)
    assert made.schema == expected.schema
    assert made.sort("household_id", nulls_last=True).equals(expected.sort("household_id", nulls_last=True))


def test_the_head_is_the_first_head_else_the_first_row_and_the_region_is_the_heads():
    roll = _roll([("H1", "A", "子女", "r1"), ("H1", "B", "户主", "r2"), ("H1", "C", "户主", "r3"),
                  ("H2", "D", "子女", "r4"), ("H2", "D", None, "r5")])
    schema = households_of(nw.from_native(prepared(roll.lazy()))).to_native().collect_schema()
    made = households_in(roll, schema).sort("household_id")
    assert made.rows() == [("H1", 3, "r2", 1), ("H2", 1, "r4", 3)]
    assert households_of(nw.from_native(prepared(roll.lazy()))).to_native().collect().sort("household_id").rows() \
        == made.rows()
