"""Identifier normalisation and hashing: TikTok's published vectors and properties."""

from __future__ import annotations

import hashlib
import re
import string

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from destination.tiktok import normalize
from destination.tiktok.normalize import (
    _fast_e164,
    _NotFast,
    _slow_e164,
    hash_email,
    hash_external_id,
    hash_name,
    hash_phone,
    hash_zip,
    is_sha256,
    normalize_email,
    normalize_phone,
    sha256_hex,
)

# tiktok-events-api.md § "Normalisation before SHA-256"
VECTORS = [
    (
        hash_email,
        " ALICE_abc@gmail.com ",
        "848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f",
    ),
    (
        hash_phone,
        "(+1)2133734253",
        "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd",
    ),
    (
        hash_external_id,
        "user_123",
        "80fba0ae1c48e3978e43e4efc365e14e12ea0c830ba8ba5b9a2dafc7e3f2ab8b",
    ),
]
HASHERS = [hash_email, hash_phone, hash_external_id, hash_name, hash_zip]
hex_digests = st.text(alphabet="0123456789abcdefABCDEF", min_size=64, max_size=64)


@pytest.mark.parametrize(("hasher", "raw", "digest"), VECTORS)
def test_published_vectors(hasher, raw, digest):
    assert hasher(raw) == digest


def test_phone_vector_normalises_to_e164():
    assert normalize_phone("(+1)2133734253") == "+12133734253"


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("(213) 373-4253", "US", "+12133734253"),
        ("1-213-373-4253", "US", "+12133734253"),
        ("+1 213 373 4253", "US", "+12133734253"),
        ("07911 123456", "GB", "+447911123456"),
        ("+44 (0)7911 123456", "US", "+447911123456"),
        ("+4407911123456", "US", "+447911123456"),
        ("+390612345678", "US", "+390612345678"),
        ("06 12 34 56 78", "FR", "+33612345678"),
    ],
)
def test_phone_forms(raw, region, e164):
    assert normalize_phone(raw, region) == e164
    assert hash_phone(raw, region) == hashlib.sha256(e164.encode()).hexdigest()


@pytest.mark.parametrize(
    "raw", ["", "n/a", "not a phone", "12", "555-1234", "+1 213", "+999 1234567"]
)
def test_non_phones_are_none(raw):
    assert normalize_phone(raw, "US") is None
    assert hash_phone(raw, "US") is None


@pytest.mark.parametrize("raw", ["", "   ", "alice", "@example.com", "alice@", "@"])
def test_non_emails_are_none(raw):
    assert normalize_email(raw) is None
    assert hash_email(raw) is None


@pytest.mark.parametrize("hasher", [hash_external_id, hash_name, hash_zip])
def test_empty_values_are_none(hasher):
    assert hasher("") is None
    assert hasher(" \t ") is None


def test_names_and_zip_lowercased_without_whitespace():
    assert hash_name(" Mary Ann ") == sha256_hex("maryann")
    assert hash_zip("SW1A 1AA") == sha256_hex("sw1a1aa")


def test_external_id_keeps_case():
    assert hash_external_id(" User_123 ") == sha256_hex("User_123")


@given(digest=hex_digests)
@example(digest="A" * 64)
def test_hashing_a_digest_is_identity(digest):
    for hasher in HASHERS:
        assert hasher(digest) == digest.lower()
        assert hasher(f"  {digest} ") == digest.lower()


@given(value=st.text(min_size=1, max_size=40))
def test_hash_is_idempotent(value):
    for hasher in HASHERS:
        digest = hasher(value)
        if digest is not None:
            assert is_sha256(digest)
            assert hasher(digest) == digest


def test_is_sha256():
    assert is_sha256("a" * 64)
    assert not is_sha256("a" * 63)
    assert not is_sha256("g" * 64)


# --- the E.164 fast path must agree with phonenumbers.parse --------------------------------

country_codes = st.sampled_from(sorted(COUNTRY_CODE_TO_REGION_CODE))


@st.composite
def e164_like(draw: st.DrawFn) -> str:
    code = draw(country_codes)
    rest = draw(st.text(alphabet=string.digits, min_size=4, max_size=14))
    return f"+{code}{rest}"


def _fast_or_slow(value: str) -> str | None:
    try:
        return _fast_e164(value)
    except _NotFast:
        return _slow_e164(value, "US")


@settings(max_examples=1500)
@given(value=st.one_of(e164_like(), st.text(alphabet="+0123456789 ", min_size=1, max_size=18)))
@example(value="+12133734253")
@example(value="+4407911123456")
@example(value="+112133734253")
@example(value="+390612345678")
@example(value="+5491123456789")
@example(value="+79161234567")
def test_fast_path_equals_slow_path(value):
    assert _fast_or_slow(value) == _slow_e164(value, "US")


@pytest.mark.parametrize("region", ["US", "GB", "DE", "IN", "BR"])
@given(value=e164_like())
def test_fast_path_ignores_region(region, value):
    # An E.164 value carries its country: the default region must not change it.
    assert normalize_phone.__wrapped__(value, region) == _slow_e164(value, region)


def test_fast_path_skips_parse(monkeypatch):
    calls = []
    real_parse = phonenumbers.parse

    def counting_parse(*args, **kwargs):
        calls.append(args)
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(phonenumbers, "parse", counting_parse)
    assert normalize_phone.__wrapped__("+14155550123", "US") == "+14155550123"
    assert normalize_phone.__wrapped__("+447911123456", "US") == "+447911123456"
    assert calls == []
    assert normalize_phone.__wrapped__("(415) 555-0123", "US") == "+14155550123"
    assert len(calls) == 1


def test_phone_results_are_cached():
    normalize_phone.cache_clear()
    normalize_phone("(415) 555-0177", "US")
    normalize_phone("(415) 555-0177", "US")
    assert normalize_phone.cache_info().hits == 1


def test_whitespace_removal_is_res_whitespace_for_every_code_point():
    # normalize_name/normalize_zip use str.split(); TikTok's rule is "remove
    # whitespace", which the module spelled as re's \s: both must agree everywhere.
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    expected = re.sub(r"\s+", "", every).lower()
    assert len(expected) < len(every) - 20  # it did remove the whitespace
    assert normalize.normalize_name(every) == expected
    assert normalize.normalize_zip(every) == expected


def _spelled_out(normalise):
    """A hasher as the spec states it: a digest passes through, else SHA-256 of the normal form."""

    def hasher(value, *region):
        stripped = value.strip()
        if normalize.is_sha256(stripped):
            return stripped.lower()
        normal = normalise(value, *region)
        return normalize.sha256_hex(normal) if normal else None

    return hasher


_HASHERS = [
    (normalize.hash_email, normalize.normalize_email),
    (normalize.hash_external_id, lambda value: value.strip()),
    (normalize.hash_name, normalize.normalize_name),
    (normalize.hash_zip, normalize.normalize_zip),
    (normalize.hash_phone, normalize.normalize_phone),
]


@settings(max_examples=300, deadline=None)
@given(
    value=st.text(max_size=70)
    | st.sampled_from(
        ["A" * 64, " " + "aB" * 32 + " ", "f" * 63 + "\u212a", "a@b", " +14155550123"]
    )
    | st.text(alphabet="0123456789abcdefABCDEF \u0130\u212a@", min_size=60, max_size=68)
)
def test_hashers_equal_their_spelled_out_definition(value):
    for hasher, normalise in _HASHERS:
        assert hasher(value) == _spelled_out(normalise)(value), hasher.__name__
