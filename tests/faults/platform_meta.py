"""The fault matrix's entries for the meta source (:mod:`tests.faults._sources`): ``facebook``
(comments on a Page's post) and ``instagram`` (comments on the account's media), each against
:class:`tests.fakes.meta_graph_api.FakeGraph`."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.fakes import meta_graph_api
from tests.fakes.meta_graph_api import FakeGraph
from tests.faults.platform import Platform

PAGE_ID, IG_USER_ID = "104000000000001", "17841400000000001"
ENV = {"META_ACCESS_TOKEN": meta_graph_api.TOKEN}


def _facebook() -> FakeGraph:
    fake = FakeGraph()
    fake.add_page(PAGE_ID)
    return fake


def _instagram() -> FakeGraph:
    fake = FakeGraph()
    fake.add_ig_user(IG_USER_ID)
    return fake


def _fb_comment(fake: FakeGraph, number: int, at: datetime) -> None:
    posts = fake.__dict__.setdefault("fault_posts", [])
    if not posts:  # one Page post, published before the first comment
        posts.append(fake.add_post(PAGE_ID, "Our new plan is live", at - timedelta(hours=1)))
    fake.add_comment(posts[0]["id"], f"acme cloud is down again ({number})", at)


def _ig_comment(fake: FakeGraph, number: int, at: datetime) -> None:
    media = fake.__dict__.setdefault("fault_media", [])
    if not media:
        media.append(fake.add_media(IG_USER_ID, "Summer launch", at - timedelta(hours=1)))
    fake.add_ig_comment(media[0]["id"], f"acme app crashes again ({number})", at)


PLATFORMS: dict[str, Platform] = {
    "facebook": Platform(
        "fb", _facebook,
        lambda f: f'type: facebook, name: fb, base_url: "{f.base_url}", page_id: "{PAGE_ID}", '
                  'access_token: {"$env": META_ACCESS_TOKEN}, brand: acme',
        _fb_comment, ENV),
    "instagram": Platform(
        "ig", _instagram,
        lambda f: f'type: instagram, name: ig, base_url: "{f.base_url}", '
                  f'account_id: "{IG_USER_ID}", access_token: {{"$env": META_ACCESS_TOKEN}}, '
                  'brand: acme',
        _ig_comment, ENV),
}
