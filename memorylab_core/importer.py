"""Import of results.tsv files into the ledger (`import-tsv`).

Upstream autoresearch keeps one tab-separated row per run: commit, val_bpb (0.000000
for a crash), memory_gb (0.0 for a crash), status (keep|discard|crash), description.
Forks add columns, so columns are taken by header name: the five upstream names are
required; `hypothesis` and `kind`/`family` columns fill those fields; a `timestamp`
column gives the run's time; every other column is kept per row, as a metric when its
value is a number (`imported.columns` otherwise). A file without a header is read as
the five upstream columns in order. A leading UTF-8 byte order mark is skipped.

Statuses are case-insensitive and aliases map to the three statuses (STATUS_ALIASES:
baseline/best/kept -> keep, reverted/tentative/... -> discard, failed/oom/... -> crash;
the status as written is kept in `imported.status`). A row is bad, and is reported by
its line and skipped (or, with `strict`, fails the whole import), when its status is
unknown, its description or commit is empty, or a keep/discard row lacks a positive
val_bpb (0.000000 means no result), or has a memory_gb outside [0, 1e6] (an empty
one is unknown). Commits are kept as
written (hexadecimal ids shortened to 7 characters, placeholders such as `PENDING` or
`-dirty` as they are).

Each row becomes one record with family "general" (or its kind), tag "imported", and
`imported` = {"source", "row", "line", "row_sha256", "parent_inferred", "class",
"status", "timestamp", "columns"}. Its timestamp_utc is the file's timestamp column
when it parses, else the commit's time in the store's git repository, else null with
imported.timestamp = "unknown" (never made up). `--class NAME` stores NAME as the
provenance device, which puts the file's runs in a comparability class of their own.

Parents follow upstream's loop: a kept commit advances the branch, a discarded or
crashed one is reset, so a row's parent is the last kept commit above it.

Idempotent: a row whose (commit, status, description, val_bpb) matches a record
already in the ledger, native or imported, is skipped (counted per occurrence, so
a file with two identical rows imports two records once). The store's own
results.tsv therefore imports nothing.

One transaction: every row is validated and its record built before anything is
written; the records are then appended in bounded batches (BATCH_ROWS per hold of
the exclusive lock, one ledger write and fsync, one results.tsv append and one index
extension each, so readers wait a moment at most), and the registry is written once.
"""

import hashlib
import math
import os
import re
from collections import Counter

from . import records
from .fields import METRIC_LIMITS, metric

COLUMNS = ("commit", "val_bpb", "memory_gb", "status", "description")
MAX_MEMORY_GB = METRIC_LIMITS["peak_vram_mb"] / 1024
BATCH_ROWS = 500
MAX_COLUMN_CHARS = 200
_HEX = re.compile(r"[0-9a-fA-F]+")
_ID_UNSAFE = re.compile(r"[^0-9A-Za-z_.+-]")
_NAME = re.compile(r"[^0-9a-z_]+")
IMPORT_TAG = "imported"
UNKNOWN_TIME = "unknown"
STATUS_ALIASES = {
    "keep": ("keep", "kept", "baseline", "best", "accept", "accepted", "improved", "promoted"),
    "discard": ("discard", "discarded", "reverted", "revert", "reject", "rejected",
                "tentative", "worse", "size_violation"),
    "crash": ("crash", "crashed", "failed", "fail", "failure", "error", "oom", "timeout",
              "killed"),
}
_STATUS_OF = {alias: status for status, aliases in STATUS_ALIASES.items() for alias in aliases}
_ROLE = {"hypothesis": "hypothesis", "kind": "family", "family": "family",
         "timestamp": "timestamp", "timestamp_utc": "timestamp", "time": "timestamp"}


# ---------------------------------------------------------------- parsing (pure)

def _header(fields):
    """{name: column index} when `fields` is a header naming the upstream columns
    (it holds "commit" or "status" and "description"), else None."""
    names = [f.strip().lower() for f in fields]
    if not ("description" in names and ("commit" in names or "status" in names)):
        return None
    return {name: index for index, name in reversed(list(enumerate(names))) if name}


