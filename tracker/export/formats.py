"""Streaming writers for the compliance export: CSV, JSON Lines and XLSX, one table at a time.

Every writer takes rows as sequences of Python values in column order (aware UTC datetimes,
dates, lists, dicts, ...) and converts them for its format while streaming them to disk, so
memory stays flat however many rows an export has. CSV and JSONL files are hashed (SHA-256) as
they are written; the XLSX workbook is hashed once saved.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, Protocol

# Text that a spreadsheet would run as a formula (CSV injection) starts with one of these. In CSV,
# every line of every text cell that starts with one, or with the guard "'" itself, gets a "'" in
# front: so the guard is exactly reversible (undefuse), and `export verify --rows` recomputes hashes.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
GUARD = "'"
_GUARDED = (*FORMULA_START, GUARD)
XLSX_MAX_CELL = 32_767
# Control characters XML 1.0 (and so an .xlsx) cannot hold; openpyxl refuses them.
_ILLEGAL = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
XLSX_TRUNCATED = " …[truncated: Excel cells hold 32,767 characters; the CSV/JSONL export has it all]"


@dataclass(frozen=True)
class Column:
    """One column of an export table: its name, value kind and XLSX width."""

    name: str
    kind: str  # int | float | bool | text | datetime | date | lines | json
    width: int = 14
    doc: str = ""


def iso_utc(value: datetime) -> str:
    """A time as exact ISO 8601 UTC with microseconds (the form the audit chain hashes)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys, for JSON values in CSV and XLSX cells."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _lines(value: list[Any]) -> str:
    return "\n".join(str(v) for v in value)


def _true_false(value: Any) -> str:
    return "true" if value else "false"


def _date_iso(value: date) -> str:
    return value.isoformat()


def _same(value: Any) -> Any:
    return value


# How each kind of value becomes text (CSV, and XLSX text cells). None always stays None.
_TEXT: dict[str, Callable[[Any], Any]] = {
    "datetime": iso_utc, "date": _date_iso, "bool": _true_false, "lines": _lines, "json": canonical_json,
    "int": _same, "float": _same, "text": _same,
}


def _plain(value: Any, kind: str) -> Any:
    """A value as text-ish for CSV: ISO times, joined lists, JSON text; None stays None."""
    return None if value is None else _TEXT[kind](value)


class FileHash:
    """A binary sink that counts and SHA-256-hashes what passes through it."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


class _HashedStream(io.RawIOBase):
    def __init__(self, sink: FileHash):
        self.sink = sink

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self.sink.write(bytes(data))


@dataclass
class WrittenFile:
    """A file of the export: its path relative to the manifest, SHA-256 and size."""

    path: str
    sha256: str
    bytes: int
    table: str | None = None
    members: list[WrittenFile] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "sha256": self.sha256, "bytes": self.bytes}
        if self.table:
            data["table"] = self.table
        if self.members is not None:
            data["members"] = [m.to_json() for m in self.members]
        return data


def sha256_file(path: Path) -> tuple[str, int]:
    """The SHA-256 and size of a file, read in chunks."""
    h, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class TableSink(Protocol):
    """Where one table's rows go."""

    def write(self, row: Sequence[Any]) -> None: ...

    def close(self) -> None: ...


class ExportWriter(Protocol):
    """A format: opens one table at a time and reports the files it wrote."""

    def table(self, name: str, columns: Sequence[Column]) -> TableSink: ...

    def finish(self) -> list[WrittenFile]: ...


# --- CSV and JSON Lines -------------------------------------------------------------------------

