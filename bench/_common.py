"""Helpers shared by the bench/ scripts: medians, Markdown tables, child processes with peak RSS, the
machine description, synthetic RU/UK/EN text, and synthetic t.me/s channels and RSS feeds to serve.

Benchmarks print Markdown tables so `bench/run_all.py` can paste them into docs/performance.md as they
are. Peak memory is read from the kernel's accounting of one child (`os.wait4`), so a figure never
includes the benchmark driver, the local HTTP server or an earlier child.
"""

from __future__ import annotations

import gzip
import html
import math
import os
import platform
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


# -- numbers and tables ---------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): with few samples an interpolated p95 invents values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


def time_runs(fn: Callable[[], object], runs: int) -> list[float]:
    """Wall seconds of `runs` calls of `fn`."""
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def fmt_rate(value: float) -> str:
    return "—" if value != value else f"{value:,.0f}"


def fmt_ratio(value: float) -> str:
    return "—" if value != value else f"{value:.2f}"


def fmt_mib(kib: float | None) -> str:
    return "—" if kib is None else f"{kib / 1024:,.0f} MiB"


def fmt_seconds(value: float) -> str:
    if value != value:
        return "—"
    return f"{value * 1000:,.1f} ms" if value < 1 else f"{value:,.2f} s"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, align: str = "") -> str:
    """A GitHub-flavoured Markdown table; `align` is one letter per column (l/r), default l then r."""
    align = align or "l" + "r" * (len(headers) - 1)
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if a == "r" else v.ljust(w) for v, w, a in zip(values, widths, align, strict=True)]
        return "| " + " | ".join(parts) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":" if a == "r" else ":" + "-" * (w + 1)) for w, a in zip(widths, align, strict=True)
        )
        + "|"
    )
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]], *, note: str = "") -> None:
    print(f"\n### {title}\n")
    print(markdown_table(headers, rows))
    if note:
        print(f"\n{note}")
    sys.stdout.flush()


# -- child processes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    cpu_seconds: float  # user + system time of this child, all its threads
    peak_rss_kib: int  # the child's VmHWM, sampled every 20 ms while it ran (KiB)


def vm_hwm_kib(pid: int | str = "self") -> int | None:
    """Peak resident set of a live process's own address space (VmHWM), in KiB; None if unknown.

    Not ru_maxrss: Linux carries the parent's high-water mark into a forked child's maxrss across exec,
    so a 300 MB benchmark driver would make every child look at least 300 MB big.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def own_peak_rss_kib() -> int:
    """This process's peak RSS: VmHWM, or ru_maxrss where /proc is missing (which may include the parent)."""
    import resource

    return vm_hwm_kib() or int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run_child(
    cmd: Sequence[str],
    *,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    stop_when: Callable[[], bool] | None = None,
) -> ChildRun:
    """Run `cmd` to completion and return its output, CPU time and peak RSS.

    `stop_when` (checked every 0.1 s) ends a long-running service politely: SIGTERM once it is true,
    SIGKILL if the child has not exited 30 s later. `timeout` kills it outright. CPU time comes from
    `os.wait4` (exactly this child). Peak RSS is the child's VmHWM sampled while it runs, because its
    ru_maxrss would include this (large) parent's; growth in the child's last 20 ms can be missed, so a
    child that can should also report `own_peak_rss_kib()` itself.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=ROOT)
        deadline = None if timeout is None else started + timeout
        terminated_at: float | None = None
        next_check = 0.0
        peak = 0
        while True:
            peak = max(peak, vm_hwm_kib(proc.pid) or 0)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            now = time.perf_counter()
            if (deadline is not None and now > deadline) or (terminated_at and now - terminated_at > 30):
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            if stop_when is not None and terminated_at is None and now >= next_check:
                next_check = now + 0.1
                if stop_when():
                    proc.terminate()
                    terminated_at = now
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait again
        out.seek(0)
        err.seek(0)
        return ChildRun(
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            seconds=seconds,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            peak_rss_kib=peak,
        )


def clean_env() -> dict[str, str]:
    """This environment without FRAMEWATCH_* overrides, so a child sees only the config it is given."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FRAMEWATCH_")}


def python_child(script: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / script), *args]


# -- machine ----------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "?"


