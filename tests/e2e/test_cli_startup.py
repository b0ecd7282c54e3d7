"""Starting `tracker` loads only what the command uses.

`tracker crawl` runs every few minutes, and every command builds the whole Typer app first: a service
module imported at the top of one command module (Jinja2 for the digest, SQLAlchemy for the audit
trail, ...) would be paid by every run of every command. These tests look at what a real process has
imported; the speed itself is measured in bench/.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, tracker_env
from tracker.process import YOUNG_THRESHOLD
from tracker.store.db import current_revisions, head_revisions, make_engine, upgrade

# Loaded by `import tracker.cli` before the command modules imported their services lazily.
WERE_LOADED_AT_START = ["sqlalchemy", "sqlmodel", "pydantic", "pydantic_settings", "jinja2", "markupsafe", "bs4",
                        "soupsieve", "lxml", "cssselect", "yaml", "argon2", "tracker.store.models", "tracker.store.db",
                        "tracker.config", "tracker.audit.trail", "tracker.notify.digest", "tracker.export.run",
                        "tracker.impacts.workflow"]
# What single commands need (serve, run, export to xlsx, crawl, db upgrade, help formatting): never at start.
ONE_COMMANDS_ONLY = ["fastapi", "starlette", "uvicorn", "openpyxl", "apscheduler", "alembic", "scrapy", "twisted",
                     "rich", "tracker.web", "tracker.service", "tracker.check.record",
                     "spiders"]
# What `tracker crawl` has no use for (bs4 only for pages that are not UTF-8 or that lxml cannot parse).
NOT_FOR_CRAWL = ["jinja2", "fastapi", "starlette", "uvicorn", "openpyxl", "apscheduler", "alembic", "rich", "argon2",
                 "bs4", "soupsieve",
                 "yaml", "tracker.notify.digest", "tracker.web", "tracker.export.run", "tracker.service",
                 "apprise",  # loaded only to send to a team channel
                 "feedparser"]  # loaded only to read a feed source

COMMAND_GROUPS = ["audit", "changes", "crawl", "db", "demo", "digest", "export", "impacts", "metrics", "notify", "run",
                  "search", "serve", "sops", "sources", "status", "users", "worker"]

CRAWL_AND_LIST_MODULES = """
import sys
sys.argv = ["tracker", "crawl"]
from tracker.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print("exit", code, file=sys.stderr)
print("\\n".join(sorted(sys.modules)))
"""


def python(code: str, db_url: str = "sqlite://") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env=tracker_env(db_url), cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def loaded(modules: set[str], names: list[str]) -> list[str]:
    """Which of the packages (or modules) in names were imported, counting their submodules."""
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


def test_importing_the_cli_loads_no_service_or_heavy_library() -> None:
    out = python("import tracker.cli, sys; print(sorted(sys.modules))")
    assert out.returncode == 0, out.stderr
    modules = set(ast.literal_eval(out.stdout))
    assert "typer" in modules and "tracker.cli.crawl" in modules  # the listing is of a real start
    assert loaded(modules, WERE_LOADED_AT_START) == []
    assert loaded(modules, ONE_COMMANDS_ONLY) == []


def test_help_still_lists_every_command_group() -> None:
    out = subprocess.run([sys.executable, "-m", "tracker", "--help"], env=tracker_env("sqlite://", COLUMNS="120"),
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    listed = {line.strip(" │").split()[0] for line in out.stdout.splitlines() if line.strip(" │")[:1].isalpha()}
    assert set(COMMAND_GROUPS) <= listed, out.stdout
    for group in ("audit", "impacts", "users"):  # groups have their subcommands registered too
        sub = subprocess.run([sys.executable, "-m", "tracker", group, "--help"], env=tracker_env("sqlite://"),
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert sub.returncode == 0 and "Commands" in sub.stdout, sub.stdout + sub.stderr


def test_the_app_registers_exactly_the_command_groups() -> None:
    import typer

    from tracker.cli import app

    assert sorted(typer.main.get_command(app).commands) == COMMAND_GROUPS  # type: ignore[attr-defined]


def test_crawl_loads_its_crawler_and_database_but_not_the_other_commands_libraries(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tracker.db'}"
    upgrade(url)
    out = python(CRAWL_AND_LIST_MODULES, url)
    assert "exit 0" in out.stderr, out.stderr
    assert "no enabled sources to check" in out.stdout
    modules = set(out.stdout.splitlines())
    assert loaded(modules, ["scrapy", "sqlalchemy", "sqlmodel", "tracker.store.models", "tracker.check.record"]) == [
        "scrapy", "sqlalchemy", "sqlmodel", "tracker.store.models", "tracker.check.record"]
    assert loaded(modules, NOT_FOR_CRAWL) == []


PROGRAM_AND_LIST_MODULES = """
import sys
sys.argv = ["tracker", *sys.argv[1:]]
from tracker.__main__ import run
try:
    run()
