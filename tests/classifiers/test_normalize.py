"""Tweet normalisation: what TweetEval-style models expect, and nothing else changed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _by_the_patterns(text: str, settings: NormalizeSettings) -> str:
    """The normalisation as the patterns alone define it: every regex on every text. The
    served one skips a pattern where a text cannot hold a match; it must never differ."""
    import html

    from classifiers.normalize import _HASHTAG, _MENTION, _SPACE, _URL

    if settings.unescape_html:
        text = html.unescape(text)
    if settings.links:
        text = _URL.sub("http", text)
    if settings.users:
        text = _MENTION.sub("@user", text)
    if settings.strip_hash:
        text = _HASHTAG.sub(r"\1", text)
    return _SPACE.sub(" ", text).strip()


_PIECES = ["http", "HTTPS://", "hTTp://x.y", "www.", "WWW.Ex", "wWw.a", "://", "@", "@a_1",
           "me@x.com", "#", "#tag", "&#35;x", "&amp;", "&", " ", "\t", "\n", "\u00a0", "\u2028",
           "\u3000", "\x1c", "\x1f", "\x85", "\u200b", "ſ", "K", "İ", "ı", "é", "😡", "a", "Z",
           ".", "/", ":", "1", "_"]


@settings(max_examples=3000, deadline=None)
@given(pieces=st.lists(st.sampled_from(_PIECES) | st.text(max_size=3), max_size=12),
       flags=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()))
def test_the_shortcuts_change_nothing(pieces: list[str], flags: tuple[bool, ...]) -> None:
    chosen = NormalizeSettings(*flags)
    text = "".join(pieces)
    assert normalize_text(text, chosen) == _by_the_patterns(text, chosen)


def test_every_white_space_character_is_one_space_as_before() -> None:
    import sys

    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    assert len(spaces) > 20
    for space in spaces:
        text = f"{space}a{space}{space}b{space}"
        assert normalize_text(text) == _by_the_patterns(text, NormalizeSettings()) == "a b"
        for one in (f"a{space}b", f"{space}ab", f"ab{space}"):  # the single-spaced shortcut
            assert normalize_text(one) == _by_the_patterns(one, NormalizeSettings())
    # what makes the shortcut exact: printable text holds no white space but " "
    assert [c for c in spaces if c.isprintable()] == [" "]
