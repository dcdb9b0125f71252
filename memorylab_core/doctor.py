"""Health checks of a store and their repair, losing nothing.

`diagnose(store, now=...)` reads the ledger line by line and reports
- problems, which `repair` fixes: unparseable lines (torn, not JSON, not an object)
  with their line numbers, duplicate run ids, a registry that is stale or unreadable;
- warnings, which need a person: records missing fields, unknown statuses, archived
  files that a record lists but that are gone, run folders no record names, and a
  results.tsv whose row count differs from the ledger's;
- stray temp files (`.<name>.tmp-*` left by killed writers), which `repair` removes.

`repair(store, now=...)` moves every bad line, verbatim, to
results/memorylab/experiments.quarantine.jsonl, gives a record whose run id repeats
an earlier record's a fresh id (keeping the old one as `original_run_id`; the
original line is quarantined too), drops exact duplicate lines (the copy goes to
quarantine), and rewrites the registry. `plan_repair` is the pure part.
"""

import json
import os

from . import records, store as store_module
from .views import artifact_paths

REQUIRED_FIELDS = ("run_id", "timestamp_utc", "commit", "status", "description", "metrics")
CHECKED_FIELDS = REQUIRED_FIELDS + ("artifacts",)  # all a diagnosis reads of a record
MAX_SHOWN = 20  # text output: findings shown per kind, then a count


# ---------------------------------------------------------------- the ledger (pure)

def scan_ledger(lines, on_record=None):
    """Findings over ledger lines [(number, raw, record or None, problem or None)]
    (store.ledger_lines; a line with a problem but a record is a whole record that
    only lost its newline: a bad line that the repair keeps).

    Returns {"lines" (the last line's number), "blank_lines" (blank or whitespace-only
    lines: they hold nothing, and a repair drops them), "records", "bad_lines"
    [{line, problem, text}],
    "duplicates" [{run_id, lines, identical}], "missing_fields" [{line, run_id,
    fields}], "unknown_status" [{line, run_id, status}]}. `lines` may be a stream:
    a line is kept only as a digest (duplicates), and `on_record(record)` sees each
    record as it passes."""
    bad, missing, unknown = [], [], []
    first_seen, duplicates = {}, {}
    count = last = non_blank = 0
    for number, raw, record, problem in lines:
        last, non_blank = number, non_blank + 1
        if problem:
            bad.append({"line": number, "problem": problem,
                        "text": raw[:120].decode("utf-8", errors="replace")})
        if record is None:
            continue
        count += 1
        if on_record is not None:
            on_record(record)
        absent = [f for f in REQUIRED_FIELDS if record.get(f) in (None, "")]
        if absent == ["timestamp_utc"] and _time_unknown(record, raw):
            absent = []  # an imported run whose time nobody knows (import-tsv)
        if absent:
            missing.append({"line": number, "run_id": record.get("run_id"), "fields": absent})
        if record.get("status") not in records.STATUSES:
            unknown.append({"line": number, "run_id": record.get("run_id"),
                            "status": record.get("status")})
        run_id = record.get("run_id")
        if isinstance(run_id, str) and run_id:
            digest = hash(raw.strip())   # in-process equality of lines (a duplicate id is rare)
            if run_id in first_seen:
                entry = duplicates.setdefault(run_id, {"run_id": run_id,
                                                       "lines": [first_seen[run_id][0]],
                                                       "identical": True})
                entry["lines"].append(number)
                entry["identical"] &= digest == first_seen[run_id][1]
            else:
                first_seen[run_id] = (number, digest)
    # line numbers count blank lines too
    return {"lines": last, "blank_lines": last - non_blank, "records": count, "bad_lines": bad,
            "duplicates": list(duplicates.values()), "missing_fields": missing,
            "unknown_status": unknown}


def _time_unknown(record, raw):
    """Whether import-tsv marked the record's time as unknown (the record may hold only
    its leading fields: then the line is read whole)."""
    if "imported" not in record:
        record = json.loads(raw)
    imported = record.get("imported")
    return isinstance(imported, dict) and imported.get("timestamp") == "unknown"


