"""`python -m risk.geoip_sample [PATH]`: write the sample IP-country database.

The engine reads IP countries from a MaxMind-format database (`maxminddb`, MaxMind's own reader)
at `PAY_GEOIP_DATABASE`. Production points it at a maintained country database in that format
(MaxMind GeoLite2-Country or GeoIP2-Country, or DB-IP's IP-to-Country Lite), refreshed by the
provider's updater. This module writes the small stand-in the development stack, the demo and the
tests use (`config/geoip/sample-country.mmdb`, checked in), with MaxMind's record layout
(`country.iso_code`), by a maintained writer library (`mmdb-writer`, a development dependency).
Its ranges are a handful of real Kazakh carriers' blocks and a few neighbours' and other
countries', enough for "is this Kazakhstan, and did it change"; they are not a GeoIP source.
"""

import sys
from pathlib import Path

SAMPLE_PATH = Path(__file__).resolve().parents[1] / "config" / "geoip" / "sample-country.mmdb"

COUNTRY_NAMES = {
    "KZ": "Kazakhstan",
    "RU": "Russia",
    "UZ": "Uzbekistan",
    "KG": "Kyrgyzstan",
    "US": "United States",
    "DE": "Germany",
    "NL": "Netherlands",
}
SAMPLE_RANGES: tuple[tuple[str, str], ...] = (
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
    ("2a03:32c0::/29", "KZ"),
    # Neighbours and elsewhere.
    ("5.3.0.0/16", "RU"),
    ("77.88.0.0/18", "RU"),
    ("95.24.0.0/13", "RU"),
    ("213.230.64.0/18", "UZ"),
    ("212.42.96.0/19", "KG"),
    ("3.0.0.0/9", "US"),
    ("8.8.8.0/24", "US"),
    ("185.220.100.0/22", "DE"),
    ("185.107.56.0/22", "NL"),
)


def write_sample(path: Path = SAMPLE_PATH) -> Path:
    from mmdb_writer import MMDBWriter  # development dependency: only this builder needs it
    from netaddr import IPSet

    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="KZPay-Sample-Country",
        languages=["en"],
        description={"en": "Sample IP-country ranges for development and tests; not GeoIP data"},
    )
    for network, country in SAMPLE_RANGES:
        record = {"country": {"iso_code": country, "names": {"en": COUNTRY_NAMES[country]}}}
        writer.insert_network(IPSet([network]), record)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.to_db_file(str(path))
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    written = write_sample(Path(args[0]) if args else SAMPLE_PATH)
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
