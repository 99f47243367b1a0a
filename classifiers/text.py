"""Text clean-up and tokenisation shared by training, prediction, explanations and the keyword baseline.

Channel posts carry handles, links and "subscribe" footers; left in, the model learns which channel
wrote a post instead of which frame it carries, so they go before anything is vectorised.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_URL_RE = re.compile(r"(?:https?://|www\.)\S+|\b(?:t\.me|telegram\.me|bit\.ly)/\S*", re.IGNORECASE)
_HANDLE_RE = re.compile(r"(?<![\w.])@[A-Za-z0-9_]{3,64}")
_HASH_RE = re.compile(r"#(?=\w)")
# Footer lines channels append to every post ("Subscribe", "Подписаться на канал", "Надіслати новину").
_SIGNATURE_RE = re.compile(
    r"\b(subscribe|follow us|join us|our channel|send (?:us )?(?:your )?news|"
    r"подпис(?:ывайтесь|ывайся|аться|ка)|подпиш(?:ись|итесь)|наш канал|прислать новость|предложить новость|"
    r"підпис(?:уйтесь|уйся|атися|ка)|підпиш(?:ись|іться)|наш канал|надіслати новину|запропонувати новину)",
    re.IGNORECASE,
)
_SIGNATURE_MAX_CHARS = 80
_SPACE_RE = re.compile(r"[ \t\u00a0\u2009\u202f]+")
# Words: letters/digits, keeping Ukrainian apostrophes (м'ясо, об'єкт) and hyphenated compounds together.
_TOKEN_RE = re.compile(r"[^\W_]+(?:['’ʼ`\-][^\W_]+)*")
_FOLDS = (("ё", "е"), ("’", "'"), ("ʼ", "'"), ("`", "'"))  # after lower(): Ё is ё by then
_DIGITS_RE = re.compile(r"\d+")


def clean_text(text: str) -> str:
    """Drop URLs, @handles, hashtag marks and channel signature lines; keep the wording intact."""
    # URLs and hashtag marks never span lines, so they go in one pass over the whole text (a pass per
    # line cost 10% of classification); handles decide per line whether it is a signature.
    text = _URL_RE.sub(" ", text)
    any_handle = "@" in text
    lines: list[str] = []
    for raw in text.splitlines():
        had_handle = False
        if any_handle and "@" in raw:
            line, n = _HANDLE_RE.subn(" ", raw)
            had_handle = n > 0
        else:
            line = raw
        if "#" in line:
            line = _HASH_RE.sub("", line)
        stripped = _strip_edges(line)
        if not any(ch.isalnum() for ch in stripped):
            continue
        short = len(stripped) <= _SIGNATURE_MAX_CHARS
        if short and (_SIGNATURE_RE.search(stripped) or (had_handle and len(stripped.split()) <= 3)):
            continue
        lines.append(_SPACE_RE.sub(" ", line).strip())
    return "\n".join(lines)


def _strip_edges(line: str) -> str:
    r"""The line without leading and trailing characters that are not letters or digits.

    Not the regex `[\W_]+$`: from every position of a long run of punctuation inside a line it scans
    the rest of the run before failing, 17 s for "a!!!…!b" with 40,000 marks, so one hostile post
    could hold the classifier for minutes.
    """
    start, end = 0, len(line)
    while start < end and not line[start].isalnum():
        start += 1
    while end > start and not line[end - 1].isalnum():
        end -= 1
    return line[start:end]


def word_spans(text: str) -> Iterator[tuple[int, int]]:
    """Character spans of the words in `text`, lazily (explanations quote a few words, verbatim)."""
    return (m.span() for m in _TOKEN_RE.finditer(text))


# What joins the parts of one word in the folded text (see _TOKEN_RE; fold() maps ’ ʼ ` to ').
JOINERS = "'-"


def fold(text: str) -> str:
    """Lower case, ё→е, one apostrophe: a token's letters, before digits are collapsed.

    Chained str.replace, each skipped quickly when its character is absent, is several times faster
    than str.translate with a table on long Cyrillic texts."""
    folded = text.lower()
    for old, new in _FOLDS:
        if old in folded:
            folded = folded.replace(old, new)
    return folded


def normalise_token(token: str) -> str:
    """The form features are built from: lower case, ё→е, one apostrophe, digits collapsed."""
    return _DIGITS_RE.sub("0", fold(token))


def tokens(text: str) -> list[str]:
    """Normalised word tokens of an already cleaned text (normalising the whole text once is faster)."""
    return _TOKEN_RE.findall(_DIGITS_RE.sub("0", fold(text)))
