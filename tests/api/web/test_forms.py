"""The review form's amounts and problems as a caseworker types and reads them (no browser)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.schemas import EventIn
from api.web.flags import _invalid, _number

AMOUNTS = [  # {description, typed, expected: yuan, or the start of the message}
    {"description": "empty: not given", "typed": "  ", "expected": None},
    {"description": "plain", "typed": "600", "expected": 600.0},
    {"description": "decimals", "typed": "1200.50", "expected": 1200.5},
    {"description": "thousands grouped", "typed": "1,200.50", "expected": 1200.5},
    {"description": "full-width digits and comma", "typed": "１，２００", "expected": 1200.0},
    {"description": "a yuan sign and 元", "typed": "￥880元", "expected": 880.0},
    {"description": "commas that group nothing", "typed": "1,2,3", "expected": "核实月收入须为金额"},
    {"description": "a full-width comma for a point", "typed": "600，50", "expected": "核实月收入须为金额"},
    {"description": "text", "typed": "abc", "expected": "核实月收入须为金额"},
    {"description": "not a number", "typed": "nan", "expected": "核实月收入须为金额"},
    {"description": "infinite", "typed": "inf", "expected": "核实月收入须为金额"},
    {"description": "negative", "typed": "-5", "expected": "核实月收入不能为负数"},
    {"description": "over the limit", "typed": "100000001", "expected": "核实月收入不能超过 100,000,000 元"},
]


@pytest.mark.parametrize("case", AMOUNTS, ids=[c["description"] for c in AMOUNTS])
def test_amounts(case):
    if case["expected"] is None or isinstance(case["expected"], float):
        assert _number("核实月收入", case["typed"]) == case["expected"]
    else:
        with pytest.raises(ValueError) as refused:
            _number("核实月收入", case["typed"])
        assert str(refused.value).startswith(case["expected"])


PROBLEMS = [  # {description, body, expected}
    {"description": "a visit with nothing recorded",
     "body": {"action": "visit"}, "expected": "请填写核实月收入、核实月支出、生活状况、备注（至少一项）"},
    {"description": "a dismissal without its reason", "body": {"action": "dismiss"}, "expected": "请填写理由"},
    {"description": "a reason of spaces", "body": {"action": "dismiss", "reason": "  "}, "expected": "理由不能只有空白"},
    {"description": "an unknown confirmation", "body": {"action": "confirm", "confirm_action": "burn"},
     "expected": "处理方式的选项无效"},
]


@pytest.mark.parametrize("case", PROBLEMS, ids=[c["description"] for c in PROBLEMS])
def test_problems_are_chinese(case):
    with pytest.raises(ValidationError) as refused:
        EventIn(**case["body"])
    message = _invalid(refused.value)
    assert case["expected"] in message
    assert not any("a" <= ch.lower() <= "z" for ch in message), message


OFFERED = [  # {description, role, status, expected: the review actions the page offers}
    {"description": "an open flag, caseworker", "role": "caseworker", "status": "open",
     "expected": ["assign", "visit", "confirm", "dismiss"]},
    {"description": "a confirmed flag, caseworker: appeal only", "role": "caseworker", "status": "confirmed",
     "expected": ["appeal"]},
    {"description": "a confirmed flag, supervisor", "role": "supervisor", "status": "confirmed",
     "expected": ["appeal", "resolve", "reopen"]},
    {"description": "an appealed flag, caseworker: gathers facts, does not decide", "role": "caseworker",
     "status": "appealed", "expected": ["assign", "visit"]},
    {"description": "a dismissed flag, caseworker", "role": "caseworker", "status": "dismissed",
     "expected": ["reopen"]},
    {"description": "a resolved flag, caseworker", "role": "caseworker", "status": "resolved",
     "expected": ["appeal"]},
    {"description": "an auditor acts on nothing", "role": "auditor", "status": "open", "expected": []},
]


@pytest.mark.parametrize("case", OFFERED, ids=[c["description"] for c in OFFERED])
def test_the_page_offers_what_the_role_may_do(case):
    from api.deps import Principal
    from api.web.flags import _review_actions

    assert _review_actions(Principal("某人", case["role"], "320303001"), case["status"]) == case["expected"]
