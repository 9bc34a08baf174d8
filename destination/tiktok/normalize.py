"""Normalising and SHA-256 hashing of personal identifiers, before they leave the process.

TikTok matches hashed identifiers against its own hashes, so a value is only
useful if it is normalised exactly as TikTok normalises (tiktok-events-api.md
§ "Normalisation before SHA-256"): a stray capital or space and the event
silently matches nobody. Raw email and phone numbers never go further than
this module: callers get the hex digest, or ``None`` when the value is not
usable (then they report it without echoing it).

Phone numbers go through the ``phonenumbers`` library, whose ``parse`` costs
about 15 µs. Most CDP phone values already are E.164, so a fast path reads
those with the library's own metadata (calling codes, national prefixes,
possible lengths) in about 1.5 µs. It only answers when ``parse`` would build
the same number (a known country code, no leading zero, no national prefix to
strip); everything else takes the slow path, and a hypothesis test checks
that both paths agree. Results are cached. The library itself (about 10 ms to
import) is loaded with the first phone number, not with this module.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

__all__ = [
    "hash_email",
    "hash_external_id",
    "hash_name",
    "hash_phone",
    "hash_zip",
    "is_sha256",
    "normalize_email",
    "normalize_name",
    "normalize_phone",
    "normalize_zip",
    "sha256_hex",
]

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_E164_CANDIDATE = re.compile(r"\+[1-9][0-9]{7,14}")
_CACHE_SIZE = 8192


_sha256 = hashlib.sha256


def sha256_hex(value: str) -> str:
    """The lowercase hex SHA-256 digest of ``value`` encoded as UTF-8."""
    return _sha256(value.encode("utf-8")).hexdigest()


def is_sha256(value: str) -> bool:
    """True when ``value`` already is a SHA-256 hex digest (64 hex characters, any case)."""
    return len(value) == 64 and _HEX64.fullmatch(value) is not None


def _passthrough(value: str) -> str | None:
    """The lowercased digest when ``value`` (trimmed) already is one, else None."""
    stripped = value.strip()
    if len(stripped) == 64 and _HEX64.fullmatch(stripped):
        return stripped.lower()
    return None


# --- email, external_id, names, zip -----------------------------------------------------


def normalize_email(value: str) -> str | None:
    """Trimmed and lowercased; None when it is not an address (no ``local@domain``)."""
    email = value.strip().lower()
    at = email.find("@")
    if at <= 0 or at == len(email) - 1:
        return None
    return email


def normalize_name(value: str) -> str:
    """First or last name: lowercased with every whitespace character removed."""
    # str.split() splits on exactly the characters re's \s matches (str.isspace),
    # in a third of the time of re.sub (a test checks every code point)
    return "".join(value.split()).lower()


def normalize_zip(value: str) -> str:
    """Postal code: lowercased with every whitespace character removed (``SW1A 1AA`` → ``sw1a1aa``)."""
    return "".join(value.split()).lower()


# The hashers call hashlib directly rather than sha256_hex, and the two that run on
# nearly every event (email, external_id) spell out the digest pass-through too:
# two Python calls fewer per value is a tenth of the hashing's cost.


def hash_email(value: str) -> str | None:
    """SHA-256 of the normalised address; a digest passes through; None if not an address."""
    email = value.strip().lower()
    if len(email) == 64 and _HEX64.fullmatch(email):
        return email
    at = email.find("@")
    if at <= 0 or at == len(email) - 1:
        return None
    return _sha256(email.encode("utf-8")).hexdigest()


def hash_external_id(value: str) -> str | None:
    """SHA-256 of the trimmed id (case kept: ids are case-sensitive); None when empty."""
    trimmed = value.strip()
    if len(trimmed) == 64 and _HEX64.fullmatch(trimmed):
        return trimmed.lower()
    return _sha256(trimmed.encode("utf-8")).hexdigest() if trimmed else None


def hash_name(value: str) -> str | None:
    """SHA-256 of :func:`normalize_name`; a digest passes through; None when empty."""
    digest = _passthrough(value)
    if digest is not None:
        return digest
    name = normalize_name(value)
    return _sha256(name.encode("utf-8")).hexdigest() if name else None


def hash_zip(value: str) -> str | None:
    """SHA-256 of :func:`normalize_zip`; a digest passes through; None when empty."""
    digest = _passthrough(value)
    if digest is not None:
        return digest
    code = normalize_zip(value)
    return _sha256(code.encode("utf-8")).hexdigest() if code else None


# --- phone -------------------------------------------------------------------------------


class _NotFast(Exception):
    """The fast path cannot vouch for this value; the slow path must decide."""


class _CountryRule:
    """What the fast path needs to know about one country calling code."""

    __slots__ = ("local_lengths", "national_prefix", "possible_lengths")

    def __init__(
        self,
        national_prefix: re.Pattern[str] | None,
        possible_lengths: frozenset[int],
        local_lengths: frozenset[int],
    ) -> None:
        self.national_prefix = national_prefix
        self.possible_lengths = possible_lengths
        self.local_lengths = local_lengths


#: calling code (as digits) -> its rule, or None when only the library can tell.
_COUNTRY_RULES: dict[str, _CountryRule | None] = {}
#: the library's calling code -> regions table, bound by _calling_codes() on first use
_CALLING_CODES: Mapping[int, Any] | None = None


def _calling_codes() -> Mapping[int, Any]:
    global _CALLING_CODES
    if _CALLING_CODES is None:
        from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

        _CALLING_CODES = COUNTRY_CODE_TO_REGION_CODE
    return _CALLING_CODES


def _country_rule(code: str) -> _CountryRule | None:
    """The rule for a calling code, read from the library's metadata on first use."""
    if code in _COUNTRY_RULES:
        return _COUNTRY_RULES[code]
    from phonenumbers import PhoneMetadata
    from phonenumbers.phonenumberutil import region_code_for_country_code

    rule = None
    country_code = int(code)
    region = region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    general = metadata.general_desc if metadata is not None else None
    if general is not None and general.possible_length:
        pattern = metadata.national_prefix_for_parsing  # type: ignore[union-attr]
        rule = _CountryRule(
            re.compile(pattern) if pattern else None,
            frozenset(general.possible_length),
            frozenset(general.possible_length_local_only or ()),
        )
    _COUNTRY_RULES[code] = rule
    return rule


