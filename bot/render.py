"""Telegram HTML for alerts, digests and notices: every outside string escaped, never over the limits.

Functions here are pure: values in, (text, buttons) out. The bot turns buttons into an inline keyboard;
console mode prints the same text with the tags stripped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from bot import callbacks
from bot.i18n import t
from classifiers.text import normalise_token, tokens, word_spans
from storage.outbox import PostBundle

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_TAG_RE = re.compile(r"<[^>]*>")

Buttons = tuple[tuple[tuple[str, str], ...], ...]


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    buttons: Buttons = ()


def clean(text: str | None) -> str:
    """Control characters and lone surrogates out (Telegram rejects them, JSON cannot carry them)."""
    return _CONTROL_RE.sub("", text or "")


class Html(str):
    """A string that is already markup (built by us from escaped parts): th() does not escape it again."""


def esc(text: object) -> str:
    if isinstance(text, Html):
        return str(text)
    return html.escape(clean(str(text)), quote=True)


def th(lang: str, key: str, **values: object) -> str:
    """A UI string as HTML: the template and every value escaped (values marked Html pass through)."""
    template = html.escape(t(lang, key), quote=False)
    return template.format(**{k: esc(v) for k, v in values.items()}) if values else template


def visible_len(markup: str) -> int:
    """Length Telegram counts: text after entity parsing, in UTF-16 code units."""
    return len(html.unescape(_TAG_RE.sub("", markup)).encode("utf-16-le")) // 2


def plain(markup: str) -> str:
    """The visible text of our own markup (console mode, logs)."""
    return html.unescape(_TAG_RE.sub("", markup))


def safe_url(url: str | None) -> str | None:
    if not url:
        return None
    url = quote(clean(url).strip(), safe=":/?#[]@!$&'()*+,;=%~")  # spaces, quotes, <> percent-encoded
    if not re.match(r"^https?://[^/?#]+", url, re.IGNORECASE) or len(url) > 2000:
        return None
    return url


def link(url: str | None, label: str) -> str:
    good = safe_url(url)
    return f'<a href="{esc(good)}">{esc(label)}</a>' if good else ""


def fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def shorten(text: str, limit: int) -> str:
    text = clean(text)
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def fit_lines(lines: Sequence[str], limit: int = TEXT_LIMIT, *, more: str = "…") -> str:
    """Join lines, dropping whole lines from the end (never cutting inside a tag) to stay under limit."""
    kept = list(lines)
    text = "\n".join(kept)
    while kept and visible_len(text) > limit:
        kept.pop()
        text = "\n".join([*kept, esc(more)])
    return text


def evidence_spans(text: str, evidence: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans in `text` where an evidence n-gram occurs (compared as classifier tokens)."""
    spans = list(word_spans(text))
    norm = [normalise_token(text[a:b]) for a, b in spans]
    found: list[tuple[int, int]] = []
    for phrase in evidence:
        want = tokens(phrase)
        n = len(want)
        if not n:
            continue
        for i in range(len(norm) - n + 1):
            if norm[i : i + n] == want:
                found.append((spans[i][0], spans[i + n - 1][1]))
    found.sort()
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def highlight(text: str, evidence: Sequence[str], limit: int) -> str:
    """An escaped excerpt of at most `limit` characters around the first evidence, evidence in <b>."""
    text = clean(text).strip()
    spans = evidence_spans(text, evidence)
    start = 0
    if len(text) > limit and spans:
        first = spans[0][0]
        if first > limit // 3:
            start = first - limit // 3
            space = text.rfind(" ", 0, start + 1)
            start = space + 1 if space > start - 40 else start
    end = min(len(text), start + limit)
    out: list[str] = ["…" if start > 0 else ""]
    pos = start
    for a, b in spans:
        if b <= start or a >= end:
            continue
        a, b = max(a, start), min(b, end)
        out.append(esc(text[pos:a]))
        out.append(f"<b>{esc(text[a:b])}</b>")
        pos = b
    out.append(esc(text[pos:end]))
    if end < len(text):
        out.append("…")
    return "".join(out)


def frame_label(frame_id: str, names: Mapping[str, str]) -> str:
    return names.get(frame_id, frame_id)


def _frames_line(frames: Sequence[tuple[str, float]], names: Mapping[str, str]) -> str:
    return ", ".join(f"{esc(frame_label(f, names))} <code>{score:.2f}</code>" for f, score in frames)


