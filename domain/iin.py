"""Kazakhstan IIN: 12 digits carrying the birth date, a century/sex digit and a check digit."""

from dataclasses import dataclass
from datetime import date

_WEIGHTS_1 = tuple(range(1, 12))
_WEIGHTS_2 = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)
_CENTURY = {1: 1800, 2: 1800, 3: 1900, 4: 1900, 5: 2000, 6: 2000}


class InvalidIIN(ValueError):
    """The IIN is malformed; the message says which part."""


@dataclass(frozen=True)
class IIN:
    value: str
    birth_date: date
    sex: str  # "male" | "female"

    @property
    def masked(self) -> str:
        """What logs may show: birth date part hidden, last four kept."""
        return "********" + self.value[-4:]


def check_digit(first_eleven: str) -> int | None:
    digits = [int(c) for c in first_eleven]
    for weights in (_WEIGHTS_1, _WEIGHTS_2):
        remainder = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
        if remainder != 10:
            return remainder
    return None


def parse_iin(value: str) -> IIN:
    if len(value) != 12 or not value.isascii() or not value.isdigit():
        raise InvalidIIN("IIN must be exactly 12 digits")
    century_digit = int(value[6])
    if century_digit not in _CENTURY:
        raise InvalidIIN("IIN digit 7 (century and sex) must be 1-6")
    year = _CENTURY[century_digit] + int(value[0:2])
    try:
        born = date(year, int(value[2:4]), int(value[4:6]))
    except ValueError as exc:
        raise InvalidIIN("IIN digits 1-6 are not a valid birth date (YYMMDD)") from exc
    expected = check_digit(value[:11])
    if expected is None or expected != int(value[11]):
        raise InvalidIIN("IIN check digit does not match")
    return IIN(value=value, birth_date=born, sex="male" if century_digit % 2 else "female")


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))
