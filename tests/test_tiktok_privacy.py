"""Properties: no raw email or phone leaves the process, and hashing twice changes nothing."""

from __future__ import annotations

import re
import string

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from destination.errors import PayloadError
from destination.tiktok.destination import TikTokDestination
from destination.tiktok.settings import load_settings

NOW = 1705708800
TIME = 1705320000
DEST = TikTokDestination(clock=lambda: NOW)
WEB = DEST.actions["report_web_event"]
SETTINGS = load_settings({"access_token": "tok-privacy", "pixel_code": "CPIX"}, {})

digits = st.text(alphabet=string.digits, min_size=7, max_size=12)
separators = st.sampled_from(["", " ", "-", ".", ") "])


@st.composite
def phones(draw: st.DrawFn) -> str:
    number = draw(digits)
    style = draw(st.integers(0, 3))
    if style == 0:
        return "+" + number
    if style == 1:
        sep = draw(separators)
        return f"({number[:3]}{sep}{number[3:6]}-{number[6:]}"
    if style == 2:
        return "+1 " + " ".join(re.findall(".{1,3}", number))
    return number


def _runs(value: str, length: int = 7) -> set[str]:
    only = re.sub(r"\D", "", value)
    return {only[i : i + length] for i in range(len(only) - length + 1)}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(email=st.emails(), phone=phones(), second=phones())
def test_no_raw_email_or_phone_in_the_request(email, phone, second):
    runs = _runs(phone) | _runs(second)
    assume(not any(run in str(TIME) for run in runs))
    payload = {
        "event": "Purchase",
        "event_id": "evt-1",
        "timestamp": TIME,
        "email": [email, email.upper()],
        "phone": [phone, second],
        "external_id": "user-1",
    }
    built = WEB.build(payload, SETTINGS)
    request = DEST.build_request(SETTINGS, built.route, [built.item])
    text = request.body.decode() + request.url + repr(request.headers)
    shown = " ".join(str(w) for w in built.warnings)
    for raw in (email, email.lower(), email.upper()):
        assert raw not in text and raw not in shown
    for run in runs:
        assert run not in text, run
        assert run not in shown, run


@settings(max_examples=150)
@given(phone=phones())
def test_no_raw_phone_in_a_payload_error(phone):
    assume(not any(run in str(TIME) for run in _runs(phone)))
    payload = {"event": "Purchase", "event_id": "e", "timestamp": TIME, "phone": phone}
    try:
        built = WEB.build(payload, SETTINGS)
    except PayloadError as error:
        message = str(error)
    else:
        message = " ".join(str(w) for w in built.warnings) + repr(built.item)
    for run in _runs(phone):
        assert run not in message


@settings(max_examples=150)
@given(
    email=st.emails(),
    phone=phones(),
    external_id=st.text(min_size=1, max_size=20).filter(str.strip),
    first_name=st.text(min_size=1, max_size=15).filter(str.strip),
    zip_code=st.text(
        alphabet=string.ascii_letters + string.digits + " ", min_size=1, max_size=9
    ).filter(str.strip),
)
def test_building_from_hashed_identifiers_is_identity(
    email, phone, external_id, first_name, zip_code
):
    payload = {
        "event": "Lead",
        "event_id": "e",
        "timestamp": TIME,
        "email": email,
        "phone": phone,
        "external_id": external_id,
        "first_name": first_name,
        "zip_code": zip_code,
    }
    user = WEB.build(payload, SETTINGS).item["user"]
    again_payload = {"event": "Lead", "event_id": "e", "timestamp": TIME}
    for key, value in user.items():
        again_payload[key] = value
    again = WEB.build(again_payload, SETTINGS).item["user"]
    assert again == user
