"""Shared helpers for the bench scripts: the policy site, the tracker CLI, wall time and peak RSS."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
POLICY_SITE = SHARED / "tools" / "policy_site.py"
CORPUS = SHARED / "corpus" / "pga"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Site:
    """A running policy_site.py subprocess."""

    base: str
    process: subprocess.Popen[bytes]

    def url(self, slug: str) -> str:
        return f"{self.base}/docs/{slug}"

    def control(self, verb: str, **params: Any) -> Any:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        with urlopen(f"{self.base}/_control/{verb}?{query}", timeout=10) as r:
            return json.loads(r.read())

    def get(self, path: str) -> tuple[bytes, str | None]:
        """Body and Content-Type of a page of the site."""
        with urlopen(f"{self.base}{path}", timeout=30) as r:
            return r.read(), r.headers.get("Content-Type")


@contextmanager
def policy_site(*, corpus: Path = CORPUS, validators: bool = True) -> Iterator[Site]:
    """Start ../shared/tools/policy_site.py on a free port of 127.0.0.1; stop it afterwards."""
    if not POLICY_SITE.is_file():
        raise SystemExit(f"{POLICY_SITE} not found: the bench scripts need the shared tools next to the checkout")
    if not corpus.is_dir():
        raise SystemExit(f"corpus {corpus} not found (expected ../shared/corpus/pga next to the checkout)")
    for _attempt in range(5):
        port = free_port()
        cmd = [sys.executable, str(POLICY_SITE), "--corpus", str(corpus), "--port", str(port)]
        if not validators:
            cmd.append("--no-validators")
        # stderr to a file, not a pipe nobody reads: a full pipe would stall the site mid-run.
        errors = tempfile.TemporaryFile()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errors)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urlopen(f"{base}/_control/state", timeout=2):
                    break
            except (URLError, ConnectionError, OSError):
                time.sleep(0.1)
        if proc.poll() is None:
            break
        errors.seek(0)
        err = errors.read().decode(errors="replace")
        errors.close()
        if "Address already in use" not in err:
            raise SystemExit(f"policy_site.py failed to start: {err.strip()}")
    else:
        raise SystemExit("policy_site.py could not find a free port")
    try:
        yield Site(base, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        errors.close()


# Runs one command and writes its wall time and the peak RSS of its process tree to a file.
# getrusage(RUSAGE_CHILDREN).ru_maxrss is the largest RSS any waited-for descendant reached;
# psutil sampling adds up the tree in case the tool runs several processes at once.
_MEASURE = r"""
import json, resource, subprocess, sys, threading, time
out, cmd = sys.argv[1], json.loads(sys.argv[2])
peak_tree = 0
try:
    import psutil
except ImportError:
    psutil = None
start = time.perf_counter()
proc = subprocess.Popen(cmd)
done = threading.Event()
def sample():
    global peak_tree
    if psutil is None:
        return
    try:
        root = psutil.Process(proc.pid)
    except psutil.Error:
        return
    while not done.is_set():
        total = 0
        try:
            for p in [root, *root.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            break
        peak_tree = max(peak_tree, total)
        done.wait(0.02)
t = threading.Thread(target=sample, daemon=True)
t.start()
rc = proc.wait()
wall = time.perf_counter() - start
done.set()
t.join()
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as f:
    json.dump({"rc": rc, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss": usage.ru_maxrss * 1024,
               "tree": peak_tree}, f)
"""


@dataclass
class Measured:
    """One measured run of a command."""

    rc: int
    wall: float
    cpu: float  # user + system seconds of the process tree
    peak_rss: int  # bytes
    stdout: str
    stderr: str

    @property
    def peak_mb(self) -> float:
        return self.peak_rss / 2**20


def run_measured(cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
                 timeout: float = 1800) -> Measured:
    """Run a command, returning its exit code, wall time, peak RSS of its process tree and output."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        proc = subprocess.run([sys.executable, "-c", _MEASURE, out.name, json.dumps(list(cmd))], env=env,
                              cwd=cwd, capture_output=True, text=True, timeout=timeout)
        data = json.loads(Path(out.name).read_text() or "{}")
    if not data:
        raise RuntimeError(f"measuring {cmd[0]} failed: {proc.stderr.strip()}")
    return Measured(rc=data["rc"], wall=data["wall"], cpu=data["cpu"], peak_rss=max(data["maxrss"], data["tree"]),
                    stdout=proc.stdout, stderr=proc.stderr)


_compiled = False


def compile_checkout() -> None:
    """Byte-compile the checkout's own modules once, as a first run of an installed `tracker` does.

    Without it, a shell that sets PYTHONDONTWRITEBYTECODE (some CI images and sandboxes do) makes every
    measured process compile the tracker's ~200 modules from source again: ~0.25 s each that no user's
    second run pays (site-packages are compiled by pip at install time either way)."""
    global _compiled
    if not _compiled:
        import compileall

        for package in ("tracker", "spiders"):
            compileall.compile_dir(str(ROOT / package), quiet=1)
        _compiled = True


def tracker_env(database_url: str, **extra: str) -> dict[str, str]:
    """Environment for a `tracker` subprocess: this database and this checkout, no other TRACKER_ settings,
    and bytecode caches used as an installed program uses them (see compile_checkout)."""
    compile_checkout()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["TRACKER_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def tracker_cmd(*args: str) -> list[str]:
    """The real `tracker` command line, run by this interpreter."""
    return [sys.executable, "-m", "tracker", *args]


def run_tracker(env: dict[str, str], *args: str, check: bool = True,
                timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `tracker ARGS`; exit with its output when check is set and it fails."""
    proc = subprocess.run(tracker_cmd(*args), env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise SystemExit(f"`tracker {' '.join(args)}` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def machine() -> str:
    """A one-line description of where the figures come from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = f", load {os.getloadavg()[0]:.2f}"
    except OSError:
        load = ""
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores ({cpu}){load}, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
