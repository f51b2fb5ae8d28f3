"""Kazakh IBANs: `KZ` + 2 check digits + 3-character bank code + 13-character account."""

import re

_KZ_IBAN = re.compile(r"KZ[0-9]{2}[0-9A-Z]{3}[0-9A-Z]{13}")


class InvalidIBAN(ValueError):
    pass


def normalize_iban(raw: str) -> str:
    return re.sub(r"\s+", "", raw).upper()


def mod97(iban: str) -> int:
    """ISO 13616: move the first four characters to the end, letters to 10..35, modulo 97."""
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97


def parse_kz_iban(raw: str) -> str:
    iban = normalize_iban(raw)
    if not _KZ_IBAN.fullmatch(iban):
        raise InvalidIBAN("a KZ IBAN is 20 characters: KZ, 2 check digits, bank code, account")
    if mod97(iban) != 1:
        raise InvalidIBAN("the IBAN's check digits do not match (mod-97 check failed)")
    return iban


def with_check_digits(bank_and_account: str) -> str:
    """A valid KZ IBAN for a 16-character bank code + account (used by tests and the demo)."""
    body = bank_and_account.upper()
    check = 98 - mod97(f"KZ00{body}")
    return f"KZ{check:02d}{body}"
