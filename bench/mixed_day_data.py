"""Synthetic posts for a realistic mixed day of two brands (``bench/mixed_day.py``, tests).

Written for this project, not copied from anywhere: customers of two cloud brands, "Acme Cloud"
and "Globex", writing as people do on social platforms — praise, questions, billing and login
trouble, feature requests — plus an outage of Acme in which hundreds of customers report the
same problem in many different words within minutes, some posts about both brands, and a month
of history. Deterministic for a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

ACME_QUERY = '("acme cloud" OR @AcmeCloud OR acmecloud OR (acme (outage OR down OR status)))'
GLOBEX_QUERY = '(globex OR @GlobexHQ)'

OUTAGE_SUBJECTS = [
    "Acme Cloud", "acme cloud", "@AcmeCloud", "ACME CLOUD", "AcmeCloud", "#acmecloud",
    "acme cloud's dashboard", "the acme cloud API", "acme cloud console", "@AcmeCloud's status page",
]
OUTAGE_PROBLEMS = [
    "is down", "is down again", "down?", "is completely down", "outage again", "not loading",
    "throwing 503 errors", "giving me 502s", "won't let me log in", "login is broken",
    "API timing out", "keeps timing out", "is dead", "not responding", "returns 500 on every call",
    "dashboard just spins forever", "deploys all failing", "is having an outage", "went dark",
    "unreachable from here", "having major issues", "broken for the last 15 minutes",
    "can't reach it at all", "errors everywhere", "SSL handshake failing",
]
OUTAGE_TAILS = [
    "", "", "anyone else?", "is it just me?", "we have customers waiting", "please fix asap",
    "any ETA?", "third time this month", "#outage", "our whole prod is down because of this",
    "status page says all green lol", "😡", "🔥🔥", "nothing works", "hello??", "help",
    "can someone from support respond", "losing money every minute", "is there an incident?",
]

TOPICS = {
    "billing": [
        "{b} charged me twice this month, I want a refund",
        "why did my {b} invoice go up 40% without notice",
        "{b} billing page shows a plan I never ordered",
        "still waiting for my {b} refund after 3 weeks",
        "{b} took money for a cancelled subscription",
    ],
    "login": [
        "{b} password reset email never arrives",
        "cannot enable 2FA on {b}, the code is always invalid",
        "{b} keeps logging me out every few minutes",
    ],
    "support": [
        "{b} support hasn't answered my ticket in 5 days",
        "is anyone at {b} reading support emails?",
        "{b} closed my ticket without fixing anything",
    ],
    "praise": [
        "really happy with {b}, migration took an afternoon",
        "{b} support sorted my issue in 10 minutes, great job",
        "love the new {b} dashboard",
        "switched to {b} last month, best decision",
        "{b} free tier is generous, recommended",
    ],
    "question": [
        "does {b} support IPv6 yet?",
        "how do I export my data from {b}?",
        "is there a {b} terraform provider?",
        "what region should I pick on {b} for Europe?",
        "any tips for reducing {b} egress costs?",
    ],
    "feature": [
        "wish {b} had dark mode",
        "{b} really needs better docs for the CLI",
        "would pay for {b} audit logs",
    ],
}
BRAND_NAMES = {"acme": ["Acme Cloud", "@AcmeCloud", "acme cloud", "AcmeCloud"],
               "globex": ["Globex", "@GlobexHQ", "globex"]}
BOTH = [
    "moving from {a} to {g}, {a} has been down too often",
    "{g} vs {a}: which one has better support? {a} charged me twice",
    "{a} outage again, thinking about {g}",
    "comparing {a} and {g} pricing for our startup",
]


@dataclass(frozen=True)
class Synthetic:
    """One generated post: what a platform would serve, plus what the benchmark checks."""

    id: str
    text: str
    author: str
    created_at: datetime
    followers: int
    truth: str  # "outage" | "normal" | "both" | "history"


def outage_text(rng: random.Random) -> str:
    """One customer's report of the outage; a typo now and then (never in the brand's name,
    which people pick from autocomplete — a misspelt name is not found by any search)."""
    subject, problem, tail = (rng.choice(OUTAGE_SUBJECTS), rng.choice(OUTAGE_PROBLEMS),
                              rng.choice(OUTAGE_TAILS))
    if rng.random() < 0.15:
        i = rng.randrange(1, max(2, len(problem) - 1))
        problem = problem[:i] + problem[i + 1:]
    shape = rng.random()
    if shape < 0.6:
        text = f"{subject} {problem} {tail}"
    elif shape < 0.8:
        text = f"{tail} {subject} {problem}"
    else:
        text = f"is {subject} {problem.replace('is ', '')}? {tail}"
    return " ".join(text.split())


OPENERS = ["", "", "", "ok so ", "honestly ", "quick question: ", "PSA: ", "ugh, ", "hey, ",
           "day 3: ", "not gonna lie, ", "update: "]
CLOSERS = ["", "", "", " thanks!", " any ideas?", " 🙄", " 👍", " #devops", " (team of 4 here)",
           " cc @ops_jane", " since the last update", " on the pro plan", " from Berlin",
           " for our staging project", " since last week", " — anyone?"]


def normal_text(rng: random.Random, brand: str) -> str:
    """Everyday posts: the same topics come back every day, in each customer's own words."""
    topic = rng.choice(list(TOPICS))
    body = rng.choice(TOPICS[topic]).format(b=rng.choice(BRAND_NAMES[brand]))
    return f"{rng.choice(OPENERS)}{body}{rng.choice(CLOSERS)}".strip()


def outage(rng: random.Random, start: datetime, posts: int = 500, authors: int = 300,
           minutes: float = 20.0) -> list[Synthetic]:
    """``posts`` reports by ``authors`` customers within ``minutes`` of ``start``; every author
    posts at least once, some several times (reposting, adding details)."""
    people = [f"cust{n:04d}" for n in range(authors)]
    writers = people + [rng.choice(people) for _ in range(posts - authors)]
    rng.shuffle(writers)
    times = sorted(rng.uniform(0, minutes * 60) for _ in range(posts))
    return [Synthetic(f"out{n}", outage_text(rng), who, start + timedelta(seconds=t),
                      int(rng.lognormvariate(5, 2)), "outage")
            for n, (who, t) in enumerate(zip(writers, times, strict=True))]


def normal(rng: random.Random, start: datetime, hours: float, per_hour: float, brand: str,
           prefix: str, truth: str = "normal") -> list[Synthetic]:
    """Everyday traffic about one brand, spread over ``hours`` from ``start``."""
    count = int(hours * per_hour)
    return [Synthetic(f"{prefix}{n}", normal_text(rng, brand), f"{prefix}user{rng.randrange(5000)}",
                      start + timedelta(seconds=rng.uniform(0, hours * 3600)),
                      int(rng.lognormvariate(5, 2)), truth)
            for n in range(count)]


def both_brands(rng: random.Random, start: datetime, hours: float, count: int) -> list[Synthetic]:
    """Posts about Acme and Globex at once."""
    return [Synthetic(f"both{n}", rng.choice(BOTH).format(a=rng.choice(BRAND_NAMES["acme"]),
                                                          g=rng.choice(BRAND_NAMES["globex"])),
                      f"bothuser{n}", start + timedelta(seconds=rng.uniform(0, hours * 3600)),
                      int(rng.lognormvariate(5, 2)), "both")
            for n in range(count)]
