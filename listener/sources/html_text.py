"""HTML fragments → plain text, for collectors whose platforms hand out HTML (HN comments, feeds).

Stored post text must be what a reader sees: the classifier and the brands' queries work on
words, and alerts escape text for their own destinations, so markup (``<p>``, ``<a href>``,
``&#x27;``) is removed here, once, at the edge. Block elements become line breaks so paragraphs
stay apart; ``<script>``/``<style>`` contents are dropped; entities are decoded. Uses only the
standard library's tolerant :class:`html.parser.HTMLParser`, which never raises on bad markup.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCKS = frozenset(
    "p div br li ul ol blockquote pre h1 h2 h3 h4 h5 h6 tr table section article header "
    "footer hr dd dt".split()
)
_SKIPPED = frozenset({"script", "style", "template", "head"})
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping += 1
        elif tag in _BLOCKS:
            self.parts.append("\n\n" if tag == "p" else "\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:  # <br/>, <hr/>: a break, never the start of a skipped block
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(fragment: str | None) -> str:
    """Readable plain text of an HTML fragment; plain text passes through (entities decoded)."""
    if not fragment:
        return ""
    collector = _TextCollector()
    collector.feed(fragment)
    collector.close()
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(collector.parts).split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