def _fast_e164(value: str) -> str | None:
    """E.164 for a value that already looks like E.164, or None; raise _NotFast when unsure.

    Mirrors ``phonenumbers.parse`` + ``is_possible_number_with_reason``: the
    country code is the first 1-3 digit prefix that is a known calling code,
    and a number is possible when the length of its national number is one of
    the country's possible lengths and not a local-only one. parse would strip
    a national prefix (``+44 0…``) or keep leading zeros (Italy): those cases
    are left to the library.
    """
    candidate = value.strip()
    if _E164_CANDIDATE.fullmatch(candidate) is None:
        raise _NotFast
    codes = _CALLING_CODES or _calling_codes()
    for size in (1, 2, 3):
        if int(candidate[1 : size + 1]) in codes:
            break
    else:
        raise _NotFast
    national = candidate[size + 1 :]
    if national[0] == "0":
        raise _NotFast
    rule = _country_rule(candidate[1 : size + 1])
    if rule is None or (rule.national_prefix is not None and rule.national_prefix.match(national)):
        raise _NotFast
    length = len(national)
    if length in rule.possible_lengths and length not in rule.local_lengths:
        return candidate
    return None


def _slow_e164(value: str, region: str) -> str | None:
    """E.164 through ``phonenumbers.parse`` with ``region`` for local numbers, or None."""
    import phonenumbers
    from phonenumbers import PhoneNumberFormat
    from phonenumbers.phonenumberutil import ValidationResult, is_possible_number_with_reason

    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if is_possible_number_with_reason(number) != ValidationResult.IS_POSSIBLE:
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


@lru_cache(maxsize=_CACHE_SIZE)
def normalize_phone(value: str, region: str = "US") -> str | None:
    """E.164 (``+12133734253``) or None when ``value`` is not a possible phone number.

    A full number is accepted only when its length is possible for its
    country; a local number without area code is not (TikTok cannot match
    it). ``region`` (ISO 3166 alpha-2) is used for numbers without ``+``.
    """
    try:
        return _fast_e164(value)
    except _NotFast:
        return _slow_e164(value, region)


def hash_phone(value: str, region: str = "US") -> str | None:
    """SHA-256 of the E.164 form; a digest passes through; None when not a phone number."""
    if len(value) >= 64:
        digest = _passthrough(value)
        if digest is not None:
            return digest
    e164 = normalize_phone(value, region)
    return _sha256(e164.encode("utf-8")).hexdigest() if e164 is not None else None
