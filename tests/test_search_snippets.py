"""snippet_to_html: escape first, then mark; the output is always safe, balanced Telegram HTML."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.search import SNIPPET_END, SNIPPET_START, snippet_to_html

S, E = SNIPPET_START, SNIPPET_END


class _Tags(HTMLParser):
    """Collects the tags a browser (or Telegram) would see."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self.tags.append("/" + tag)


def tags(html: str) -> list[str]:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser.tags


@pytest.mark.parametrize(
    ("snippet", "html"),
    [
        (f"Prigozhin marched on {S}Moscow{E}.", "Prigozhin marched on <b>Moscow</b>."),
        (f"{S}<script>{E} & <i>x</i>", "<b>&lt;script&gt;</b> &amp; &lt;i&gt;x&lt;/i&gt;"),
        (f'"quoted" {S}Вагнер{E}', '"quoted" <b>Вагнер</b>'),
        ("no marks at all", "no marks at all"),
        ("", ""),
        (f"stray {E}end and {S}open", "stray end and <b>open</b>"),
        (f"{S}{S}double{E}{E}", "<b>double</b>"),
    ],
)
def test_snippet_to_html(snippet: str, html: str) -> None:
    assert snippet_to_html(snippet) == html


@given(st.lists(st.one_of(st.text(max_size=20), st.sampled_from([S, E, "<", ">", "&", "<b>", "</b>"]))))
def test_any_snippet_gives_balanced_bold_and_nothing_else(parts: list[str]) -> None:
    html = snippet_to_html("".join(parts))
    seen = tags(html)
    assert set(seen) <= {"b", "/b"}
    depth = 0
    for tag in seen:
        depth += 1 if tag == "b" else -1
        assert depth in (0, 1)
    assert depth == 0
    assert S not in html and E not in html
