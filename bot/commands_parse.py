"""Command arguments → values. Pure functions; anything unexpected raises ArgError, never anything else.

ArgError carries an i18n key and values, so the handler answers in the user's language and lists the
valid choices. Input is untrusted: up to 4096 characters of anything Telegram lets through.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Collection, Sequence
from datetime import timedelta
from urllib.parse import urlsplit

from pydantic import ValidationError

from framewatch.config import SourceSettings, channel_name
from storage.subscribers import SubscriptionSpec

MAX_ARGS_CHARS = 1000
MAX_TOKENS = 30
MAX_KEYWORD = 100
MAX_QUERY = 500
PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
TREND_PERIODS = {"7d": timedelta(days=7), "30d": timedelta(days=30)}
DIGEST_MODES = ("off", "hourly", "daily")

_INVISIBLE_RE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_TOKEN_RE = re.compile(r'[+-]?"[^"]*"|\S+')
_NAME_RE = re.compile(r"^[\w.\-]{1,200}$")
_CHANNEL_RE = re.compile(r"[A-Za-z0-9_]{3,64}")  # a channel's username, once channel_name has read the link


class ArgError(ValueError):
    """A user-facing argument problem: i18n `key` with `values`; `choices` lists what would be valid."""

    def __init__(self, key: str, *, choices: Sequence[str] = (), **values: object) -> None:
        super().__init__(key)
        self.key, self.choices, self.values = key, tuple(choices), values


def normalise(raw: str | None) -> str:
    """NFKC (full-width letters → ASCII), no invisible/bidi controls, single spaces."""
    text = _INVISIBLE_RE.sub("", unicodedata.normalize("NFKC", raw or ""))
    text = "".join(ch if ch.isprintable() or ch in " \n\t" else " " for ch in text)
    return " ".join(text.split())


def tokens(raw: str | None, *, max_chars: int = MAX_ARGS_CHARS, max_tokens: int = MAX_TOKENS) -> list[str]:
    text = normalise(raw)
    if len(text) > max_chars:
        raise ArgError("too_long", n=max_chars)
    found = _TOKEN_RE.findall(text)
    if len(found) > max_tokens:
        raise ArgError("too_many_args", n=max_tokens)
    return found


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _frame_ids(values: Sequence[str], frames: Collection[str]) -> tuple[str, ...]:
    wanted = [v.casefold() for item in values for v in item.split(",") if v]
    unknown = sorted({w for w in wanted if w not in frames})
    if unknown:
        raise ArgError("unknown_frames", choices=sorted(frames), bad=", ".join(unknown))
    return tuple(dict.fromkeys(wanted))


def _score(value: str) -> float:
    try:
        score = float(value.replace(",", "."))
    except ValueError:
        raise ArgError("bad_min") from None
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise ArgError("bad_min")
    return score


def _keyword(value: str) -> str:
    word = _unquote(value).strip()
    if not 1 <= len(word) <= MAX_KEYWORD:
        raise ArgError("bad_keyword", n=MAX_KEYWORD)
    return word


def parse_subscribe(raw: str | None, *, frames: Collection[str], sources: Collection[str]) -> SubscriptionSpec:
    frame_args: list[str] = []
    src: list[str] = []
    langs: list[str] = []
    include: list[str] = []
    exclude: list[str] = []
    min_score = 0.0
    by_fold = {s.casefold(): s for s in sources}
    for token in tokens(raw):
        key, sep, value = token.partition(":")
        key = key.casefold()
        if sep and key == "source":
            name = by_fold.get(value.casefold())
            if name is None:
                raise ArgError("unknown_sources", choices=sorted(sources), bad=value[:100])
            src.append(name)
        elif sep and key == "min":
            min_score = _score(value)
        elif sep and key == "lang":
            if not re.fullmatch(r"[a-z]{2}", value.casefold()):
                raise ArgError("bad_lang", choices=("en", "ru", "uk"))
            langs.append(value.casefold())
        elif token[0] == "+" and len(token) > 1:
            include.append(_keyword(token[1:]))
        elif token[0] == "-" and len(token) > 1:
            exclude.append(_keyword(token[1:]))
        elif re.fullmatch(r"[\w,]+", token):
            frame_args.append(token)
        else:
            raise ArgError("bad_token", token=token[:100])
    return SubscriptionSpec(
        frames=_frame_ids(frame_args, frames),
        sources=tuple(dict.fromkeys(src)),
        languages=tuple(dict.fromkeys(langs)),
        include_keywords=tuple(dict.fromkeys(include)),
        exclude_keywords=tuple(dict.fromkeys(exclude)),
        min_score=min_score,
    )


def parse_unsubscribe(raw: str | None, *, frames: Collection[str]) -> str | None:
    """None means "all"."""
    args = tokens(raw, max_tokens=1)
    if not args or args[0].casefold() == "all":
        return None
    (frame,) = _frame_ids(args, frames)[:1] or ("",)
    return frame


def parse_choice(raw: str | None, choices: Sequence[str], *, default: str | None = None) -> str:
    args = tokens(raw, max_tokens=1)
    if not args and default is not None:
        return default
    value = args[0].casefold() if args else ""
    if value not in choices:
        raise ArgError("bad_token" if args else "usage", choices=choices, token=value[:100])
    return value


def parse_post_id(raw: str | None) -> int:
    args = tokens(raw, max_tokens=1)
    value = args[0].lstrip("#") if args else ""
    if not re.fullmatch(r"\d{1,12}", value) or int(value) == 0:
        raise ArgError("bad_token" if args else "usage", token=value[:100])
    return int(value)


def parse_trend(raw: str | None, *, frames: Collection[str]) -> tuple[str, str]:
    args = tokens(raw, max_tokens=2)
    if not args:
        raise ArgError("usage", choices=sorted(frames))
    (frame,) = _frame_ids(args[:1], frames)[:1] or ("",)
    if not frame:
        raise ArgError("usage", choices=sorted(frames))
    period = parse_choice(" ".join(args[1:]), tuple(TREND_PERIODS), default="7d")
    return frame, period


def parse_label(raw: str | None, *, frames: Collection[str]) -> tuple[int, tuple[str, ...]]:
    args = tokens(raw, max_tokens=2)
    if len(args) != 2:
        raise ArgError("usage", choices=[*sorted(frames), "none"])
    post_id = parse_post_id(args[0])
    if args[1].casefold() == "none":
        return post_id, ()
    chosen = _frame_ids([args[1]], frames)
    if not chosen:
        raise ArgError("usage", choices=[*sorted(frames), "none"])
    return post_id, chosen


def parse_search(raw: str | None) -> str:
    text = normalise(raw)
    if not text:
        raise ArgError("usage")
    if len(text) > MAX_QUERY:
        raise ArgError("too_long", n=MAX_QUERY)
    return text


def parse_name(raw: str | None) -> str:
    args = tokens(raw, max_tokens=1)
    if not args or not _NAME_RE.fullmatch(args[0]):
        raise ArgError("bad_token" if args else "usage", token=(args[0] if args else "")[:100])
    return args[0]


def _slug(text: str) -> str:
    return re.sub(r"[^\w.\-]+", "-", text).strip("-.")[:100] or "source"


def parse_addsource(raw: str | None) -> SourceSettings:
    """`rss URL [name]` or `telegram CHANNEL [name]` → validated SourceSettings (same rules as the config)."""
    args = tokens(raw, max_tokens=3)
    if len(args) < 2 or args[0].casefold() not in ("rss", "telegram"):
        raise ArgError("usage", choices=("rss", "telegram"))
    kind, target = args[0].casefold(), args[1]
    data: dict[str, object] = {"kind": kind}
    if kind == "rss":
        data["url"] = target
        try:
            host = urlsplit(target).hostname or ""
        except ValueError:  # an unclosed IPv6 bracket, a bad port
            raise ArgError("bad_token", token=target[:100]) from None
        default_name = _slug(host.removeprefix("www."))
    else:
        channel = channel_name(target)
        if not _CHANNEL_RE.fullmatch(channel):
            raise ArgError("bad_token", token=target[:100])
        data["channel"] = default_name = channel
    data["name"] = args[2] if len(args) > 2 else default_name
    try:
        return SourceSettings(**data)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "source"
        raise ArgError("addsource_error", message=f"{field}: {first['msg']}"[:300]) from None
