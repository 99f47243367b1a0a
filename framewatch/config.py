"""Settings: one TOML file plus environment overrides, validated up front so a typo fails at start, by name."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG_PATH = Path("framewatch.toml")
ENV_PREFIX = "FRAMEWATCH_"
# Flat environment names operators expect for the two settings that most often differ per deployment.
ENV_ALIASES = {
    "FRAMEWATCH_DATABASE_URL": ("database", "url"),
    "FRAMEWATCH_TELEGRAM_TOKEN": ("telegram", "token"),
}
# FRAMEWATCH_* variables that are not settings: the config path (read by the CLI) and the test suite's.
ENV_NOT_SETTINGS = frozenset({"FRAMEWATCH_CONFIG", "FRAMEWATCH_TEST_DATABASE_URL"})

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_MAX_DURATION_SECONDS = 100 * 366 * 86400


def parse_duration(value: Any) -> timedelta:
    """ "30s", "5m", "1h", "7d" (or a number of seconds) → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration like '30s', '5m', '1h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError(f"expected a duration like '30s', '5m', '1h', got {value!r}")
    if seconds <= 0:
        raise ValueError("duration must be positive")
    if seconds > _MAX_DURATION_SECONDS:  # also keeps timedelta and date arithmetic from overflowing
        raise ValueError(f"duration too long (at most 100 years), got {value!r}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg"}  # backend → the driver framewatch ships


