"""When to poll a failing source again, and when to give up on it. Pure functions of the failure count."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class FailurePlan:
    next_poll_at: datetime
    disable_reason: str | None


def backoff_delay(failures: int, *, interval: timedelta, cap: timedelta, rng: random.Random | None = None) -> timedelta:
    """Exponential from the source's own interval, capped, with ±20% jitter so failed sources spread out."""
    # The exponent stops at 60 (already far past any cap): with "never disable" settings a source can
    # fail thousands of times, and 2 ** 1024 no longer converts to a float.
    base = min(cap.total_seconds(), interval.total_seconds() * (2 ** min(60, max(0, failures - 1))))
    jitter = (rng or random).uniform(0.8, 1.2)
    return timedelta(seconds=min(cap.total_seconds(), base * jitter))


def plan_failure(
    *,
    failures_before: int,
    now: datetime,
    interval: timedelta,
    cap: timedelta,
    disable_after: int,
    error: str,
    retry_after_seconds: float | None = None,
    permanent: bool = False,
    rng: random.Random | None = None,
) -> FailurePlan:
    failures = failures_before + 1
    delay = backoff_delay(failures, interval=interval, cap=cap, rng=rng)
    if retry_after_seconds is not None:
        # The server told us when; never come back sooner, but don't let it park us beyond the cap.
        delay = max(delay, timedelta(seconds=min(retry_after_seconds, cap.total_seconds())))
    reason = None
    if permanent:
        reason = error
    elif failures >= disable_after:
        reason = f"{failures} consecutive failures; last: {error}"
    return FailurePlan(next_poll_at=now + delay, disable_reason=reason)
