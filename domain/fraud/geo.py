"""Small static look-ups: IP ranges to countries, BINs to issuing countries, names on accounts.

The tables are deliberately small (a production deployment would load a GeoIP database and the
card schemes' BIN tables); they cover Kazakh ranges and a few neighbours, which is what the rules
need: "is this Kazakhstan, and did it change".
"""

import ipaddress
import re
import unicodedata
from functools import lru_cache

_IP_RANGES: tuple[tuple[str, str], ...] = (
    # Kazakhstan: Kazakhtelecom, Beeline KZ, Kcell, Tele2/Altel, Transtelecom.
    ("2.132.0.0/14", "KZ"),
    ("5.34.0.0/17", "KZ"),
    ("37.99.0.0/16", "KZ"),
    ("37.150.0.0/15", "KZ"),
    ("46.34.128.0/17", "KZ"),
    ("62.84.32.0/19", "KZ"),
    ("82.200.128.0/17", "KZ"),
    ("89.218.0.0/16", "KZ"),
    ("92.46.0.0/15", "KZ"),
    ("95.56.0.0/15", "KZ"),
    ("95.141.128.0/19", "KZ"),
    ("178.88.0.0/13", "KZ"),
    ("212.154.128.0/17", "KZ"),
    # Neighbours and elsewhere.
    ("5.3.0.0/16", "RU"),
    ("77.88.0.0/18", "RU"),
    ("95.24.0.0/13", "RU"),
    ("213.230.64.0/18", "UZ"),
    ("212.42.96.0/19", "KG"),
    ("3.0.0.0/9", "US"),
    ("8.8.8.0/24", "US"),
    ("185.220.100.0/22", "DE"),
)
_BINS: dict[str, str] = {
    # Kazakh issuers (Halyk, Kaspi, Forte, Jusan, BCC, Freedom, Bereke).
    "440563": "KZ",
    "400303": "KZ",
    "404932": "KZ",
    "410243": "KZ",
    "517792": "KZ",
    "539545": "KZ",
    "548601": "KZ",
    "440043": "KZ",
    "424242": "KZ",  # the sandbox's test card is issued in KZ
    # Foreign.
    "411111": "US",
    "555555": "RU",
    "427600": "RU",
    "220220": "RU",
    "622202": "CN",
}
_CYRILLIC = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяәғқңөұүһі",
        [
            "a",
            "b",
            "v",
            "g",
            "d",
            "e",
            "e",
            "zh",
            "z",
            "i",
            "i",
            "k",
            "l",
            "m",
            "n",
            "o",
            "p",
            "r",
            "s",
            "t",
            "u",
            "f",
            "kh",
            "ts",
            "ch",
            "sh",
            "sch",
            "-",
            "y",
            "-",
            "e",
            "yu",
            "ya",
            "a",
            "g",
            "k",
            "n",
            "o",
            "u",
            "u",
            "h",
            "i",
        ],
        strict=True,
    )
)


@lru_cache(maxsize=1)
def _networks() -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]:
    return tuple((ipaddress.ip_network(net), country) for net, country in _IP_RANGES)


def ip_country(ip: str | None) -> str | None:
    """The country of a public address from the table, or None (private, unknown, malformed)."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    for network, country in _networks():
        if address in network:
            return country
    return None


def bin_country(bin_: str | None, provider_country: str | None = None) -> str | None:
    """The issuing country: the provider's answer when it gave one, else the BIN table."""
    if provider_country:
        return provider_country.upper()
    if not bin_:
        return None
    return _BINS.get(bin_[:6])


def card_key(bin_: str | None, last4: str | None) -> str | None:
    """How a card is recognised across payments without its number: BIN and last four."""
    if not bin_ or not last4:
        return None
    return f"{bin_[:6]}:{last4}"


def _name_tokens(name: str) -> frozenset[str]:
    text = unicodedata.normalize("NFKC", name).casefold()
    text = "".join(_CYRILLIC.get(ch, ch) for ch in text).replace("-", "")
    text = text.replace("kh", "h").replace("yu", "iu").replace("ya", "ia").replace("y", "i")
    return frozenset(t for t in re.split(r"[^a-z]+", text) if len(t) > 1)


def names_match(player_name: str, holder_name: str) -> bool:
    """Same person by name: every word of the shorter name appears in the longer, in any order
    and script (Cyrillic is transliterated), so `TULEGENOVA AIGERIM` matches `Айгерим Тулегенова`.
    """
    player, holder = _name_tokens(player_name), _name_tokens(holder_name)
    if not player or not holder:
        return False
    shorter, longer = sorted((player, holder), key=len)
    return len(shorter) >= min(2, len(longer)) and shorter <= longer
