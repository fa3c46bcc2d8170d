"""Prefix equations: evaluation, undefined values, constants, malformed input, templates."""

from collections import Counter

import pytest

from smcbench.tasks.arithmetic.equations import (EquationError, canonical_constant, check_prefix, evaluate_prefix,
                                            is_complete_prefix, most_frequent_fitting, values_match)


def test_evaluate_simple_and_nested():
    assert evaluate_prefix(["-", "number0", "number1"], [8.0, 2.0]) == 6.0
    # * number0 + number1 number2 = 8 * (4 + 6)
    assert evaluate_prefix(["*", "number0", "+", "number1", "number2"], [8.0, 4.0, 6.0]) == 80.0
    # operand order matters: (a - b) / c vs a - b / c
    assert evaluate_prefix(["/", "-", "number0", "number1", "number2"], [10.0, 4.0, 2.0]) == 3.0
    assert evaluate_prefix(["-", "number0", "/", "number1", "number2"], [10.0, 4.0, 2.0]) == 8.0


def test_constants_in_equations():
    assert evaluate_prefix(["*", "number0", "12"], [3.0]) == 36.0
    assert evaluate_prefix(["*", "number0", "0.01"], [250.0]) == pytest.approx(2.5)
    assert evaluate_prefix(["+", "1.0", "100.0"], []) == 101.0
    assert canonical_constant("12.0") == canonical_constant("12") == "12"
    assert canonical_constant("0.010") == "0.01"


def test_division_by_zero_is_undefined_not_an_error():
    assert evaluate_prefix(["/", "number0", "number1"], [5.0, 0.0]) is None
    # undefined propagates through the enclosing operators
    assert evaluate_prefix(["+", "number2", "/", "number0", "-", "number1", "number1"], [1.0, 2.0, 3.0]) is None
    assert not values_match(None, 3.0)


def test_value_tolerance():
    assert values_match(1.0 / 3.0, 0.33334)
    assert not values_match(1.0 / 3.0, 0.3335)


@pytest.mark.parametrize("tokens, fragment", [
    (["+", "number0"], "incomplete"),
    (["number0", "number1"], "extra token"),
    (["+", "number0", "apples"], "unknown token 'apples'"),
    ([], "empty"),
])
def test_malformed_equations_raise(tokens, fragment):
    with pytest.raises(EquationError, match=fragment):
        check_prefix(tokens)
    assert not is_complete_prefix(tokens)


def test_mask_without_value_raises():
    with pytest.raises(EquationError, match="number2.*has no value"):
        evaluate_prefix(["+", "number0", "number2"], [1.0, 2.0])


def test_most_frequent_template_respects_available_numbers():
    counts = Counter({"+ number0 number2": 5, "- number0 number1": 3, "* number0 12": 1})
    assert most_frequent_fitting(counts, 3) == ["+", "number0", "number2"]
    assert most_frequent_fitting(counts, 2) == ["-", "number0", "number1"]
    assert most_frequent_fitting(counts, 1) == ["*", "number0", "12"]
