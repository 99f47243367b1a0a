"""Builds the PTB Application (handlers, rate limiter, delivery and digest jobs) and runs it.

`framewatch run` calls run_bot_until(); tests and other shells can use build_application() + run_bot().
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit

import sqlalchemy as sa
from telegram import BotCommand, BotCommandScopeChat, BotCommandScopeDefault, Update
from telegram.error import NetworkError, TelegramError
from telegram.ext import Application, ApplicationBuilder, MessageHandler, filters

from bot.context import BotContext, BotServices, ModelOps, context_types
from bot.delivery import DeliveryWorker, rate_limiter, render_row
from bot.digest import build_digests
from bot.handling import on_error, unknown_command
from bot.i18n import LANGUAGES, t
from bot.render import plain
from bot.roles import Role, commands_for
from classifiers.taxonomy import Taxonomy, load_taxonomy
from framewatch.config import Settings
from framewatch.logs import add_secret
from storage import outbox, subscribers
from storage.db import session_scope
from storage.models import Outbox, utcnow

log = logging.getLogger(__name__)


class BotStartError(RuntimeError):
    """The bot cannot start as configured (webhook port taken, webhook extra missing); phrased for the
    operator, naming the setting."""


# Seconds between attempts to reach the Bot API at start: doubling from the first to the cap.
START_RETRY_FIRST = 2.0
START_RETRY_MAX = 60.0

DELIVERY_INTERVAL = 1.0  # seconds between outbox polls when it is empty
DIGEST_INTERVAL = 60.0


def bot_commands(role: Role, lang: str) -> list[BotCommand]:
    return [BotCommand(c.name, t(lang, f"cmd_{c.name}")) for c in commands_for(role)]


async def publish_commands(app: Application[Any, Any, Any, Any, Any, Any], settings: Settings) -> None:
    """setMyCommands per scope: the default menu for everyone, a per-chat menu for each analyst/admin."""
    tg = settings.telegram
    everyone = Role.ANALYST if tg.analysts == "*" else Role.EVERYONE
    staff: dict[int, Role] = {uid: Role.ANALYST for uid in (tg.analysts if tg.analysts != "*" else [])}
    staff.update({uid: Role.ADMIN for uid in tg.admins})
    for lang in LANGUAGES:
        code = None if lang == "en" else lang
        await app.bot.set_my_commands(bot_commands(everyone, lang), scope=BotCommandScopeDefault(), language_code=code)
        for uid, role in staff.items():
            try:
                await app.bot.set_my_commands(
                    bot_commands(role, lang), scope=BotCommandScopeChat(uid), language_code=code
                )
            except TelegramError as exc:  # e.g. an admin who never opened a chat with the bot
                log.warning("could not set the command menu for user %s: %s", uid, exc)


async def _publish_commands_job(context: BotContext) -> None:
    await publish_commands(context.application, context.services.settings)


async def _delivery_tick(context: BotContext) -> None:
    """Drain the outbox, then come back after DELIVERY_INTERVAL (never two drains at once)."""
    services, app = context.services, context.application
    services.draining, services.wake_pending = True, False
    try:
        if services.worker is None:
            services.worker = DeliveryWorker(
                engine=services.engine,
                bot=context.bot,
                settings=services.settings,
                frame_names=services.frame_names,
                frame_order=services.frame_order,
                clock=services.clock,
            )
        await services.worker.drain(keep_going=lambda: app.running)
    finally:
        services.draining = False
        if app.running and context.job_queue is not None:
            when = 0.0 if services.wake_pending else services.delivery_interval
            context.job_queue.run_once(_delivery_tick, when=when, name="delivery")


def wake_delivery(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Deliver now rather than at the next outbox poll: called (on the event loop) when this process has
    just committed posts that may have queued alerts, so an alert does not wait out DELIVERY_INTERVAL.
    Other processes' commits are still found by the regular poll."""
    services: BotServices = app.bot_data.services
    if services.draining:
        services.wake_pending = True  # the running drain may have claimed before the commit
        return
    assert app.job_queue is not None
    for job in app.job_queue.get_jobs_by_name("delivery"):
        job.job.modify(next_run_time=datetime.now(UTC))


