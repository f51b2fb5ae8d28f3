"""Unit tests of the plain business rules."""

from datetime import date

import pytest

from domain.cards import card_scheme, luhn_valid
from domain.iin import InvalidIIN, age_on, check_digit, parse_iin
from domain.ledger import UnbalancedTransaction, deposit_credit
from domain.phone import is_kz_mobile
from tests.conftest import make_iin


def test_iin_parses_birth_date_and_sex() -> None:
    iin = parse_iin(make_iin("900101", 3))
    assert iin.birth_date == date(1990, 1, 1)
    assert iin.sex == "male"


def test_iin_century_digit_selects_century() -> None:
    assert parse_iin(make_iin("000315", 5)).birth_date == date(2000, 3, 15)
    assert parse_iin(make_iin("990315", 2)).birth_date == date(1899, 3, 15)
    assert parse_iin(make_iin("990315", 4)).sex == "female"


def test_iin_check_digit_uses_second_weights_when_first_gives_ten() -> None:
    # Find a prefix where the first weights give 10, so the second set decides.
    for serial in range(1000, 9999):
        prefix = f"9001013{serial}"
        digits = [int(c) for c in prefix]
        if sum(d * w for d, w in zip(digits, range(1, 12), strict=True)) % 11 == 10:
            break
    second = (
        sum(d * w for d, w in zip(digits, (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2), strict=True)) % 11
    )
    if second == 10:
        assert check_digit(prefix) is None
    else:
        assert parse_iin(prefix + str(second)).birth_date == date(1990, 1, 1)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("12345", "12 digits"),
        ("90010131000a", "12 digits"),
        ("900101710004", "century"),
        ("901301310004", "birth date"),
        ("900101310005", "check digit"),
    ],
)
def test_iin_rejects(value: str, message: str) -> None:
    with pytest.raises(InvalidIIN, match=message):
        parse_iin(value)


def test_age_counts_birthdays() -> None:
    assert age_on(date(2005, 11, 25), date(2026, 11, 24)) == 20
    assert age_on(date(2005, 11, 24), date(2026, 11, 24)) == 21


@pytest.mark.parametrize(
    ("phone", "ok"),
    [
        ("+77011234567", True),
        ("+79161234567", False),
        ("87011234567", False),
        ("+7701123456", False),
    ],
)
def test_kz_mobile(phone: str, ok: bool) -> None:
    assert is_kz_mobile(phone) is ok


def test_luhn_and_scheme() -> None:
    assert luhn_valid("4242424242424242")
    assert not luhn_valid("4242424242424241")
    assert not luhn_valid("42424242")
    assert card_scheme("5555555555554444") == "mastercard"
    assert card_scheme("6200000000000005") == "unionpay"


def test_deposit_posting_balances_and_is_keyed_by_deposit() -> None:
    spec = deposit_credit(
        deposit_id="dep_1", player_id="pl_1", provider="halyk", amount_minor=500, currency="KZT"
    )
    assert spec.key == "deposit:dep_1:credit"
    assert {e.side.value for e in spec.entries} == {"D", "C"}
    same = deposit_credit(
        deposit_id="dep_1", player_id="pl_1", provider="halyk", amount_minor=500, currency="KZT"
    )
    other = deposit_credit(
        deposit_id="dep_1", player_id="pl_1", provider="halyk", amount_minor=501, currency="KZT"
    )
    assert spec.content_hash == same.content_hash != other.content_hash


def test_unbalanced_or_non_positive_entries_are_refused() -> None:
    with pytest.raises(UnbalancedTransaction):
        deposit_credit(
            deposit_id="dep_1", player_id="pl_1", provider="p", amount_minor=0, currency="KZT"
        )