def _postgres_version(url: str | None) -> str:
    """The server's version when a URL is given (what the PostgreSQL figures ran on), else the binary's."""
    if url:
        try:
            import sqlalchemy as sa

            engine = sa.create_engine(url)
            try:
                with engine.connect() as conn:
                    return f"{conn.exec_driver_sql('SHOW server_version').scalar()} (server)"
            finally:
                engine.dispose()
        except Exception as exc:  # a report without the version beats no report
            return f"unreachable ({type(exc).__name__})"
    for exe in ("postgres", "psql"):
        path = shutil.which(exe)
        if not path:
            continue
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if m := re.search(r"\d+(\.\d+)+", out):
            return f"{m.group(0)} ({exe} binary)"
    return "not installed"


def _package_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "—"


def load_average() -> str:
    """The 1/5/15-minute load averages: on a shared machine they say how much the figures are disturbed."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "?"
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f}"


def machine_description(postgres_url: str | None = None) -> list[tuple[str, str]]:
    """(item, value) pairs describing where the figures were measured."""
    cpus = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cpus
    libs = ", ".join(
        f"{n} {_package_version(n)}"
        for n in ("selectolax", "feedparser", "httpx", "SQLAlchemy", "scikit-learn", "psycopg")
    )
    return [
        ("date (UTC)", datetime.now(UTC).strftime("%Y-%m-%d %H:%M")),
        ("CPU", f"{cpu_model()} — nproc {usable}" + (f" of {cpus}" if usable != cpus else "")),
        ("RAM", _ram()),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("SQLite", sqlite3.sqlite_version),
        ("PostgreSQL", _postgres_version(postgres_url)),
        ("libraries", libs),
        ("load average (1/5/15 min) at start", load_average()),
    ]


# -- synthetic text -------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


WORDS = {
    "en": _words(
        "the of and to in is that for on with as was by at from it this be are have not has they war "
        "russia russian ukraine ukrainian army forces said president government military attack troops "
        "city region people killed missile drone strike front line defence minister report officials "
        "security moscow kyiv kremlin border soldiers units reported claims sources support sanctions "
        "weapons power energy grid night shelling village counteroffensive brigade battalion commander "
        "general mobilisation propaganda media channel video statement talks peace west nato europe "
        "allies aid residents water supply repairs hospital school evacuation convoy prices fuel"
    ),
    "ru": _words(
        "и в не на что с по как это из за к о но от для у же все так его только был уже сказал россия "
        "российский украина армия войска военные удар ракета дрон фронт оборона министр президент город "
        "область люди погибли обстрел ночью село наступление бригада батальон командир генерал "
        "мобилизация пропаганда канал видео заявление переговоры мир запад нато европа помощь санкции "
        "оружие граница кремль москва киев силы источники сообщают подразделения солдаты жители вода "
        "ремонт больница школа эвакуация колонна цены топливо свет отключения штаб потери"
    ),
    "uk": _words(
        "і в не на що з по як це із за до про але від для у вже все так його тільки був сказав росія "
        "російський україна армія війська військові удар ракета дрон фронт оборона міністр президент "
        "місто область люди загинули обстріл вночі село наступ бригада батальйон командир генерал "
        "мобілізація пропаганда канал відео заява переговори мир захід нато європа допомога санкції "
        "зброя кордон кремль москва київ сили джерела повідомляють підрозділи солдати мешканці вода "
        "ремонт лікарня школа евакуація колона ціни пальне світло відключення штаб втрати"
    ),
}
LANGUAGES = ("ru", "uk", "en")


def zipf_weights(n: int, s: float = 1.05) -> list[float]:
    return [1 / (i + 1) ** s for i in range(n)]


_WEIGHTS = {lang: zipf_weights(len(words)) for lang, words in WORDS.items()}


def sentences(rng: random.Random, lang: str, min_chars: int, max_chars: int) -> list[str]:
    """Sentences of Zipf-distributed words whose total length falls in [min_chars, max_chars]."""
    target = rng.randint(min_chars, max_chars)
    words, weights = WORDS[lang], _WEIGHTS[lang]
    out: list[str] = []
    size = 0
    while size < target:
        n = rng.randint(6, 18)
        sentence = " ".join(rng.choices(words, weights, k=n))
        sentence = sentence[0].upper() + sentence[1:] + rng.choice(".....!?")
        room = target - size
        if len(sentence) > room and out:
            sentence = sentence[: max(room, 20)].rstrip() + "."
        out.append(sentence)
        size += len(sentence) + 1
    return out


# -- synthetic t.me/s channels and RSS feeds ------------------------------------------------------------
# The markup follows tests/fixtures/telegram/*.html (what ingest/telegram_web.py reads); pages of one
# channel are linked through `data-before`, so a first poll with backfill_pages walks all of them.

PER_PAGE = 20
START = datetime(2024, 1, 1, tzinfo=UTC)
TLD_BY_LANG = {"ru": "ru", "uk": "ua", "en": "com"}
CHANNEL_TITLES = {"ru": "Вести края", "uk": "Новини регіону", "en": "Front Line Daily"}


def _views(rng: random.Random) -> str:
    n = int(rng.lognormvariate(8.5, 1.6))
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}K".replace(".0K", "K")
    return f"{n / 1_000_000:.1f}M".replace(".0M", "M")


def _message_html(rng: random.Random, channel: str, lang: str, post_id: int, when: datetime) -> str:
    parts = sentences(rng, lang, 200, 800)
    body: list[str] = []
    if rng.random() < 0.5:  # a bold headline line, as news channels write them
        body.append(f"<b>{html.escape(parts.pop(0))}</b><br/><br/>")
    if rng.random() < 0.15:
        body.append('<i class="emoji" style="background-image:url(\'//telegram.org/img/emoji/40/E29AA1.png\')">'
                    "<b>⚡</b></i> ")  # fmt: skip
    for i, sentence in enumerate(parts):
        text = html.escape(sentence)
        if rng.random() < 0.08:
            word = text.split(" ", 1)[0]
            text = (f'<a href="https://news.example.{TLD_BY_LANG[lang]}/a/{post_id}?utm_source=telegram&amp;'
                    f'utm_medium=post" target="_blank" rel="noopener">{word}</a>{text[len(word):]}')  # fmt: skip
        body.append(text)
        if i + 1 < len(parts):
            body.append("<br/>" if rng.random() < 0.3 else " ")
    extras = []
    roll = rng.random()
    if roll < 0.10:
        extras.append(
            '<div class="tgme_widget_message_forwarded_from accent_color">Forwarded from&nbsp;'
            f'<a class="tgme_widget_message_forwarded_from_name" href="https://t.me/source_{post_id % 97}/'
            f'{post_id}"><span dir="auto">Source {post_id % 97}</span></a></div>'
        )
    elif roll < 0.20:
        extras.append(
            f'<a class="tgme_widget_message_reply" href="https://t.me/{channel}/{max(1, post_id - 3)}">'
            '<div class="tgme_widget_message_author accent_color"><span class="tgme_widget_message_author_name" '
            f'dir="auto">{CHANNEL_TITLES[lang]}</span></div><div class="tgme_widget_message_text '
            f'js-message_reply_text" dir="auto">{html.escape(parts[0][:60])}</div></a>'
        )
    if rng.random() < 0.30:
        extras.append(
            f'<a class="tgme_widget_message_photo_wrap" href="https://t.me/{channel}/{post_id}" '
            f"style=\"width:800px;background-image:url('https://cdn4.cdn-telegram.org/file/p{post_id}.jpg')\">"
            '<div class="tgme_widget_message_photo" style="padding-top:56.25%"></div></a>'
        )
    elif rng.random() < 0.07:
        extras.append(
            f'<a class="tgme_widget_message_video_player" href="https://t.me/{channel}/{post_id}">'
            '<div class="tgme_widget_message_video_wrap"><video class="tgme_widget_message_video" '
            f'src="https://cdn4.cdn-telegram.org/file/v{post_id}.mp4"></video></div></a>'
        )
    preview = ""
    if rng.random() < 0.10:
        preview = (
            f'<a class="tgme_widget_message_link_preview" href="https://news.example.{TLD_BY_LANG[lang]}/p/'
            f'{post_id}"><div class="link_preview_site_name accent_color" dir="auto">news.example</div>'
            f'<div class="link_preview_title" dir="auto">{html.escape(parts[-1][:80])}</div>'
            f'<div class="link_preview_description" dir="auto">{html.escape(parts[0][:140])}</div></a>'
        )
    edited = "edited &nbsp;" if rng.random() < 0.05 else ""
    stamp = when.isoformat()
    return f"""
          <div class="tgme_widget_message_wrap js-widget_message_wrap">
            <div class="tgme_widget_message text_not_supported_wrap js-widget_message" data-post="{channel}/{post_id}" data-view="eyJjIjotMTAwMSwicCI6{post_id}fQ">
              <div class="tgme_widget_message_user"><a href="https://t.me/{channel}"><i class="tgme_widget_message_user_photo bgcolor2" data-content="{CHANNEL_TITLES[lang][0]}"><img src="https://cdn4.cdn-telegram.org/file/avatar_{channel}.jpg"></i></a></div>
              <div class="tgme_widget_message_bubble">
                <i class="tgme_widget_message_bubble_tail"><svg class="bubble_icon" width="9px" height="20px" viewBox="0 0 9 20"><g fill="none"><path class="background" fill="#ffffff" d="M8,1 L9,1 L9,20 L8,20 L8,18 Z"></path></g></svg></i>
                <div class="tgme_widget_message_author accent_color"><a class="tgme_widget_message_owner_name" href="https://t.me/{channel}"><span dir="auto">{CHANNEL_TITLES[lang]}</span></a></div>
                {"".join(extras)}
                <div class="tgme_widget_message_text js-message_text" dir="auto">{"".join(body)}</div>
                {preview}
                <div class="tgme_widget_message_footer compact js-message_footer">
                  <div class="tgme_widget_message_info short js-message_info">
                    <span class="tgme_widget_message_views">{_views(rng)}</span><span class="copyonly"> views</span><span class="tgme_widget_message_meta">{edited}<a class="tgme_widget_message_date" href="https://t.me/{channel}/{post_id}"><time datetime="{stamp}" class="time">{when:%H:%M}</time></a></span>
                  </div>
                </div>
              </div>
            </div>
          </div>
