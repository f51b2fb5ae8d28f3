"""Card number checks done before anything leaves the request, and what a BIN says about the
card (its funding source: debit, credit, charge, prepaid)."""

from typing import Literal


def luhn_valid(number: str) -> bool:
    if not number.isascii() or not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def card_scheme(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or "2221" <= number[:4] <= "2720":
        return "mastercard"
    if number.startswith("62"):
        return "unionpay"
    return "unknown"


CardProduct = Literal["debit", "credit", "charge", "prepaid"]
# Funding source by BIN (the first six digits). In production the card schemes' BIN tables
# (Visa's and Mastercard's account funding source) are loaded here; these entries are the
# sandbox's test cards, so every path can be tried. A BIN not listed is not known to be credit.
BIN_PRODUCTS: dict[str, CardProduct] = {
    "424242": "debit",  # 4242 4242 4242 4242: the sandbox's approved card
    "400000": "debit",  # the sandbox's declining cards (4000 0000 0000 0002, ...0069)
    "401288": "credit",  # 4012 8888 8888 1881: a Visa credit test card
    "510510": "credit",  # 5105 1051 0510 5100: a Mastercard credit test card
    "378282": "charge",  # 3782 822463 10005: an American Express charge test card
}
CREDIT_PRODUCTS: frozenset[CardProduct] = frozenset({"credit", "charge"})


def card_product(bin_: str | None) -> CardProduct | None:
    """The card's funding source from the BIN table, or None when the BIN is not listed."""
    if not bin_:
        return None
    return BIN_PRODUCTS.get(bin_[:6])
