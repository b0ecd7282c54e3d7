#!/usr/bin/env python3
"""Crawl policy_site's /bulk/0..999 with `tracker crawl`, with urlwatch 2.29 and with Scrapy alone, side by side.

Three scenarios, each measured for each tool on the same pages, in the same run, with the same
politeness (no delay, 10 requests in flight: urlwatch's fixed thread pool):

  first check    every page new, from a site that sends ETag / Last-Modified;
  304 re-check   the same pages again, unchanged: each tool sends the validators it stored and
                 the site answers 304 Not Modified;
  200 re-check   unchanged pages from a second site started with --no-validators: no ETag, no
                 Last-Modified, never a 304, so every page comes back as a 200 with the same policy
                 text in fresh noise (nav order, tokens, timestamps) and each tool must extract and
                 compare it to know nothing changed. Each tool first checks that site once (not
                 reported: it is another first check), then the measured re-check.

The three tools:
  tracker        `tracker crawl --quiet` on a fresh SQLite database with the pages as sources
                 (select article.policy); its summary line must count every page as new, then
                 not modified (304), then unchanged (200);
  urlwatch 2.29  in its own venv, filters css:article.policy + html2text; its first run must say
                 NEW for every page, its re-checks no CHANGED and no ERROR;
  Scrapy alone   bench/scrapy_floor.py: the tracker's own Scrapy configuration fetching the same
                 pages and discarding them, no extraction, no database (re-checks send what it
                 stored: validators from the first site, nothing from the second). It is the floor
                 under any Scrapy-based check; what the tracker adds on top of the framework is
                 the difference between its row and that one.

Each round runs Scrapy alone, then the tracker, then urlwatch, each through its runs in the order
above; the figures are the median over the rounds of each tool's wall time, CPU (user + system
of its process tree) and peak RSS (of its process tree). Targets, on median wall time:
first check >= 1.2x faster than urlwatch, 304 re-check >= 2.5x, 200 re-check >= 1.5x; in every
scenario the tracker within 1.6x of Scrapy alone's wall time; peak RSS <= 150 MB up to 1,000
pages, <= 250 MB beyond (the target is for 10,000).

Every page of both sites is fetched once before anything is measured: the site renders each
document version on its first request and keeps it, so whichever tool ran first would otherwise
pay for that.

Run:  .venv/bin/python bench/crawl.py [--pages 1000] [--rounds 3] [--only first,304,200]
                                      [--no-urlwatch] [--no-floor]
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
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._util import Measured, Site, machine, policy_site, run_measured, run_tracker, tracker_cmd, tracker_env  # noqa: E402

URLWATCH_VERSION = "2.29"
URLWATCH_WORKERS = 10  # urlwatch.worker.MAX_WORKERS in 2.29: a fixed thread pool, no per-host limit

SCENARIOS = ("first", "304", "200")
LABELS = {"first": "first check", "304": "304 re-check", "200": "200 re-check"}
URLWATCH_TARGETS = {"first": 1.2, "304": 2.5, "200": 1.5}  # urlwatch wall / tracker wall, at least
FLOOR_TARGET = 1.6  # tracker wall / Scrapy alone's wall, at most
EXTRACT_FLOOR = "first, extraction only"  # Scrapy alone reading each page into blocks, nothing stored


def rss_target_mb(pages: int) -> float:
    """The memory target: 150 MB up to 1,000 pages, 250 MB beyond (it is set for 10,000)."""
    return 150.0 if pages <= 1000 else 250.0


class RunFailed(Exception):
    """A tool did not do what the measurement needs (exit 2: its figures would mean nothing)."""


@dataclass
class Sites:
    """The site with validators (first check, 304 re-check) and the one without (200 re-check),
    each None when no selected scenario needs it."""

    validating: Site | None
    plain: Site | None


Round = dict[str, Measured]  # scenario -> that scenario's run


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
        raise RunFailed(f"could not install urlwatch ({exc}); install it yourself:\n"
                        f"  python3 -m venv {venv} && {venv}/bin/pip install urlwatch=={URLWATCH_VERSION}\n"
                        f"then re-run with --urlwatch-venv {venv}") from exc
    return exe


def _expect(m: Measured, what: str, pattern: str | None) -> Measured:
    if m.rc != 0 or (pattern and not re.search(pattern, m.stdout)):
        raise RunFailed(f"{what} did not check every page as expected (exit {m.rc}):\n"
                        f"{m.stdout[-2000:]}\n{m.stderr[-2000:]}")
    return m


def _two_runs(sites: Sites, wanted: set[str],
              first_and_recheck: Callable[[Site, str], tuple[Measured, Measured | None]]) -> Round:
    """The runs one tool makes in a round: on the site with validators a first check and, when
    wanted, the 304 re-check; on the site without them a first check (not reported) and the 200
    re-check. first_and_recheck(site, which) does one site's pair ("validating" or "plain")."""
    out: Round = {}
    if sites.validating is not None:
        first, recheck = first_and_recheck(sites.validating, "validating")
        out["first"] = first
        if recheck is not None:
            out["304"] = recheck
    if sites.plain is not None:
        _first, recheck = first_and_recheck(sites.plain, "plain")
        assert recheck is not None
        out["200"] = recheck
    return out


