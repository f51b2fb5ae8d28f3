"""Custom search attributes operators filter on in the Temporal Web UI. No personal data here."""

from temporalio.common import SearchAttributeKey

PAYMENT_STATUS = SearchAttributeKey.for_keyword("PaymentStatus")
PAYMENT_METHOD = SearchAttributeKey.for_keyword("PaymentMethod")
PROVIDER = SearchAttributeKey.for_keyword("Provider")
PLAYER_ID = SearchAttributeKey.for_keyword("PlayerId")
AMOUNT_MINOR = SearchAttributeKey.for_int("AmountMinor")
# A withdrawal review that waited too long: `Escalated=true` in the Web UI.
ESCALATED = SearchAttributeKey.for_bool("Escalated")

ALL: tuple[SearchAttributeKey[str] | SearchAttributeKey[int] | SearchAttributeKey[bool], ...] = (
    PAYMENT_STATUS,
    PAYMENT_METHOD,
    PROVIDER,
    PLAYER_ID,
    AMOUNT_MINOR,
    ESCALATED,
)
