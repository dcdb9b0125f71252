"""Import of upstream results.tsv files into the ledger (`import-tsv`).

Upstream autoresearch keeps one tab-separated row per run: commit, val_bpb (0.000000
for a crash), memory_gb (0.0 for a crash), status (keep|discard|crash), description.
Each row becomes one record with its status and description kept, val_bpb and
peak_vram_mb from the row (null for a crash), family "general", tag "imported",
and `imported` = {"source", "row", "line", "row_sha256", "parent_inferred"}.
A leading UTF-8 byte order mark is skipped and statuses are case-insensitive; a row is
rejected (naming its line) unless its commit is hexadecimal, a keep/discard row has
val_bpb > 0 at 6 decimals, and memory_gb is within [0, 1e9].

Parents follow upstream's loop: a kept commit advances the branch, a discarded or
crashed one is reset, so a row's parent is the last kept commit above it.

Idempotent: a row whose (commit, status, description, val_bpb) matches a record
already in the ledger, native or imported, is skipped (counted per occurrence, so
a file with two identical rows imports two records once). The store's own
results.tsv therefore imports nothing.
"""

import hashlib
import math
import os
import re
from collections import Counter

from . import records
from .fields import metric

COLUMNS = ("commit", "val_bpb", "memory_gb", "status", "description")
MAX_MEMORY_GB = 1e9  # peak_vram_mb = memory_gb * 1024 must stay a sane finite number
_HEX = re.compile(r"[0-9a-fA-F]+")
IMPORT_TAG = "imported"


# ---------------------------------------------------------------- parsing (pure)

def parse_tsv(text, source="results.tsv"):
    """[{row, line, commit, val_bpb, memory_gb, status, description, raw}] for the
    data rows of a results.tsv (header optional, blank lines skipped). Raises
    records.InputError naming the line for a malformed row."""
    rows, first = [], True
    if text.startswith("\ufeff"):  # a UTF-8 byte order mark (Excel, Windows editors)
        text = text[1:]
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        if first:
            first = False
            if raw.split("\t")[0].strip().lower() == "commit":
                continue  # the header
        parts = raw.split("\t", len(COLUMNS) - 1)
        if len(parts) < len(COLUMNS):
            raise records.InputError(f"{source} line {number}: expected {len(COLUMNS)} "
                                     f"tab-separated columns ({', '.join(COLUMNS)}), "
                                     f"got {len(parts)}")
        commit, bpb_text, mem_text, status, description = (p.strip() for p in parts)
        status = status.lower()
        if status not in records.STATUSES:
            raise records.InputError(f"{source} line {number}: status must be one of "
                                     f"{', '.join(records.STATUSES)}, got {status!r}")
        if not commit:
            raise records.InputError(f"{source} line {number}: empty commit")
        if not _HEX.fullmatch(commit):
            raise records.InputError(f"{source} line {number}: commit must be a hexadecimal "
                                     f"git hash, got {commit[:40]!r}")
        if not description:
            raise records.InputError(f"{source} line {number}: empty description")
        val_bpb = _number(bpb_text, "val_bpb", source, number)
        memory_gb = _number(mem_text, "memory_gb", source, number)
        if status == "crash":
            val_bpb = memory_gb = None
        elif round(val_bpb, 6) <= 0:  # results.tsv has 6 decimals: 0.000000 is no result
            raise records.InputError(f"{source} line {number}: a {status} row needs a "
                                     f"positive val_bpb, got {bpb_text!r}")
        elif not 0 <= memory_gb <= MAX_MEMORY_GB:
            raise records.InputError(f"{source} line {number}: memory_gb must be within "
                                     f"[0, {MAX_MEMORY_GB:g}], got {mem_text!r}")
        rows.append({"row": len(rows) + 1, "line": number, "commit": commit,
                     "val_bpb": val_bpb, "memory_gb": memory_gb, "status": status,
                     "description": " ".join(description.split()), "raw": raw})
    return rows


def _number(text, name, source, line):
    try:
        value = float(text)
    except ValueError:
        raise records.InputError(f"{source} line {line}: {name} must be a number, "
                                 f"got {text!r}") from None
    if not math.isfinite(value):
        raise records.InputError(f"{source} line {line}: {name} must be finite, got {text!r}")
    return value


# ---------------------------------------------------------------- planning (pure)

def row_key(commit, status, description, val_bpb):
    """What makes a results.tsv row the same run as a record: commit, status, the
    description with whitespace collapsed (as results.tsv writes it) and val_bpb at
    6 decimals (None for a crash)."""
    bpb = None if status == "crash" or val_bpb is None else round(float(val_bpb), 6)
    return (str(commit or "").strip(), status, " ".join(str(description or "").split()), bpb)


def record_key(row):
    return row_key(row.get("commit"), row.get("status"), row.get("description"),
                   metric(row, "val_bpb"))