class DatabaseSettings(_Section):
    url: str = "sqlite:///framewatch.db"
    # Connections per process (PostgreSQL); unset = sized for the process's role (ingest 4, deliver 3,
    # bot 5, all 8, one-off commands 2).
    pool_size: int | None = Field(default=None, ge=1, le=100)

    @field_validator("url")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        """The two backends framewatch ships drivers for, and a SQLite database that is a file."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(v)
        except ArgumentError:
            url = None
        backend, _, driver = url.drivername.partition("+") if url is not None else ("", "", "")
        if (backend, driver or _DRIVERS.get(backend)) not in _DRIVERS.items():
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        if backend == "sqlite" and (url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"):
            # Each thread's connection would get its own empty database, and all of it is lost at exit.
            raise ValueError("an in-memory SQLite database cannot work here; give a file, e.g. sqlite:///framewatch.db")
        return v


class IngestSettings(_Section):
    default_interval: Duration = timedelta(minutes=10)
    telegram_web_base: str = "https://t.me/s/"
    timeout: Duration = timedelta(seconds=20)
    max_response_bytes: int = Field(default=10_000_000, ge=1024)
    # Sent as a header: printable ASCII only (httpx refused anything else on every request).
    user_agent: str = Field(
        default="framewatch/0.1 (+https://github.com/framewatch/framewatch)", pattern=r"^[\x20-\x7e]{1,512}$"
    )
    backfill_pages: int = Field(default=5, ge=1, le=1000)
    concurrency: int = Field(default=8, ge=1, le=256)
    per_host_concurrency: int = Field(default=2, ge=1, le=64)
    max_redirects: int = Field(default=5, ge=0, le=30)
    max_backoff: Duration = timedelta(hours=6)
    disable_after_failures: int = Field(default=20, ge=1)
    # Also the longest a due source waits past its interval, so it bounds alert latency (issue 5).
    tick: Duration = timedelta(seconds=1)
    # How long a worker owns a source it is polling; unset = derived from timeout × (backfill_pages + 2).
    lease: Duration | None = None

    @field_validator("default_interval")
    @classmethod
    def _default_interval_bound(cls, v: timedelta) -> timedelta:
        return poll_interval(v)

    @field_validator("timeout")
    @classmethod
    def _timeout_bound(cls, v: timedelta) -> timedelta:
        # The lease is derived from it (× backfill_pages); a timeout of decades overflowed the lease's
        # expiry date into a traceback, and no HTTP request is worth waiting an hour for.
        if v > timedelta(hours=1):
            raise ValueError("must be at most 1h")
        return v

    @field_validator("telegram_web_base")
    @classmethod
    def _web_base(cls, v: str) -> str:
        v = http_url(v, example="https://t.me/s/")
        return v if v.endswith("/") else v + "/"


_CHANNEL_LINK_RE = re.compile(r"^(?:https?://)?(?:www\.)?(?:t|telegram)\.me/(?:s/)?([^/?#]+)", re.IGNORECASE)


def channel_name(target: str) -> str:
    """The channel's username from what people paste: "@baza", "baza", "t.me/baza",
    "https://t.me/s/baza/1234?single" (a post link names its channel). The field pattern validates it."""
    target = target.strip()
    if match := _CHANNEL_LINK_RE.match(target):
        target = match.group(1)
    return target.lstrip("@")


def poll_interval(v: timedelta) -> timedelta:
    """At most a year: sources store it in whole seconds in an INTEGER column, which PostgreSQL refused
    past 68 years with a traceback; no source is worth polling less than yearly."""
    if v > timedelta(days=365):
        raise ValueError("must be at most 365d")
    return v


def http_url(v: str, *, example: str) -> str:
    """An http(s) URL with a host httpx can reach: anything else fails every request at run time
    (a bad Bot API URL retried forever at start), so it is a configuration error instead."""
    if not v.startswith(("http://", "https://")):
        raise ValueError(f"must be an http(s) URL such as {example}")
    if not _has_host(v):
        raise ValueError(f"{v!r} has no valid host")
    return v


def _has_host(url: str) -> bool:
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:  # an unclosed IPv6 bracket, a bad port
        return False


class SourceSettings(_Section):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[\w.\-]+$")
    kind: Literal["rss", "telegram", "telethon"]
    url: str | None = None
    channel: str | None = Field(default=None, pattern=r"^@?[A-Za-z0-9_]{3,64}$")
    interval: Duration | None = None
    fetch_full_text: bool = False
    enabled: bool = True
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}$")

    @field_validator("interval")
    @classmethod
    def _interval_bound(cls, v: timedelta | None) -> timedelta | None:
        return None if v is None else poll_interval(v)

    @field_validator("channel", mode="before")
    @classmethod
    def _channel_from_link(cls, v: Any) -> Any:
        return channel_name(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _kind_fields(self) -> SourceSettings:
        if self.kind == "rss" and not (self.url and self.url.startswith(("http://", "https://"))):
            raise ValueError('an rss source needs url = "http(s)://…"')
        if self.kind == "rss" and not _has_host(self.url or ""):
            raise ValueError(f"url {self.url!r} has no valid host")
        if self.kind in ("telegram", "telethon") and not self.channel:
            raise ValueError(f'a {self.kind} source needs channel = "name"')
        if self.channel:
            self.__dict__["channel"] = self.channel.lstrip("@")
        return self


# A Telegram user id: positive, "at most 52 significant bits" (Bot API docs). A larger one in admins
# overflowed the outbox's chat id column inside a poll's transaction and failed that poll every time.
UserId = Annotated[int, Field(ge=1, lt=2**52)]


class TelethonSettings(_Section):
    api_id: int | None = None
    api_hash: SecretStr | None = None
    session: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.api_id and self.api_hash and self.session)


class TelegramSettings(_Section):
    token: SecretStr | None = None
    api_base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    admins: list[UserId] = Field(default_factory=list)
    analysts: list[UserId] | Literal["*"] = Field(default_factory=list)
    open_subscriptions: bool = True
    allowlist: list[UserId] = Field(default_factory=list)
    mode: Literal["polling", "webhook"] = "polling"
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    telethon: TelethonSettings = Field(default_factory=TelethonSettings)

    @field_validator("api_base_url", "base_file_url", "webhook_url")
    @classmethod
    def _http_urls(cls, v: str | None) -> str | None:
        return None if v is None else http_url(v, example="https://api.telegram.org/bot")

    @field_validator("webhook_secret")
    @classmethod
    def _secret_token(cls, v: SecretStr | None) -> SecretStr | None:
        # Telegram's secret_token alphabet; anything else makes setWebhook fail at every start.
        if v is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", v.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return v

    @field_validator("token", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        # FRAMEWATCH_TELEGRAM_TOKEN= (set but empty) means "no token": console mode, not a refused token.
        return None if isinstance(v, str) and not v.strip() else v

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> TelegramSettings:
        if self.mode == "webhook" and not self.webhook_url:
            raise ValueError('mode = "webhook" needs webhook_url')
        return self


class AlertSettings(_Section):
    max_age: Duration = timedelta(hours=6)
    dedup_window: Duration = timedelta(hours=24)
    excerpt_chars: int = Field(default=600, ge=100, le=3000)
    max_attempts: int = Field(default=8, ge=1)
    deactivate_after_failures: int = Field(default=3, ge=1)


class ClassifierSettings(_Section):
    models_dir: Path = Path("models")
    max_activation_drop: float = Field(default=0.02, ge=0.0, le=1.0)
    feedback_weight: float = Field(default=0.3, ge=0.0, le=1.0)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(BaseSettings):
    """The whole configuration. Environment (FRAMEWATCH_SECTION__KEY) wins over the file."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    sources: list[SourceSettings] = Field(default_factory=list)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings() merges file and environment itself (so it can take an explicit environ and
        # name the offending key); the model only validates what it is given.
        return (init_settings,)

    @model_validator(mode="after")
    def _unique_source_names(self) -> Settings:
        seen: set[str] = set()
        for i, source in enumerate(self.sources):
            if source.name in seen:
                raise ValueError(f"sources[{i}].name: duplicate source name {source.name!r}")
            seen.add(source.name)
        return self


