"""The shell every command runs in: role check on every call, language, argument errors, HTML replies."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from telegram import LinkPreviewOptions, Message, Update
from telegram.constants import ParseMode
from telegram.ext import CommandHandler, filters

from bot.commands_parse import ArgError
from bot.context import BotContext
from bot.delivery import keyboard
from bot.i18n import language_of
from bot.render import Buttons, Html, esc, th
from bot.roles import BY_NAME, Role, role_of
from storage.subscribers import get_subscriber

log = logging.getLogger("bot.commands")


@dataclass(frozen=True, slots=True)
class Request:
    name: str
    args: str  # everything after the command, as typed
    user_id: int | None
    chat_id: int
    role: Role
    lang: str


Handler = Callable[[Update, BotContext, Request], Awaitable[None]]


def raw_args(message: Message) -> str:
    text = message.text or ""
    for entity in message.entities:
        if entity.type == "bot_command" and entity.offset == 0:
            return text[len(message.parse_entity(entity)) :]
    return ""


async def language(update: Update, context: BotContext) -> str:
    """The chat's language: chosen with /lang, else the subscriber row, else the user's Telegram setting."""
    chat_data = context.chat_data if context.chat_data is not None else {}
    if "lang" in chat_data:
        return str(chat_data["lang"])
    chat, user = update.effective_chat, update.effective_user
    sub = await context.services.read(get_subscriber, chat.id) if chat else None
    lang = sub.language if sub is not None else language_of(user.language_code if user else None)
    chat_data["lang"] = lang
    return lang


async def reply(update: Update, text: str, buttons: Buttons = ()) -> Message | None:
    message = update.effective_message
    if message is None:
        return None
    return await message.reply_text(
        text,
        parse_mode=ParseMode.HTML,
        reply_markup=keyboard(buttons),
        link_preview_options=LinkPreviewOptions(is_disabled=True),
        do_quote=False,
    )


MAX_CHOICES = 60


def arg_error_html(exc: ArgError, *, lang: str, command: str, frame_names: dict[str, str]) -> str:
    lines = [th(lang, exc.key, **exc.values)] if exc.key != "usage" else []
    choices = exc.choices[:MAX_CHOICES] + (("…",) if len(exc.choices) > MAX_CHOICES else ())
    lines.append(th(lang, "usage", usage=Html(f"<code>{esc(BY_NAME[command].usage)}</code>")))
    if choices and set(choices) <= set(frame_names) | {"none"} and exc.key != "bad_lang":
        listing = "\n".join(
            f"• <code>{esc(c)}</code> — {esc(frame_names[c])}" if c in frame_names else f"• <code>{esc(c)}</code>"
            for c in choices
        )
        lines.append(th(lang, "frames_list", frames=Html(listing)))
    elif choices:
        lines.append(th(lang, "valid_choices", choices=Html(", ".join(f"<code>{esc(c)}</code>" for c in choices))))
    return "\n".join(lines)


def command(name: str, fn: Handler) -> CommandHandler[BotContext, None]:
    """Wrap `fn` so that the role is checked on every call and bad arguments get a polite answer."""
    required = BY_NAME[name].role

    async def callback(update: Update, context: BotContext) -> None:
        chat, user = update.effective_chat, update.effective_user
        if chat is None or update.effective_message is None:
            return
        services = context.services
        role = role_of(user.id if user else None, services.settings.telegram)
        lang = await language(update, context)
        if role < required:
            log.info("refused /%s for user %s (role %s)", name, user.id if user else None, role.name.lower())
            await reply(update, th(lang, "refused"))
            return
        request = Request(name, raw_args(update.effective_message), user.id if user else None, chat.id, role, lang)
        try:
            await fn(update, context, request)
        except ArgError as exc:
            log.info("/%s from user %s: bad arguments (%s)", name, request.user_id, exc.key)
            await reply(update, arg_error_html(exc, lang=lang, command=name, frame_names=services.frame_names))

    return CommandHandler(name, callback, filters=filters.UpdateType.MESSAGE)


async def unknown_command(update: Update, context: BotContext) -> None:
    await reply(update, th(await language(update, context), "unknown_command"))


async def on_error(update: object, context: BotContext) -> None:
    """Log (the log filter scrubs the token) and answer politely; never show the exception to users."""
    log.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            await reply(update, th(await language(update, context), "error"))
        except Exception:
            log.warning("could not tell the user about the error", exc_info=True)


def bullet_lines(items: Sequence[str]) -> str:
    return "\n".join(f"• {item}" for item in items)
