"""engine.check_plan: the households made in Python equal engine.run.households_of's; a frame a rule's plan
reads twice is computed once (engine.context.SharedContext.reused)."""

from __future__ import annotations

import narwhals as nw
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.check_plan import households_in
from engine.context import Context, SharedContext
from engine.rules import RULES
from engine.run import context_of, households_of, prepare_roll, prepared

from .casebook import AS_OF, POLICY, frames
from .test_rules import CASES

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


# ---- a frame a plan reads twice is computed once --------------------------------------------

REUSING = ["deceased", "duplicate_enrollment", "income_over_standard", "property_excess", "assets_over_limit",
            "medical_hardship"]


def _nodes(plan: pl.LazyFrame) -> int:
    return len(plan.explain(optimized=False).splitlines())


@pytest.mark.parametrize("rule_id", REUSING)
def test_a_frame_read_twice_is_one_node_under_the_shared_context_with_the_same_hits(rule_id):
    """Each of these rules reads a derived frame twice (records listed and totalled, flagged rows listed and their metrics joined back): without an
    optimizer (engine.check_plan) polars would compute it once per reading."""
    cases = [case for case in CASES if case[0] == rule_id and case[4]]
    assert cases, f"no positive case of {rule_id}"
    _, description, roll, sources, _ = cases[0]
    roll_frame, source_frames = frames(roll, sources)
    rows = prepare_roll(roll_frame).lazy()
    households = households_of(nw.from_native(rows)).to_native()
    plans = {kind: RULES[rule_id].plan(context_of(rows, households, {k: f.lazy() for k, f in source_frames.items()},
                                                  AS_OF, POLICY, context=kind)).to_native()
             for kind in (Context, SharedContext)}
    assert _nodes(plans[SharedContext]) < _nodes(plans[Context])
    shared, plain = (plans[kind].collect(optimizations=pl.QueryOptFlags.none()) for kind in (SharedContext, Context))
    assert shared.height, description
    assert shared.sort(shared.columns).equals(plain.sort(plain.columns))
