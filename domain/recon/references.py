"""Finding our reference in what a payer typed, and recognising a payer by IIN or name.

A bank transfer's purpose is free text: "Deposit DEP_4F3A 9B2C..., thanks", "oplata dep_4f3a9b2c…".
The payer may change case, split the id with spaces or dashes, or add words around it; the
reference is found in it all the same, and only a reference our store knows is taken.
"""

import re
import unicodedata

# Our deposit ids are `dep_` + 24 hex digits (domain/ids.py). Separators a payer may type
# between the digits: spaces, dashes, dots; the id must not run on into another word.
_HEX_RUN = r"((?:[0-9a-f][\s\-.]*){23}[0-9a-f])(?![0-9a-z])"
_PREFIXED = re.compile(r"(?<![0-9a-z])d\s*e\s*p[\s_\-:#.]*" + _HEX_RUN)
_BARE = re.compile(r"(?<![0-9a-z_])" + _HEX_RUN)
_SEPARATORS = re.compile(r"[\s\-.]")
_MAX_PURPOSE = 2_000


def purpose_references(purpose: str | None, *, prefix: str = "dep") -> list[str]:
    """Candidate references named in a transfer's purpose, best first (an explicit `dep_` id
    before a bare run of 24 hex digits); each one normalised to our spelling."""
    if not purpose:
        return []
    text = unicodedata.normalize("NFKC", purpose[:_MAX_PURPOSE]).casefold()
    found: list[str] = []
    for pattern in (_PREFIXED, _BARE):
        for match in pattern.finditer(text):
            reference = f"{prefix}_{_SEPARATORS.sub('', match.group(1))}"
            if reference not in found:
                found.append(reference)
    return found


def iin_key(iin: str | None) -> str | None:
    """`iin:<12 digits>`, or None when the field holds no IIN."""
    if not iin:
        return None
    digits = re.sub(r"\D", "", iin)
    return f"iin:{digits}" if len(digits) == 12 else None


def name_key(name: str | None) -> str | None:
    """`name:<words sorted>`: case, accents, punctuation and word order do not matter
    ("TULEGENOVA AIGERIM" is "Aigerim Tulegenova"). None for fewer than two words."""
    if not name:
        return None
    text = unicodedata.normalize("NFKD", name[:200]).casefold()
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    words = sorted(w for w in re.split(r"[^\w]+", text) if w and not w.isdigit())
    return "name:" + " ".join(words) if len(words) >= 2 else None
