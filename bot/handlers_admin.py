"""Admin commands: /label /retrain /model /rollback /addsource /disable /enable /stats."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlmodel import Session
from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import BaseHandler

from bot.commands_parse import ArgError, parse_addsource, parse_label, parse_name
from bot.context import BotContext, BotServices, RetrainOutcome
from bot.handling import Request, command, reply
from bot.render import esc, fit_lines, fmt_time, shorten, th
from framewatch.config import SourceSettings
from framewatch.logs import redact
from storage import labels, outbox, stats, subscribers
from storage.outbox import post_bundles
from storage.sources import SourceError, add_source, list_sources, set_source_enabled

log = logging.getLogger("bot.commands")


async def label(update: Update, context: BotContext, req: Request) -> None:
    services = context.services
    post_id, frames = parse_label(req.args, frames=services.frame_order)
    if not (await services.read(post_bundles, [post_id])):
        await reply(update, th(req.lang, "post_not_found", id=post_id))
        return
    await services.db(
        labels.add_label, post_id, frames, now=services.clock(), user_id=req.user_id, kind="admin", weight=1.0
    )
    names = services.frame_names
    shown = ", ".join(names.get(f, f) for f in frames) or th(req.lang, "label_none")
    await reply(update, th(req.lang, "label_done", id=post_id, frames=shown))


def render_outcome(outcome: RetrainOutcome, *, lang: str, names: dict[str, str]) -> str:
    lines = [f"<b>{th(lang, 'retrain_done', version=outcome.version)}</b>"]
    lines.append(
        th(lang, "retrain_activated")
        if outcome.activated
        else th(lang, "retrain_not_activated", reason=shorten(outcome.reason, 500))
    )
    lines.append("<pre>frame                          P     R     F1    n")
    for m in outcome.metrics:
        name = shorten(names.get(m.frame_id, m.frame_id), 28)
        lines.append(esc(f"{name:<28} {m.precision:5.2f} {m.recall:5.2f} {m.f1:5.2f} {m.support:4d}"))
    lines[-1] += "</pre>"
    return "\n".join(lines) if outcome.metrics else "\n".join(lines[:2])


async def _retrain_in_background(services: BotServices, chat_id: int, lang: str, bot: object) -> None:
    loop = asyncio.get_running_loop()
    try:
        data = await services.read(labels.list_training_labels)
        assert services.models is not None
        outcome = await loop.run_in_executor(services.retrain_pool, services.models.retrain, data)
        if outcome.activated and services.on_model_change is not None:
            await loop.run_in_executor(services.retrain_pool, services.on_model_change)
        text = render_outcome(outcome, lang=lang, names=services.frame_names)
    except Exception as exc:  # reported to the admin who asked, and logged (token scrubbed by the filter)
        log.exception("retraining failed")
        text = th(lang, "retrain_failed", error=redact(shorten(str(exc), 500)))
    finally:
        services.retraining = False
    await bot.send_message(chat_id, text, parse_mode=ParseMode.HTML)  # type: ignore[attr-defined]


async def retrain(update: Update, context: BotContext, req: Request) -> None:
    services = context.services
    if services.models is None:
        await reply(update, th(req.lang, "models_unavailable"))
        return
    if services.retraining:
        await reply(update, th(req.lang, "retrain_busy"))
        return
    services.retraining = True
    await reply(update, th(req.lang, "retrain_started"))
    services.spawn(_retrain_in_background(services, req.chat_id, req.lang, context.bot))


async def model(update: Update, context: BotContext, req: Request) -> None:
    services = context.services
    if services.models is None:
        await reply(update, th(req.lang, "models_unavailable"))
        return
    info = await asyncio.get_running_loop().run_in_executor(None, services.models.info)
    if info.active is None:
        await reply(update, th(req.lang, "model_none"))
        return
    lines = [f"<b>{th(req.lang, 'model_info', version=info.active)}</b>"]
    lines += [esc(d) for d in info.details]
    if info.versions:
        lines.append(
            f"{th(req.lang, 'model_versions')}: " + ", ".join(f"<code>{esc(v)}</code>" for v in info.versions[:10])
        )
    await reply(update, fit_lines(lines))


async def rollback(update: Update, context: BotContext, req: Request) -> None:
    services = context.services
    if services.models is None:
        await reply(update, th(req.lang, "models_unavailable"))
        return
    loop = asyncio.get_running_loop()
    try:
        version = await loop.run_in_executor(services.retrain_pool, services.models.rollback)
    except ValueError as exc:
        await reply(update, th(req.lang, "rollback_failed", error=shorten(str(exc), 500)))
        return
    if services.on_model_change is not None:
        await loop.run_in_executor(services.retrain_pool, services.on_model_change)
    log.info("admin %s rolled the model back to %s", req.user_id, version)
    await reply(update, th(req.lang, "rollback_done", version=version))


def _add(spec: SourceSettings, default_interval: timedelta, *, session: Session, now: object) -> str:
    return add_source(spec, session=session, now=now, default_interval=default_interval).name  # type: ignore[arg-type]


async def addsource(update: Update, context: BotContext, req: Request) -> None:
    services = context.services
    spec = parse_addsource(req.args)
    try:
        name = await services.db(_add, spec, services.settings.ingest.default_interval, now=services.clock())
    except SourceError as exc:
        raise ArgError("addsource_error", message=str(exc)) from None
    log.info("admin %s added source %s (%s)", req.user_id, name, spec.kind)
    await reply(update, th(req.lang, "addsource_done", name=name))


def _names(*, session: Session) -> list[str]:
    return [s.name for s in list_sources(session=session)]


async def _toggle(update: Update, context: BotContext, req: Request, enabled: bool) -> None:
    services = context.services
    name = parse_name(req.args)
    try:
        await services.db(set_source_enabled, name, enabled, now=services.clock())
    except SourceError:
        known = await services.read(_names)
        raise ArgError("source_unknown", choices=known, name=name) from None
    log.info("admin %s %s source %s", req.user_id, "enabled" if enabled else "disabled", name)
    await reply(update, th(req.lang, "enable_done" if enabled else "disable_done", name=name))


async def disable(update: Update, context: BotContext, req: Request) -> None:
    await _toggle(update, context, req, False)


async def enable(update: Update, context: BotContext, req: Request) -> None:
    await _toggle(update, context, req, True)


def _stats(now: object, *, session: Session) -> dict[str, object]:
    return {
        "posts": stats.posts_per_day(session=session, now=now, days=7),  # type: ignore[arg-type]
        "sent_day": stats.alerts_sent(session=session, since=now - timedelta(days=1)),  # type: ignore[operator]
        "sent_all": stats.alerts_sent(session=session),
        "subscribers": subscribers.count_subscribers(session=session),
        "outbox": outbox.status_counts(session=session),
        "source_errors": stats.source_errors(session=session),
        "outbox_errors": outbox.recent_errors(session=session),
    }


def render_stats(data: dict[str, object], *, lang: str, secrets: Sequence[str]) -> str:
    """Every error text passes through redact(): a token that leaked into one never reaches the chat."""
    posts = data["posts"]
    assert isinstance(posts, list)
    active, inactive = data["subscribers"]  # type: ignore[misc]
    queue = data["outbox"]
    assert isinstance(queue, dict)
    lines = [f"<b>{th(lang, 'stats_title')}</b>"]
    lines.append(f"{th(lang, 'stats_posts')}: " + ", ".join(f"{esc(d[5:])}: {n}" for d, n in posts))
    lines.append(f"{th(lang, 'stats_alerts')}: {data['sent_day']} / {data['sent_all']}")
    lines.append(f"{th(lang, 'stats_subscribers')}: {active} / {inactive}")
    lines.append(
        f"{th(lang, 'stats_outbox')}: "
        + (", ".join(f"{esc(k)} {v}" for k, v in sorted(queue.items())) or th(lang, "stats_none"))
    )
    errors = [
        f"{esc(name)} ({esc(fmt_time(at))}): {esc(shorten(redact(err, secrets), 200))}"
        for name, err, at in data["source_errors"]  # type: ignore[attr-defined]
    ]
    errors += [f"outbox #{i}: {esc(shorten(redact(err, secrets), 200))}" for i, err in data["outbox_errors"]]  # type: ignore[attr-defined]
    lines.append(f"{th(lang, 'stats_errors')}:")
    lines += [f"• {e}" for e in errors] or [th(lang, "stats_none")]
    return fit_lines(lines)


async def stats_(update: Update, context: BotContext, req: Request) -> None:
    services = context.services
    data = await services.read(_stats, services.clock())
    token = services.settings.telegram.token
    secrets = [token.get_secret_value()] if token is not None else []
    await reply(update, render_stats(data, lang=req.lang, secrets=secrets))


def handlers() -> list[BaseHandler[Update, BotContext, None]]:
    return [
        command("label", label),
        command("retrain", retrain),
        command("model", model),
        command("rollback", rollback),
        command("addsource", addsource),
        command("disable", disable),
        command("enable", enable),
        command("stats", stats_),
    ]