def new_rows(tsv_rows, existing_rows):
    """The tsv rows not yet in the ledger, in file order (see the module doc)."""
    have = Counter(record_key(row) for row in existing_rows)
    fresh = []
    for tsv_row in tsv_rows:
        key = row_key(tsv_row["commit"], tsv_row["status"], tsv_row["description"],
                      tsv_row["val_bpb"])
        if have[key]:
            have[key] -= 1
        else:
            fresh.append(tsv_row)
    return fresh


def infer_parents(tsv_rows):
    """{row number: parent commit or None}: the last kept commit above each row."""
    parents, last_kept = {}, None
    for tsv_row in tsv_rows:
        parents[tsv_row["row"]] = last_kept
        if tsv_row["status"] == "keep":
            last_kept = tsv_row["commit"]
    return parents


def build_record(tsv_row, *, timestamp, parent_commit, source):
    """The ledger record of one results.tsv row (run_id still None)."""
    from . import novelty
    crash = tsv_row["status"] == "crash"
    metrics = {name: None for name in records.METRIC_FIELDS}
    metrics["val_bpb"] = tsv_row["val_bpb"]
    if tsv_row["memory_gb"] is not None:
        metrics["peak_vram_mb"] = round(tsv_row["memory_gb"] * 1024, 1)
    error = {"summary": "crash (imported from results.tsv: no log)", "tail": [],
             "source": "import"} if crash else None
    git = {"commit": tsv_row["commit"][:7], "parent_commit": parent_commit and parent_commit[:7]}
    record = records.draft_record(
        now=timestamp, git=git, description=tsv_row["description"],
        status=tsv_row["status"], inputs={"metrics": metrics, "error": error, "summary": None},
        tags=[IMPORT_TAG], notes=f"imported from {source} row {tsv_row['row']}")
    record["imported"] = {
        "source": source, "row": tsv_row["row"], "line": tsv_row["line"],
        "row_sha256": hashlib.sha256(tsv_row["raw"].encode("utf-8")).hexdigest(),
        "parent_inferred": True,
    }
    idea = records.idea_of(record["description"], None, record["family"], record["tags"])
    record["novelty_features"] = novelty.features(idea, None)
    return record


# ---------------------------------------------------------------- the store

def _read_text(path):
    if not os.path.isfile(path):
        raise records.InputError(f"import-tsv: file not found: {path}")
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def _timestamps(path, now, count):
    """One second apart in file order, the last at the file's modification time (or
    now, when that is later than now): results.tsv rows carry no time of their own."""
    from datetime import datetime, timedelta, timezone
    from .records import format_utc, parse_utc
    end = min(parse_utc(now), datetime.fromtimestamp(os.path.getmtime(path), timezone.utc))
    end = end.replace(microsecond=0)
    return [format_utc(end - timedelta(seconds=count - 1 - i)) for i in range(count)]


def import_tsv(store, path, *, now, dry_run=False):
    """Append the new rows of the results.tsv at `path` to the ledger (one store
    transaction per record, then the registry). Returns {"source", "rows",
    "imported" [run ids], "skipped", "dry_run", "bad_lines"}."""
    from . import registry
    text = _read_text(path)
    source_abs = os.path.abspath(path)
    inside = source_abs.startswith(store.root + os.sep)
    source = store.relpath(source_abs) if inside else source_abs
    tsv_rows = parse_tsv(text, source=os.path.basename(path))
    parents = infer_parents(tsv_rows)
    stamps = dict(zip((r["row"] for r in tsv_rows), _timestamps(path, now, len(tsv_rows))))
    with store.lock():
        registry_missing = not os.path.exists(store.registry_path)
        if not dry_run:
            store.ensure_layout()
        rows, bad = store.read_rows()
        fresh = new_rows(tsv_rows, rows)
        known = {row.get("run_id") for row in rows}
        drafts, warnings = [], []
        for tsv_row in fresh:
            record = build_record(tsv_row, timestamp=stamps[tsv_row["row"]],
                                  parent_commit=parents[tsv_row["row"]], source=source)
            record["run_id"] = records.unique_run_id(
                record["timestamp_utc"], record["commit"],
                lambda run_id: store.taken(run_id, known))
            known.add(record["run_id"])
            drafts.append(record)
        if drafts and not dry_run:
            from .store import slim_row
            after = registry.build_registry(rows + [slim_row(r, None) for r in drafts], now=now)
            for done, record in enumerate(drafts, 1):
                warnings = store.commit_run(record, None, after)
                if warnings:  # its journal must be completed before the next commit
                    del drafts[done:]
                    break
        elif registry_missing and not dry_run:
            store.write_registry(registry.build_registry(rows, now=now))
    return {"source": source, "rows": len(tsv_rows),
            "imported": [r["run_id"] for r in drafts], "skipped": len(tsv_rows) - len(drafts),
            "dry_run": dry_run, "bad_lines": bad, "warnings": warnings}
