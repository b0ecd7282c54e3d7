#!/usr/bin/env python3
"""Crawl policy_site's /bulk/0..999 with `tracker crawl` and with urlwatch 2.29, side by side.

Each tool gets a first check (every page new) and an unchanged re-check (conditional GET: both
send the stored ETag and get 304s), on the same pages, in the same run, with the same politeness
(no delay, 10 requests in flight: urlwatch's fixed thread pool). Prints wall time and peak RSS of
each run, the ratios, and whether the targets are met.

Beside them runs the floor of any Scrapy-based check (bench/scrapy_floor.py): the tracker's own
Scrapy configuration fetching the same pages and discarding them, no extraction, no database. What
the tracker adds on top of the framework is the difference between its row and that one.

Every page is fetched once before anything is measured: the site renders each document version on
its first request and keeps it, so whichever tool ran first would otherwise pay for that.

Run:  .venv/bin/python bench/crawl.py [--pages 1000] [--rounds 1]
urlwatch lives in its own venv (never a dependency of the tracker); the script creates it when
it is missing, or install it yourself:
    python3 -m venv /tmp/urlwatch-venv && /tmp/urlwatch-venv/bin/pip install urlwatch==2.29
Exit: 0 when every target is met, 1 when one is missed, 2 when a run failed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._util import Measured, Site, machine, policy_site, run_measured, run_tracker, tracker_cmd, tracker_env  # noqa: E402

URLWATCH_VERSION = "2.29"
URLWATCH_WORKERS = 10  # urlwatch.worker.MAX_WORKERS in 2.29: a fixed thread pool, no per-host limit
FIRST_TARGET, RECHECK_TARGET, RSS_TARGET_MB = 2.0, 4.0, 250.0


@dataclass
class Round:
    """One first check and one unchanged re-check of every page by one tool."""

    first: Measured
    recheck: Measured


def urlwatch_bin(venv: Path) -> Path:
    """urlwatch 2.29 from its own venv, created when missing (tell the user how when that fails)."""
    exe = venv / "bin" / "urlwatch"
    if exe.exists():
        return exe
    print(f"urlwatch not found in {venv}; creating it (python3 -m venv {venv} && "
          f"{venv}/bin/pip install urlwatch=={URLWATCH_VERSION})", flush=True)
    try:
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"urlwatch=={URLWATCH_VERSION}"], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"could not install urlwatch ({exc}); install it yourself:\n"
                         f"  python3 -m venv {venv} && {venv}/bin/pip install urlwatch=={URLWATCH_VERSION}\n"
                         f"then re-run with --urlwatch-venv {venv}") from exc
    return exe


def run_tracker_round(site: Site, pages: int, work: Path, env_extra: dict[str, str]) -> Round:
    """A fresh SQLite database, the pages as sources, a first check and a re-check."""
    work.mkdir(parents=True)
    env = tracker_env(f"sqlite:///{work / 'tracker.db'}", **env_extra)
    run_tracker(env, "db", "upgrade")
    sources = [{"id": f"bulk-{i:04d}", "name": f"Bulk page {i}", "url": f"{site.base}/bulk/{i}", "kind": "html",
                "select": ["article.policy"], "schedule": "6h"} for i in range(pages)]
    (work / "sources.yaml").write_text(yaml.safe_dump({"sources": sources}, sort_keys=False))
    run_tracker(env, "sources", "sync", str(work / "sources.yaml"))
    first = run_measured(tracker_cmd("crawl", "--quiet"), env=env)
    _expect(first, "tracker first check", rf"checked {pages} source\(s\).*: {pages} new,")
    recheck = run_measured(tracker_cmd("crawl", "--quiet"), env=env)
    _expect(recheck, "tracker re-check", rf"checked {pages} source\(s\).*, {pages} not modified,")
    return Round(first, recheck)


def run_floor_round(site: Site, pages: int, work: Path, env_extra: dict[str, str]) -> Round:
    """bench/scrapy_floor.py with the tracker's settings: a first fetch and a conditional re-fetch."""
    work.mkdir(parents=True)
    (work / "urls.txt").write_text("".join(f"{site.base}/bulk/{i}\n" for i in range(pages)))
    env = tracker_env(f"sqlite:///{work / 'unused.db'}", **env_extra)
    script = str(Path(__file__).resolve().parent / "scrapy_floor.py")
    cmd = [sys.executable, script, str(work / "urls.txt"), str(work / "validators.json")]
    first = run_measured(cmd, env=env)
    _expect(first, "Scrapy floor first fetch", rf"fetched {pages} pages: {pages} 200, 0 304, 0 failed")
    recheck = run_measured([*cmd, "--conditional"], env=env)
    _expect(recheck, "Scrapy floor re-fetch", rf"fetched {pages} pages: 0 200, {pages} 304, 0 failed")
    return Round(first, recheck)