def run_tracker_round(sites: Sites, pages: int, work: Path, env_extra: dict[str, str], wanted: set[str]) -> Round:
    """Per site, a fresh SQLite database with the pages as sources, a first check and a re-check."""
    new = rf"checked {pages} source\(s\).*: {pages} new, 0 changed, 0 unchanged, 0 not modified, 0 failed"
    expect = {"validating": rf"checked {pages} source\(s\).*: 0 new, 0 changed, 0 unchanged, {pages} not modified,",
              "plain": rf"checked {pages} source\(s\).*: 0 new, 0 changed, {pages} unchanged, 0 not modified,"}

    def pair(site: Site, which: str) -> tuple[Measured, Measured | None]:
        here = work / which
        here.mkdir(parents=True)
        env = tracker_env(f"sqlite:///{here / 'tracker.db'}", **env_extra)
        run_tracker(env, "db", "upgrade")
        sources = [{"id": f"bulk-{i:04d}", "name": f"Bulk page {i}", "url": f"{site.base}/bulk/{i}",
                    "kind": "html", "select": ["article.policy"], "schedule": "6h"} for i in range(pages)]
        (here / "sources.yaml").write_text(yaml.safe_dump({"sources": sources}, sort_keys=False))
        run_tracker(env, "sources", "sync", str(here / "sources.yaml"))
        cmd = tracker_cmd("crawl", "--quiet")
        first = _expect(run_measured(cmd, env=env), f"tracker first check ({which} site)", new)
        if which == "validating" and "304" not in wanted:
            return first, None
        return first, _expect(run_measured(cmd, env=env), f"tracker re-check ({which} site)", expect[which])

    return _two_runs(sites, wanted, pair)


def run_floor_round(sites: Sites, pages: int, work: Path, env_extra: dict[str, str], wanted: set[str]) -> Round:
    """bench/scrapy_floor.py with the tracker's settings: per site a first fetch and a re-fetch that
    sends what the first one stored (validators from the first site, nothing from the second)."""
    script = str(Path(__file__).resolve().parent / "scrapy_floor.py")
    expect = {"validating": rf"fetched {pages} pages: 0 200, {pages} 304, 0 failed",
              "plain": rf"fetched {pages} pages: {pages} 200, 0 304, 0 failed"}

    def pair(site: Site, which: str) -> tuple[Measured, Measured | None]:
        here = work / which
        here.mkdir(parents=True)
        (here / "urls.txt").write_text("".join(f"{site.base}/bulk/{i}\n" for i in range(pages)))
        env = tracker_env(f"sqlite:///{here / 'unused.db'}", **env_extra)
        cmd = [sys.executable, script, str(here / "urls.txt"), str(here / "validators.json")]
        first = _expect(run_measured(cmd, env=env), f"Scrapy floor first fetch ({which} site)",
                        rf"fetched {pages} pages: {pages} 200, 0 304, 0 failed")
        if which == "validating" and "first" in wanted:
            # Scrapy and the tracker's extractor, nothing stored: what any check that reads the
            # pages into blocks in the crawl's process cannot go below.
            (here / "extract").mkdir()
            extract_cmd = [sys.executable, script, str(here / "urls.txt"), str(here / "extract" / "validators.json"),
                           "--extract"]
            reading[0] = _expect(run_measured(extract_cmd, env=env), "Scrapy floor with extraction",
                                 rf"fetched {pages} pages: {pages} 200, 0 304, 0 failed")
        if which == "validating" and "304" not in wanted:
            return first, None
        return first, _expect(run_measured([*cmd, "--conditional"], env=env),
                              f"Scrapy floor re-fetch ({which} site)", expect[which])

    reading: list[Measured | None] = [None]
    out = _two_runs(sites, wanted, pair)
    if reading[0] is not None:
        out[EXTRACT_FLOOR] = reading[0]
    return out