"""  # noqa: E501


def channel_page(rng: random.Random, channel: str, lang: str, first_id: int, last_id: int, when: datetime) -> str:
    """Messages first_id..last_id, oldest first, with the 'older messages' link t.me puts above them."""
    title = CHANNEL_TITLES[lang]
    more = ""
    if first_id > 1:
        more = (
            '<div class="tgme_widget_message_centered js-messages_more_wrap">'
            f'<a href="/s/{channel}?before={first_id}" class="tme_messages_more js-messages_more" '
            f'data-before="{first_id}"></a></div>'
        )
    messages = []
    for post_id in range(first_id, last_id + 1):
        when += timedelta(minutes=rng.randint(5, 90))
        messages.append(_message_html(rng, channel, lang, post_id, when))
    return f"""<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <title>{title} – Telegram</title>
    <meta name="viewport" content="width=device-width, initial-scale=1.0, minimum-scale=1.0, maximum-scale=1.0, user-scalable=no">
    <meta property="og:title" content="{title}">
    <link rel="canonical" href="https://t.me/s/{channel}">
    <link href="//telegram.org/css/widget-frame.css?73" rel="stylesheet" media="screen">
    <script>window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)');</script>
  </head>
  <body class="widget_frame_base tgme_webpreview_body">
    <header class="tgme_header search_collapsed">
      <div class="tgme_header_info">
        <div class="tgme_header_title"><span dir="auto">{title}</span></div>
        <div class="tgme_header_counter">{rng.randint(2, 900)}.{rng.randint(0, 9)}K subscribers</div>
      </div>
    </header>
    <main class="tgme_main" data-url="/{channel}">
      <div class="tgme_container">
        <div class="tgme_channel_info">
          <div class="tgme_channel_info_header">
            <div class="tgme_channel_info_header_title"><span dir="auto">{title}</span></div>
            <div class="tgme_channel_info_header_username"><a href="https://t.me/{channel}">@{channel}</a></div>
          </div>
        </div>
        <section class="tgme_channel_history js-message_history">
          {more}
{"".join(messages)}
        </section>
      </div>
    </main>
    <script src="//telegram.org/js/jquery.min.js"></script>
    <script src="//telegram.org/js/widget-frame.js?62"></script>
    <script>TWeb.init();</script>
  </body>
