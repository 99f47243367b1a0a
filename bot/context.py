"""What handlers get besides the update: a typed context whose bot_data holds the services (no globals).

The pattern is PTB's contexttypesbot example: ContextTypes(context=BotContext, bot_data=BotData).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from telegram.ext import Application, CallbackContext, ContextTypes, ExtBot

from bot.delivery import DeliveryWorker
from classifiers.taxonomy import Taxonomy
from framewatch.config import Settings
from storage.db import read_scope, session_scope
from storage.models import utcnow

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FrameMetric:
    frame_id: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class RetrainOutcome:
    version: str
    activated: bool
    reason: str  # why it was not activated ("" when it was)
    metrics: tuple[FrameMetric, ...]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    active: str | None
    versions: tuple[str, ...]  # newest first
    details: tuple[str, ...] = ()  # plain-text lines about the active model


class ModelOps(Protocol):
    """The classifier registry as the bot needs it; every method may block (it runs in a worker thread).

    Methods raise ValueError with a message fit for an admin when they cannot do what is asked.
    """

    def info(self) -> ModelInfo: ...

    def retrain(self, labels: list[tuple[str, list[str], float]]) -> RetrainOutcome: ...

    def rollback(self) -> str: ...


@dataclass
class BotServices:
    settings: Settings
    engine: sa.Engine
    taxonomy: Taxonomy
    models: ModelOps | None = None
    # Called (in a worker thread) after /retrain activated a model or /rollback switched back, so the
    # ingest side can load the new active model.
    on_model_change: Callable[[], None] | None = None
    clock: Callable[[], datetime] = utcnow
    delivery_interval: float = 1.0  # seconds between outbox polls when it is empty
    retrain_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="framewatch-retrain")
    )
    retraining: bool = False
    worker: DeliveryWorker | None = None  # set in post_init, once the Application's bot exists
    draining: bool = False  # a delivery drain is running (wake_delivery then asks for another at once)
    wake_pending: bool = False
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def frame_order(self) -> tuple[str, ...]:
        return self.taxonomy.ids

    @property
    def frame_names(self) -> dict[str, str]:
        return {f.id: f.name for f in self.taxonomy.frames}

    def _in_session(self, fn: Callable[..., T], args: tuple[Any, ...], kw: dict[str, Any], *, write: bool) -> T:
        with (session_scope if write else read_scope)(self.engine) as session:
            return fn(*args, session=session, **kw)

    async def db(self, fn: Callable[..., T], /, *args: Any, **kw: Any) -> T:
        """Run `fn(*args, session=…, **kw)` in one transaction on a worker thread (never on the loop)."""
        return await asyncio.to_thread(self._in_session, fn, args, kw, write=True)

    async def read(self, fn: Callable[..., T], /, *args: Any, **kw: Any) -> T:
        """`db` for a function that only reads: on SQLite a slow /trend or /search then never holds up
        ingestion's commits (nor waits for them), and a write slipped into `fn` raises."""
        return await asyncio.to_thread(self._in_session, fn, args, kw, write=False)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A background task we keep a reference to (so it is neither collected nor forgotten)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task


class BotData:
    """bot_data: created empty by PTB, filled once by build_application."""

    def __init__(self) -> None:
        self.services: BotServices | None = None


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], BotData]):
    def __init__(self, application: Application[Any, Any, Any, Any, Any, Any], **kw: Any) -> None:
        super().__init__(application=application, **kw)

    @property
    def services(self) -> BotServices:
        services = self.bot_data.services
        if services is None:
            raise RuntimeError("bot services are not configured; use bot.app.build_application")
        return services


def context_types() -> ContextTypes[BotContext, dict[Any, Any], dict[Any, Any], BotData]:
    return ContextTypes(context=BotContext, bot_data=BotData)
