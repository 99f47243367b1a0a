"""The delivery worker: claims outbox rows under a lease, sends them through PTB, records the outcome.

Crash safety: a row is marked "sending" (with a lease) and committed before the API call; the message id
and status "sent" are written in the one statement that ends the lease. A worker that dies before the
call leaves a "sending" row without a message id, which is claimable again once the lease expires. The
one window left is a death after Telegram accepted the message and before that statement committed: the
message is then sent again (at-least-once). docs/bot.md describes it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter

from bot.render import Buttons, Rendered, render_alert, render_digest, render_notice
from framewatch.config import Settings
from storage import outbox, subscribers
from storage.db import session_scope
from storage.models import Outbox, utcnow

log = logging.getLogger(__name__)

# Telegram allows "about 30 messages per second" per bot. We pace just under it with a small bucket: a
# 30-message bucket lets a stalled loop (GC, a busy machine) release a burst afterwards which, bunched
# further by scheduling jitter, reaches Telegram faster than 30/s and costs a 429 plus a ~1 s pause of
# all sending; no bucket at all cannot catch up after the smallest stall. bench/fanout.py measures both.
MESSAGES_PER_SECOND = 29.0
BURST = 5
PERMANENT_CHAT_ERRORS = ("chat not found", "user is deactivated", "bot was kicked", "have no rights to send")


@dataclass(frozen=True, slots=True)
class Job:
    outbox_id: int
    chat_id: int
    subscriber_id: int | None
    attempts: int
    message: Rendered


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    deactivated: int = 0
    migrated: int = 0
    lease_lost: int = 0
    errors: list[str] = field(default_factory=list)


def rate_limiter(max_retries: int = 3) -> AIORateLimiter:
    """PTB's limiter as framewatch uses it: overall pace under Telegram's limit, 20/min per group, and
    RetryAfter retried (pausing every request meanwhile) before the worker sees it."""
    return AIORateLimiter(
        overall_max_rate=BURST, overall_time_period=BURST / MESSAGES_PER_SECOND, max_retries=max_retries
    )


def worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def keyboard(buttons: Buttons) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in buttons]
    )


def backoff(attempts: int, *, base: float = 2.0, cap: float = 600.0, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter on the upper half, so retries of many rows spread out."""
    ceiling = min(cap, base * 2 ** max(0, attempts - 1))
    return ceiling / 2 + ceiling / 2 * rng()


def render_row(
    row: Outbox,
    bundles: Mapping[int, outbox.PostBundle],
    languages: Mapping[int, str],
    *,
    settings: Settings,
    frame_names: Mapping[str, str],
    frame_order: Sequence[str],
) -> Rendered | None:
    """The message for one outbox row, or None if what it refers to is gone."""
    lang = languages.get(row.subscriber_id or 0, "en")
    if row.kind == "admin":
        return render_notice(str(row.payload.get("text", "")), lang=lang)
    if row.kind == "digest":
        items = [(bundles[int(i["post_id"])], i) for i in row.payload.get("items", []) if int(i["post_id"]) in bundles]
        return render_digest(items, lang=lang, frame_names=frame_names) if items else None
    bundle = bundles.get(row.post_id or 0)
    if bundle is None:
        return None
    return render_alert(
        bundle,
        row.payload,
        lang=lang,
        frame_names=frame_names,
        frame_order=frame_order,
        excerpt_chars=settings.alerts.excerpt_chars,
    )


