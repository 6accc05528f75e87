"""Local policy: the standards and limits a bureau sets (CONTRACTS §2).

Every value has the contract's default; a TOML file overrides `[defaults]` and adds `[[region]]`
entries whose settings apply to region codes starting with their `prefix` (longest prefix wins).
An unknown key or a value of the wrong type is an error naming it: a typo in a policy file would
otherwise silently leave the default in force.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import PolicyError, Problem

__all__ = ["Settings", "Policy", "load_policy", "parse_policy", "DEFAULT_POLICY"]


@dataclass(frozen=True)
class Settings:
    dibao_monthly: float = 800.0
    vehicle_exempt_types: tuple[str, ...] = ("disabled_mobility", "motorcycle")
    residential_max_count: int = 1
    residential_area_per_capita_max: float = 40.0
    deposit_limit_months: float = 24.0
    medical_hardship_out_of_pocket: float = 20000.0
    housing_fund_lookback_months: int = 3
    income_excluded_pension_types: tuple[str, ...] = ("resident",)


_FIELD_TYPES = {f.name: f.type for f in fields(Settings)}


@dataclass(frozen=True)
class Policy:
    defaults: Settings = field(default_factory=Settings)
    # (prefix, settings) sorted longest prefix first, so the first match is the one that wins.
    regions: tuple[tuple[str, Settings], ...] = ()

    def for_region(self, region_code: str | None) -> Settings:
        for prefix, settings in self.regions:
            if region_code and region_code.startswith(prefix):
                return settings
        return self.defaults

    def dibao_for(self, region_code: str | None) -> float:
        return self.for_region(region_code).dibao_monthly

    def region_table(self) -> list[tuple[str, Settings]]:
        """Prefixes with their settings, longest first, for vectorised lookups."""
        return list(self.regions)


DEFAULT_POLICY = Policy()


def _coerce(name: str, value: Any, where: str, problems: list[Problem], file: str) -> Any:
    kind = _FIELD_TYPES[name]
    expected = {"float": "a number", "int": "a whole number", "tuple[str, ...]": "a list of strings"}[
        kind
    ]
    ok = (
        (kind == "float" and isinstance(value, int | float) and not isinstance(value, bool))
        or (kind == "int" and isinstance(value, int) and not isinstance(value, bool))
        or (kind == "tuple[str, ...]" and isinstance(value, list) and all(isinstance(v, str) for v in value))
    )
    if not ok:
        problems.append(
            Problem(file, f"{where}.{name} must be {expected}, got {value!r} ({type(value).__name__})")
        )
        return None
    if kind == "float":
        if value < 0:
            problems.append(Problem(file, f"{where}.{name} must not be negative, got {value!r}"))
            return None
        return float(value)
    return tuple(value) if kind == "tuple[str, ...]" else value


def _settings(table: dict[str, Any], base: Settings, where: str, problems: list[Problem], file: str,
              allowed_extra: tuple[str, ...] = ()) -> Settings:
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key in allowed_extra:
            continue
        if key not in _FIELD_TYPES:
            problems.append(
                Problem(file, f"unknown key {where}.{key}; known keys: {', '.join(_FIELD_TYPES)}")
            )
            continue
        coerced = _coerce(key, value, where, problems, file)
        if coerced is not None:
            changes[key] = coerced
    return replace(base, **changes)


def parse_policy(text: str, file: str = "policy.toml") -> Policy:
    """A Policy from TOML text; every problem is collected before one PolicyError is raised."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{file} is not valid TOML: {exc}") from None
    problems: list[Problem] = []
    for key in data:
        if key not in ("defaults", "region"):
            problems.append(Problem(file, f"unknown section [{key}]; known: [defaults], [[region]]"))
    defaults_table = data.get("defaults", {})
    if not isinstance(defaults_table, dict):
        problems.append(Problem(file, "[defaults] must be a table"))
        defaults_table = {}
    defaults = _settings(defaults_table, Settings(), "defaults", problems, file)

    regions: list[tuple[str, Settings]] = []
    region_list = data.get("region", [])
    if not isinstance(region_list, list):
        problems.append(Problem(file, "[[region]] must be an array of tables"))
        region_list = []
    for index, table in enumerate(region_list, start=1):
        where = f"region[{index}]"
        prefix = table.get("prefix")
        if not isinstance(prefix, str) or not prefix.isdigit():
            problems.append(Problem(file, f"{where}.prefix must be a string of digits, got {prefix!r}"))
            continue
        regions.append(
            (prefix, _settings(table, defaults, where, problems, file, allowed_extra=("prefix",)))
        )
    prefixes = [p for p, _ in regions]
    for prefix in sorted({p for p in prefixes if prefixes.count(p) > 1}):
        problems.append(Problem(file, f"region prefix {prefix} is declared more than once"))
    if problems:
        raise PolicyError(f"the policy file {file} has {len(problems)} problem(s)", problems)
    regions.sort(key=lambda item: len(item[0]), reverse=True)
    return Policy(defaults, tuple(regions))


def load_policy(path: Path | str | None) -> Policy:
    """The policy in `path`, or the contract's defaults when no path is given."""
    if path is None:
        return DEFAULT_POLICY
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"policy file {path} cannot be read: {exc}") from None
    return parse_policy(text, path.name)