class ConfigError(Exception):
    """A configuration problem, phrased for the operator: which file, which key, what is wrong."""


def _loc_to_key(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        elif str(item).startswith("function-") or "[" in str(item) or str(item).startswith("constrained-"):
            continue  # pydantic's validator and union-branch tags ("list[int]", "literal['*']"), not keys
        else:
            parts.append(str(item))
    return ".".join(parts)


def format_validation_error(error: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration in {origin}:"]
    for err in error.errors():
        key = _loc_to_key(tuple(err["loc"])) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, Any]]:
    """FRAMEWATCH_SECTION__KEY=value (and the flat aliases) → {"section": {"key": value}}."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in environ.items():
        if name in ENV_ALIASES:
            section, key = ENV_ALIASES[name]
        elif name.startswith(ENV_PREFIX) and "__" in name:
            section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        else:
            continue
        if value.strip().startswith("["):
            with contextlib.suppress(json.JSONDecodeError, RecursionError):
                value = json.loads(value)
        out.setdefault(section, {})[key] = value
    return out


def ignored_env_names(environ: dict[str, str]) -> list[str]:
    """FRAMEWATCH_* variables that set nothing, each with the spelling that would (a single underscore
    between section and key is the usual slip: FRAMEWATCH_TELEGRAM_ADMINS for FRAMEWATCH_TELEGRAM__ADMINS)."""
    sections = [name.upper() for name in Settings.model_fields]
    out = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or "__" in name or name in ENV_ALIASES or name in ENV_NOT_SETTINGS:
            continue
        rest = name[len(ENV_PREFIX) :]
        section = next((s for s in sections if rest.startswith(s + "_") and len(rest) > len(s) + 1), None)
        hint = f" (did you mean {ENV_PREFIX}{section}__{rest[len(section) + 1 :]}?)" if section else ""
        out.append(f"{name} is not a framewatch setting and is ignored{hint}")
    return out


def load_settings(path: Path | None = None, *, environ: dict[str, str] | None = None) -> Settings:
    """Read `path` (or ./framewatch.toml if present; built-in defaults otherwise), then the environment."""
    environ = dict(os.environ if environ is None else environ)
    explicit = path is not None
    path = path or DEFAULT_CONFIG_PATH
    data: dict[str, Any] = {}
    origin = "built-in defaults"
    if path.exists():
        origin = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # Windows editors add a BOM
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"invalid configuration in {path}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    elif explicit:
        raise ConfigError(f"configuration file {path} does not exist")
    overrides = _env_overrides(environ)
    for section, values in overrides.items():
        current = data.get(section)
        data[section] = {**current, **values} if isinstance(current, dict) else values
    try:
        return Settings(**data)
    except ValidationError as exc:
        where = f"{origin} (with {ENV_PREFIX}* environment overrides)" if overrides else origin
        raise ConfigError(format_validation_error(exc, where)) from None