def render_alert(
    bundle: PostBundle,
    payload: Mapping[str, Any],
    *,
    lang: str,
    frame_names: Mapping[str, str],
    frame_order: Sequence[str],
    excerpt_chars: int,
) -> Rendered:
    """The alert: frames with scores, source and time, title, highlighted excerpt, also-in, link, buttons."""
    post = bundle.post
    assert post.id is not None
    shown = [(str(f), float(s)) for f, s in payload.get("frames", [])] or [(f.frame_id, f.score) for f in bundle.frames]
    evidence = [e for f in bundle.frames if f.frame_id in {s[0] for s in shown} for e in f.evidence]
    head = [
        f"🔔 <b>{_frames_line(shown, frame_names)}</b>",
        f"<b>{esc(shorten(bundle.source_name, 200))}</b> · {esc(fmt_time(post.published_at))}",
    ]
    if post.title.strip():
        head.append(f"<b>{esc(shorten(post.title, 300))}</b>")
    tail: list[str] = []
    also = [str(s) for s in payload.get("also_in", [])]
    if also:
        tail.append(f"<i>{esc(t(lang, 'also_in'))}: {esc(shorten(', '.join(also), 500))}</i>")
    tail.append(" ".join(x for x in (link(post.url or post.canonical_url, t(lang, "open_post")), f"#{post.id}") if x))
    budget = excerpt_chars
    while True:  # shrink the excerpt (never cut markup) until the whole message fits
        excerpt = highlight(post.text, evidence, budget) if post.text.strip() and budget else ""
        text = "\n".join([*head, "", excerpt, "", *tail] if excerpt else [*head, "", *tail])
        if visible_len(text) <= TEXT_LIMIT or budget == 0:
            break
        budget = budget // 2 if budget > 50 else 0
    mask = callbacks.frames_mask([f for f, _ in shown], frame_order)
    buttons: Buttons = (
        (
            (t(lang, "btn_correct"), callbacks.feedback(post.id, True, mask)),
            (t(lang, "btn_wrong"), callbacks.feedback(post.id, False, mask)),
            (t(lang, "btn_relabel"), callbacks.relabel(post.id, 0)),
        ),
    )
    return Rendered(text, buttons)


def relabel_buttons(
    post_id: int, mask: int, *, lang: str, frame_order: Sequence[str], names: Mapping[str, str]
) -> Buttons:
    """A toggle per frame (✓ when selected), then "none" and "save": the selection lives in the data."""
    rows: list[tuple[tuple[str, str], ...]] = []
    for i, frame_id in enumerate(frame_order):
        on = bool(mask >> i & 1)
        label = ("✓ " if on else "") + shorten(frame_label(frame_id, names), 60)
        rows.append(((label, callbacks.relabel(post_id, mask ^ (1 << i))),))
    rows.append(
        (
            (t(lang, "btn_none"), callbacks.relabel_save(post_id, 0)),
            (t(lang, "btn_save"), callbacks.relabel_save(post_id, mask)),
        )
    )
    return tuple(rows)


def render_digest(
    items: Sequence[tuple[PostBundle, Mapping[str, Any]]], *, lang: str, frame_names: Mapping[str, str]
) -> Rendered:
    """One message for many alerts: a compact line each, cut (with "…and N more") to fit."""
    header = f"🗞 <b>{esc(t(lang, 'digest_title', n=len(items)))}</b>"
    entries: list[str] = []
    for bundle, payload in items:
        post = bundle.post
        frames = [(str(f), float(s)) for f, s in payload.get("frames", [])]
        title = post.title.strip() or post.text.strip()
        line = (
            f"• {_frames_line(frames, frame_names)} — <b>{esc(shorten(bundle.source_name, 100))}</b>, "
            f"{esc(fmt_time(post.published_at))}\n  {esc(shorten(title, 160))} "
            f"{link(post.url or post.canonical_url, t(lang, 'open_post'))} #{post.id}"
        )
        also = [str(s) for s in payload.get("also_in", [])]
        if also:
            line += f"\n  <i>{esc(t(lang, 'also_in'))}: {esc(shorten(', '.join(also), 200))}</i>"
        entries.append(line)
    kept: list[str] = []
    for i, entry in enumerate(entries):
        left = len(entries) - i - 1
        candidate = "\n".join([header, *kept, entry])
        reserve = esc(t(lang, "digest_more", n=left)) if left else ""
        if visible_len(candidate) + visible_len(reserve) + 1 > TEXT_LIMIT:
            kept.append(esc(t(lang, "digest_more", n=len(entries) - i)))
            break
        kept.append(entry)
    return Rendered("\n".join([header, *kept]))


def render_notice(text: str, *, lang: str) -> Rendered:
    body = esc(shorten(text, 3500))
    return Rendered(f"⚠️ <b>{esc(t(lang, 'admin_notice'))}</b>\n{body}")
