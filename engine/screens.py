"""Screens: whether a rule could flag anything among a few households, decided in Python before
its plan runs (engine.check_plan).

A check runs the rules over a few households. Most rules find nothing there, and each still costs
its plan's fixed overhead (polars planning and running a few dozen nodes over a few rows, ~0.1–0.6
ms) whatever it finds: checked with only the rules that flag it, a group of 16 households takes
5.5 ms instead of 9.2 (`benchmarks/bench_check.py --screen`). A screen is a rule's necessary
condition, over the check's rows and records as Python values:

    rule.screen(few) is False   =>   rule.plan has no hits over few's roll and sources

It may be looser than the rule where precision would cost (sums and areas get a cent of slack
for rounding), and is True whenever in doubt (a null where the
rule compares a value). It is never False where the plan would find something:
tests/engine/test_screens.py holds every screen to that, rule by rule and with hypothesis over
groups of a generated city with every rule's cases planted. The plans stay the rules'
definition; a screen only decides whether to run one.

The rows are those of engine.check's check roll (resolved, not yet prepared), with the semantics
of engine.context: matchable rows have a valid ID; a household's members are its matchable rows'
IDs; its size counts the distinct IDs of all its rows, its region is its head's row's (the
first 户主, else its first row).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date
from functools import cached_property
from typing import Any

import polars as pl

from . import names
from .context import HEAD_RELATION, month_index, year_before
from .policy import Policy, Settings

__all__ = [
    "Few",
    "assets_over_limit",
    "born_after",
    "cadre_relative",
    "deceased",
    "disability_living_without_dibao",
    "duplicate_enrollment",
    "elderly_underage",
    "housing_fund_active",
    "hukou_not_found",
    "id_invalid",
    "incarcerated",
    "income_over_standard",
    "machinery_owned",
    "medical_hardship",
    "moved_out",
    "name_mismatch",
    "program_conflict",
    "property_excess",
    "public_payroll",
    "vehicle_owned",
]

DIBAO_TEKUN = ("dibao", "tekun")
_CADRE_PROGRAMS = ("dibao", "tekun", "edge", "temp")  # engine.rules' cadre_relative
_CENT = 0.01  # slack on sums compared with a limit: the rules round them to the fen first


def born_after(as_of: date, years: int) -> str:
    """The birth date (YYYYMMDD, as an ID spells it) after which a person is under `years` on `as_of`."""
    return f"{as_of.year - years:04d}{as_of.month:02d}{as_of.day:02d}"


class Few:
    """A check roll and its persons' source records as Python values, each computed once, when a
    screen first asks for it."""

    def __init__(self, roll: pl.DataFrame, sources: dict[str, pl.DataFrame], as_of: date, policy: Policy) -> None:
        self.roll, self.sources, self.as_of, self.policy = roll, sources, as_of, policy
        self._columns: dict[str, list[Any]] = {}
        self._records: dict[tuple[str, ...], dict[str, list[tuple[Any, ...]]]] = {}
        self._source_columns: dict[tuple[str, str], list[Any]] = {}
        self._households_in: dict[tuple[str, ...], set[str]] = {}

    def column(self, name: str) -> list[Any]:
        if name not in self._columns:
            self._columns[name] = self.roll.get_column(name).to_list()
        return self._columns[name]

    def rows(self, *columns: str) -> Iterator[tuple[Any, ...]]:
        """Every row's values of `columns`."""
        return zip(*[self.column(c) for c in columns], strict=True)

    def valid(self, *columns: str) -> Iterator[tuple[Any, ...]]:
        """The matchable rows' values of `columns` (their ID is valid, as resolved)."""
        return (values for values, ok in zip(self.rows(*columns), self.column("id_valid"), strict=True) if ok)

    @cached_property
    def valid_ids(self) -> set[str]:
        return {id_number for (id_number,) in self.valid("id_number")}

    @cached_property
    def households(self) -> dict[str, tuple[int, str | None]]:
        """Each household's size and region (its head's row's: the first 户主, else its first row)."""
        persons: dict[str, set[Any]] = {}
        region: dict[str, str | None] = {}
        headed: set[str] = set()
        relations = self.column("relation") if "relation" in self.roll.columns else [None] * self.roll.height
        for (household, id_number, region_code), relation in zip(
                self.rows("household_id", "id_number", "region_code"), relations, strict=True):
            persons.setdefault(household, set()).add(id_number)
            if relation == HEAD_RELATION and household not in headed:
                headed.add(household)
                region[household] = region_code
            else:
                region.setdefault(household, region_code)
        return {household: (len(ids), region[household]) for household, ids in persons.items()}

    @cached_property
    def members(self) -> dict[str, set[str]]:
        members: dict[str, set[str]] = {}
        for household, id_number in self.valid("household_id", "id_number"):
            members.setdefault(household, set()).add(id_number)
        return members

    def households_in(self, programs: tuple[str, ...]) -> set[str]:
        """Households with a row (of any ID) in one of `programs` (worked out once: most screens ask)."""
        if programs not in self._households_in:
            self._households_in[programs] = {household for household, program in self.rows("household_id", "program")
                                             if program in programs}
        return self._households_in[programs]

    def settings(self, household: str) -> Settings:
        return self.policy.for_region(self.households[household][1])

    def records(self, key: str, *columns: str) -> dict[str, list[tuple[Any, ...]]]:
        """The source's records by ID, each the values of `columns` (none when it is not given)."""
        wanted = (key, *columns)
        if wanted not in self._records:
            frame = self.sources.get(key)
            found: dict[str, list[tuple[Any, ...]]] = {}
            if frame is not None and frame.height:
                values = [self._source_column(key, frame, c) for c in ("id_number", *columns)]
                for id_number, *record in zip(*values, strict=True):
                    found.setdefault(id_number, []).append(tuple(record))
            self._records[wanted] = found
        return self._records[wanted]

    def _source_column(self, key: str, frame: pl.DataFrame, name: str) -> list[Any]:
        """A source column's values, read once however many screens ask (hukou's by four)."""
        if (key, name) not in self._source_columns:
            self._source_columns[key, name] = frame.get_column(name).to_list()
        return self._source_columns[key, name]

    def member_records(self, key: str, programs: tuple[str, ...], *columns: str) -> Iterator[tuple[str, tuple]]:
        """(household, record) for each record of each member of the households in `programs`."""
        records = self.records(key, *columns)
        if not records:
            return
        wanted = self.households_in(programs)
        for household, ids in self.members.items():
            if household in wanted:
                for id_number in ids:
                    for record in records.get(id_number, ()):
                        yield household, record