def run_urlwatch_round(exe: Path, sites: Sites, pages: int, work: Path, wanted: set[str]) -> Round:
    """Per site, its own urls, config and cache in a temp dir, a first run and a second run."""

    def pair(site: Site, which: str) -> tuple[Measured, Measured | None]:
        here = work / which
        here.mkdir(parents=True)
        jobs = [{"name": f"bulk-{i:04d}", "url": f"{site.base}/bulk/{i}",
                 "filter": [{"css": "article.policy"}, "html2text"]} for i in range(pages)]
        (here / "urls.yaml").write_text(yaml.safe_dump_all(jobs, sort_keys=False))
        (here / "urlwatch.yaml").write_text(
            yaml.safe_dump({"report": {"stdout": {"enabled": True, "color": False}}}))
        cmd = [str(exe), "--urls", str(here / "urls.yaml"), "--config", str(here / "urlwatch.yaml"),
               "--cache", str(here / "cache.db"), "--hooks", str(here / "hooks.py")]
        env = dict(os.environ, HOME=str(here), XDG_CONFIG_HOME=str(here), XDG_CACHE_HOME=str(here))
        first = _expect(run_measured(cmd, env=env), f"urlwatch first run ({which} site)", None)
        new = len(set(re.findall(r"NEW: (bulk-\d+)", first.stdout)))
        if new != pages:
            raise RunFailed(f"urlwatch first run ({which} site) reported {new} new pages, expected {pages}:\n"
                            f"{first.stdout[-2000:]}")
        if which == "validating" and "304" not in wanted:
            return first, None
        recheck = _expect(run_measured(cmd, env=env), f"urlwatch second run ({which} site)", None)
        if "CHANGED: " in recheck.stdout or "ERROR: " in recheck.stdout:
            raise RunFailed(f"urlwatch second run ({which} site) reported changes or errors:\n"
                            f"{recheck.stdout[-2000:]}")
        return first, recheck

    return _two_runs(sites, wanted, pair)


