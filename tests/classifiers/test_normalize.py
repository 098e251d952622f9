"""Tweet normalisation: what TweetEval-style models expect, and nothing else changed."""

from __future__ import annotations

import pytest

from classifiers.normalize import NormalizeSettings, normalize_text, normalize_texts


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("@AcmeSupport my order is late", "@user my order is late"),
        ("thanks @a_b1 and @Cd!", "thanks @user and @user!"),
        ("write to me@example.com", "write to me@example.com"),  # e-mail is not a mention
        ("see https://t.co/AbC123 now", "see http now"),
        ("old link http://example.com/x?y=1", "old link http"),
        ("www.example.com/page is down", "http is down"),
        ("HTTPS://EXAMPLE.COM shouting", "http shouting"),
        ("  lots\tof \n space  ", "lots of space"),
        ("fish &amp; chips &gt; salad", "fish & chips > salad"),
        ("love it 😍🔥 #blessed", "love it 😍🔥 #blessed"),
        ("@user already done http", "@user already done http"),
    ],
)
def test_default_normalisation(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_normalisation_is_idempotent() -> None:
    text = "@Bob check https://x.co/1 &amp; www.y.org #deal  now"
    once = normalize_text(text)
    assert normalize_text(once) == once == "@user check http & http #deal now"


def test_strip_hash_keeps_the_word() -> None:
    settings = NormalizeSettings(strip_hash=True)
    assert (
        normalize_text("#fail again, #1 in bad service", settings) == "fail again, 1 in bad service"
    )
    assert normalize_text("C# and &#35; stay", settings) == "C# and # stay"


def test_steps_can_be_switched_off() -> None:
    settings = NormalizeSettings(users=False, links=False, unescape_html=False)
    assert normalize_text("@Bob  http://x.co &amp;", settings) == "@Bob http://x.co &amp;"


def test_settings_round_trip_and_reject_unknown_keys() -> None:
    settings = NormalizeSettings(strip_hash=True)
    assert NormalizeSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(ValueError, match="lowercase"):
        NormalizeSettings.from_dict({"lowercase": True})


def test_batch_helper_keeps_order() -> None:
    assert normalize_texts(["@a hi", "b"]) == ["@user hi", "b"]
