"""Where an export goes, and what `--force` may replace there.

An --output path may hold the user's own files. `--force` therefore never wipes a folder: it
replaces only the files an earlier export's manifest lists (and that manifest itself), and only
when that manifest is a real tracker manifest; a file of the new export that would land on
anything else is refused. Symbolic links as --output are refused too: the export would be
written somewhere the path does not say.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tracker.export.manifest import ExportError, load_manifest


@dataclass
class OutputPlan:
    """The export's data path and manifest, the files it will write (relative to the manifest's
    folder) and the earlier export's files it replaces."""

    target: Path
    manifest: Path
    is_dir: bool
    names: list[str]
    earlier: list[str] = field(default_factory=list)

    @property
    def base(self) -> Path:
        return self.manifest.parent


def _refuse_links(*paths: Path) -> None:
    for p in paths:
        if p.is_symlink():
            raise ExportError(f"--output {p} is a symbolic link: give the real path it points to")


def _earlier_files(plan: OutputPlan) -> list[str]:
    """The files the earlier export at this place lists; refuses when there is no real manifest."""
    if not plan.manifest.is_file():
        raise ExportError(f"{plan.target} exists but is not an earlier export (no {plan.manifest.name} beside "
                          "it): refusing to replace anything there, choose a new --output")
    try:
        earlier = load_manifest(plan.manifest)
    except ExportError as exc:
        raise ExportError(f"{exc}: refusing to replace anything at {plan.target}, choose a new --output") from None
    return [str(entry["path"]) for entry in earlier["files"]]


def _check_collisions(plan: OutputPlan) -> None:
    """The new export's files may only land where nothing is, or on the earlier export's files."""
    for rel in [*plan.names, *plan.earlier]:
        p = plan.base / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts or p.is_symlink() or p.is_dir():
            raise ExportError(f"{p} is not a plain file of an earlier export: refusing to replace it")
    for rel in plan.names:
        if (plan.base / rel).exists() and rel not in plan.earlier:
            raise ExportError(f"{plan.base / rel} is not a file of the earlier export at {plan.target}: "
                              "refusing to overwrite it, choose a new --output")


def plan_output(target: Path, manifest: Path, *, is_dir: bool, names: list[str], force: bool) -> OutputPlan:
    """Check the --output place and decide what is written and replaced (nothing is touched yet)."""
    plan = OutputPlan(target=target, manifest=manifest, is_dir=is_dir, names=names)
    _refuse_links(target, manifest)
    if is_dir and target.exists() and not target.is_dir():
        raise ExportError(f"--output {target} is a file: csv and jsonl exports go in a folder")
    if not is_dir and target.is_dir():
        raise ExportError(f"--output {target} is a folder: an xlsx or --zip export is one file")
    taken = manifest.exists() or (target.exists() and not (is_dir and not any(target.iterdir())))
    if not taken:
        return plan
    if not force:
        raise ExportError(f"{target} already exists: choose a new --output or pass --force to replace "
                          "an earlier export")
    plan.earlier = _earlier_files(plan)
    _check_collisions(plan)
    return plan


def move_into_place(plan: OutputPlan, staged: Path, staged_manifest: Path) -> None:
    """Move the staged files in, remove the earlier export's files the new one does not replace,
    then the manifest last (an export without its manifest is incomplete)."""
    plan.manifest.unlink(missing_ok=True)
    if plan.is_dir:
        plan.target.mkdir(parents=True, exist_ok=True)
        for rel in plan.names:
            os.replace(staged / rel, plan.target / rel)
    else:
        os.replace(staged, plan.target)
    for rel in plan.earlier:
        if rel not in plan.names:
            (plan.base / rel).unlink(missing_ok=True)
    os.replace(staged_manifest, plan.manifest)