class _TextTable:
    """One CSV or JSONL table streamed into a hashed binary sink."""

    def __init__(self, fmt: str, name: str, columns: Sequence[Column], raw: IO[bytes],
                 on_close: Any) -> None:
        self.fmt, self.name, self.columns, self.on_close = fmt, name, list(columns), on_close
        self.hash = FileHash(raw)
        # CSV gets a BOM so Excel reads UTF-8; JSON Lines is plain UTF-8.
        encoding = "utf-8-sig" if fmt == "csv" else "utf-8"
        self.text = io.TextIOWrapper(io.BufferedWriter(_HashedStream(self.hash), 1 << 16),
                                     encoding=encoding, newline="" if fmt == "csv" else "\n")
        self.kinds = [c.kind for c in self.columns]
        self.names = [c.name for c in self.columns]
        if fmt == "csv":
            self.csv = csv.writer(self.text, lineterminator="\r\n")
            self.csv.writerow(self.names)

        self.convert = [_csv_converter(k) if fmt == "csv" else _jsonl_converter(k) for k in self.kinds]

    def write(self, row: Sequence[Any]) -> None:
        cells = [v if v is None else f(v) for f, v in zip(self.convert, row, strict=True)]
        if self.fmt == "csv":
            self.csv.writerow(cells)
        else:
            self.text.write(json.dumps(dict(zip(self.names, cells, strict=True)), ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.text.flush()
        self.text.detach().flush()
        self.on_close(self)


def defuse(text: str) -> str:
    """A CSV cell's text with a "'" before each line a spreadsheet would run as a formula (or that
    starts with "'"), so "=HYPERLINK(…)" in a heading, a note or an actor stays text."""
    if "\n" not in text:
        return GUARD + text if text.startswith(_GUARDED) else text
    return "\n".join(GUARD + line if line.startswith(_GUARDED) else line for line in text.split("\n"))


def undefuse(text: str) -> str:
    """The text defuse was given: one leading "'" off every line that has one."""
    return "\n".join(line[1:] if line.startswith(GUARD) else line for line in text.split("\n"))


# CSV cells that are text (and so guarded): text, lines joined by newlines, and JSON values.
_CSV_TEXT_KINDS = ("text", "lines", "json")


def _csv_converter(kind: str) -> Callable[[Any], Any]:
    to_text = _TEXT[kind]
    if kind not in _CSV_TEXT_KINDS:
        return to_text
    return lambda value: defuse(str(to_text(value)))


def _jsonl_converter(kind: str) -> Callable[[Any], Any]:
    # JSON Lines keeps numbers, booleans, lists and objects as JSON; times and dates as ISO text.
    special: dict[str, Callable[[Any], Any]] = {"datetime": iso_utc, "date": _date_iso, "lines": list}
    return special.get(kind, _same)


class TextExport:
    """CSV or JSONL: one file per table, in a directory or (zip=True) members of one zip file."""

    def __init__(self, fmt: str, target: Path, *, zip_name: str | None = None) -> None:
        self.fmt, self.target = fmt, target
        self.files: list[WrittenFile] = []
        self.zip: zipfile.ZipFile | None = None
        self.zip_name = zip_name
        if zip_name is not None:
            self.zip = zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        else:
            target.mkdir(parents=True, exist_ok=True)

    def table(self, name: str, columns: Sequence[Column]) -> TableSink:
        filename = f"{name}.{self.fmt}"
        raw: IO[bytes]
        if self.zip is not None:
            raw = self.zip.open(zipfile.ZipInfo(filename, date_time=_zip_time()), "w", force_zip64=True)
        else:
            raw = (self.target / filename).open("wb")

        def closed(t: _TextTable) -> None:
            raw.close()
            self.files.append(WrittenFile(filename, t.hash.sha.hexdigest(), t.hash.size, table=name))

        return _TextTable(self.fmt, name, columns, raw, closed)

    def finish(self) -> list[WrittenFile]:
        if self.zip is None:
            return self.files
        self.zip.close()
        sha, size = sha256_file(self.target)
        return [WrittenFile(self.zip_name or self.target.name, sha, size, members=self.files)]


def _zip_time() -> tuple[int, int, int, int, int, int]:
    now = datetime.now(UTC)
    return (now.year, now.month, now.day, now.hour, now.minute, now.second)


# --- XLSX ---------------------------------------------------------------------------------------

class _Sheet:
    def __init__(self, ws: Any, columns: Sequence[Column]) -> None:
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Alignment, Font, PatternFill
        from openpyxl.utils import get_column_letter

        self.ws, self.columns = ws, list(columns)
        self.kinds = [c.kind for c in self.columns]
        self.rows = 0
        self.last_col = get_column_letter(len(self.columns))
        # Widths, the frozen header and the sheet view are written before the first row.
        for i, col in enumerate(self.columns, 1):
            ws.column_dimensions[get_column_letter(i)].width = col.width
        ws.freeze_panes = "A2"
        bold, fill = Font(bold=True), PatternFill("solid", fgColor="DDE4EE")
        wrap = Alignment(wrap_text=True, vertical="top")
        header = []
        for col in self.columns:
            cell = WriteOnlyCell(ws, value=col.name)
            cell.font, cell.fill, cell.alignment = bold, fill, wrap
            header.append(cell)
        ws.append(header)
        self._cell = WriteOnlyCell

        self.convert = [self._converter(k) for k in self.kinds]

    def write(self, row: Sequence[Any]) -> None:
        self.ws.append([v if v is None else f(v) for f, v in zip(self.convert, row, strict=True)])
        self.rows += 1

    def _converter(self, kind: str) -> Callable[[Any], Any]:
        if kind == "datetime":
            return _naive_utc
        if kind in ("date", "int", "float", "bool"):
            return _same
        to_text = _TEXT[kind]
        return lambda value: self._text(to_text(value))

    def _text(self, text: str) -> Any:
        text = _xlsx_text(text)
        if text.startswith("="):
            # A string, never a formula: scraped text and notes are hostile input.
            cell = self._cell(self.ws, value=text)
            cell.data_type = "s"
            return cell
        return text

    def close(self) -> None:
        self.ws.auto_filter.ref = f"A1:{self.last_col}{self.rows + 1}"


def _naive_utc(value: datetime) -> datetime:
    # Excel has no time zones: the cell holds the UTC wall time (column names say _utc).
    return value.astimezone(UTC).replace(tzinfo=None)


def _xlsx_text(text: str) -> str:
    if _ILLEGAL.search(text):
        text = _ILLEGAL.sub("\ufffd", text)
    if len(text) > XLSX_MAX_CELL:
        text = text[: XLSX_MAX_CELL - len(XLSX_TRUNCATED)] + XLSX_TRUNCATED
    return text


class XlsxExport:
    """One workbook, a sheet per table, written in openpyxl's streaming (write-only) mode."""

    def __init__(self, target: Path, *, name: str) -> None:
        from openpyxl import Workbook

        self.target, self.name = target, name
        self.wb = Workbook(write_only=True)
        self.tables: list[str] = []

    def table(self, name: str, columns: Sequence[Column]) -> TableSink:
        self.tables.append(name)
        return _Sheet(self.wb.create_sheet(title=name), columns)

    def finish(self) -> list[WrittenFile]:
        self.wb.save(self.target)
        sha, size = sha256_file(self.target)
        return [WrittenFile(self.name, sha, size)]


# --- the registry -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Format:
    """One export format: how to open its writer, and whether it writes one file or a folder of them."""

    name: str
    description: str
    # (where the data goes, the file name the manifest records, zip) -> the writer
    open: Callable[[Path, str, bool], ExportWriter]
    one_file: bool = False  # one file (a workbook) rather than a file per table in a folder
    zippable: bool = True  # --zip: the per-table files as members of one zip file

    def suffix(self, *, zip: bool) -> str:
        """The file name ending of a one-file export (`--output q3` becomes q3.xlsx or q3.zip)."""
        return ".zip" if zip else f".{self.name}"


def _text(fmt: str) -> Callable[[Path, str, bool], ExportWriter]:
    return lambda target, name, zip: TextExport(fmt, target, zip_name=name if zip else None)


# The one list of export formats: `tracker export --format`, its validation and the docs read it.
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("csv", "a CSV file per table (UTF-8 with BOM, formulas defused), in a folder or a zip", _text("csv")),
    Format("jsonl", "a JSON Lines file per table, in a folder or a zip", _text("jsonl")),
    Format("xlsx", "one workbook, a sheet per table", lambda target, name, zip: XlsxExport(target, name=name),
           one_file=True, zippable=False),
)}