def warm(site: Site, pages: int, what: str) -> None:
    """Fetch every page once, so that no measured run pays for the site's first rendering of a version."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(lambda i: len(site.get(f"/bulk/{i}")[0]), range(pages)))
    print(f"{what} warmed: {pages} pages, {sum(sizes) / pages / 1024:.0f} KB on average")


def _fmt(r: Round, scenarios: Sequence[str]) -> str:
    return " | ".join(f"{LABELS[s]} {r[s].wall:.2f}s wall {r[s].cpu:.2f}s cpu {r[s].peak_mb:.0f} MB"
                      for s in scenarios)


def _scenarios(text: str) -> list[str]:
    """--only: a comma-separated subset of first,304,200, kept in the canonical order."""
    picked = {s.strip() for s in text.split(",") if s.strip()}
    if not picked or picked - set(SCENARIOS):
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(SCENARIOS)}, got {text!r}")
    return [s for s in SCENARIOS if s in picked]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--pages", type=int, default=1000, help="crawl /bulk/0 .. /bulk/N-1")
    ap.add_argument("--rounds", type=int, default=3, help="repeat and report the median of each figure")
    ap.add_argument("--only", type=_scenarios, default=list(SCENARIOS), metavar="first,304,200",
                    help="measure these scenarios only (the 304 re-check still needs its first check)")
    ap.add_argument("--urlwatch-venv", type=Path, default=Path("/tmp/urlwatch-venv"))
    ap.add_argument("--no-urlwatch", action="store_true", help="measure the tracker (and Scrapy alone) only")
    ap.add_argument("--no-floor", action="store_true", help="skip the Scrapy-alone floor runs")
    args = ap.parse_args()
    if args.pages < 1 or args.rounds < 1:
        ap.error("--pages and --rounds must be at least 1")
    scenarios: list[str] = args.only
    wanted = set(scenarios)
    pages: int = args.pages

    exe = None if args.no_urlwatch else urlwatch_bin(args.urlwatch_venv)
    concurrency = str(URLWATCH_WORKERS)
    tracker_settings = {"TRACKER_CONCURRENCY": concurrency, "TRACKER_CONCURRENCY_PER_DOMAIN": concurrency,
                        "TRACKER_DOWNLOAD_DELAY": "0", "TRACKER_CRAWL_LOG_LEVEL": "ERROR"}
    print(f"crawl benchmark on {machine()}")
    print(f"pages: {pages} x policy_site /bulk/i (select article.policy), rounds: {args.rounds}, "
          f"scenarios: {', '.join(LABELS[s] for s in scenarios)}")
    print(f"politeness: no delay, {concurrency} requests in flight for all (tracker and Scrapy alone: "
          f"TRACKER_CONCURRENCY={concurrency}, TRACKER_CONCURRENCY_PER_DOMAIN={concurrency}, "
          f"TRACKER_DOWNLOAD_DELAY=0, robots.txt obeyed; urlwatch {URLWATCH_VERSION}: its fixed pool of "
          f"{concurrency} threads, filters css:article.policy + html2text)")
    if "200" in wanted:
        print("200 re-check: a second policy_site with --no-validators (no ETag/Last-Modified, never 304); "
              "each tool checks it once first (not reported), then the measured re-check")
    floor_rounds: list[Round] = []
    tracker_rounds: list[Round] = []
    urlwatch_rounds: list[Round] = []
    tmp = Path(tempfile.mkdtemp(prefix="tracker-crawl-bench-"))
    try:
        with ExitStack() as stack:
            validating = stack.enter_context(policy_site()) if wanted & {"first", "304"} else None
            plain = stack.enter_context(policy_site(validators=False)) if "200" in wanted else None
            sites = Sites(validating, plain)
            if validating is not None:
                warm(validating, pages, "site with validators")
            if plain is not None:
                warm(plain, pages, "site without validators")
            for r in range(args.rounds):
                if not args.no_floor:
                    f = run_floor_round(sites, pages, tmp / f"floor-{r}", tracker_settings, wanted)
                    floor_rounds.append(f)
                    print(f"  round {r + 1}: Scrapy alone  {_fmt(f, scenarios)}", flush=True)
                t = run_tracker_round(sites, pages, tmp / f"tracker-{r}", tracker_settings, wanted)
                tracker_rounds.append(t)
                print(f"  round {r + 1}: tracker       {_fmt(t, scenarios)}", flush=True)
                if exe is not None:
                    u = run_urlwatch_round(exe, sites, pages, tmp / f"urlwatch-{r}", wanted)
                    urlwatch_rounds.append(u)
                    print(f"  round {r + 1}: urlwatch      {_fmt(u, scenarios)}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report(scenarios, pages, tracker_rounds, urlwatch_rounds, floor_rounds)


def report(scenarios: list[str], pages: int, tracker_rounds: list[Round], urlwatch_rounds: list[Round],
           floor_rounds: list[Round]) -> int:
    """The median table, the targets met or MISSED, and the exit code (0 all met, 1 one missed)."""

    def med(rounds: list[Round], scenario: str, fig: str) -> float:
        return float(statistics.median(getattr(r[scenario], fig) for r in rounds))

    tools = [("tracker", tracker_rounds), (f"urlwatch {URLWATCH_VERSION}", urlwatch_rounds),
             ("Scrapy alone", floor_rounds)]
    tools = [(name, rounds) for name, rounds in tools if rounds]
    n = len(tracker_rounds)
    print()
    print(f"median of {n} round(s){'':<8}" + "".join(f"{name:>16}" for name, _ in tools))
    for fig, title, unit in (("wall", "wall time", "s"), ("cpu", "CPU (user+system)", "s"),
                             ("peak_mb", "peak RSS", " MB")):
        print(title)
        for s in scenarios:
            cells = "".join(f"{med(rounds, s, fig):>{16 - len(unit)}.{1 if unit == ' MB' else 2}f}{unit}"
                            for _, rounds in tools)
            print(f"  {LABELS[s]:<26}{cells}")

    if floor_rounds:
        print()
        print("Scrapy alone: the tracker's Scrapy settings fetching the same pages into nothing "
              "(bench/scrapy_floor.py)")
        for s in scenarios:
            fw, tw = med(floor_rounds, s, "wall"), med(tracker_rounds, s, "wall")
            line = f"  {LABELS[s]:<14}the tracker adds {(tw - fw) / pages * 1000:+.2f} ms per page over Scrapy alone"
            if urlwatch_rounds:
                need = med(urlwatch_rounds, s, "wall") / URLWATCH_TARGETS[s]
                line += (f"; the urlwatch target needs <= {need:.2f}s in all: "
                         f"{'less than Scrapy alone takes' if fw > need else 'Scrapy alone leaves room for it'}")
            print(line)

    extract_rounds = [r for r in floor_rounds if EXTRACT_FLOOR in r]
    if extract_rounds and "first" in scenarios:
        ew, ec = med(extract_rounds, EXTRACT_FLOOR, "wall"), med(extract_rounds, EXTRACT_FLOOR, "cpu")
        fw = med(floor_rounds, "first", "wall")
        line = (f"  first check, Scrapy alone + the tracker's extraction (nothing stored, bench/scrapy_floor.py "
                f"--extract): {ew:.2f}s wall, {ec:.2f}s CPU, {(ew - fw) / pages * 1000:+.2f} ms per page over "
                f"Scrapy alone; {ew / fw:.2f}x Scrapy alone (target {FLOOR_TARGET}x)")
        if urlwatch_rounds:
            need = med(urlwatch_rounds, "first", "wall") / URLWATCH_TARGETS["first"]
            line += f"; the urlwatch target needs <= {need:.2f}s"
        print(line)

    print()
    print("targets (on median wall time)")
    ok = True
    for s in scenarios:
        tw = med(tracker_rounds, s, "wall")
        if urlwatch_rounds:
            uw = med(urlwatch_rounds, s, "wall")
            target = URLWATCH_TARGETS[s]
            met = uw / tw >= target
            ok = ok and met
            print(f"  {LABELS[s]:<14}urlwatch {uw:.2f}s / tracker {tw:.2f}s = {uw / tw:.2f}x"
                  f"{'':<6}>= {target:g}x faster than urlwatch: {'met' if met else 'MISSED'}")
    for s in scenarios:
        tw = med(tracker_rounds, s, "wall")
        if floor_rounds:
            fw = med(floor_rounds, s, "wall")
            met = tw / fw <= FLOOR_TARGET
            ok = ok and met
            print(f"  {LABELS[s]:<14}tracker {tw:.2f}s / Scrapy alone {fw:.2f}s = {tw / fw:.2f}x"
                  f"{'':<2}<= {FLOOR_TARGET:g}x Scrapy alone: {'met' if met else 'MISSED'}")
    rss_target = rss_target_mb(pages)
    for s in scenarios:
        tm = med(tracker_rounds, s, "peak_mb")
        met = tm <= rss_target
        ok = ok and met
        print(f"  {LABELS[s]:<14}tracker peak RSS {tm:.1f} MB{'':<18}<= {rss_target:g} MB "
              f"({'up to 1,000' if pages <= 1000 else 'over 1,000'} pages): {'met' if met else 'MISSED'}")
    not_run = [(flag, name) for flag, name, rounds in (("--no-urlwatch", "urlwatch", urlwatch_rounds),
                                                      ("--no-floor", "Scrapy alone", floor_rounds)) if not rounds]
    skipped = [flag for flag, _ in not_run]
    if not_run:
        print(f"(targets against {' and '.join(name for _, name in not_run)} not evaluated: {' '.join(skipped)})")
    if not ok:
        print("RESULT: a target was MISSED")
    elif skipped:
        print(f"RESULT: every evaluated target met; some were not evaluated ({' '.join(skipped)})")
    else:
        print("RESULT: every target met")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RunFailed as exc:
        print(f"run failed: {exc}", file=sys.stderr)
        sys.exit(2)
    except SystemExit as exc:
        # bench._util stops with a message (the site did not start, a tracker command failed):
        # a failed run too, exit 2 like the runs above, not the 1 that SystemExit(str) gives.
        if isinstance(exc.code, str):
            print(f"run failed: {exc.code}", file=sys.stderr)
            sys.exit(2)
        raise
    except (subprocess.TimeoutExpired, RuntimeError) as exc:
        print(f"run failed: {exc}", file=sys.stderr)
        sys.exit(2)
