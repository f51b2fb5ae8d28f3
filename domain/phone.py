"""Kazakh mobile numbers share +7 with Russia; only `+77` and nine digits is a Kazakh mobile."""

import re

_KZ_MOBILE = re.compile(r"\+77[0-9]{9}")


def is_kz_mobile(phone: str) -> bool:
    return _KZ_MOBILE.fullmatch(phone) is not None