def warm(site: Site, pages: int) -> None:
    """Fetch every page once, so that no measured run pays for the site's first rendering of a version."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(lambda i: len(site.get(f"/bulk/{i}")[0]), range(pages)))
    print(f"site warmed: {pages} pages, {sum(sizes) / pages / 1024:.0f} KB on average")


def run_urlwatch_round(exe: Path, site: Site, pages: int, work: Path) -> Round:
    """Its own urls, config and cache in a temp dir, a first run and a second run."""
    work.mkdir(parents=True)
    jobs = [{"name": f"bulk-{i:04d}", "url": f"{site.base}/bulk/{i}",
             "filter": [{"css": "article.policy"}, "html2text"]} for i in range(pages)]
    (work / "urls.yaml").write_text(yaml.safe_dump_all(jobs, sort_keys=False))
    (work / "urlwatch.yaml").write_text(yaml.safe_dump({"report": {"stdout": {"enabled": True, "color": False}}}))
    cmd = [str(exe), "--urls", str(work / "urls.yaml"), "--config", str(work / "urlwatch.yaml"),
           "--cache", str(work / "cache.db"), "--hooks", str(work / "hooks.py")]
    env = dict(os.environ, HOME=str(work), XDG_CONFIG_HOME=str(work), XDG_CACHE_HOME=str(work))
    first = run_measured(cmd, env=env)
    _expect(first, "urlwatch first run", None)
    new = len(set(re.findall(r"NEW: (bulk-\d+)", first.stdout)))
    if new != pages:
        raise SystemExit(f"urlwatch first run reported {new} new pages, expected {pages}:\n{first.stdout[-2000:]}")
    recheck = run_measured(cmd, env=env)
    _expect(recheck, "urlwatch second run", None)
    if "CHANGED: " in recheck.stdout or "ERROR: " in recheck.stdout:
        raise SystemExit(f"urlwatch second run reported changes or errors:\n{recheck.stdout[-2000:]}")
    return Round(first, recheck)


def _fmt(r: Round) -> str:
    return (f"first {r.first.wall:6.2f}s wall {r.first.cpu:6.2f}s cpu {r.first.peak_mb:6.1f} MB; "
            f"re-check {r.recheck.wall:6.2f}s wall {r.recheck.cpu:6.2f}s cpu {r.recheck.peak_mb:6.1f} MB")


def _expect(m: Measured, what: str, pattern: str | None) -> None:
    if m.rc != 0 or (pattern and not re.search(pattern, m.stdout)):
        raise SystemExit(f"{what} did not check every page (exit {m.rc}):\n{m.stdout[-2000:]}\n{m.stderr[-2000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--pages", type=int, default=1000, help="crawl /bulk/0 .. /bulk/N-1")
    ap.add_argument("--rounds", type=int, default=1, help="repeat and report the median of each figure")
    ap.add_argument("--urlwatch-venv", type=Path, default=Path("/tmp/urlwatch-venv"))
    ap.add_argument("--no-urlwatch", action="store_true", help="measure the tracker only")
    ap.add_argument("--no-floor", action="store_true", help="skip the bare-Scrapy floor runs")
    args = ap.parse_args()

    exe = None if args.no_urlwatch else urlwatch_bin(args.urlwatch_venv)
    concurrency = str(URLWATCH_WORKERS)
    tracker_settings = {"TRACKER_CONCURRENCY": concurrency, "TRACKER_CONCURRENCY_PER_DOMAIN": concurrency,
                        "TRACKER_DOWNLOAD_DELAY": "0", "TRACKER_CRAWL_LOG_LEVEL": "ERROR"}
    print(f"crawl benchmark on {machine()}")
    print(f"pages: {args.pages} x policy_site /bulk/i (select article.policy), rounds: {args.rounds}")
    print(f"politeness: no delay, {concurrency} requests in flight for both (tracker: TRACKER_CONCURRENCY="
          f"{concurrency}, TRACKER_CONCURRENCY_PER_DOMAIN={concurrency}, TRACKER_DOWNLOAD_DELAY=0, robots.txt "
          f"obeyed; urlwatch {URLWATCH_VERSION}: its fixed pool of {concurrency} threads, filters "
          "css:article.policy + html2text)")
    tracker_rounds: list[Round] = []
    urlwatch_rounds: list[Round] = []
    floor_rounds: list[Round] = []
    tmp = Path(tempfile.mkdtemp(prefix="tracker-crawl-bench-"))
    try:
        with policy_site() as site:
            warm(site, args.pages)
            for r in range(args.rounds):
                if not args.no_floor:
                    f = run_floor_round(site, args.pages, tmp / f"floor-{r}", tracker_settings)
                    floor_rounds.append(f)
                    print(f"  round {r + 1}: Scrapy alone {_fmt(f)}", flush=True)
                t = run_tracker_round(site, args.pages, tmp / f"tracker-{r}", tracker_settings)
                tracker_rounds.append(t)
                print(f"  round {r + 1}: tracker  {_fmt(t)}", flush=True)
                if exe is not None:
                    u = run_urlwatch_round(exe, site, args.pages, tmp / f"urlwatch-{r}")
                    urlwatch_rounds.append(u)
                    print(f"  round {r + 1}: urlwatch {_fmt(u)}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def med(rounds: list[Round], run: str, fig: str) -> float:
        return float(statistics.median(getattr(getattr(r, run), fig) for r in rounds))

    print()
    if floor_rounds:
        print("Scrapy alone: the tracker's Scrapy settings fetching the same pages into nothing "
              "(bench/scrapy_floor.py)")
        for label, run in (("first check", "first"), ("unchanged re-check", "recheck")):
            fw, tw = med(floor_rounds, run, "wall"), med(tracker_rounds, run, "wall")
            line = (f"  {label:<22}{fw:>7.2f}s wall, {med(floor_rounds, run, 'cpu'):.2f}s cpu; "
                    f"the tracker adds {tw - fw:+.2f}s")
            if urlwatch_rounds:
                target = FIRST_TARGET if run == "first" else RECHECK_TARGET
                need = med(urlwatch_rounds, run, "wall") / target
                line += (f"; the target needs <= {need:.2f}s in all: "
                         f"{'less than Scrapy alone takes' if fw > need else 'Scrapy alone leaves room for it'}")
            print(line)
        print()
    print(f"{'':<24}{'tracker':>12}{'urlwatch ' + URLWATCH_VERSION:>16}{'ratio':>9}  target")
    ok = True
    rows = [("first check", "first", FIRST_TARGET), ("unchanged re-check", "recheck", RECHECK_TARGET)]
    for label, run, target in rows:
        tw = med(tracker_rounds, run, "wall")
        line = f"{label + ' wall':<24}{tw:>11.2f}s"
        if urlwatch_rounds:
            uw = med(urlwatch_rounds, run, "wall")
            ratio = uw / tw
            met = ratio >= target
            ok = ok and met
            line += f"{uw:>15.2f}s{ratio:>8.1f}x  >= {target:g}x faster: {'met' if met else 'MISSED'}"
        print(line)
    for label, run in (("first check cpu", "first"), ("unchanged re-check cpu", "recheck")):
        line = f"{label:<24}{med(tracker_rounds, run, 'cpu'):>11.2f}s"
        if urlwatch_rounds:
            uc = med(urlwatch_rounds, run, "cpu")
            line += f"{uc:>15.2f}s{uc / med(tracker_rounds, run, 'cpu'):>8.1f}x  (user+system time, for reference)"
        print(line)
    for label, run in (("first check peak RSS", "first"), ("re-check peak RSS", "recheck")):
        tm = med(tracker_rounds, run, "peak_mb")
        met = tm <= RSS_TARGET_MB
        ok = ok and met
        line = f"{label:<24}{tm:>9.1f} MB"
        line += f"{med(urlwatch_rounds, run, 'peak_mb'):>13.1f} MB{'':>9}" if urlwatch_rounds else f"{'':>31}"
        print(line + f"  <= {RSS_TARGET_MB:g} MB: {'met' if met else 'MISSED'}")
    if not urlwatch_rounds:
        print("(speed targets not evaluated: --no-urlwatch)")
    if ok and not urlwatch_rounds:
        print("RESULT: the memory target met; the speed targets were not evaluated (--no-urlwatch)")
    else:
        print("RESULT:", "every target met" if ok else "a target was MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