except SystemExit as exc:
    print("exit", exc.code, file=sys.stderr)
print("\\n".join(sorted(sys.modules)))
"""


def program(*args: str, db_url: str = "sqlite://") -> subprocess.CompletedProcess[str]:
    """The `tracker` program's entry point (what the installed script and `python -m tracker` run)."""
    return subprocess.run([sys.executable, "-c", PROGRAM_AND_LIST_MODULES, *args], env=tracker_env(db_url),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_program_registers_only_the_command_it_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tracker.db'}"
    upgrade(url)
    out = program("crawl", db_url=url)
    assert "exit 0" in out.stderr and "no enabled sources to check" in out.stdout, out.stdout + out.stderr
    cli = {m for m in out.stdout.splitlines() if m.startswith("tracker.cli.")}
    assert cli == {"tracker.cli.app", "tracker.cli.crawl"}
    # A group spread over two modules gets both; its subcommands are all there.
    out = program("sources", "--help")
    assert "exit 0" in out.stderr and "manage" in out.stdout and "sync" in out.stdout, out.stdout + out.stderr
    assert {"tracker.cli.sources", "tracker.cli.manage", "tracker.cli.sops"} <= set(out.stdout.splitlines())
    assert "tracker.cli.audit" not in out.stdout.splitlines()


@pytest.mark.parametrize("args", [("--help",), (), ("nosuch",), ("--version",)],
                         ids=["help", "no args", "unknown", "version"])
def test_the_program_registers_everything_when_no_command_is_named(args: tuple[str, ...]) -> None:
    """Help lists every group, an unknown name is told apart from the known ones, --version works."""
    out = program(*args)
    modules = set(out.stdout.splitlines())
    assert {f"tracker.cli.{m}" for m in ("audit", "crawl", "serve", "worker", "manage")} <= modules, out.stderr


def test_every_module_that_registers_commands_is_known_to_the_program() -> None:
    """A command module missing from tracker.cli.MODULES would exist for the tests and not for users."""
    from tracker.cli import MODULES, MODULES_OF

    registering = {p.stem for p in (ROOT / "tracker" / "cli").glob("*.py")
                   if ".command(" in (text := p.read_text()) or "add_typer(" in text} - {"app"}
    assert registering == set(MODULES)
    assert {m for ms in MODULES_OF.values() for m in ms} == set(MODULES)
    assert sorted(MODULES_OF) == COMMAND_GROUPS


CRAWL_AND_SHOW_GC = """
import gc, sys
sys.argv = ["tracker", "crawl"]
from tracker.cli import main
try:
    main()
except SystemExit:
    pass
print("frozen", gc.get_freeze_count(), "enabled", gc.isenabled(), "young", gc.get_threshold()[0], file=sys.stderr)
"""


def test_the_crawl_process_freezes_what_its_start_up_made(tmp_path: Path) -> None:
    """Modules, tables and Scrapy live as long as a `tracker crawl`: the cyclic collector is held off
    while they load and they are frozen afterwards, so full collections during the crawl skip them."""
    url = f"sqlite:///{tmp_path / 'tracker.db'}"
    upgrade(url)
    out = python(CRAWL_AND_SHOW_GC, url)
    assert "no enabled sources to check" in out.stdout, out.stdout + out.stderr
    words = out.stderr.split()
    frozen = int(words[words.index("frozen") + 1])
    assert frozen > 20_000, out.stderr  # SQLAlchemy, the models and Scrapy: far more than Python's own start
    assert words[words.index("enabled") + 1] == "True"  # collection itself is back on for the crawl
    assert int(words[words.index("young") + 1]) == YOUNG_THRESHOLD  # and runs less often


def test_a_crawl_inside_another_process_leaves_its_collector_alone(tmp_path: Path) -> None:
    """A test's CliRunner (or an application calling the CLI) does not own the process: nothing of
    its objects, garbage included, may be frozen for good, and its collector stays as it was."""
    import gc

    from typer.testing import CliRunner

    from tracker.cli import app

    url = f"sqlite:///{tmp_path / 'tracker.db'}"
    upgrade(url)
    before = gc.get_freeze_count()
    result = CliRunner().invoke(app, ["crawl"], env={"TRACKER_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert "no enabled sources to check" in result.output
    assert gc.get_freeze_count() == before and gc.isenabled()
    assert gc.get_threshold()[0] != YOUNG_THRESHOLD  # the suite's own collector is left as Python set it


# -- the schema check without Alembic --------------------------------------------------------------

def test_the_schema_check_agrees_with_alembic_on_each_backend(database_url: str) -> None:
    from alembic.runtime.migration import MigrationContext

    from tracker.store.db import alembic_heads

    def alembics(eng: Any) -> set[str]:
        with eng.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())

    assert head_revisions(database_url) == alembic_heads(database_url)
    eng = make_engine(database_url)
    try:
        assert current_revisions(eng) == alembics(eng) == set()
        upgrade(database_url, "0004")
        assert current_revisions(eng) == alembics(eng) == {"0004"}
        upgrade(database_url)
        assert current_revisions(eng) == alembics(eng) == head_revisions(database_url)
    finally:
        eng.dispose()


def migration(folder: Path, name: str, body: str) -> None:
    """A migration file as Alembic writes them, with body as its revision identifiers."""
    text = f'"""a migration"""\nfrom alembic import op\n\n{body}\n\n\ndef upgrade():\n    pass\n'
    (folder / name).write_text(text)


def test_plain_heads_follows_branches_and_merges(tmp_path: Path) -> None:
    from tracker.store.db import plain_heads

    (tmp_path / "__init__.py").write_text("revision = 'not-a-migration'\n")
    (tmp_path / "__pycache__").mkdir()
    migration(tmp_path, "a.py", "revision: str = 'a'\ndown_revision: str | None = None")
    migration(tmp_path, "b.py", "revision = 'b'\ndown_revision = 'a'")
    migration(tmp_path, "c.py", "revision = 'c'\ndown_revision = 'a'\nbranch_labels = None\ndepends_on = None")
    assert plain_heads(tmp_path) == {"b", "c"}
    migration(tmp_path, "d.py", "revision = 'd'\ndown_revision = ('b', 'c')")
    assert plain_heads(tmp_path) == {"d"}


@pytest.mark.parametrize("body", [
    "revision = 'x'\ndown_revision = 'a'\ndepends_on = 'b'",
    "revision = 'x'\ndown_revision = 'a'\nbranch_labels = ('feature',)",
    "revision = make_id()\ndown_revision = 'a'",
    "down_revision = 'a'",
    "revision = 'x'\ndown_revision = 7",
], ids=["depends_on", "branch_labels", "computed revision", "no revision", "odd down_revision"])
def test_plain_heads_leaves_migrations_it_does_not_understand_to_alembic(tmp_path: Path, body: str) -> None:
    from tracker.store.db import plain_heads

    migration(tmp_path, "a.py", "revision = 'a'\ndown_revision = None")
    migration(tmp_path, "x.py", body)
    assert plain_heads(tmp_path) is None