def parse_tsv(text, source="results.tsv", strict=False):
    """(rows, problems) for a results.tsv: rows are [{row, line, commit, val_bpb,
    memory_gb, status, status_given, description, raw, hypothesis, family,
    timestamp, metrics, columns}] of the good data rows, problems [(line, message)]
    for the bad ones (skipped). Blank lines are skipped. Raises records.InputError
    for a header without the upstream columns, or with `strict` for the first bad row."""
    if text.startswith("\ufeff"):  # a UTF-8 byte order mark (Excel, Windows editors)
        text = text[1:]
    columns, rows, problems = None, [], []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        fields = raw.split("\t")
        if columns is None:
            columns = _header(fields)
            if columns is not None:
                missing = [name for name in COLUMNS if name not in columns]
                if missing:
                    raise records.InputError(
                        f"{source} line {number}: the header lacks the column(s) "
                        f"{', '.join(missing)} (needed: {', '.join(COLUMNS)})")
                if columns["description"] == len(fields) - 1:
                    columns["_last"] = columns["description"]
                    columns["description"] = -1  # the last column: the rest of the line
                continue
            columns = {name: index for index, name in enumerate(COLUMNS)}
            columns["description"] = -1  # no header: the rest of the line, tabs included
            columns["_last"] = len(COLUMNS) - 1
        try:
            rows.append(_parse_row(fields, raw, columns, number, len(rows) + 1))
        except records.InputError as exc:
            if strict:
                raise records.InputError(f"{source} line {number}: {exc} (--strict)") from None
            problems.append((number, str(exc)))
    return rows, problems


def _parse_row(fields, raw, columns, number, row_number):
    def cell(name):
        index = columns[name]
        if index == -1:  # the description as the last column: tabs in it are kept
            return "\t".join(fields[columns["_last"]:]).strip()
        return fields[index].strip() if index < len(fields) else ""

    if len(fields) < len(COLUMNS):
        raise records.InputError(f"expected {len(COLUMNS)} tab-separated columns "
                                 f"({', '.join(COLUMNS)}), got {len(fields)}")
    given = cell("status")
    status = _STATUS_OF.get(given.lower())
    if status is None:
        raise records.InputError(f"unknown status {given[:40]!r} (keep, discard, crash "
                                 "or one of their aliases)")
    commit, description = cell("commit"), " ".join(cell("description").split())
    if not commit:
        raise records.InputError("empty commit")
    if not description:
        raise records.InputError("empty description")
    val_bpb = memory_gb = None
    if status != "crash":
        val_bpb = _number(cell("val_bpb"), "val_bpb")
        memory_gb = _number(cell("memory_gb"), "memory_gb") if cell("memory_gb") else None
        if not 0 < val_bpb <= METRIC_LIMITS["val_bpb"]:  # 0.000000 means no result
            raise records.InputError(f"a {status} row needs a val_bpb > 0 and <= "
                                     f"{METRIC_LIMITS['val_bpb']:g}, got {cell('val_bpb')!r}")
        if memory_gb is not None and not 0 <= memory_gb <= MAX_MEMORY_GB:
            raise records.InputError(f"memory_gb must be within [0, {MAX_MEMORY_GB:g}], "
                                     f"got {cell('memory_gb')!r}")
    row = {"row": row_number, "line": number, "commit": commit, "val_bpb": val_bpb,
           "memory_gb": memory_gb, "status": status, "status_given": given,
           "description": description, "raw": raw, "hypothesis": None, "family": None,
           "timestamp": None, "metrics": {}, "columns": {}}
    for name, index in columns.items():
        if name in COLUMNS or name == "_last" or index >= len(fields) or \
                not fields[index].strip():
            continue
        value = fields[index].strip()
        role = _ROLE.get(name)
        if role == "hypothesis":
            row["hypothesis"] = records.check_text(" ".join(value.split()), "hypothesis")
        elif role == "family":
            row["family"] = records.check_family(value)
        elif role == "timestamp":
            moment = records.parse_utc(value)
            row["timestamp"] = records.format_utc(moment) if moment else None
        else:
            _extra_column(row, _NAME.sub("_", name).strip("_") or f"column_{index + 1}", value)
    return row


