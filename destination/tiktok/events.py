"""TikTok's event names in one place, so actions and lint agree on them.

Offline events accept only standard names, web events accept any name but
only standard ones are optimised, and some standard names are on their way
out: lint warns about those, the action still sends them. Source:
docs/tiktok-events-api.md § "Standard web events".
"""

from __future__ import annotations

__all__ = ["RENAMED_EVENTS", "SOFT_DEPRECATED_EVENTS", "STANDARD_EVENTS", "is_standard_event"]

#: Every standard event name TikTok documents (case-sensitive), deprecated ones included.
STANDARD_EVENTS: frozenset[str] = frozenset(
    {
        "AddPaymentInfo",
        "AddToCart",
        "AddToWishlist",
        "ApplicationApproval",
        "ClickButton",
        "CompletePayment",
        "CompleteRegistration",
        "Contact",
        "CustomizeProduct",
        "Download",
        "FindLocation",
        "InitiateCheckout",
        "Lead",
        "PageView",
        "PlaceAnOrder",
        "Purchase",
        "Schedule",
        "Search",
        "StartTrial",
        "SubmitApplication",
        "SubmitForm",
        "Subscribe",
        "ViewContent",
    }
)

#: Standard names TikTok will sunset in 2027; lint warns, delivery still sends them.
SOFT_DEPRECATED_EVENTS: frozenset[str] = frozenset({"ClickButton", "PlaceAnOrder"})

#: Old name -> the name TikTok now prefers (both are still accepted).
RENAMED_EVENTS: dict[str, str] = {"CompletePayment": "Purchase", "SubmitForm": "Lead"}


def is_standard_event(name: str) -> bool:
    """True when ``name`` is one of TikTok's standard events (exact case)."""
    return name in STANDARD_EVENTS