# ---- the roll's own rules ---------------------------------------------------------------

def id_invalid(few: Few) -> bool:
    column = "roll_id_valid" if "roll_id_valid" in few.roll.columns else "id_valid"
    return not all(few.column(column))


def duplicate_enrollment(few: Few) -> bool:
    households: dict[str, set[str]] = {}
    rows_in_program: Counter[tuple[str, str]] = Counter()
    for household, id_number, program in few.valid("household_id", "id_number", "program"):
        households.setdefault(id_number, set()).add(household)
        rows_in_program[id_number, program] += 1
    return any(len(h) > 1 for h in households.values()) or any(n > 1 for n in rows_in_program.values())


def program_conflict(few: Few) -> bool:
    programs: dict[str, set[str]] = {}
    for id_number, program in few.valid("id_number", "program"):
        if program in DIBAO_TEKUN:
            programs.setdefault(id_number, set()).add(program)
    return any(len(p) > 1 for p in programs.values())


def elderly_underage(few: Few) -> bool:
    cutoff = born_after(few.as_of, 80)
    return any(program == "elderly" and id_number[6:14] > cutoff for id_number, program in few.valid("id_number", "program"))


def disability_living_without_dibao(few: Few) -> bool:
    supported = {id_number for id_number, program in few.valid("id_number", "program") if program in DIBAO_TEKUN}
    return any(program == "disability_living" and id_number not in supported
               for id_number, program in few.valid("id_number", "program"))


# ---- hukou and deaths -----------------------------------------------------------------

def hukou_not_found(few: Few) -> bool:
    held = few.records("hukou")
    return any(id_number not in held for id_number in few.valid_ids)


def name_mismatch(few: Few) -> bool:
    """Names compared by their keys, as the rule compares them (names.key is the rule's twin)."""
    held = few.records("hukou", "name")
    return any(name != hukou_name and (name is None or hukou_name is None or names.key(name) != names.key(hukou_name))
               for id_number, name in few.valid("id_number", "name") for (hukou_name,) in held.get(id_number, ()))


def moved_out(few: Few) -> bool:
    held = few.records("hukou", "status", "region_code")
    return any(status == "moved_out" or region is None or roll_region is None or region[:6] != roll_region[:6]
               for id_number, roll_region in few.valid("id_number", "region_code")
               for status, region in held.get(id_number, ()))