def _extra_column(row, name, value):
    """Keep a column the upstream format lacks: as a metric when it is a finite number
    within the sane range, else as text (shortened)."""
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None and math.isfinite(number) and \
            abs(number) <= METRIC_LIMITS.get(name, records.DEFAULT_METRIC_LIMIT):
        row["metrics"][name] = number
    else:
        row["columns"][name] = value[:MAX_COLUMN_CHARS]


def _number(text, name):
    try:
        value = float(text)
    except ValueError:
        raise records.InputError(f"{name} must be a number, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise records.InputError(f"{name} must be finite, got {text[:40]!r}")
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


def _stored_commit(commit):
    """The commit as a record keeps it: a hexadecimal id shortened to 7 characters
    (as `log` stores it), anything else (a placeholder) as written."""
    return commit[:7].lower() if _HEX.fullmatch(commit) and len(commit) >= 7 else commit


def new_rows(tsv_rows, existing_rows):
    """The tsv rows not yet in the ledger, in file order (see the module doc)."""
    have = Counter(record_key(row) for row in existing_rows)
    fresh = []
    for tsv_row in tsv_rows:
        key = row_key(_stored_commit(tsv_row["commit"]), tsv_row["status"],
                      tsv_row["description"], tsv_row["val_bpb"])
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


def build_record(tsv_row, *, timestamp, parent_commit, source, class_name=None,
                 time_source=None):
    """The ledger record of one results.tsv row (run_id still None)."""
    from . import novelty
    crash = tsv_row["status"] == "crash"
    metrics = {name: None for name in records.METRIC_FIELDS}
    metrics.update(tsv_row["metrics"])
    metrics["val_bpb"] = tsv_row["val_bpb"]
    if tsv_row["memory_gb"] is not None:
        metrics["peak_vram_mb"] = round(tsv_row["memory_gb"] * 1024, 1)
    error = {"summary": "crash (imported from results.tsv: no log)", "tail": [],
             "source": "import"} if crash else None
    git = {"commit": _stored_commit(tsv_row["commit"]),
           "parent_commit": parent_commit and _stored_commit(parent_commit)}
    record = records.draft_record(
        now=timestamp, git=git, description=tsv_row["description"],
        status=tsv_row["status"], inputs={"metrics": metrics, "error": error, "summary": None},
        family=tsv_row["family"], hypothesis=tsv_row["hypothesis"],
        tags=[IMPORT_TAG], notes=f"imported from {source} row {tsv_row['row']}")
    if class_name:
        record["provenance"] = {"device": class_name}
    record["imported"] = {
        "source": source, "row": tsv_row["row"], "line": tsv_row["line"],
        "row_sha256": hashlib.sha256(tsv_row["raw"].encode("utf-8")).hexdigest(),
        "parent_inferred": True, "class": class_name, "status": tsv_row["status_given"],
        "timestamp": time_source or UNKNOWN_TIME, "columns": tsv_row["columns"],
    }
    idea = records.idea_of(record["description"], record["hypothesis"], record["family"],
                           record["tags"])
    record["novelty_features"] = novelty.features(idea, None)
    return record


def run_id_for(record, now, is_taken):
    """A run id from the record's time (the import's time when unknown) and its commit
    made safe as a folder name."""
    commit = _ID_UNSAFE.sub("_", record["commit"])[:40] or records.NO_COMMIT
    return records.unique_run_id(record["timestamp_utc"] or now, commit, is_taken)


# ---------------------------------------------------------------- the store

def _read_text(path):
    if not os.path.isfile(path):
        raise records.InputError(f"import-tsv: file not found: {path}")
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def _times(store, tsv_rows):
    """{row number: (timestamp or None, its source)}: the file's timestamp column, else
    the commit's committer time in the store's git repository, else unknown."""
    from . import gitinfo
    wanted = [r["commit"] for r in tsv_rows if not r["timestamp"] and _HEX.fullmatch(r["commit"])]
    tree = gitinfo.work_tree(store.root) if wanted else None
    commit_times = gitinfo.commit_times(tree, wanted) if tree else {}
    out = {}
    for r in tsv_rows:
        if r["timestamp"]:
            out[r["row"]] = (r["timestamp"], "file")
        elif commit_times.get(r["commit"]):
            moment = records.parse_utc(commit_times[r["commit"]])
            out[r["row"]] = (records.format_utc(moment), "git commit") if moment \
                else (None, UNKNOWN_TIME)
        else:
            out[r["row"]] = (None, UNKNOWN_TIME)
    return out


def import_tsv(store, path, *, now, dry_run=False, strict=False, class_name=None):
    """Append the new rows of the results.tsv at `path` to the ledger (see the module
    doc). Returns {"source", "rows", "imported" [run ids], "skipped", "bad_rows"
    [{line, problem}], "dry_run", "bad_lines", "warnings"}."""
    from . import registry
    from .store import slim_row
    if class_name is not None:
        class_name = records.check_family(class_name, "--class")
        if class_name is None:
            raise records.InputError("--class must not be empty")
    text = _read_text(path)
    source_abs = os.path.abspath(path)
    inside = source_abs.startswith(store.root + os.sep)
    source = store.relpath(source_abs) if inside else source_abs
    tsv_rows, problems = parse_tsv(text, source=os.path.basename(path), strict=strict)
    parents = infer_parents(tsv_rows)
    times = _times(store, tsv_rows)
    with store.lock(exclusive=False):
        rows, bad = store.read_rows()
    fresh = new_rows(tsv_rows, rows)
    drafts = []
    for tsv_row in fresh:  # built before any lock is taken: novelty features cost most
        stamp, time_source = times[tsv_row["row"]]
        drafts.append(build_record(tsv_row, timestamp=stamp, parent_commit=parents[tsv_row["row"]],
                                   source=source, class_name=class_name,
                                   time_source=time_source))
    imported, warnings = [], []
    if dry_run:
        known = {row.get("run_id") for row in rows}
        for record in drafts:
            record["run_id"] = run_id_for(record, now, lambda i: store.taken(i, known))
            known.add(record["run_id"])
        imported = drafts
    else:
        if not drafts:
            with store.lock():
                store.ensure_layout()
        seen = len(rows)
        for start in range(0, len(drafts), BATCH_ROWS):
            with store.lock():
                store.ensure_layout()
                rows, bad = store.read_rows()
                batch = drafts[start:start + BATCH_ROWS]
                if len(rows) != seen:  # another writer appended meanwhile: recheck
                    keep = {id(t["_record"]) for t in new_rows(
                        [_as_tsv_row(r) for r in batch], rows[seen:])}
                    batch = [r for r in batch if id(r) in keep]
                known = {row.get("run_id") for row in rows}
                for record in batch:
                    record["run_id"] = run_id_for(record, now, lambda i: store.taken(i, known))
                    known.add(record["run_id"])
                if batch:
                    warnings = store.commit_run(batch)
                    imported.extend(batch)
                seen = len(rows) + len(batch)
                ledger_size = store.ledger_size()
                rows = rows + [slim_row(r, None) for r in batch]
            if warnings:  # its journal must be completed before the next batch
                break
        if imported or store.fresh_registry(len(rows)) is None:
            store.write_registry_if_newer(registry.build_registry(rows, now=now),
                                          store.ledger_size() if not imported else ledger_size)
    return {"source": source, "rows": len(tsv_rows) + len(problems),
            "imported": [r["run_id"] for r in imported],
            "skipped": len(tsv_rows) - len(imported),
            "bad_rows": [{"line": line, "problem": problem} for line, problem in problems],
            "dry_run": dry_run, "bad_lines": bad, "warnings": warnings}


def _as_tsv_row(record):
    """A built record as new_rows takes tsv rows (keyed back to the record by id)."""
    return {"commit": record["commit"], "status": record["status"],
            "description": record["description"], "val_bpb": record["metrics"]["val_bpb"],
            "_record": record}
