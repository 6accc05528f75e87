from __future__ import annotations

import pytest

from engine.errors import PolicyError
from engine.policy import DEFAULT_POLICY, load_policy, parse_policy


def test_defaults_are_the_contract_values():
    d = DEFAULT_POLICY.defaults
    assert (d.dibao_monthly, d.residential_max_count, d.residential_area_per_capita_max) == (800, 1, 40.0)
    assert d.vehicle_exempt_types == ("disabled_mobility", "motorcycle")
    assert (d.deposit_limit_months, d.medical_hardship_out_of_pocket, d.housing_fund_lookback_months) == (
        24,
        20000,
        3,
    )
    assert d.income_excluded_pension_types == ("resident",)


def test_longest_region_prefix_wins_and_inherits_the_defaults():
    policy = parse_policy(
        """
        [defaults]
        dibao_monthly = 700
        deposit_limit_months = 12
        [[region]]
        prefix = "3203"
        dibao_monthly = 850
        [[region]]
        prefix = "320302"
        dibao_monthly = 880
        """
    )
    assert policy.dibao_for("320302001") == 880
    assert policy.dibao_for("320303001") == 850
    assert policy.dibao_for("110105") == 700
    assert policy.for_region("320302001").deposit_limit_months == 12


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[defaults]\ndibao_monthy = 800\n", "unknown key defaults.dibao_monthy"),
        ("[defaults]\ndibao_monthly = 'eight hundred'\n", "defaults.dibao_monthly must be a number"),
        ("[defaults]\nresidential_max_count = 1.5\n", "must be a whole number"),
        ("[defaults]\nvehicle_exempt_types = 'motorcycle'\n", "must be a list of strings"),
        ("[[region]]\nprefix = 320302\n", "region[1].prefix must be a string of digits"),
        ("[[region]]\nprefix = '3203'\n[[region]]\nprefix = '3203'\n", "declared more than once"),
        ("[defaults]\ndibao_monthly = -1\n", "must not be negative"),
        ("[limits]\nx = 1\n", "unknown section [limits]"),
        ("dibao_monthly = ", "not valid TOML"),
    ],
)
def test_a_wrong_policy_names_the_key(text, fragment):
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "policy.toml")
    assert fragment in str(caught.value)


def test_every_problem_is_reported_together():
    with pytest.raises(PolicyError) as caught:
        parse_policy("[defaults]\nfoo = 1\nbar = 2\ndibao_monthly = 'x'\n")
    assert len(caught.value.problems) == 3


def test_load_policy_reads_a_file_and_defaults_without_one(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('[defaults]\ndibao_monthly = 900\n', encoding="utf-8")
    assert load_policy(path).dibao_for("320303") == 900
    assert load_policy(None) is DEFAULT_POLICY
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "absent.toml")
