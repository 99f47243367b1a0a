"""Helpers shared by the bench/ scripts: medians, Markdown tables, child processes with peak RSS, the
machine description, and synthetic RU/UK/EN text.

Benchmarks print Markdown tables so `bench/run_all.py` can paste them into docs/performance.md as they
are. Peak memory is read from the kernel's accounting of one child (`os.wait4`), so a figure never
includes the benchmark driver, the local HTTP server or an earlier child.
"""

from __future__ import annotations

import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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

    rule = "|" + "|".join(("-" * (w + 1) + ":" if a == "r" else ":" + "-" * (w + 1)) for w, a in zip(widths, align, strict=True)) + "|"
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
    peak_rss_kib: int  # ru_maxrss of this child alone (Linux reports KiB)


def run_child(cmd: Sequence[str], *, timeout: float | None = None, env: dict[str, str] | None = None) -> ChildRun:
    """Run `cmd` to completion and return its output and its own peak RSS.

    `os.wait4` returns the rusage of exactly this child; RUSAGE_CHILDREN would report the largest of
    all children waited for so far, which mixes runs.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=ROOT)
        deadline = None if timeout is None else started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
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
            peak_rss_kib=int(usage.ru_maxrss),
        )


def python_child(script: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / script), *args]


# -- machine ----------------------------------------------------------------------------------------------


def _cpu_model() -> str:
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


def _postgres_version() -> str:
    for exe in ("postgres", "psql"):
        path = shutil.which(exe)
        if path:
            try:
                out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
            except (OSError, subprocess.SubprocessError):
                continue
            if out.strip():
                return out.strip().split(")")[-1].strip() or out.strip()
    return "not installed"


def _package_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "—"


def machine_description() -> list[tuple[str, str]]:
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
        ("CPU", f"{_cpu_model()} — nproc {usable}" + (f" of {cpus}" if usable != cpus else "")),
        ("RAM", _ram()),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("SQLite", sqlite3.sqlite_version),
        ("PostgreSQL", _postgres_version()),
        ("libraries", libs),
    ]


# -- synthetic text -------------------------------------------------------------------------------------

WORDS = {
    "en": (
        "the of and to in is that for on with as was by at from it this be are have not has they war "
        "russia russian ukraine ukrainian army forces said president government military attack troops "
        "city region people killed missile drone strike front line defence minister report officials "
        "security moscow kyiv kremlin border soldiers units reported claims sources support sanctions "
        "weapons power energy grid night shelling village counteroffensive brigade battalion commander "
        "general mobilisation propaganda media channel video statement talks peace west nato europe "
        "allies aid residents water supply repairs hospital school evacuation convoy prices fuel"
    ).split(),
    "ru": (
        "и в не на что с по как это из за к о но от для у же все так его только был уже сказал россия "
        "российский украина армия войска военные удар ракета дрон фронт оборона министр президент город "
        "область люди погибли обстрел ночью село наступление бригада батальон командир генерал "
        "мобилизация пропаганда канал видео заявление переговоры мир запад нато европа помощь санкции "
        "оружие граница кремль москва киев силы источники сообщают подразделения солдаты жители вода "
        "ремонт больница школа эвакуация колонна цены топливо свет отключения штаб потери"
    ).split(),
    "uk": (
        "і в не на що з по як це із за до про але від для у вже все так його тільки був сказав росія "
        "російський україна армія війська військові удар ракета дрон фронт оборона міністр президент "
        "місто область люди загинули обстріл вночі село наступ бригада батальйон командир генерал "
        "мобілізація пропаганда канал відео заява переговори мир захід нато європа допомога санкції "
        "зброя кордон кремль москва київ сили джерела повідомляють підрозділи солдати мешканці вода "
        "ремонт лікарня школа евакуація колона ціни пальне світло відключення штаб втрати"
    ).split(),
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
