"""Where a payment comes from and whose it is: IP countries, BIN countries, card identity, names.

- IP countries come from a MaxMind-format database (MaxMind's `maxminddb` reader) at
  `PAY_GEOIP_DATABASE`; without one, the sample database of `risk.geoip_sample` (development and
  tests). Production points it at a maintained country database (GeoLite2/GeoIP2-Country,
  DB-IP's IP-to-Country Lite).
- A card is its fingerprint: HMAC-SHA256 of the PAN under a secret, computed in the API before
  the PAN is tokenized (`card_fingerprint`); payments recorded before keep `BIN:last4`.
- Names are compared across scripts: both sides are transliterated to ASCII by `anyascii`
  (Kazakh letters included: schwa, ghayn, qaf, eng, barred o, straight u with and
  without stroke, shha, dotted i), then the spelling variants of
  romanization are folded (q/k, kh/h, y/i, ...), and the words compared in any order.
"""

import hashlib
import hmac
import ipaddress
import re
import threading
import unicodedata
from pathlib import Path
from typing import Any

import maxminddb
from anyascii import anyascii

SAMPLE_DATABASE = Path(__file__).resolve().parents[2] / "config" / "geoip" / "sample-country.mmdb"

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


class IpCountries:
    """Country of an address from a MaxMind-format database (`country.iso_code`, as GeoIP2,
    GeoLite2 and DB-IP's country databases have it; a plain `country` string is read too)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader = maxminddb.open_database(str(path))

    def country(self, ip: str | None) -> str | None:
        """ISO 3166 code of a public address, or None (private, unknown, malformed)."""
        if not ip:
            return None
        try:
            address = ipaddress.ip_address(ip.strip())
        except ValueError:
            return None
        if not address.is_global:
            return None
        record: Any = self._reader.get(address)
        if not isinstance(record, dict):
            return None
        country = record.get("country")
        if isinstance(country, dict):
            country = country.get("iso_code")
        return country.upper() if isinstance(country, str) and len(country) == 2 else None

    def close(self) -> None:
        self._reader.close()


_lock = threading.Lock()
_database_path: Path = SAMPLE_DATABASE
_countries: IpCountries | None = None


def use_ip_database(path: Path | None) -> None:
    """Read IP countries from `path` from now on (None: the sample database)."""
    global _database_path, _countries
    with _lock:
        wanted = path or SAMPLE_DATABASE
        if _countries is not None and _countries.path == wanted:
            return
        _database_path, _countries = wanted, None


def ip_countries() -> IpCountries:
    global _countries
    with _lock:
        if _countries is None:
            _countries = IpCountries(_database_path)
        return _countries


def ip_country(ip: str | None) -> str | None:
    """The country of a public address, from the configured database."""
    return ip_countries().country(ip)


def valid_ip(ip: str | None) -> str | None:
    """The address in its canonical form, or None when it is not an IP address."""
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        return None


def bin_country(bin_: str | None, provider_country: str | None = None) -> str | None:
    """The issuing country: the provider's answer when it gave one, else the BIN table."""
    if provider_country:
        return provider_country.upper()
    if not bin_:
        return None
    return _BINS.get(bin_[:6])


def card_fingerprint(pan: str, secret: str) -> str:
    """The card's identity across payments and players: HMAC-SHA256 of its digits, hex. Two
    cards of one BIN with the same last four digits are different cards; the PAN cannot be
    recovered from it without the secret."""
    digits = "".join(ch for ch in pan if ch.isdigit())
    return hmac.new(secret.encode(), digits.encode(), hashlib.sha256).hexdigest()


def card_key(bin_: str | None, last4: str | None, fingerprint: str | None = None) -> str | None:
    """How a card is recognised across payments without its number: its fingerprint, or (cards
    recorded before fingerprints) BIN and last four."""
    if fingerprint:
        return fingerprint
    if not bin_ or not last4:
        return None
    return f"{bin_[:6]}:{last4}"


# Romanizations differ (passport ICAO, Kazakh Latin 2021, anyascii's): fold them together.
_FOLDS = (
    ("shch", "sh"),
    ("sch", "sh"),
    ("zh", "j"),
    ("dj", "j"),
    ("kh", "h"),
    ("gh", "g"),
    ("ng", "n"),
    ("ts", "c"),
    ("tz", "c"),
    ("ch", "c"),
    ("sh", "s"),
    ("x", "ks"),
    ("q", "k"),
    ("w", "v"),
    ("yu", "iu"),
    ("ju", "iu"),
    ("ya", "ia"),
    ("ja", "ia"),
    ("yo", "e"),
    ("jo", "e"),
    ("y", "i"),
    ("ii", "i"),
)


def _fold(word: str) -> str:
    for old, new in _FOLDS:
        word = word.replace(old, new)
    return re.sub(r"(.)\1+", r"\1", word)  # doubled letters: Nurlann, Assel


def name_tokens(name: str) -> tuple[str, ...]:
    """The words of a name, in ASCII and folded; one-letter words are initials."""
    text = anyascii(unicodedata.normalize("NFKC", name)).casefold()
    text = text.replace("'", "").replace("`", "")
    return tuple(_fold(t) for t in re.split(r"[^a-z]+", text) if t)


def names_match(player_name: str, holder_name: str) -> bool:
    """Same person by name: every word of the shorter name is a word of the longer one (an
    initial matches a word it begins), in any order and script, with at least two words and one
    of them whole. `TULEGENOVA AIGERIM` and `A. TULEGENOVA` match `Айгерим Тулегенова`;
    `AIGERIM` alone does not."""
    player, holder = name_tokens(player_name), name_tokens(holder_name)
    if not player or not holder:
        return False
    # The name with fewer words (of two as long, the one with initials) is looked up in the other.
    shorter, longer = sorted((player, holder), key=lambda t: (len(t), -sum(len(w) == 1 for w in t)))
    if len(shorter) < min(2, len(longer)):
        return False
    remaining = list(longer)
    whole = 0
    for token in sorted(shorter, key=len, reverse=True):  # whole words first, then initials
        if len(token) > 1 and token in remaining:
            remaining.remove(token)
            whole += 1
            continue
        initial = next((w for w in remaining if len(token) == 1 and w.startswith(token)), None)
        if initial is None:
            return False
        remaining.remove(initial)
    return whole >= 1