def plan_repair(lines):
    """(kept raw lines, quarantined raw lines, renamed [{line, old, new}]) for ledger
    lines as `scan_ledger` takes them. Nothing is dropped: every input line is kept,
    quarantined, or both (a re-identified record: new line kept, original quarantined)."""
    kept, quarantined, renamed = [], [], []
    seen_lines, kept_ids = set(), set()
    taken = {record.get("run_id") for _, _, record, _ in lines if record is not None}
    for number, raw, record, problem in lines:
        if record is None:
            quarantined.append(raw)
            continue
        body = raw.strip()
        if body in seen_lines:  # an exact copy of a line already kept
            quarantined.append(raw)
            continue
        seen_lines.add(body)
        run_id = record.get("run_id")
        if isinstance(run_id, str) and run_id and run_id in kept_ids:
            new_id = _fresh_id(record, taken)
            fixed = dict(record, run_id=new_id, original_run_id=run_id)
            quarantined.append(raw)
            kept.append(store_module.to_json(fixed, indent=None).encode("utf-8"))
            renamed.append({"line": number, "old": run_id, "new": new_id})
            taken.add(new_id)
            continue
        if isinstance(run_id, str):
            kept_ids.add(run_id)
        kept.append(raw)
    return kept, quarantined, renamed


def _fresh_id(record, taken):
    """A new id in the published format for a record whose id repeats an earlier one:
    the same timestamp and commit, seconds bumped until free (records.unique_run_id)."""
    from .records import format_utc, parse_utc
    stamp = parse_utc(record.get("timestamp_utc"))
    old = record.get("run_id") or ""
    if stamp is None:  # fall back to the timestamp written in the old id
        from datetime import datetime, timezone
        try:
            stamp = datetime.strptime(old[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            stamp = datetime(1970, 1, 1, tzinfo=timezone.utc)
    commit = str(record.get("commit") or old[17:] or records.NO_COMMIT)
    return records.unique_run_id(format_utc(stamp), commit, lambda run_id: run_id in taken)


# ---------------------------------------------------------------- the store

def _registry_state(store, rows, now):
    """"ok", "missing", "unreadable" or "stale" (differs from one built now)."""
    from . import registry
    try:
        with open(store.registry_path, "rb") as f:
            current = json.loads(f.read())
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError):
        return "unreadable"
    if not isinstance(current, dict):
        return "unreadable"
    fresh = json.loads(store_module.to_json(registry.build_registry(rows, now=now)))
    for stamp in ("generated_at_utc", "ledger_size"):
        current.pop(stamp, None)
        fresh.pop(stamp, None)
    return "ok" if current == fresh else "stale"


class _ArchiveCheck:
    """Missing artifact files and orphan run folders, fed one record at a time. The
    run folders are listed once; a path under runs/<folder>/ whose folder is absent is
    missing without a file system call."""

    def __init__(self, store):
        self.store, self.missing, self.named = store, [], set()
        try:
            self.folders = {name for name in os.listdir(store.runs_dir)
                            if not name.startswith(".")}
        except FileNotFoundError:
            self.folders = set()
        self.prefix = store.relpath(store.runs_dir) + os.sep

    def add(self, record):
        run_id = record.get("run_id")
        self.named.add(str(run_id))
        for path in artifact_paths(record):
            if path.startswith(self.prefix):
                folder = path[len(self.prefix):].split(os.sep, 1)[0]
                if folder not in self.folders:
                    self.missing.append({"run_id": run_id, "path": path})
                    continue
            if not os.path.exists(os.path.join(self.store.root, path)):
                self.missing.append({"run_id": run_id, "path": path})

    def result(self):
        """(missing artifact files [{run_id, path}], run folders no record names)."""
        runs = self.store.runs_dir
        orphans = [self.store.relpath(os.path.join(runs, name)) for name in sorted(self.folders)
                   if name not in self.named and os.path.isdir(os.path.join(runs, name))]
        return self.missing, orphans


def _tsv_rows(store):
    try:
        with open(store.tsv_path, "rb") as f:
            count = header = 0
            for number, line in enumerate(f):
                if line.strip():
                    count += 1
                    header = header or (number == 0 and line.startswith(b"commit\t"))
    except FileNotFoundError:
        return None
    return count - header


def diagnose(store, *, now):
    """Every finding about the store (see the module doc); reads only."""
    if not store.initialized():
        raise records.InputError(f"no MemoryLab store at {store.root} (run init)")
    with store.lock(exclusive=False):
        # the registry is built from the rows' facts: their novelty features stay on disk
        rows, _ = store.read_rows_lean()
        registry_state = _registry_state(store, rows, now)
        del rows
        store.drop_rows()  # the scan below reuses their memory
        archive = _ArchiveCheck(store)
        findings = scan_ledger(store_module.ledger_lines(store, CHECKED_FIELDS),
                               on_record=archive.add)
        missing_files, orphans = archive.result()
        tsv_rows = _tsv_rows(store)
        strays, index_lock = store.stray_temp_files()
        if index_lock is not None:
            os.close(index_lock)
    findings.update(
        ledger=store.relpath(store.ledger_path),
        registry=registry_state,
        missing_files=missing_files,
        orphan_run_dirs=orphans,
        results_tsv_rows=tsv_rows,
        results_tsv_mismatch=tsv_rows is not None and tsv_rows != findings["records"],
        stray_temp_files=[store.relpath(path) for path in strays],
    )
    findings["problems"] = (len(findings["bad_lines"]) + len(findings["duplicates"])
                            + (registry_state != "ok") + len(strays))
    findings["warnings"] = (len(findings["missing_fields"]) + len(findings["unknown_status"])
                            + len(missing_files) + len(orphans)
                            + findings["results_tsv_mismatch"])
    return findings


def repair(store, *, now):
    """Quarantine bad lines, re-identify duplicate ids, rewrite the registry (all
    under the exclusive lock). Returns the findings before the repair plus
    {"quarantined", "renamed", "quarantine", "registry_rewritten", "after"}."""
    from . import registry
    before = diagnose(store, now=now)
    with store.lock():
        lines = list(store_module.ledger_lines(store))
        kept, quarantined, renamed = plan_repair(lines)
        blank = len(lines) != (lines[-1][0] if lines else 0)  # dropped by the rewrite
        changed = bool(quarantined or renamed or blank) or any(problem for *_, problem in lines)
        if changed:
            store_module.rewrite_ledger(store, kept, quarantined)
        rows, _ = store.read_rows()
        rewrite_registry = changed or _registry_state(store, rows, now) != "ok"
        if rewrite_registry:
            store.write_registry(registry.build_registry(rows, now=now))
        strays, index_lock = store.stray_temp_files()
        try:
            for path in strays:
                os.unlink(path)
        finally:
            if index_lock is not None:
                os.close(index_lock)
    result = dict(before)
    result.update(quarantined=len(quarantined), renamed=renamed,
                  removed_temp_files=[store.relpath(path) for path in strays],
                  quarantine=store.relpath(store_module.quarantine_path(store)),
                  registry_rewritten=rewrite_registry, after=diagnose(store, now=now))
    return result


# ---------------------------------------------------------------- text output

def _capped(items, describe, limit=MAX_SHOWN):
    """Text lines for the first `limit` findings of one kind, then a count of the rest
    (`--json` keeps every finding)."""
    shown = [describe(item) for item in items[:limit]]
    if len(items) > limit:
        shown.append(f"  ... and {len(items) - limit} more (see doctor --json)")
    return shown


def format_findings(f, repaired=None):
    from .views import one_line
    blank = f.get("blank_lines") or 0
    lines = [f"Ledger {f['ledger']}: {f['lines']} lines, {f['records']} records"
             + (f", {blank} blank" if blank else "")]
    lines += _capped(f["bad_lines"], lambda bad: f"  problem: line {bad['line']}: {bad['problem']}")
    lines += _capped(f["duplicates"], lambda dup: (
        f"  problem: run id {dup['run_id']} on lines {', '.join(map(str, dup['lines']))} "
        f"({'identical copies' if dup['identical'] else 'different records'})"))
    if f["registry"] != "ok":
        lines.append(f"  problem: registry is {f['registry']}")
    lines += _capped(f["stray_temp_files"], lambda path: (
        f"  problem: {path}: temp file of a killed writer (doctor --repair removes it)"))
    lines += _capped(f["missing_fields"], lambda m: (
        f"  warning: line {m['line']} ({m['run_id']}): missing {', '.join(m['fields'])}"))
    lines += _capped(f["unknown_status"], lambda u: (
        f"  warning: line {u['line']} ({u['run_id']}): unknown status {u['status']!r}"))
    lines += _capped(f["missing_files"], lambda m: (
        f"  warning: {m['run_id']}: archived file missing: {m['path']}"))
    lines += _capped(f["orphan_run_dirs"], lambda path: (
        f"  warning: {path}: no ledger record names this run folder"))
    if f["results_tsv_mismatch"]:
        lines.append(f"  warning: results.tsv has {f['results_tsv_rows']} rows for "
                     f"{f['records']} records")
    if repaired:
        lines.append(f"Repaired: {repaired['quarantined']} lines moved to "
                     f"{repaired['quarantine']}, {len(repaired['renamed'])} run ids renewed, "
                     f"{len(repaired['removed_temp_files'])} temp files removed, "
                     f"registry {'rewritten' if repaired['registry_rewritten'] else 'unchanged'}")
        lines += _capped(repaired["renamed"],
                         lambda r: f"  line {r['line']}: {r['old']} -> {r['new']}")
        after = repaired["after"]
        lines.append(f"After repair: {after['problems']} problems, {after['warnings']} warnings")
    else:
        lines.append(f"{f['problems']} problems, {f['warnings']} warnings"
                     + (" (doctor --repair fixes the problems)" if f["problems"] else ""))
    return "\n".join(one_line(line) for line in lines)
