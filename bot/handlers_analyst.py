"""Analyst commands: /frames /search (with paging) /post /trend /sources."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session
from telegram import InputFile, Update
from telegram.constants import ParseMode
from telegram.ext import BaseHandler

from bot import callbacks
from bot.charts import trend_png
from bot.commands_parse import PERIODS, TREND_PERIODS, parse_choice, parse_post_id, parse_search, parse_trend
from bot.context import BotContext
from bot.delivery import keyboard
from bot.handling import Request, command, reply
from bot.i18n import t
from bot.render import (
    CAPTION_LIMIT,
    TEXT_LIMIT,
    Buttons,
    Html,
    clean,
    esc,
    fit_lines,
    fmt_time,
    highlight,
    link,
    shorten,
    th,
    visible_len,
)
from storage import stats
from storage.outbox import post_bundles
from storage.query import QueryError
from storage.search import SearchPage, search_posts, snippet_to_html
from storage.sources import list_sources

SEARCH_PAGE = 5
MAX_SAVED_SEARCHES = 20


def _change(now: int, before: int) -> str:
    diff = now - before
    if before == 0:
        return f"+{diff}" if diff else "±0"
    return f"{diff:+d}, {diff / before:+.0%}"


async def frames(update: Update, context: BotContext, req: Request) -> None:
    services = context.services
    period = parse_choice(req.args, tuple(PERIODS), default="24h")
    rows = await services.read(stats.frame_summary, now=services.clock(), period=PERIODS[period])
    if not rows:
        await reply(update, th(req.lang, "frames_none", period=period))
        return
    names = services.frame_names
    lines = [f"<b>{th(req.lang, 'frames_title', period=period)}</b>"]
    for row in rows:
        top = ", ".join(f"{esc(name)} ({n})" for name, n in row.top_sources)
        lines.append(
            f"• <b>{esc(names.get(row.frame_id, row.frame_id))}</b> <code>{esc(row.frame_id)}</code>: "
            f"{row.count} ({esc(_change(row.count, row.previous))}) — {th(req.lang, 'frames_top')}: {top}"
        )
    await reply(update, fit_lines(lines))


def search_key(chat_id: int, query: str) -> str:
    return hashlib.sha256(f"{chat_id}\n{query}".encode()).hexdigest()[:8]


def _remember(chat_data: dict[Any, Any] | None, key: str, query: str) -> None:
    if chat_data is None:
        return
    saved: dict[str, str] = chat_data.setdefault("searches", {})
    saved.pop(key, None)
    saved[key] = query
    while len(saved) > MAX_SAVED_SEARCHES:
        saved.pop(next(iter(saved)))


def render_search(page: SearchPage, query: str, *, offset: int, lang: str, names: dict[str, str]) -> str:
    if not page.hits:
        return th(lang, "search_none", query=Html(f"<code>{esc(shorten(query, 200))}</code>"))
    title = th(
        lang,
        "search_title",
        start=offset + 1,
        end=offset + len(page.hits),
        query=Html(f"<code>{esc(shorten(query, 200))}</code>"),
    )
    lines = [f"<b>{title}</b>"]
    for hit in page.hits:
        frames_ = ", ".join(esc(names.get(f, f)) for f in hit.frames) or "—"
        head = f"<b>{esc(shorten(hit.source, 100))}</b> · {esc(fmt_time(hit.published_at))} · {frames_}"
        parts = [head]
        if hit.title.strip():
            parts.append(f"<i>{esc(shorten(hit.title, 200))}</i>")
        parts.append(clean(snippet_to_html(hit.snippet[:600])))  # clean() after: it drops the sentinels
        parts.append(" ".join(x for x in (link(hit.url, t(lang, "open_post")), f"/post {hit.post_id}") if x))
        lines.append("\n".join(parts))
    text = "\n\n".join(lines)
    while visible_len(text) > TEXT_LIMIT and len(lines) > 2:
        lines.pop()
        text = "\n\n".join(lines)
    return text


async def send_search_page(update: Update, context: BotContext, query: str, offset: int, lang: str) -> None:
    services = context.services
    chat = update.effective_chat
    assert chat is not None
    try:
        page = await services.read(search_posts, query, now=services.clock(), limit=SEARCH_PAGE, offset=offset)
    except QueryError as exc:
        await reply(update, th(lang, "search_error", message=str(exc)[:500]))
        return
    buttons: Buttons = ()
    if page.next_offset is not None and page.next_offset <= 10_000:
        key = search_key(chat.id, query)
        _remember(context.chat_data, key, query)
        buttons = (((th(lang, "search_more"), callbacks.search_more(key, page.next_offset)),),)
    text = render_search(page, query, offset=offset, lang=lang, names=services.frame_names)
    message = update.effective_message
    if update.callback_query is not None or message is None:
        await context.bot.send_message(chat.id, text, parse_mode=ParseMode.HTML, reply_markup=keyboard(buttons))
    else:
        await reply(update, text, buttons)


async def search(update: Update, context: BotContext, req: Request) -> None:
    await send_search_page(update, context, parse_search(req.args), 0, req.lang)


def render_post(bundle: Any, *, lang: str, names: dict[str, str]) -> str:
    post = bundle.post
    source = esc(shorten(bundle.source_name, 200))
    language = f" · {esc(post.language)}" if post.language else ""
    head = [f"<b>#{post.id}</b> · <b>{source}</b> · {esc(fmt_time(post.published_at))}{language}"]
    if post.title.strip():
        head.append(f"<b>{esc(shorten(post.title, 300))}</b>")
    tags = [f"<b>{th(lang, 'post_tags')}</b>"]
    for f in bundle.frames:
        why = f" — {th(lang, 'post_evidence')}: {esc(shorten(', '.join(f.evidence), 300))}" if f.evidence else ""
        tags.append(f"• {esc(names.get(f.frame_id, f.frame_id))} <code>{f.score:.2f}</code>{why}")
    if not bundle.frames:
        tags.append(th(lang, "post_no_tags"))
    tail = [link(post.url or post.canonical_url, t(lang, "open_post"))]
    evidence = [e for f in bundle.frames for e in f.evidence]
    budget = TEXT_LIMIT
    while True:
        body = highlight(post.text, evidence, budget) if post.text.strip() and budget else ""
        text = "\n".join([*head, "", body, "", *tags, *tail] if body else [*head, "", *tags, *tail])
        if visible_len(text) <= TEXT_LIMIT or budget == 0:
            return text
        budget = max(0, budget - (visible_len(text) - TEXT_LIMIT) - 50) if budget > 100 else 0


async def post(update: Update, context: BotContext, req: Request) -> None:
    services = context.services
    post_id = parse_post_id(req.args)
    bundle = (await services.read(post_bundles, [post_id])).get(post_id)
    if bundle is None:
        await reply(update, th(req.lang, "post_not_found", id=post_id))
        return
    await reply(update, render_post(bundle, lang=req.lang, names=services.frame_names))


async def trend(update: Update, context: BotContext, req: Request) -> None:
    services = context.services
    frame, period = parse_trend(req.args, frames=services.frame_order)
    days = TREND_PERIODS[period].days
    points = await services.read(stats.frame_daily_counts, frame, now=services.clock(), days=days)
    name = services.frame_names.get(frame, frame)
    caption = th(req.lang, "trend_caption", frame=name, period=period)
    png = await asyncio.to_thread(trend_png, points, title=f"{name} ({frame}), {period}")
    message = update.effective_message
    assert message is not None
    await message.reply_photo(
        InputFile(png, filename=f"trend-{frame}.png"),
        caption=shorten(caption, CAPTION_LIMIT),
        parse_mode=ParseMode.HTML,
        do_quote=False,
    )


def _sources(*, session: Session) -> list[tuple[str, str, bool, str | None, datetime | None, int, str | None]]:
    return [
        (
            s.name,
            s.kind,
            s.enabled,
            s.disabled_reason,
            s.last_success_at,
            s.consecutive_failures,
            s.last_error,
        )
        for s in list_sources(session=session)
    ]


def render_sources(rows: Sequence[Any], *, lang: str) -> str:
    if not rows:
        return th(lang, "sources_none")
    lines = [f"<b>{th(lang, 'sources_title')}</b>"]
    for name, kind, enabled, reason, last_ok, failures, error in rows:
        state = th(lang, "src_ok") if enabled else f"{th(lang, 'src_disabled')}: {esc(shorten(reason or '', 200))}"
        seen = esc(fmt_time(last_ok)) if last_ok else th(lang, "src_never")
        line = f"• <b>{esc(name)}</b> ({esc(kind)}) — {state}; {th(lang, 'src_last_success')}: {seen}"
        if failures:
            line += f"; {th(lang, 'src_failures')}: {failures} ({esc(shorten(error or '', 150))})"
        lines.append(line)
    return fit_lines(lines)


async def sources(update: Update, context: BotContext, req: Request) -> None:
    rows = await context.services.read(_sources)
    await reply(update, render_sources(rows, lang=req.lang))


def handlers() -> list[BaseHandler[Update, BotContext, None]]:
    return [
        command("frames", frames),
        command("search", search),
        command("post", post),
        command("trend", trend),
        command("sources", sources),
    ]
