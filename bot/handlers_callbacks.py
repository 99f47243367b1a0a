"""Inline buttons: feedback on alerts (✓/✗/relabel) and search paging. Every press is re-validated.

callback_data is whatever the client sends, so a press is accepted only if it parses, the post exists,
every frame it names exists, and the presser may act on it: staff on any post, a subscriber only on a
post they were actually sent an alert about.
"""

from __future__ import annotations

import logging

from sqlmodel import Session
from telegram import InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot import callbacks
from bot.context import BotContext, BotServices
from bot.delivery import keyboard
from bot.handlers_analyst import send_search_page
from bot.handling import language
from bot.i18n import t
from bot.render import relabel_buttons, shorten
from bot.roles import Role, role_of
from storage import labels, outbox
from storage.outbox import post_bundles

log = logging.getLogger("bot.callbacks")


def _may_judge(post_id: int, chat_id: int, role: Role, *, session: Session) -> tuple[bool, tuple[str, ...] | None]:
    """(allowed, the post's current frames or None if the post does not exist)."""
    bundle = post_bundles([post_id], session=session).get(post_id)
    if bundle is None:
        return False, None
    tags = tuple(f.frame_id for f in bundle.frames)
    if role >= Role.ANALYST:
        return True, tags
    return outbox.was_delivered(post_id, chat_id, session=session), tags


async def _refuse(update: Update, lang: str, why: str) -> None:
    query = update.callback_query
    assert query is not None
    user = update.effective_user
    log.info("rejected button %r from user %s: %s", shorten(query.data or "", 80), user.id if user else None, why)
    await query.answer(t(lang, "fb_invalid"), show_alert=False)


async def _store(services: BotServices, post_id: int, frames: tuple[str, ...], user_id: int | None, role: Role) -> None:
    admin = role >= Role.ADMIN
    await services.db(
        labels.add_label,
        post_id,
        frames,
        now=services.clock(),
        user_id=user_id,
        kind="admin" if admin else "feedback",
        weight=1.0 if admin else services.settings.classifier.feedback_weight,
    )


async def on_button(update: Update, context: BotContext) -> None:
    query, chat, user = update.callback_query, update.effective_chat, update.effective_user
    if query is None or chat is None:
        return
    services = context.services
    lang = await language(update, context)
    role = role_of(user.id if user else None, services.settings.telegram)
    action = callbacks.parse(query.data)
    if action is None:
        await _refuse(update, lang, "malformed data")
        return
    if isinstance(action, callbacks.SearchMore):
        if role < Role.ANALYST:
            await _refuse(update, lang, "search paging needs the analyst role")
            return
        saved = (context.chat_data or {}).get("searches", {})
        if action.key not in saved:
            await query.answer(t(lang, "search_expired"))
            return
        await _edit_markup(update, None)  # the next page carries its own "more" button
        await query.answer()
        await send_search_page(update, context, saved[action.key], action.offset, lang)
        return
    order = services.frame_order
    chosen = callbacks.mask_frames(action.mask, order)
    if chosen is None:
        await _refuse(update, lang, "names a frame that does not exist")
        return
    allowed, tags = await services.read(_may_judge, action.post_id, chat.id, role)
    if tags is None or not allowed:
        await _refuse(update, lang, "no such post" if tags is None else "no alert about this post in this chat")
        return
    user_id = user.id if user else None
    if isinstance(action, callbacks.Feedback):
        frames = chosen if action.correct else tuple(f for f in tags if f not in chosen)
        await _store(services, action.post_id, frames, user_id, role)
        await query.answer(t(lang, "fb_thanks"))
        return
    # Edit first, answer last: the spinner on the button stops once everything is done.
    if not action.save:  # open or toggle the relabel picker: the selection lives in the buttons
        buttons = relabel_buttons(action.post_id, action.mask, lang=lang, frame_order=order, names=services.frame_names)
        await _edit_markup(update, keyboard(buttons))
        await query.answer()
        return
    await _store(services, action.post_id, chosen, user_id, role)
    names = services.frame_names
    shown = ", ".join(names.get(f, f) for f in chosen) or t(lang, "label_none")
    await _edit_markup(update, None)
    await query.answer(shorten(t(lang, "fb_saved", frames=shown), 190))


async def _edit_markup(update: Update, markup: InlineKeyboardMarkup | None) -> None:
    query = update.callback_query
    assert query is not None
    try:
        await query.edit_message_reply_markup(reply_markup=markup)
    except BadRequest as exc:  # "message is not modified" and the like
        log.debug("could not edit the keyboard: %s", exc)


def handlers() -> list[BaseHandler[Update, BotContext, None]]:
    return [CallbackQueryHandler(on_button)]