async def _digest_tick(context: BotContext) -> None:
    services = context.services
    made = await asyncio.to_thread(
        build_digests, engine=services.engine, now=services.clock(), settings=services.settings
    )
    if made:
        log.info("built %d digest message(s)", made)


def build_application(
    settings: Settings,
    *,
    engine: sa.Engine,
    taxonomy: Taxonomy | None = None,
    models: ModelOps | None = None,
    on_model_change: Callable[[], None] | None = None,
    clock: Callable[[], datetime] = utcnow,
    delivery_interval: float = DELIVERY_INTERVAL,
    digest_interval: float = DIGEST_INTERVAL,
) -> Application[Any, Any, Any, Any, Any, Any]:
    """The bot, ready for `async with app: await app.start(); await app.updater.start_polling()`."""
    from bot import handlers_admin, handlers_analyst, handlers_callbacks, handlers_public

    tg = settings.telegram
    if tg.token is None:
        raise ValueError("telegram.token is not set (or FRAMEWATCH_TELEGRAM_TOKEN); use console mode")
    token = tg.token.get_secret_value()
    add_secret(token)
    if tg.webhook_secret is not None:
        add_secret(tg.webhook_secret.get_secret_value())
    services = BotServices(
        settings=settings,
        engine=engine,
        taxonomy=taxonomy or load_taxonomy(),
        models=models,
        on_model_change=on_model_change,
        clock=clock,
        delivery_interval=delivery_interval,
    )

    app = (
        ApplicationBuilder()
        .token(token)
        .base_url(tg.api_base_url)
        .base_file_url(tg.base_file_url)
        .rate_limiter(rate_limiter())
        .context_types(context_types())
        .concurrent_updates(16)
        .build()
    )
    app.bot_data.services = services
    for module in (handlers_public, handlers_analyst, handlers_admin, handlers_callbacks):
        for handler in module.handlers():
            app.add_handler(handler)
    app.add_handler(MessageHandler(filters.COMMAND & filters.UpdateType.MESSAGE, unknown_command))
    app.add_error_handler(on_error)
    assert app.job_queue is not None, "python-telegram-bot[job-queue] is required"
    # Jobs, not post_init: post_init only runs under run_polling(), and framewatch starts the
    # Application inside its own loop (async with app: await app.start(); ...).
    app.job_queue.run_once(_publish_commands_job, when=0, name="publish-commands")
    app.job_queue.run_once(_delivery_tick, when=0.2, name="delivery")
    app.job_queue.run_repeating(_digest_tick, interval=digest_interval, first=digest_interval, name="digests")
    return app


async def run_bot(
    app: Application[Any, Any, Any, Any, Any, Any],
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    receive_updates: bool = True,
    outbox_changed: asyncio.Event | None = None,
) -> None:
    """Run until `stop` is set (forever without one), polling or behind a webhook as configured.

    receive_updates=False runs only the jobs (outbox delivery, digests): extra delivery workers on
    PostgreSQL, beside the one process that receives updates (Telegram allows one getUpdates consumer).
    Setting `outbox_changed` (ingestion in the same process does) starts a delivery at once.
    """
    tg = settings.telegram
    async with app:
        await app.start()
        assert app.updater is not None
        waker: asyncio.Task[None] | None = None
        # Stopped on every way out, a failed start_polling/start_webhook included: leaving `async with`
        # with the application still running would turn that error into "still running" RuntimeError.
        try:
            if receive_updates and tg.mode == "webhook":
                assert tg.webhook_url is not None
                try:
                    await app.updater.start_webhook(
                        listen=tg.webhook_listen,
                        port=tg.webhook_port,
                        url_path=urlsplit(tg.webhook_url).path.lstrip("/"),
                        webhook_url=tg.webhook_url,
                        secret_token=tg.webhook_secret.get_secret_value() if tg.webhook_secret else None,
                        allowed_updates=Update.ALL_TYPES,
                    )
                except RuntimeError as exc:
                    raise BotStartError(f"webhook mode needs python-telegram-bot[webhooks] (tornado): {exc}") from None
                except OSError as exc:  # the port is taken, or the address is not this machine's
                    raise BotStartError(
                        f"telegram.webhook_port: cannot listen on {tg.webhook_listen}:{tg.webhook_port}: "
                        f"{exc.strerror or exc}"
                    ) from None
            elif receive_updates:
                await app.updater.start_polling(allowed_updates=Update.ALL_TYPES)
            waker = asyncio.create_task(_wake_on(outbox_changed, app)) if outbox_changed is not None else None
            await (stop or asyncio.Event()).wait()
        finally:
            if waker is not None:
                waker.cancel()
            if app.updater.running:
                await app.updater.stop()
            await app.stop()


