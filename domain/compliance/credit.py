"""Credit money may not fund gambling (the government's 2020 instruction to ban gambling
deposits with credit cards; the regulator's 2023 draft on lending to active gamblers).

Two ways a deposit is known to be credit-funded:

- a card whose BIN is a credit (or charge) product (`domain.cards.card_product`): refused in
  the request, before anything reaches a provider (`credit_funds_not_allowed`);
- a Kaspi payment that Kaspi reports as paid with Kaspi Red, a Kredit or instalments (the
  status answer's `ProductType`, `LoanOfferName`, `LoanTerm`; `funding.financed`): known only
  once paid, so the deposit is not credited, the money is refunded at Kaspi and a case opened.
"""

from collections.abc import Mapping
from typing import Any

from domain.cards import CREDIT_PRODUCTS, card_product

REFUSAL_CODE = "credit_funds_not_allowed"


def card_is_credit(bin_: str | None) -> bool:
    product = card_product(bin_)
    return product is not None and product in CREDIT_PRODUCTS


def funding_is_credit(funding: Mapping[str, Any] | None) -> bool:
    """The provider reported the payment as financed (credit, loan or instalments)."""
    return bool(funding) and funding is not None and funding.get("financed") is True


def funding_label(funding: Mapping[str, Any] | None) -> str:
    """A short label of the credit product for a status reason (`Red`, `Loan 0-0-3`, ...)."""
    if not funding:
        return "credit"
    parts = [str(funding.get(k)) for k in ("product_type", "loan_offer_name") if funding.get(k)]
    return " ".join(parts) or "credit"
