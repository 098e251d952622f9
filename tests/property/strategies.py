"""Shared Hypothesis settings and strategies for the property tests.

``PROPERTY`` keeps each test to a couple hundred examples, with no per-example deadline (the
first call of a renderer or a parser can be slow on a busy CI box) and ``derandomize`` so a run
is reproducible: the same examples every time, no flaky failures from a lucky seed.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

# What hostile posts try on every destination: Slack control sequences, ticket markup, HTML.
HOSTILE = (
    "<!channel>", "<!here>", "<!everyone>", "<@U024BE7LH>", "<#C0123|general>",
    "<https://evil.example|docs>", "<mailto:a@b.c|mail>", "@channel", "@here", "@everyone",
    "[~admin]", "[~accountid:123]", "@octocat", "@org/team", "#123", "owner/repo#1",
    "[docs](javascript:alert(1))", "![x](https://t.example/p.png)", "https://evil.example/x",
    "www.evil.example", "<script>alert(1)</script>", "<details>", "```", "`", "~~~", "{{code}}",
    "&", "&amp;", "&lt;", "<", ">", "|", "*bold*", "_it_", "\n", "\r\n", "\t", "\u202e", "\u200d",
    "\x00", "\x1b[31m", "- [ ] task", "> quote", "<!-- listener:abc -->", "😀", "👩‍👩‍👧",
)

hostile_text = st.lists(
    st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE)), max_size=12
).map("".join)