</html>
"""  # noqa: E501


def rss_feed(rng: random.Random, index: int, lang: str, items: int) -> str:
    host = f"wire{index}.example.{TLD_BY_LANG[lang]}"
    when = START + timedelta(days=30)
    entries = []
    for i in range(items, 0, -1):  # newest first, as feeds list them
        when -= timedelta(minutes=rng.randint(10, 180))
        parts = sentences(rng, lang, 200, 800)
        title = html.escape(parts.pop(0).rstrip(".!?"))
        paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in parts) or "<p>…</p>"
        link = f"https://{host}/news/{index}-{i}?utm_source=rss&amp;utm_medium=feed"
        body = f"<description><![CDATA[{paragraphs}]]></description>"
        if rng.random() < 0.3:
            body = (f"<description>{html.escape(parts[0] if parts else title)}</description>"
                    f"<content:encoded><![CDATA[{paragraphs}]]></content:encoded>")  # fmt: skip
        enclosure = ""
        if rng.random() < 0.2:
            enclosure = f'<enclosure url="https://{host}/img/{i}.jpg" length="48211" type="image/jpeg"/>'
        entries.append(
            f"    <item>\n      <title>{title}</title>\n      <link>{link}</link>\n"
            f'      <guid isPermaLink="false">{host}-{i}</guid>\n'
            f"      <pubDate>{format_datetime(when)}</pubDate>\n      {body}\n      {enclosure}\n    </item>\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">\n  <channel>\n'
        f"    <title>Wire {index}</title>\n    <link>https://{host}/</link>\n"
        f"    <description>Synthetic feed for bench/ingest.py</description>\n    <language>{lang}</language>\n"
        + "".join(entries)
        + "  </channel>\n</rss>\n"
    )


@dataclass
class Corpus:
    """Everything the server serves, uncompressed (for the bare parsers) and as sent on the wire."""

    pages_per_channel: int
    channels: dict[str, dict[int | None, bytes]] = field(default_factory=dict)  # before → page
    feeds: dict[str, bytes] = field(default_factory=dict)  # path → feed
    wire: dict[str, bytes] = field(default_factory=dict)  # target → body as sent
    telegram_posts: int = 0
    feed_posts: int = 0

    @property
    def posts(self) -> int:
        return self.telegram_posts + self.feed_posts


def build_corpus(*, posts: int, pages: int, feeds: int, feed_items: int, seed: int, compress: bool) -> Corpus:
    rng = random.Random(seed)
    feed_items = min(feed_items, posts)
    feeds = min(feeds, max(0, posts // max(1, feed_items) // 10))  # feeds are at most a tenth of the posts
    wanted = max(0, posts - feeds * feed_items)
    n_channels = max(1, math.ceil(wanted / (pages * PER_PAGE)))
    corpus = Corpus(pages_per_channel=pages)

    def wire(body: bytes) -> bytes:
        return gzip.compress(body, compresslevel=6, mtime=0) if compress else body

    for c in range(n_channels):
        lang = ("ru", "uk", "en")[c % 3]
        channel = f"bench_{lang}_{c:04d}"
        total = pages * PER_PAGE
        when = START + timedelta(days=rng.randint(0, 60))
        by_before: dict[int | None, bytes] = {}
        last = total
        for p in range(pages):  # newest page first, then ?before=<first id of the newer page>
            first = last - PER_PAGE + 1
            body = channel_page(rng, channel, lang, first, last, when).encode()
            key = None if p == 0 else last + 1
            by_before[key] = body
            corpus.wire[f"/s/{channel}" + ("" if key is None else f"?before={key}")] = wire(body)
            last = first - 1
        corpus.channels[channel] = by_before
        corpus.telegram_posts += total
    for f in range(feeds):
        path = f"/feeds/wire{f:03d}.xml"
        body = rss_feed(rng, f, ("en", "ru", "uk")[f % 3], feed_items).encode()
        corpus.feeds[path] = body
        corpus.wire[path] = wire(body)
        corpus.feed_posts += feed_items
    return corpus


def serve_corpus(corpus: Corpus, compress: bool) -> Any:
    """A started LocalServer serving every page and feed (each with an ETag); the caller stops it."""
    from framewatch.localserver import RSS_TYPE, LocalServer, Reply

    server = LocalServer().start()
    encoded = "gzip" if compress else None
    for target, body in corpus.wire.items():
        kind = RSS_TYPE if target.startswith("/feeds/") else "text/html; charset=utf-8"
        server.route(target, Reply(body=body, content_type=kind, encoded=encoded, etag=f'"{uuid.uuid4().hex}"'))
    return server
