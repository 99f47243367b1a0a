"""Configuration: the example file is valid and complete; mistakes are named, never tracebacks."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from framewatch.config import ConfigError, Settings, SourceSettings, channel_name, load_settings, parse_duration

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"


def test_example_config_loads_and_matches_defaults() -> None:
    settings = load_settings(EXAMPLE, environ={})
    defaults = Settings()
    assert settings.ingest == defaults.ingest
    assert settings.alerts == defaults.alerts
    assert settings.database == defaults.database
    assert [s.name for s in settings.sources] == ["wire-world", "baza"]


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def test_every_setting_is_documented_in_the_example() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    missing = []
    for key in sorted(_keys(Settings)):
        leaf = key.rsplit(".", 1)[-1]
        if key == "sources":
            continue
        # documented either as a live key or as a commented example line
        if f"\n{leaf} =" not in text and f"\n# {leaf} =" not in text:
            missing.append(key)
    assert not missing, f"keys missing from config.example.toml: {missing}"


def test_durations() -> None:
    assert parse_duration("30s") == timedelta(seconds=30)
    assert parse_duration("5m") == timedelta(minutes=5)
    assert parse_duration("1h") == timedelta(hours=1)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration(90) == timedelta(seconds=90)
    assert parse_duration("36500d") == timedelta(days=36500)
    # too long to mean anything, and past what timedelta/date arithmetic holds (was an OverflowError)
    for bad in ("10x", "", "-5m", "0s", True, "m", "99999999999999d", 1e300):
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('[ingest]\ndefault_interval = "soon"\n', "ingest.default_interval"),
        ("[ingest]\nbackfil_pages = 3\n", "ingest.backfil_pages: unknown key"),
        ('[ingest]\nbackfill_pages = "many"\n', "ingest.backfill_pages"),
        ('[ingest]\ndefault_interval = "99999999999999d"\n', "ingest.default_interval: Value error, duration too long"),
        ('[database]\nurl = "mysql://x"\n', "database.url"),
        ('[database]\nurl = "postgresql+asyncpg://h/db"\n', "database.url"),  # a driver not shipped: was a traceback
        ('[database]\nurl = "sqlitefoo:///x"\n', "database.url"),
        ('[database]\nurl = "sqlite:///:memory:"\n', "database.url: Value error, an in-memory SQLite database"),
        ('[[sources]]\nname = "a"\nkind = "rss"\n', "sources[0]"),
        ('[[sources]]\nname = "a"\nkind = "rss"\nurl = "http://[::1/feed"\n', "has no valid host"),
        ('[[sources]]\nname = "a"\nkind = "carrier-pigeon"\nurl = "http://x"\n', "sources[0].kind"),
        (
            '[[sources]]\nname="a"\nkind="telegram"\nchannel="abc"\n[[sources]]\nname="a"\nkind="telegram"\n'
            'channel="abd"\n',
            "duplicate source name",
        ),
        ('[telegram]\nmode = "webhook"\n', "telegram"),
        # Values every request or every start would fail on at run time (were a traceback, or a bot
        # retrying an unreachable URL forever):
        ('[ingest]\nuser_agent = "framewatch ü"\n', "ingest.user_agent"),
        ('[ingest]\nuser_agent = "a\\r\\nX-Injected: 1"\n', "ingest.user_agent"),
        ('[ingest]\ntelegram_web_base = "http://[::1/s/"\n', "'http://[::1/s/' has no valid host"),
        ('[telegram]\napi_base_url = "api.telegram.org/bot"\n', "telegram.api_base_url: Value error, must be an http"),
        ('[telegram]\nbase_file_url = "http://[::1/file"\n', "telegram.base_file_url"),
        ('[telegram]\nwebhook_url = "ftp://bot.example.org"\n', "telegram.webhook_url"),
        ('[telegram]\nwebhook_secret = "two words"\n', "telegram.webhook_secret"),
        ("[telegram]\nadmins = [99999999999999999999]\n", "telegram.admins[0]: Input should be less than"),
        ("[telegram]\nallowlist = [0]\n", "telegram.allowlist[0]: Input should be greater than or equal to 1"),
        ("[telegram]\nanalysts = [1.5]\n", "telegram.analysts[0]: Input should be a valid integer"),  # no type tags
        ('[ingest]\ntimeout = "36000d"\nbackfill_pages = 1000\n', "ingest.timeout: Value error, must be at most 1h"),
        ('[ingest]\ndefault_interval = "36500d"\n', "ingest.default_interval: Value error, must be at most 365d"),
        (
            '[[sources]]\nname = "a"\nkind = "telegram"\nchannel = "abc"\ninterval = "36500d"\n',
            "sources[0].interval: Value error, must be at most 365d",
        ),
        ("[ingest\n", "not valid TOML"),
    ],
)
def test_bad_config_names_key_and_file(tmp_path: Path, toml: str, needle: str) -> None:
    path = tmp_path / "fw.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_a_config_file_saved_with_a_bom_loads(tmp_path: Path) -> None:
    """Windows editors save UTF-8 with a BOM; tomllib alone calls that "Invalid statement" at line 1."""
    path = tmp_path / "fw.toml"
    path.write_bytes('\ufeff[ingest]\ntimeout = "5s"\n'.encode())
    assert load_settings(path, environ={}).ingest.timeout.total_seconds() == 5


@pytest.mark.parametrize(
    ("typed", "seen"),
    [
        (["ingest", "--once", "--config", "fw.toml"], ["--config", "fw.toml", "ingest", "--once"]),
        (["search", "--config=fw.toml", "war"], ["--config=fw.toml", "search", "war"]),
        (["--config", "fw.toml", "sources", "list"], ["--config", "fw.toml", "sources", "list"]),
        (["search", "--", "--config", "x"], ["search", "--", "--config", "x"]),  # after --: the query's
        (["sources", "list", "--config"], ["sources", "list", "--config"]),  # no value: click says so
    ],
)
def test_config_option_is_accepted_after_the_sub_command(typed: list[str], seen: list[str]) -> None:
    from framewatch.cli import hoist_config

    assert hoist_config(typed) == seen


def _one_channel_config(path: Path) -> Path:
    """A config with its database beside it and one channel, "baza", that only the file names."""
    path.write_text(
        f'[database]\nurl = "sqlite:///{path.parent / "fw.db"}"\n[[sources]]\nname = "baza"\nkind = "telegram"\n'
        'channel = "bazabazon"\n',
        encoding="utf-8",
    )
    return path


def test_config_after_the_sub_command_reaches_the_real_entry_point(tmp_path: Path) -> None:
    """`framewatch sources list --config fw.toml` used to be "No such option: --config" (exit 2)."""
    from tests.cli import run_framewatch

    path = _one_channel_config(tmp_path / "fw.toml")
    done = run_framewatch("sources", "list", "--config", str(path), env={}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "baza" in done.stdout and (tmp_path / "fw.db").exists()


def test_environment_names_that_set_nothing_are_pointed_out() -> None:
    """FRAMEWATCH_TELEGRAM_ADMINS (one underscore) used to be ignored without a word."""
    from framewatch.config import ignored_env_names

    env = {
        "FRAMEWATCH_TELEGRAM_ADMINS": "[1]",
        "FRAMEWATCH_TELEGRAM__ADMINS": "[1]",
        "FRAMEWATCH_DATABASE_URL": "sqlite:///a.db",
        "FRAMEWATCH_TEST_DATABASE_URL": "postgresql+psycopg://x/y",
        "FRAMEWATCH_CONFIG": "fw.toml",
        "FRAMEWATCH_HOME": "/srv",
        "PATH": "/bin",
    }
    assert ignored_env_names(env) == [
        "FRAMEWATCH_HOME is not a framewatch setting and is ignored",
        "FRAMEWATCH_TELEGRAM_ADMINS is not a framewatch setting and is ignored "
        "(did you mean FRAMEWATCH_TELEGRAM__ADMINS?)",
    ]


def test_config_path_from_the_environment(tmp_path: Path) -> None:
    """FRAMEWATCH_CONFIG names the file when --config is not given (containers, systemd units)."""
    from tests.cli import run_framewatch

    path = _one_channel_config(tmp_path / "elsewhere.toml")
    done = run_framewatch("sources", "list", env={"FRAMEWATCH_CONFIG": str(path)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "baza" in done.stdout and "warning" not in done.stderr


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "fw.toml"
    path.write_text('[database]\nurl = "sqlite:///a.db"\n[ingest]\ntimeout = "5s"\n', encoding="utf-8")
    env = {
        "FRAMEWATCH_DATABASE_URL": "sqlite:///b.db",
        "FRAMEWATCH_TELEGRAM_TOKEN": "123456:s3cr3tTOKEN",
        "FRAMEWATCH_INGEST__TIMEOUT": "7s",
        "FRAMEWATCH_TELEGRAM__ADMINS": "[1, 2]",
    }
    s = load_settings(path, environ=env)
    assert s.database.url == "sqlite:///b.db"
    assert s.telegram.token is not None and s.telegram.token.get_secret_value() == "123456:s3cr3tTOKEN"
    assert "s3cr3tTOKEN" not in repr(s)
    assert s.ingest.timeout == timedelta(seconds=7)
    assert s.telegram.admins == [1, 2]


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(ConfigError, match=r"ingest\.timeout"):
        load_settings(None, environ={"FRAMEWATCH_INGEST__TIMEOUT": "forever"})


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_cli_exits_2_with_key_and_file(tmp_path: Path) -> None:
    from framewatch import commands  # noqa: F401
    from framewatch.cli import app

    path = tmp_path / "fw.toml"
    path.write_text("[ingest]\ntimeout = 5\nbogus = true\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(path), "sources", "list"])
    assert result.exit_code == 2
    assert "ingest.bogus" in result.output and str(path) in result.output.replace("\n", "")
    assert "Traceback" not in result.output


def test_example_is_plain_toml() -> None:
    tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("kind", ["postgres-refused", "sqlite-unopenable"])
def test_unreachable_database_is_one_line_not_a_traceback(tmp_path: Path, kind: str, free_port: int) -> None:
    """A database that is down or cannot be opened is an operator's problem: the real `framewatch`
    entry point says so in one line naming the setting, exits 1, and never prints the password."""
    from tests.cli import run_framewatch

    url = (
        f"postgresql+psycopg://fw:s3cret-pw@127.0.0.1:{free_port}/test"
        if kind == "postgres-refused"
        else f"sqlite:///{tmp_path}"  # a directory: SQLite cannot open it as a file
    )
    for command in (["sources", "list"], ["run"]):
        done = run_framewatch(*command, env={"FRAMEWATCH_DATABASE_URL": url}, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "database unavailable" in done.stderr and "database.url" in done.stderr
        assert ("refused" if kind == "postgres-refused" else "unable to open database file") in done.stderr
        assert "Traceback" not in done.stderr and "s3cret-pw" not in done.stderr + done.stdout


def test_a_file_that_is_not_a_database_is_reported_and_left_alone(tmp_path: Path) -> None:
    """database.url pointing at some other file (or a corrupted one): one line, exit 1, file untouched."""
    from tests.cli import run_framewatch

    other = tmp_path / "notes.db"
    junk = bytes(range(256)) * 64
    other.write_bytes(junk)
    for command in (["sources", "list"], ["db", "upgrade"], ["ingest", "--once"]):
        done = run_framewatch(*command, env={"FRAMEWATCH_DATABASE_URL": f"sqlite:///{other}"}, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "database unusable: file is not a database" in done.stderr and "database.url" in done.stderr
        assert "Traceback" not in done.stderr
    assert other.read_bytes() == junk


def test_a_schema_from_a_newer_framewatch_stops_before_touching_it(database_url: str, tmp_path: Path) -> None:
    """A revision this code has no migration for (a newer framewatch migrated the database, then the old
    one was started again): Alembic's CommandError traceback before; now one line naming the revision."""
    from storage.db import create_engine
    from storage.migrate import current_revision, upgrade
    from tests.cli import run_framewatch

    engine = create_engine(database_url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'fffffff00001'")
    for command in (["sources", "list"], ["db", "upgrade"], ["run"]):
        done = run_framewatch(*command, env={"FRAMEWATCH_DATABASE_URL": database_url}, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "schema revision fffffff00001, which this framewatch does not know" in done.stderr
        assert "Traceback" not in done.stderr
    assert current_revision(engine) == "fffffff00001"
    engine.dispose()


@pytest.mark.parametrize(
    ("pasted", "name"),
    [
        ("bazabazon", "bazabazon"),
        ("@bazabazon", "bazabazon"),
        (" t.me/bazabazon ", "bazabazon"),
        ("https://t.me/s/bazabazon", "bazabazon"),
        ("http://www.telegram.me/bazabazon", "bazabazon"),
        ("https://T.me/s/bazabazon/1234?single", "bazabazon"),  # a post link names its channel
        ("https://example.com/bazabazon", "https://example.com/bazabazon"),  # left for validation to refuse
    ],
)
def test_channel_name_from_what_people_paste(pasted: str, name: str) -> None:
    """Config files, `sources add` and the bot's /addsource take a channel link as well as a name."""
    assert channel_name(pasted) == name
    if name.isidentifier():
        assert SourceSettings(name="x", kind="telegram", channel=pasted).channel == name
    else:
        with pytest.raises(ValueError, match="channel"):
            SourceSettings(name="x", kind="telegram", channel=pasted)