class DeliveryWorker:
    """Sends due outbox rows. One per process; on PostgreSQL any number of processes may run one."""

    def __init__(
        self,
        *,
        engine: sa.Engine,
        bot: Bot,
        settings: Settings,
        frame_names: Mapping[str, str],
        frame_order: Sequence[str],
        owner: str | None = None,
        lease: timedelta = timedelta(minutes=2),
        batch_size: int = 60,
        private_chat_interval: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine, self.bot, self.settings = engine, bot, settings
        self.frame_names, self.frame_order = dict(frame_names), tuple(frame_order)
        self.owner = owner or worker_id()
        self.lease, self.batch_size, self.clock = lease, batch_size, clock
        self.private_chat_interval = private_chat_interval
        self._next_send: dict[int, float] = {}
        self.stats = DeliveryStats()

    # -- database side (runs in a thread) ----------------------------------------------------------
    def _claim(self, limit: int) -> list[Job]:
        now = self.clock()
        jobs: list[Job] = []
        with session_scope(self.engine) as session:
            rows = outbox.claim(session=session, now=now, owner=self.owner, lease=self.lease, limit=limit)
            if not rows:
                return []
            post_ids = {r.post_id for r in rows if r.post_id}
            for r in rows:
                if r.kind == "digest":
                    post_ids.update(int(i["post_id"]) for i in r.payload.get("items", []))
            bundles = outbox.post_bundles([p for p in post_ids if p], session=session)
            subs = subscribers.subscribers_by_ids([r.subscriber_id for r in rows if r.subscriber_id], session=session)
            languages = {sid: s.language for sid, s in subs.items()}
            for row in rows:
                assert row.id is not None
                if row.attempts > self.settings.alerts.max_attempts + 2:
                    outbox.mark_failed(row.id, session=session, owner=self.owner, error="gave up: too many attempts")
                    continue
                message = render_row(
                    row,
                    bundles,
                    languages,
                    settings=self.settings,
                    frame_names=self.frame_names,
                    frame_order=self.frame_order,
                )
                if message is None:
                    outbox.mark_failed(row.id, session=session, owner=self.owner, error="the post no longer exists")
                    continue
                jobs.append(Job(row.id, row.chat_id, row.subscriber_id, row.attempts, message))
        return jobs

    def _record(self, job: Job, outcome: str, **kw: Any) -> None:
        now = self.clock()
        with session_scope(self.engine) as session:
            if outcome == "sent":
                ok = outbox.mark_sent(
                    job.outbox_id, session=session, now=now, owner=self.owner, message_id=kw["message_id"]
                )
                if not ok:
                    self.stats.lease_lost += 1
                    log.warning("outbox %s: lease lost before the send was recorded", job.outbox_id)
                if job.subscriber_id:
                    subscribers.record_delivery_success(job.subscriber_id, session=session)
            elif outcome == "retry":
                outbox.mark_retry(
                    job.outbox_id,
                    session=session,
                    owner=self.owner,
                    error=kw["error"],
                    next_attempt_at=now + timedelta(seconds=kw["delay"]),
                    count_attempt=kw.get("count_attempt", True),
                )
            elif outcome == "failed":
                outbox.mark_failed(job.outbox_id, session=session, owner=self.owner, error=kw["error"])
                deactivated = (
                    kw.get("chat_failure")
                    and job.subscriber_id is not None
                    and subscribers.record_delivery_failure(
                        job.subscriber_id,
                        kw["error"],
                        session=session,
                        deactivate_after=self.settings.alerts.deactivate_after_failures,
                    )
                )
                if deactivated:
                    self.stats.deactivated += 1
                    log.info("subscriber %s deactivated: %s", job.subscriber_id, kw["error"])

    def _migrate(self, outbox_id: int, old_chat_id: int, new_chat_id: int) -> None:
        with session_scope(self.engine) as session:
            subscribers.migrate_chat(old_chat_id, new_chat_id, session=session)
            outbox.retarget_chat(outbox_id, new_chat_id, session=session)

    def _release(self, ids: Sequence[int]) -> None:
        with session_scope(self.engine) as session:
            outbox.release(ids, session=session, owner=self.owner)

    # -- sending -------------------------------------------------------------------------------------
    async def _pace(self, chat_id: int) -> None:
        """About one message per second per private chat (Telegram's per-chat limit)."""
        if chat_id < 0 or self.private_chat_interval <= 0:
            return  # groups: AIORateLimiter's per-group limiter does this
        now = time.monotonic()
        at = max(now, self._next_send.get(chat_id, 0.0))
        self._next_send[chat_id] = at + self.private_chat_interval
        if at > now:
            await asyncio.sleep(at - now)
        if len(self._next_send) > 10_000:
            self._next_send = {c: t for c, t in self._next_send.items() if t > now}

    async def _deliver(self, job: Job) -> None:
        chat_id = job.chat_id
        outcome: tuple[str, dict[str, Any]]
        for _ in range(3):  # at most two chat migrations in a row
            await self._pace(chat_id)
            try:
                message = await self.bot.send_message(
                    chat_id,
                    job.message.text,
                    parse_mode=ParseMode.HTML,
                    reply_markup=keyboard(job.message.buttons),
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
            except ChatMigrated as exc:
                self.stats.migrated += 1
                await asyncio.to_thread(self._migrate, job.outbox_id, chat_id, int(exc.new_chat_id))
                chat_id = int(exc.new_chat_id)
                continue
            except RetryAfter as exc:
                with warnings.catch_warnings():  # PTB 22 warns that the type becomes timedelta
                    warnings.simplefilter("ignore")
                    wait = exc.retry_after
                delay = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
                outcome = (
                    "retry",
                    {"error": f"flood limit: {exc}", "delay": delay + 0.5, "count_attempt": False},
                )
            except Forbidden as exc:
                outcome = ("failed", {"error": str(exc), "chat_failure": True})
            except BadRequest as exc:
                text = str(exc).lower()
                chat_failure = any(marker in text for marker in PERMANENT_CHAT_ERRORS)
                outcome = ("failed", {"error": str(exc), "chat_failure": chat_failure})
                if not chat_failure:
                    log.error("outbox %s refused by Telegram: %s", job.outbox_id, exc)
            except (NetworkError, TelegramError) as exc:  # TimedOut, 5xx, dropped connections
                outcome = self._transient(job, exc)
            except Exception as exc:
                log.exception("outbox %s: unexpected error while sending", job.outbox_id)
                outcome = self._transient(job, exc)
            else:
                outcome = ("sent", {"message_id": message.message_id})
            break
        else:
            outcome = ("failed", {"error": "chat migrated too many times"})
        kind, details = outcome
        if kind == "sent":
            self.stats.sent += 1
        elif kind == "retry":
            self.stats.retried += 1
        else:
            self.stats.failed += 1
            self.stats.errors.append(details["error"])
            del self.stats.errors[:-20]
        await asyncio.to_thread(self._record, job, kind, **details)

    def _transient(self, job: Job, exc: BaseException) -> tuple[str, dict[str, Any]]:
        error = f"{type(exc).__name__}: {exc}"
        if job.attempts >= self.settings.alerts.max_attempts:
            return ("failed", {"error": f"gave up after {job.attempts} attempts: {error}"})
        return ("retry", {"error": error, "delay": backoff(job.attempts)})

    async def drain(self, keep_going: Callable[[], bool] = lambda: True) -> DeliveryStats:
        """Send everything due now, keeping up to batch_size sends in flight; returns when none is due."""
        tasks: set[asyncio.Task[None]] = set()
        exhausted = False
        while True:
            if keep_going() and not exhausted and len(tasks) <= self.batch_size // 2:
                jobs = await asyncio.to_thread(self._claim, self.batch_size - len(tasks))
                if not keep_going():  # stopping: give back what we have not started
                    await asyncio.to_thread(self._release, [j.outbox_id for j in jobs])
                    jobs = []
                exhausted = not jobs
                tasks.update(asyncio.create_task(self._deliver(job)) for job in jobs)
            if not tasks:
                if exhausted or not keep_going():
                    return self.stats
                continue
            _, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