async def run_bot_until(
    settings: Settings,
    *,
    engine: sa.Engine,
    stop: asyncio.Event,
    role: str = "all",
    models: ModelOps | None = None,
    on_model_change: Callable[[], None] | None = None,
    outbox_changed: asyncio.Event | None = None,
) -> None:
    """What `framewatch run` awaits until `stop` is set: role "all"/"bot" receive commands and deliver;
    role "deliver" only delivers (outbox and digests), for extra workers sharing a PostgreSQL database."""
    if models is None:
        from bot.models import registry_ops

        models = registry_ops(settings)
    delay = START_RETRY_FIRST
    while not stop.is_set():
        app = build_application(settings, engine=engine, models=models, on_model_change=on_model_change)
        try:
            await run_bot(app, settings, stop=stop, receive_updates=role != "deliver", outbox_changed=outbox_changed)
            return
        except NetworkError as exc:  # TimedOut too; InvalidToken is not one: a refused token ends the run
            # The Bot API cannot be reached at start (getMe). Ingestion goes on in this process and alerts
            # wait in the outbox, so keep trying instead of taking the whole service down.
            log.warning("Telegram Bot API unreachable (%s); retrying in %g s", exc, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, START_RETRY_MAX)


async def _wake_on(event: asyncio.Event, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    while True:
        await event.wait()
        event.clear()
        if app.running:
            wake_delivery(app)


def render_console(row: Outbox, *, engine: sa.Engine, settings: Settings, taxonomy: Taxonomy) -> str | None:
    """An outbox row as plain text (console mode), or None if its post is gone."""
    with session_scope(engine) as session:
        ids = [int(i["post_id"]) for i in row.payload.get("items", [])] if row.kind == "digest" else []
        bundles = outbox.post_bundles([*ids, *([row.post_id] if row.post_id else [])], session=session)
        subs = subscribers.subscribers_by_ids([row.subscriber_id] if row.subscriber_id else [], session=session)
    message = render_row(
        row,
        bundles,
        {sid: s.language for sid, s in subs.items()},
        settings=settings,
        frame_names={f.id: f.name for f in taxonomy.frames},
        frame_order=taxonomy.ids,
    )
    return plain(message.text) if message is not None else None


def print_alert(
    row: Outbox, *, engine: sa.Engine, settings: Settings, taxonomy: Taxonomy, out: TextIO | None = None
) -> str | None:
    text = render_console(row, engine=engine, settings=settings, taxonomy=taxonomy)
    if text is not None:
        print(f"— to chat {row.chat_id} —\n{text}\n", file=out, flush=True)
    return text


def deliver_to_console(
    *, engine: sa.Engine, settings: Settings, taxonomy: Taxonomy, now: datetime, out: TextIO | None = None
) -> int:
    """Console mode's delivery: print every due outbox row and mark it sent (message id 0)."""
    owner = "console"
    with session_scope(engine) as session:
        rows = outbox.claim(session=session, now=now, owner=owner, lease=settings.alerts.max_age, limit=1000)
    for row in rows:
        assert row.id is not None
        printed = print_alert(row, engine=engine, settings=settings, taxonomy=taxonomy, out=out)
        with session_scope(engine) as session:
            if printed is None:
                outbox.mark_failed(row.id, session=session, owner=owner, error="the post no longer exists")
            else:
                outbox.mark_sent(row.id, session=session, now=now, owner=owner, message_id=0)
    return len(rows)