def deceased(few: Few) -> bool:
    def due(day: date | None) -> bool:
        return day is None or day <= few.as_of

    deaths, hukou = few.records("deaths", "death_date"), few.records("hukou", "status", "status_date")
    return any(
        any(due(day) for (day,) in deaths.get(id_number, ()))
        or any(status == "deceased" and due(day) for status, day in hukou.get(id_number, ()))
        for id_number in few.valid_ids
    )


def cadre_relative(few: Few) -> bool:
    held = few.records("cadre_relatives")
    return any(program in _CADRE_PROGRAMS and id_number in held
               for id_number, program in few.valid("id_number", "program"))


def incarcerated(few: Few) -> bool:
    as_of = few.as_of
    held = few.records("prisoners", "admitted_on", "released_on")
    return any(admitted is not None and admitted <= as_of and (released is None or released > as_of)
               for id_number in few.valid_ids for admitted, released in held.get(id_number, ()))


# ---- households' records and sums ---------------------------------------------------------

def vehicle_owned(few: Few) -> bool:
    return any(status == "normal" and (kind is None or kind not in few.settings(household).vehicle_exempt_types)
               for household, (status, kind) in few.member_records("vehicles", DIBAO_TEKUN, "status", "vehicle_type"))


def machinery_owned(few: Few) -> bool:
    return any(True for _ in few.member_records("farm_machinery", DIBAO_TEKUN))


def public_payroll(few: Few) -> bool:
    return any(True for _ in few.member_records("payroll", DIBAO_TEKUN))


def housing_fund_active(few: Few) -> bool:
    now = month_index(few.as_of)
    return any(
        last is not None and now - month_index(last) < few.settings(household).housing_fund_lookback_months
        for household, (last,) in few.member_records("housing_fund", DIBAO_TEKUN, "last_paid_month")
    )


def property_excess(few: Few) -> bool:
    """Any normal non-residential property, or more dwellings than allowed and more area per
    person than allowed (a co-owned flat counted once, at its largest recorded area)."""
    dwellings: dict[str, dict[Any, float | None]] = defaultdict(dict)
    for household, (status, usage, certificate, area) in few.member_records(
        "property", DIBAO_TEKUN, "status", "usage", "certificate_no", "area_m2"
    ):
        if status != "normal" or usage is None:
            continue
        if usage != "residential":
            return True
        largest = dwellings[household].get(certificate)
        dwellings[household][certificate] = area if largest is None else max(largest, area or largest)
    for household, flats in dwellings.items():
        settings = few.settings(household)
        if len(flats) <= settings.residential_max_count:
            continue
        size, _ = few.households[household]
        area = sum(a for a in flats.values() if a is not None)
        if area / size > settings.residential_area_per_capita_max - _CENT:
            return True
    return False


def medical_hardship(few: Few) -> bool:
    start, as_of = year_before(few.as_of), few.as_of
    totals: dict[str, float] = defaultdict(float)
    for household, (settled_on, amount) in few.member_records("medical", ("edge",), "settled_on", "out_of_pocket"):
        if settled_on is not None and start < settled_on <= as_of:
            totals[household] += amount or 0.0
    return any(total >= few.settings(household).medical_hardship_out_of_pocket - _CENT
               for household, total in totals.items())


def assets_over_limit(few: Few) -> bool:
    totals: dict[str, float] = defaultdict(float)
    for household, (balance,) in few.member_records("deposits", DIBAO_TEKUN, "balance"):
        totals[household] += balance or 0.0
    for household, total in totals.items():
        size, _ = few.households[household]
        settings = few.settings(household)
        if total > settings.dibao_monthly * size * settings.deposit_limit_months - _CENT:
            return True
    return False


def income_over_standard(few: Few) -> bool:
    dibao = few.households_in(("dibao",))
    declared: dict[tuple[str, Any], float] = {}
    for household, id_number, amount in few.rows("household_id", "id_number", "declared_income_monthly"):
        if household in dibao and amount is not None and amount > 0:
            declared[household, id_number] = max(amount, declared.get((household, id_number), amount))
    totals: dict[str, float] = defaultdict(float)
    for (household, _), amount in declared.items():
        totals[household] += amount
    for household, (kind, amount) in few.member_records("pensions", ("dibao",), "pension_type", "monthly_amount"):
        # A pension of no type is not counted by the rule (null is in no list): counting it errs
        # on the side of running the rule.
        if amount is not None and amount > 0 and kind not in few.settings(household).income_excluded_pension_types:
            totals[household] += amount
    for household, (salary,) in few.member_records("payroll", ("dibao",), "monthly_salary"):
        if salary is not None and salary > 0:
            totals[household] += salary
    return any(total / few.households[household][0] > few.settings(household).dibao_monthly - _CENT
               for household, total in totals.items())
