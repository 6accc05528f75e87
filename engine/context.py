"""What every rule sees: the roll prepared once, households, sources, as-of date and policy.

Written against Narwhals so the same rule code runs on polars LazyFrames (the default) and on
PySpark DataFrames. Per-region policy values become `when/then` chains over the region prefixes,
longest first, so that a rule reads `ctx.setting("dibao_monthly")` and never loops over regions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import reduce
from typing import Any

import narwhals as nw

from .policy import Policy

__all__ = ["Context", "SharedContext", "month_index", "year_before"]

HOUSEHOLD_REGION = "household_region"
HEAD_RELATION = "户主"  # the relation that makes a row its household's head


def month_index(day: date) -> int:
    """Months since year 0: the difference of two is a count of calendar months."""
    return day.year * 12 + day.month - 1


def year_before(day: date) -> date:
    """The same day a year earlier; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


@dataclass
class Context:
    rows: nw.LazyFrame  # every roll row: see engine.run.prepare_roll for its columns
    households: nw.LazyFrame  # household_id, household_size, household_region
    sources: dict[str, nw.LazyFrame]
    as_of: date
    policy: Policy
    # The column rules join people on: id_number, or where the roll and every source carry it,
    # ids.PERSON (the ID as its int64 code, ids.code: joins on it cost ~3/4 of those on 18-byte text).
    key: str = "id_number"

    # ---- the roll ---------------------------------------------------------------------

    def matchable(self, programs: tuple[str, ...] | None = None) -> nw.LazyFrame:
        """Roll rows whose ID is valid (or converted from 15 digits, or resolved against hukou by
        engine.resolve), in the given programs."""
        rows = self.rows.filter(nw.col("id_valid"))
        if programs is not None:
            rows = rows.filter(nw.col("program").is_in(list(programs)))
        return rows

    def members(self) -> nw.LazyFrame:
        """Distinct (household_id, id_number) of valid IDs: a person counts once per household
        however many program rows they have, so sums over sources are not doubled."""
        columns = ["household_id", "id_number"] if self.key == "id_number" else ["household_id", "id_number", self.key]
        return self.matchable().select(columns).unique(["household_id", self.key])

    def households_in(self, programs: tuple[str, ...] | None) -> nw.LazyFrame:
        """Households with at least one row in `programs`, with size and region."""
        if programs is None:
            return self.households
        ids = self.rows.filter(nw.col("program").is_in(list(programs))).select("household_id")
        return self.households.join(ids.unique(), on="household_id", how="semi")

    def source(self, key: str) -> nw.LazyFrame:
        return self.sources[key]

    def reused(self, frame: nw.LazyFrame) -> nw.LazyFrame:
        """`frame`, which a rule's plan reads more than once (its records, say, both listed and
        totalled): here as it is; SharedContext computes it once per collect."""
        return frame

    def has(self, key: str) -> bool:
        return key in self.sources

    # ---- policy as expressions --------------------------------------------------------

    def setting(self, name: str, region: str = HOUSEHOLD_REGION) -> nw.Expr:
        """A scalar policy value for each row's region (longest prefix wins)."""
        default = nw.lit(getattr(self.policy.defaults, name))
        chain: Any = None
        for prefix, settings in self.policy.regions:
            condition = nw.col(region).str.starts_with(prefix)
            value = nw.lit(getattr(settings, name))
            chain = nw.when(condition).then(value) if chain is None else chain.when(condition).then(value)
        return default if chain is None else chain.otherwise(default)

    def in_setting(self, name: str, value: nw.Expr, region: str = HOUSEHOLD_REGION) -> nw.Expr:
        """True where `value` is in the list-valued policy setting of the row's region."""
        default = value.is_in(list(getattr(self.policy.defaults, name)))
        if not self.policy.regions:
            return default
        branches = [
            (nw.col(region).str.starts_with(prefix), value.is_in(list(getattr(s, name))))
            for prefix, s in self.policy.regions
        ]
        # Longest prefix first: fold from the last so the first condition is outermost.
        return reduce(
            lambda otherwise, branch: nw.when(branch[0]).then(branch[1]).otherwise(otherwise),
            reversed(branches),
            default,
        )

    # ---- dates ------------------------------------------------------------------------

    @property
    def as_of_month(self) -> date:
        return self.as_of.replace(day=1)

    def months_after(self, day: nw.Expr) -> nw.Expr:
        """Calendar months from `day`'s month to the as-of month (died in March, as-of June: 3)."""
        return nw.lit(month_index(self.as_of)) - (day.dt.year() * 12 + day.dt.month() - 1)


@dataclass
class SharedContext(Context):
    """The Context whose derived frames are built once per plan and shared by every rule that
    asks for them (a `cache()` node each), so that no rule recomputes them. polars only (the
    cache node is polars'): engine.run and engine.check_plan use it; a Spark run would use
    Context, whose plans are engine-neutral."""

    shared: dict[Any, nw.LazyFrame] = field(default_factory=dict)

    def _shared(self, key: Any, build: Callable[[], nw.LazyFrame]) -> nw.LazyFrame:
        if key not in self.shared:
            self.shared[key] = nw.from_native(build().to_native().cache())
        return self.shared[key]

    def reused(self, frame: nw.LazyFrame) -> nw.LazyFrame:
        # Without it, polars runs such a frame's every node once per reading when no optimizer
        # runs (engine.check_plan: a rule over a few households is mostly these nodes' cost).
        return nw.from_native(frame.to_native().cache())

    def matchable(self, programs: tuple[str, ...] | None = None) -> nw.LazyFrame:
        return self._shared(("matchable", programs), lambda: super(SharedContext, self).matchable(programs))

    def members(self) -> nw.LazyFrame:
        return self._shared("members", lambda: super(SharedContext, self).members())

    def households_in(self, programs: tuple[str, ...] | None) -> nw.LazyFrame:
        return self._shared(("households_in", programs),
                            lambda: super(SharedContext, self).households_in(programs))
