"""The forum's category tree (``/categories.json``) and the configured categories as ids,
subcategories included: kept apart so that the source only asks and remembers the answer."""

from __future__ import annotations

from typing import Any

Tree = dict[int, tuple[set[str], set[int]]]  # id → (names, subcategory ids)


def category_tree(top: list[Any]) -> Tree:
    """Every category of the listing (nested ``subcategory_list`` too) with its names (slug,
    name, id; lower case) and its subcategories."""
    known: Tree = {}

    def walk(items: list[Any], parent: int | None) -> None:
        for item in items:
            if not isinstance(item, dict) or type(item.get("id")) is not int:
                continue
            cid = item["id"]
            names = {str(item.get(k)).lower() for k in ("slug", "name") if item.get(k)}
            subs = {i for i in item.get("subcategory_ids") or [] if type(i) is int}
            known[cid] = (names | {str(cid)}, subs)
            if parent is not None:
                known[parent][1].add(cid)
            nested = item.get("subcategory_list")
            if isinstance(nested, list):
                walk(nested, cid)

    walk(top, None)
    return known


def category_ids(known: Tree, wanted_names: list[str]) -> tuple[set[int], list[str]]:
    """The ids of the categories named (slug, name or id) and of all their subcategories, and
    the names that match no category."""
    wanted: set[int] = set()
    missing = []
    for name in wanted_names:
        matches = [cid for cid, (names, _) in known.items() if name.lower() in names]
        if not matches:
            missing.append(name)
        todo = list(matches)
        while todo:
            cid = todo.pop()
            if cid not in wanted:
                wanted.add(cid)
                todo += known.get(cid, (set(), set()))[1]
    return wanted, missing
