"""The query commands as library functions: show, list, compare and brief.

Each function takes a `Store` (read under the shared lock, never written) and plain
values, and returns a JSON-ready dict; the pure work is in `views`. Bad references
raise `records.InputError` (one-line message, exit 1 in the CLI).
"""

import os

from . import gitinfo, lab, records, store as store_module, views


def _rows(store):
    with store.lock(exclusive=False):
        return store.read_rows_lean()   # no query compares ideas: no novelty features


def _resolve(store, rows, ref, now):
    champion = None
    if ref == "champion":
        champion = (lab.registry_now(store, rows, now).get("champion") or {}).get("run_id")
    try:
        return views.resolve_run(rows, ref, champion_id=champion)
    except views.RunNotFound as exc:
        raise records.InputError(str(exc)) from None


def _full_records(store, *rows):
    """The whole ledger records behind slim rows (only their lines are parsed);
    a row whose line cannot be read back stands for itself."""
    from .store import records_at
    with store.lock(exclusive=False):
        found = records_at(store, [row.get("_line") for row in rows if row.get("_line")])
    full = []
    for row in rows:
        record = found.get(row.get("_line"))
        full.append(record if record and record.get("run_id") == row.get("run_id") else row)
    return full


def archived_files(store, record):
    """(files under runs/<run_id>/ relative to the root, artifact paths that are
    listed in the record but missing on disk)."""
    files = []
    run_id = record.get("run_id")
    if store_module.is_run_id(run_id):  # a plain folder name, never a path
        for base, _, names in os.walk(store.run_dir(run_id)):
            files.extend(store.relpath(os.path.join(base, name)) for name in sorted(names))
    missing = [path for path in views.artifact_paths(record)
               if not os.path.exists(os.path.join(store.root, path))]
    return sorted(files), missing


def show_run(store, ref, *, now):
    """The record named by `ref` (run id, unique prefix, commit prefix or
    "champion"), its decision packet and its archived files."""
    rows, bad = _rows(store)
    record, = _full_records(store, _resolve(store, rows, ref, now))
    files, missing = archived_files(store, record)
    return {"run": record, "decision_packet": record.get("decision_packet"),
            "files": files, "missing_files": missing, "bad_lines": bad}


def list_runs(store, *, now, status=None, family=None, tag=None, since_hours=None,
              limit=None):
    """Runs matching the filters, newest first (see views.filter_runs)."""
    if since_hours is not None:
        records.check_since_hours(since_hours)
    if limit is not None:
        records.check_limit(limit)
    if status:
        unknown = [s for s in status.split(",") if s.strip() and s.strip() not in records.STATUSES]
        if unknown:
            raise records.InputError(f"--status must be among {', '.join(records.STATUSES)}, "
                                     f"got {unknown[0]!r}")
    rows, bad = _rows(store)
    selected = views.filter_runs(rows, status=status, family=family, tag=tag,
                                 since_hours=since_hours, now=now)
    entries = [views.list_entry(row) for row in selected[:limit]]
    return {"runs": entries, "matched": len(selected), "total": len(rows), "bad_lines": bad}


def compare(store, ref_a, ref_b, *, now, cwd=None):
    """Metric deltas, config delta and the train.py diff from run A to run B."""
    rows, bad = _rows(store)
    run_a, run_b = _full_records(store, _resolve(store, rows, ref_a, now),
                                 _resolve(store, rows, ref_b, now))
    comparison = views.compare_runs(run_a, run_b)
    diff = None
    if not comparison["same_commit"]:
        tree = gitinfo.work_tree(cwd) or gitinfo.work_tree(store.root)
        if tree:
            diff = gitinfo.diff_between(tree, run_a.get("commit"), run_b.get("commit"))
    comparison["train_py_diff"] = diff
    comparison["bad_lines"] = bad
    return comparison


def brief(store, *, now, last=5):
    """One screen for an agent starting or resuming a session (views.brief_data)."""
    if last < 1:
        raise records.InputError(f"--last must be >= 1, got {last}")
    rows, bad = _rows(store)
    data = views.brief_data(rows, lab.registry_now(store, rows, now), now=now, last=last)
    data["bad_lines"] = bad
    return data
