"""Persistence: every file MemoryLab reads or writes, under one root directory.

- The ledger (results/memorylab/experiments.jsonl) is the source of truth: one
  JSON object per line, append-only. Reading is tolerant (a bad line is reported
  with its line number, never dropped or rewritten); writing is strict (one
  complete line, flushed and fsynced, starting on a new line after a torn tail).
- Writers hold an exclusive fcntl lock on results/memorylab/.lock for a whole
  transaction; readers hold it shared, so they never see half an append. `log`
  keeps it only for the append and the small updates beside it: the registry is
  rebuilt after the lock is released and written unless a later one is there
  (`write_registry_if_newer`).
- Nothing is followed out of the root: run ids are checked as single folder names
  wherever they become paths (`check_run_id`), the staging folder must be a real
  folder, reports are never written over the store's own files, and archived logs
  are copied without widening their permissions (holes stay holes).
- An append that fails (a full disk) is cut back to the file's size before it, so
  the ledger never keeps half a record.
- Every other file is derived and written atomically (temp file + rename):
  the registry, reports, decision packets, the slim-row index; results.tsv is
  append-only like the ledger.
- A log is one transaction (`commit_run`) whose commit point is the ledger
  append. A journal written just before it lets the next writer finish
  (results.tsv row, registry) or roll back (archive) a transaction that was
  killed half-way; see `recover`.
- The slim-row index (results/memorylab/index/) caches the ledger's rows without
  their heavy fields so that 100k runs load in a fraction of a second. It records
  how far into the ledger it is valid, is extended from the ledger's tail, rebuilt
  when it does not match, and can always be deleted.
"""

import errno
import json
import os
import re
import sys
from contextlib import contextmanager
from sys import intern

from . import gitinfo, hex_digest
from .fields import is_finite_number, memory_gb_of

LAB_DIR = os.path.join("results", "memorylab")
LEDGER = "experiments.jsonl"
REGISTRY = "champion_challenger.json"
TSV_HEADER = "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"
STAGING = ".staging"
INDEX_FORMAT = 10
SEGMENT_ROWS = 1024
READ_BATCH = 1 << 18   # bytes of ledger read at a time when the index is extended
FEATURES = "novelty_features"   # kept in segment files of their own (Store.read_rows_lean)
# Row fields no novelty guard reads (the registry, reports and queries do; a run's
# hypothesis, tags and change set are in its novelty features already): kept in
# segment files of their own too (Store.read_rows_lean).
DETAILS = ("timestamp_utc", "branch", "parent_commit", "provenance", "decision_packet", "_facts",
           "hypothesis", "tags", "change_set")
# The guard's part of a segment (Store.read_guard_rows): a head of each row (the fields
# read of every row) with the rest packed (marshalled apart: unpacked only for the rows
# an idea may match), and postings of the rows under `Store.posting_keys`.
GUARD = "guard"
PACKED = "_packed"
HEAD = ("run_id", "status", "role", "_line")
SIGNATURE_BYTES = 4096
INTERN_CHARS = 40
# A run id is one folder name: letters, digits and . _ + - (no leading dot, at most 128).
_RUN_ID = re.compile(r"[0-9A-Za-z_+-][0-9A-Za-z_.+-]{0,127}")
TEMP_MARK = ".tmp-"  # write_atomic's temp files: .<name>.tmp-<pid>-<random>

# The rows last read in this process, {ledger path: (index state, rows)}: a second Store
# on the same root reuses them (after the usual checks against the ledger), and they stay
# alive until the process ends, so a CLI command can exit without freeing them one by one.
_LOADED = {}
# The rows of the last partial read (Store.read_rows_lean), kept referenced as _LOADED
# keeps full ones: a command that let 10k rows go on return would free them one by
# one (~15 ms); memorylab.py ends with os._exit, which reclaims them at once.
_KEPT = []

TEXT_FIELDS = ("run_id", "timestamp_utc", "branch", "commit", "parent_commit", "family",
               "status", "description", "hypothesis", "role")
PACKET_FIELDS = ("next_action", "priority", "summary")
ROW_METRICS = ("val_bpb", "peak_vram_mb", "num_steps", "total_tokens_M")  # boards, packets, lists
# Row fields that are None on most runs: left out of a row when None (read them with .get)
SPARSE_FIELDS = ("role", "change_set", "imported", "origin", "error", "parent_commit")


def find_root(root=None, env=None, cwd=None):
    """The store root: `root` (--root), else $MEMORYLAB_ROOT, else the git work tree
    of `cwd`, else `cwd`."""
    env = os.environ if env is None else env
    chosen = root or env.get("MEMORYLAB_ROOT")
    if chosen:
        return os.path.abspath(chosen)
    cwd = os.path.abspath(cwd or os.getcwd())
    return gitinfo.work_tree(cwd) or cwd


def write_atomic(path, data, durable=True):
    """Write bytes or text to `path` via a temp file in the same folder + rename,
    so a reader sees the old file or the new one, never half of one. `durable`
    fsyncs the data first (skipped for caches that can be rebuilt)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    folder = os.path.dirname(path) or "."
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}-{os.urandom(3).hex()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def check_run_id(run_id):
    """`run_id` when it is a single plain folder name (see _RUN_ID), else ValueError:
    a journal or ledger field never becomes a path outside runs/."""
    if not (isinstance(run_id, str) and _RUN_ID.fullmatch(run_id)):
        raise ValueError(f"not a run id: {str(run_id)[:60]!r}")
    return run_id


def is_run_id(run_id):
    return isinstance(run_id, str) and _RUN_ID.fullmatch(run_id) is not None


class DiskFull(OSError):
    """A write failed for lack of space; the message says so plainly."""

    def __init__(self, what):
        super().__init__(errno.ENOSPC, f"disk full (no space left on device) while writing "
                                       f"{what}; nothing was recorded")


def _full(exc):
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def to_json(obj, indent=2):
    """JSON text of a record-like object; NaN/inf are refused (never invalid JSON)."""
    return json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False)


def _append_line(path, text):
    """Append one or more complete lines (`text` without its last newline) with a
    single write, then fsync. A file whose last byte is not a newline (a torn tail)
    first gets one, so the new line is never glued to the fragment. When the write
    or fsync fails, the file is cut back to its size before the append (a full disk
    raises DiskFull), so no half line stays behind."""
    data = text.encode("utf-8") + b"\n"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            if _full(exc):
                raise DiskFull(os.path.basename(path)) from None
            raise
    finally:
        os.close(fd)
    return size


COPY_CHUNK = 1 << 20


def copy_file(source, target):
    """Copy `source` (followed through a link) to a new file `target` whose mode is
    the source's (never wider: a private log stays private), keeping holes as holes
    (SEEK_DATA/SEEK_HOLE), so a sparse 2 GB log takes the space its data takes."""
    import stat
    with open(source, "rb") as src:
        st = os.fstat(src.fileno())
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(st.st_mode))
        with os.fdopen(fd, "wb") as dst:
            os.fchmod(dst.fileno(), stat.S_IMODE(st.st_mode) & 0o777)
            for start, end in _data_extents(src.fileno(), st.st_size):
                src.seek(start)
                dst.seek(start)
                left = end - start
                while left > 0:
                    chunk = src.read(min(COPY_CHUNK, left))
                    if not chunk:
                        break
                    dst.write(chunk)
                    left -= len(chunk)
            dst.truncate(st.st_size)


def _data_extents(fd, size):
    """[(start, end)] of the parts of a file that hold data (the whole file where the
    system cannot tell holes apart)."""
    if not hasattr(os, "SEEK_DATA"):
        return [(0, size)]
    extents, offset = [], 0
    try:
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            extents.append((start, end))
            offset = end
    except OSError:
        return [(0, size)]
    return extents


def _clean_text(value):
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _clean_tags(value):
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)):
        return []
    return [t.strip() if isinstance(t, str) else str(t) for t in value if t is not None]


def slim_row(record, line, shared=None):
    """The index row of a ledger record: the fields pure logic may use (design.md),
    with odd types normalised (non-numeric or non-finite metrics become None; of the
    metrics only ROW_METRICS are kept; SPARSE_FIELDS that are None are left out),
    plus `_line`, the ledger line number. `shared` interns identical sub-dicts."""
    row = {key: _clean_text(record.get(key)) for key in TEXT_FIELDS}
    row["tags"] = _clean_tags(record.get("tags"))
    metrics = record.get("metrics")
    row["metrics"] = {k: (metrics[k] if is_finite_number(metrics[k]) else None)
                      for k in ROW_METRICS if k in metrics} if isinstance(metrics, dict) else {}
    for key in ("provenance", "config", "change_set", "novelty_features", "imported", "origin"):
        value = record.get(key)
        row[key] = value if isinstance(value, dict) else ({} if key == "provenance" else None)
    config = row["config"]
    if config is not None:
        row["config"] = {"constants": config.get("constants") if isinstance(
            config.get("constants"), dict) else {}, "code_sha256": config.get("code_sha256")}
    if shared is not None:
        for key in ("provenance", "config"):
            if row[key]:
                row[key] = _shared(shared, key, row[key])
    packet = record.get("decision_packet")
    row["decision_packet"] = {k: packet.get(k) for k in PACKET_FIELDS} \
        if isinstance(packet, dict) else None
    error = record.get("error")
    if isinstance(error, dict):
        row["error"] = {"summary": _clean_text(error.get("summary"))}
    else:
        row["error"] = {"summary": error} if isinstance(error, str) and error else None
    row["_line"] = line
    for key in SPARSE_FIELDS:   # a dict of 22 keys takes twice the memory of one of 21
        if row[key] is None:
            del row[key]
    return row


def tsv_row(record):
    """The results.tsv line (no newline) of a record: upstream's five columns."""
    metrics = record.get("metrics") or {}
    bpb, memory = metrics.get("val_bpb"), memory_gb_of(record)
    crash = record.get("status") == "crash"
    bpb_text = "0.000000" if crash or not is_finite_number(bpb) else \
        f"{bpb:.6f}" if round(bpb, 6) else f"{bpb:.6g}"  # a tiny result is no 0.000000
    mem_text = f"{memory:.1f}" if memory is not None and not crash else "0.0"
    description = " ".join(str(record.get("description") or "").split())
    return "\t".join([str(record.get("commit") or ""), bpb_text, mem_text,
                      str(record.get("status") or ""), description])


class Store:
    """One MemoryLab store rooted at a directory; every path comes from here.

    `enrich(row)` (optional) fills derived fields of a slim row that the ledger
    record lacks (novelty features of an earlier fork's record); `enrich_version`
    names its behaviour (and that of `posting_keys`), and the index is rebuilt when it
    changes. `posting_keys(features, config)` (optional) gives the keys of a row's
    postings in the guard's part of the index (read_guard_rows).
    """

    def __init__(self, root, enrich=None, enrich_version=None, posting_keys=None):
        self.root = os.path.abspath(root)
        self.lab_dir = os.path.join(self.root, LAB_DIR)
        self.ledger_path = os.path.join(self.lab_dir, LEDGER)
        self.registry_path = os.path.join(self.lab_dir, REGISTRY)
        self.reports_dir = os.path.join(self.lab_dir, "reports")
        self.runs_dir = os.path.join(self.lab_dir, "runs")
        self.staging_dir = os.path.join(self.runs_dir, STAGING)
        self.index_dir = os.path.join(self.lab_dir, "index")
        self.lock_path = os.path.join(self.lab_dir, ".lock")
        self.journal_path = os.path.join(self.lab_dir, ".pending.json")
        self.tsv_path = os.path.join(self.root, "results.tsv")
        self.enrich = enrich
        self.enrich_version = enrich_version
        self.posting_keys = posting_keys
        self._rows = None        # rows as last read, with the index state below
        self._state = None
        self._exclusive = False
        self._staging_locks = {}  # staging folder -> fd holding its liveness lock

    # ---------------------------------------------------------------- paths
    def relpath(self, path):
        return os.path.relpath(path, self.root)

    def run_dir(self, run_id):
        return os.path.join(self.runs_dir, check_run_id(run_id))

    def owns(self, path):
        """Whether `path` (followed through links) is one of the store's own files:
        anything under results/memorylab/ or results.tsv."""
        real = os.path.realpath(path)
        lab = os.path.realpath(self.lab_dir)
        return real == lab or real.startswith(lab + os.sep) or \
            real == os.path.realpath(self.tsv_path)

    def initialized(self):
        return os.path.exists(self.ledger_path)

    # ---------------------------------------------------------------- locking
    @contextmanager
    def lock(self, exclusive=True):
        """Hold the store lock (exclusive for writers, shared for readers). A reader
        of a store that does not exist yet creates nothing. A reader that may not
        write the lock file (another user's store, a read-only mount) locks it
        read-only (flock works on any fd), or reads unlocked when it cannot open it."""
        import fcntl
        if not exclusive and not os.path.isdir(self.lab_dir):
            yield self
            return
        os.makedirs(self.lab_dir, exist_ok=True)
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            if exclusive:
                raise
            try:
                fd = os.open(self.lock_path, os.O_RDONLY)
            except OSError:
                yield self
                return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            self._exclusive = exclusive
            if exclusive:
                self.recover()
            yield self
        finally:
            self._exclusive = False
            os.close(fd)  # closing releases the flock

    # ---------------------------------------------------------------- init
    def ensure_layout(self):
        """Create the folders, an empty ledger and results.tsv with its header when
        missing."""
        for folder in (self.lab_dir, self.reports_dir, self.runs_dir):
            os.makedirs(folder, exist_ok=True)
        if not os.path.exists(self.ledger_path):
            with open(self.ledger_path, "ab"):
                pass
        if not os.path.exists(self.tsv_path) or os.path.getsize(self.tsv_path) == 0:
            write_atomic(self.tsv_path, TSV_HEADER)

    # ---------------------------------------------------------------- reading
    def read_rows(self):
        """(rows, bad): slim rows of every parseable ledger record in ledger order
        (a new list; the row dicts are shared, do not mutate them), and
        [(line_number, message)] for lines that are not. Uses and maintains the
        index; a missing ledger reads as empty."""
        try:
            st = os.stat(self.ledger_path)
        except FileNotFoundError:
            self._rows, self._state = [], None
            return [], []
        state, rows = self._state, self._rows
        if state is None:
            state, rows = _LOADED.get(self.ledger_path, (None, None))
        if state is None or not self._state_matches(state, st):
            state, rows = self._load_index(st)
        if state is None:
            state, rows = self._empty_state(st), []
        torn = self._extend(state, rows, st)
        self._state, self._rows = state, rows
        _LOADED.clear()
        _LOADED[self.ledger_path] = (state, rows)
        return list(rows), list(state["bad"]) + torn

    def read_rows_lean(self):
        """(rows, bad) as read_rows, without novelty_features: the heaviest field of a
        row (~40% of the index's memory and load time), which only the novelty guard
        reads. For readers that need every row but not that (doctor's registry check,
        reports, queries). From a current index the other segment files alone are read,
        and nothing is cached (the rows are incomplete); else the rows are read, and the
        index brought up to date, as usual."""
        try:
            st = os.stat(self.ledger_path)
        except FileNotFoundError:
            return [], []
        state, rows = self._load_index(st, features=False)
        if state is not None and state["offset"] == st.st_size:
            bad = state["bad"]
        else:
            rows, bad = self.read_rows()
            rows = [{k: v for k, v in row.items() if k != FEATURES} for row in rows]
        _KEPT[:] = [rows]
        return rows, bad

    def read_guard_rows(self):
        """(rows, bad) for the novelty guard (`check`). From a current index (and a
        store with `posting_keys`): rows without the DETAILS fields and novelty
        features, each with PACKED (its features and config: `unpacked`), in a
        GuardRows list whose `narrow` unpacks only the rows posted under an idea's
        keys. Else the full rows (read_rows) in a
        plain list. Such rows cannot build a registry (no `_facts`)."""
        try:
            st = os.stat(self.ledger_path)
        except FileNotFoundError:
            return [], []
        if self.posting_keys is not None:
            state = self._meta(st)
            if state is not None and state["offset"] == st.st_size:
                try:
                    with _gc_paused():
                        return self._guard_rows(state), [tuple(b) for b in state["bad"]]
                except (OSError, ValueError, EOFError, TypeError, KeyError, AttributeError):
                    pass
        return self.read_rows()

    def _guard_rows(self, state):
        """The GuardRows of the index described by `state`, from each segment's guard
        part: read, or built from the segment's rows and features when it is missing or
        is not that segment's (a full rebuild leaves it to the first `check`)."""
        import mmap
        rows = GuardRows()
        for number, count in enumerate(state["segments"]):
            mark = [state["build"], count]
            try:
                with open(self._segment_path(number, GUARD), "rb") as f:
                    rows.add(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), mark)
            except (OSError, ValueError, EOFError, TypeError, KeyError):
                full = self._segment(number, "rows", count)[:count]
                for row, value in zip(full, self._segment(number, FEATURES, count)):
                    row[FEATURES] = value
                data = _guard_part(full, self.posting_keys, mark)
                with self._index_locked() as locked:
                    if locked:
                        write_atomic(self._segment_path(number, GUARD), data, durable=False)
                rows.add(data, mark)
        return rows

    def drop_rows(self):
        """Forget the rows read in this process (a command that no longer needs them
        frees their memory before reading something else big)."""
        self._rows = self._state = None
        _LOADED.pop(self.ledger_path, None)
        _KEPT.clear()

    def _empty_state(self, st):
        return {"format": INDEX_FORMAT, "python": _python_tag(), "enrich": self.enrich_version,
                "dev": st.st_dev, "ino": st.st_ino, "offset": 0, "lines": 0,
                "head": "", "tail": "", "segments": [], "build": os.urandom(8).hex(), "bad": []}

    def _state_matches(self, state, st):
        if (state.get("format"), state.get("python"), state.get("enrich")) != \
                (INDEX_FORMAT, _python_tag(), self.enrich_version):
            return False
        if (state.get("dev"), state.get("ino")) != (st.st_dev, st.st_ino) or \
                st.st_size < state.get("offset", 0):
            return False
        if st.st_size == state["offset"] and state.get("mtime_ns") not in (None, st.st_mtime_ns):
            return False  # written since it was indexed, same length: an in-place edit
        return _signatures(self.ledger_path, state["offset"]) == (state["head"], state["tail"])

    def _meta(self, st):
        """The persisted index's state if it still describes this ledger, else None."""
        try:
            with open(os.path.join(self.index_dir, "meta.json"), "rb") as f:
                state = json.loads(f.read())
            return state if self._state_matches(state, st) else None
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def _load_index(self, st, features=True):
        """The persisted index if it still describes this ledger, else (None, None);
        without `features`, the rows lack novelty_features (they stay on disk)."""
        state = self._meta(st)
        if state is None:
            return None, None
        try:
            rows = []
            with _gc_paused():
                for number, count in enumerate(state["segments"]):
                    part = self._segment(number, "rows", count)
                    for kind in _PARTS:
                        if kind == FEATURES and not features:
                            continue
                        values = self._segment(number, kind, count)
                        if kind == FEATURES:
                            for row, value in zip(part, values):
                                row[FEATURES] = value
                        else:
                            for row, value in zip(part, values):
                                row.update(value)
                    rows.extend(part[:count] if len(part) > count else part)
            state["bad"] = [tuple(b) for b in state["bad"]]
            return state, rows
        except (OSError, ValueError, EOFError, TypeError, KeyError, AttributeError):
            return None, None

    def _segment(self, number, kind, count):
        """The list in a segment file; ValueError when it holds fewer than `count`."""
        import marshal
        import mmap
        with open(self._segment_path(number, kind), "rb") as f, \
                mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            values = marshal.loads(data)   # mapped, not copied: fewer page faults
        if len(values) < count:
            raise ValueError("short segment")
        return values

    def _extend(self, state, rows, st):
        """Parse the ledger past state["offset"]: append rows, note bad lines, move
        the offset to the end of the last complete line. Returns the warning for a
        torn last line (which is not consumed: it may still be completed). Reads the
        new part READ_BATCH bytes at a time: a whole 100k-run ledger in memory (and
        its lines, a copy) doubled the rebuild's peak memory and page faults."""
        if st.st_size == state["offset"]:
            return []
        first_new, first_line, line, shared = len(rows), state["lines"], state["lines"], {}
        left, carry = st.st_size - state["offset"], b""
        with open(self.ledger_path, "rb") as f, _gc_paused():
            f.seek(state["offset"])
            while left > 0:
                chunk = f.read(min(READ_BATCH, left))
                if not chunk:
                    break
                left -= len(chunk)
                data = carry + chunk if carry else chunk
                cut = data.rfind(b"\n") + 1
                carry = data[cut:]
                if not cut:
                    continue
                for raw in data[:cut - 1].split(b"\n"):
                    line += 1
                    record, problem = _parse_for_row(raw)
                    if problem:
                        state["bad"].append((line, problem))
                    elif record is not None:
                        row = slim_row(record, line, shared)
                        if self.enrich:
                            self.enrich(row)
                        rows.append(_compacted(row, shared))
                state["offset"] += cut   # offset and line count move together
                state["lines"] = line
        torn = [(line + 1, "incomplete last line (no newline at end of file); left as is")] \
            if carry.strip() else []
        if line == first_line:
            return torn
        state["mtime_ns"] = st.st_mtime_ns
        state["head"], state["tail"] = _signatures(self.ledger_path, state["offset"])
        self._persist_index(state, rows, first_new)
        return torn

    def _segment_path(self, number, kind="rows"):
        """A segment file: "rows" (the slim rows without the fields of _PARTS), or
        one of _PARTS: "details" (a dict of those fields a row) or FEATURES (a row's
        novelty features), in the same order."""
        return os.path.join(self.index_dir, f"{kind}-{number:05d}.marshal")

    def _persist_index(self, state, rows, first_new):
        """Write the segments touched by rows[first_new:], then meta.json. Skipped
        (the cache just stays behind) when another process is writing it."""
        import marshal
        with self._index_locked() as locked:
            if not locked:
                return
            start = first_new // SEGMENT_ROWS
            if first_new == 0 or len(state["segments"]) < start:
                start = 0
            segments = state["segments"][:start]
            for number in range(start, (len(rows) + SEGMENT_ROWS - 1) // SEGMENT_ROWS):
                part = rows[number * SEGMENT_ROWS:(number + 1) * SEGMENT_ROWS]
                write_atomic(self._segment_path(number, FEATURES),
                             marshal.dumps([row.get(FEATURES) for row in part]), durable=False)
                write_atomic(self._segment_path(number, "details"), marshal.dumps(
                    [{k: row[k] for k in DETAILS if k in row} for row in part]), durable=False)
                write_atomic(self._segment_path(number), marshal.dumps(
                    [{k: v for k, v in row.items() if k not in _SPLIT} for row in part]),
                    durable=False)
                if self.posting_keys is not None and first_new:   # a log's rows: ready for check
                    write_atomic(self._segment_path(number, GUARD), _guard_part(
                        part, self.posting_keys, [state["build"], len(part)]), durable=False)
                segments.append(len(part))
            state["segments"] = segments
            meta = dict(state, bad=[list(b) for b in state["bad"]])
            write_atomic(os.path.join(self.index_dir, "meta.json"), json.dumps(meta),
                         durable=False)

    @contextmanager
    def _index_locked(self):
        """Yields whether this process may write the index now (its lock taken
        without waiting); errors writing it are swallowed: it is a cache."""
        import fcntl
        try:
            os.makedirs(self.index_dir, exist_ok=True)
            fd = os.open(os.path.join(self.index_dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            try:
                yield True
            except (OSError, ValueError):
                pass
        finally:
            os.close(fd)

    def read_cache(self, name):
        """The value marshalled in the index's file `name` (a cache kept beside the
        rows, e.g. fingerprint's memo), or None when it is missing or unreadable."""
        import marshal
        try:
            with open(os.path.join(self.index_dir, name), "rb") as f:
                return marshal.loads(f.read())
        except (OSError, ValueError, EOFError, TypeError):
            return None

    def write_cache(self, name, value):
        """Write `value` to the index's file `name` (marshal), unless the store is not
        initialized or another process is writing the index (then it stays behind)."""
        import marshal
        if value is None or not self.initialized():
            return
        with self._index_locked() as locked:
            if locked:
                write_atomic(os.path.join(self.index_dir, name), marshal.dumps(value),
                             durable=False)

    # ---------------------------------------------------------------- writing
    def taken(self, run_id, known_ids):
        return run_id in known_ids or os.path.exists(self.run_dir(run_id))

    def stage_archive(self, copies):
        """Create a private staging folder under runs/.staging and copy {name: source
        path} into it (outside the store lock: logs may be huge), holding the folder's
        liveness lock (<folder>.lock) until `release_staging`: another writer removes
        a staging folder only when it can take that lock, i.e. its writer is gone,
        whatever PID namespace it ran in. Returns the folder; `commit_run` renames it
        to runs/<run_id>. A failed copy removes the folder and names the cause (a full
        disk as "disk full")."""
        import fcntl
        import shutil
        os.makedirs(self.lab_dir, exist_ok=True)
        self._real_folder(self.runs_dir)
        self._real_folder(self.staging_dir)
        folder = os.path.join(self.staging_dir, f"{os.getpid()}-{os.urandom(4).hex()}")
        fd = os.open(folder + ".lock", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._staging_locks[folder] = fd
        try:
            os.mkdir(folder)
            for name, source in copies.items():
                copy_file(source, os.path.join(folder, name))
        except BaseException as exc:
            shutil.rmtree(folder, ignore_errors=True)
            self.release_staging(folder)
            if _full(exc):
                raise DiskFull(f"the run's archive in {self.relpath(self.staging_dir)}") \
                    from None
            raise
        return folder

    def release_staging(self, folder):
        """Drop the liveness lock of a staging folder (committed or removed)."""
        fd = self._staging_locks.pop(folder, None)
        if fd is not None:
            try:
                os.unlink(folder + ".lock")
            except OSError:
                pass
            os.close(fd)

    def _real_folder(self, path):
        """Create `path` if needed; refuse it when it is a symbolic link (or not a
        folder): writing or cleaning through it could reach outside the store."""
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        if os.path.islink(path) or not os.path.isdir(path):
            raise OSError(errno.ENOTDIR, "not a plain folder (a symbolic link?); "
                          "MemoryLab does not follow it", self.relpath(path))

    def write_file(self, path, data):
        write_atomic(path, data)

    def commit_run(self, records, staged=None):
        """Land one run, or a batch of imported runs, as one transaction (caller holds
        the exclusive lock): journal, archive rename, ledger append of every line in
        one write (the commit point), results.tsv rows, index. `records` is a record
        or a list; `staged` is a staging folder from `stage_archive` or None.

        A failure before the commit point rolls back (archive removed, ledger cut back)
        and raises. Returns a list of warnings: a failure after it (results.tsv,
        index) does not raise, since the runs are recorded; the journal is then left in
        place, so the next writer completes results.tsv (`recover`). The registry is
        the caller's (`write_registry_if_newer`)."""
        assert self._exclusive, "commit_run needs the exclusive lock"
        records = [records] if isinstance(records, dict) else list(records)
        run_ids = [check_run_id(record["run_id"]) for record in records]
        text = "\n".join(to_json(record, indent=None) for record in records)
        journal = {"run_id": run_ids[0], "run_ids": run_ids, "archive": bool(staged),
                   "ledger_size": _size(self.ledger_path), "tsv_size": _size(self.tsv_path)}
        try:
            write_atomic(self.journal_path, json.dumps(journal))
            if staged:
                os.rename(staged, self.run_dir(run_ids[0]))
                self.release_staging(staged)
            _append_line(self.ledger_path, text)  # the commit point
        except Exception as exc:
            try:
                self.recover()  # roll back what was done
            except OSError:
                pass
            if _full(exc) and not isinstance(exc, DiskFull):
                raise DiskFull(self.relpath(self.lab_dir)) from None
            raise
        warnings = []
        try:
            self._append_tsv(records)
        except OSError as exc:
            warnings.append(f"results.tsv was not updated ({exc.strerror or _short(exc)}: "
                            f"{exc.filename or '-'})")
        try:
            if not warnings:
                os.unlink(self.journal_path)
            self.read_rows()  # extend the index by the new lines
        except OSError as exc:
            warnings.append(f"the index was not updated ({_short(exc)})")
        return warnings

    def ledger_size(self):
        return _size(self.ledger_path)

    def write_registry_if_newer(self, registry, ledger_size):
        """Write `registry`, built after the writer's lock was released for the ledger
        as it was at `ledger_size` bytes, unless the file already describes a ledger
        at least as long (a later writer was quicker). Checked under the lock. Returns
        whether it was written; a failure is not raised (the registry is derived:
        readers rebuild one that does not describe the ledger)."""
        try:
            with self.lock():
                written = self._registry_file()
                on_disk = written.get("ledger_size") if written else None
                if (type(on_disk) is int and on_disk >= ledger_size) or \
                        (self.ledger_size() or 0) < ledger_size:
                    return False
                self.write_registry(registry, ledger_size)
        except OSError:
            return False
        return True

    def _registry_file(self):
        try:
            with open(self.registry_path, "rb") as f:
                registry = json.loads(f.read())
        except (OSError, ValueError, RecursionError):
            return None
        return registry if isinstance(registry, dict) else None

    def recent_registry(self, rows, behind):
        """The registry file when it was written by MemoryLab for the first len(rows)
        - k of `rows`, 0 <= k <= `behind` (the last k were appended by writers still
        building theirs), else None. `log` decides against it instead of building a
        board of its own while other logs run; sequential logs find k = 0."""
        registry = self._registry_file()
        if registry is None:
            return None
        count, size = registry.get("experiments"), registry.get("ledger_size")
        if type(count) is not int or type(size) is not int or \
                not 0 <= len(rows) - count <= behind or size > (self.ledger_size() or 0) or \
                not _registry_describes(registry, rows[:count]):
            return None
        registry.pop("ledger_size", None)
        return registry

    def _append_tsv(self, records):
        if not os.path.exists(self.tsv_path) or os.path.getsize(self.tsv_path) == 0:
            write_atomic(self.tsv_path, TSV_HEADER)
        _append_line(self.tsv_path, "\n".join(tsv_row(record) for record in records))

    def write_registry(self, registry, ledger_size=None):
        """Rewrite the registry (caller holds the store lock), stamped with the size
        of the ledger it was built for (`ledger_size`, else the ledger's size now).
        Atomic but not fsynced: it is derived, and a registry lost to a power cut
        reads as stale (`fresh_registry`) and is rebuilt."""
        os.makedirs(self.lab_dir, exist_ok=True)
        registry = dict(registry, ledger_size=self.ledger_size() if ledger_size is None
                        else ledger_size)
        write_atomic(self.registry_path, to_json(registry) + "\n", durable=False)

    def fresh_registry(self, run_count, rows=None):
        """The registry file's content when it describes the ledger as it is now, so
        it need not be rebuilt; else None. Every writer rewrites the registry after
        touching the ledger, so it is fresh when it is not older than the ledger, was
        written for a ledger of the present size (`ledger_size`, when recorded) and
        counts `run_count` experiments (the rows just read). With `rows`, a hand-written
        file must also have the registry's shape and name a champion that is among
        the rows (else it is stale and rebuilt)."""
        try:
            if os.stat(self.registry_path).st_mtime_ns < os.stat(self.ledger_path).st_mtime_ns:
                return None
        except OSError:
            return None
        registry = self._registry_file()
        if registry is None or registry.get("experiments") != run_count or \
                registry.get("ledger_size", _size(self.ledger_path)) != _size(self.ledger_path):
            return None
        if rows is not None and not _registry_describes(registry, rows):
            return None
        registry.pop("ledger_size", None)
        return registry

    def recover(self):
        """Finish or roll back a log or import transaction that was killed or failed
        (caller holds the exclusive lock). Returns None, "rolled_back" or "completed";
        after "completed" the registry is stale (older than the ledger's last append),
        so the next writer or report rebuilds it.

        Completed: the ledger holds every run of the journal, so results.tsv is cut
        back to its size before the transaction (dropping a half-written row) and the
        rows are appended. Rolled back: it does not, so the ledger is cut back to its
        size before the transaction (dropping a half-written batch) and the archive
        folder is removed. Staging folders whose writer is gone are removed either way.
        A journal whose run ids are not run ids is dropped: it never names a path."""
        self._clean_staging()
        try:
            with open(self.journal_path, "rb") as f:
                journal = json.loads(f.read())
        except FileNotFoundError:
            return None
        except ValueError:
            journal = None
        run_ids = journal.get("run_ids", [journal.get("run_id")]) \
            if isinstance(journal, dict) else None
        if not (isinstance(run_ids, list) and run_ids and all(map(is_run_id, run_ids))
                and isinstance(journal.get("ledger_size"), int)):
            os.unlink(self.journal_path)  # unreadable or not ours: nothing to finish
            return None
        found, foreign = self._find_after(journal["ledger_size"], set(run_ids))
        if len(found) < len(run_ids):
            if (_size(self.ledger_path) or 0) > journal["ledger_size"] and not foreign:
                with open(self.ledger_path, "r+b") as f:
                    f.truncate(journal["ledger_size"])
            if journal.get("archive"):
                import shutil
                folder = self.run_dir(run_ids[0])
                if not os.path.islink(folder):
                    shutil.rmtree(folder, ignore_errors=True)
            outcome = "rolled_back"
        else:
            tsv_size = journal.get("tsv_size") or 0
            if _size(self.tsv_path) not in (None, tsv_size):
                with open(self.tsv_path, "r+b") as f:
                    f.truncate(tsv_size)
            self._append_tsv(found)
            outcome = "completed"
        os.unlink(self.journal_path)
        return outcome

    def _find_after(self, offset, run_ids):
        """(the complete ledger records past `offset` whose run id is in `run_ids`,
        whether any other complete line is there: then the journal does not describe
        the ledger, and nothing is cut)."""
        try:
            with open(self.ledger_path, "rb") as f:
                f.seek(offset or 0)
                data = f.read()
        except FileNotFoundError:
            return [], False
        found, foreign = [], False
        for raw in data.split(b"\n")[:-1]:  # a last line without its newline is torn
            record, _ = _parse_line(raw)
            if record is not None and record.get("run_id") in run_ids:
                found.append(record)
            elif raw.strip():
                foreign = True
        return found, foreign

    def _clean_staging(self):
        """Remove the staging folders (and lock files) of writers that are gone: the
        folder's liveness lock can be taken (a folder without one, from an older
        version, falls back to its PID). A staging folder that is a link is left alone."""
        import shutil
        if os.path.islink(self.staging_dir):
            return
        try:
            names = set(os.listdir(self.staging_dir))
        except OSError:
            return
        for name in names:
            folder = os.path.join(self.staging_dir, name[:-5] if name.endswith(".lock") else name)
            if folder in self._staging_locks or (name.endswith(".lock") and name[:-5] in names) \
                    or not _writer_gone(folder):
                continue
            if os.path.isdir(folder) and not os.path.islink(folder):
                shutil.rmtree(folder, ignore_errors=True)
            for path in (folder, folder + ".lock"):
                try:
                    if os.path.islink(path) or os.path.isfile(path):
                        os.unlink(path)
                except OSError:
                    pass

    def stray_temp_files(self):
        """Temp files (write_atomic's .<name>.tmp-*) that no live writer owns: in the
        store's folders and beside results.tsv. Call with the store lock held (every
        temp file there is written under the exclusive lock), which makes them all
        stray, except those of the index, which count only when its lock can be taken.
        Returns (paths, index lock fd or None: keep it until they are removed)."""
        import fcntl
        folders = [self.root, self.lab_dir, self.reports_dir, self.runs_dir]
        fd = None
        try:
            fd = os.open(os.path.join(self.index_dir, ".lock"), os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            folders.append(self.index_dir)
        except OSError:
            if fd is not None:
                os.close(fd)
                fd = None
        found = []
        for folder in folders:
            try:
                names = os.listdir(folder)
            except OSError:
                continue
            for name in names:
                if name.startswith(".") and TEMP_MARK in name and \
                        (folder != self.root or name.startswith(".results.tsv" + TEMP_MARK)):
                    path = os.path.join(folder, name)
                    if os.path.isfile(path) and not os.path.islink(path):
                        found.append(path)
        return sorted(found), fd

    def write_report(self, markdown, stamp, output=None, extra=None):
        """Write the morning report: to `output` only when given, else
        reports/latest.md, reports/<stamp>.md and the `extra` {name: text} files
        (latest.json, latest.html) beside them. Returns the paths written."""
        if output:
            if self.owns(output):
                from .records import InputError
                raise InputError(f"--output {output} is one of the store's own files "
                                 "(the ledger, results.tsv, ...); choose another path")
            os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
            write_atomic(output, markdown)
            return [os.path.abspath(output)]
        os.makedirs(self.reports_dir, exist_ok=True)
        written = []
        for name, text in [("latest.md", markdown), (f"{stamp}.md", markdown),
                           *sorted((extra or {}).items())]:
            path = os.path.join(self.reports_dir, name)
            write_atomic(path, text)
            written.append(path)
        return written


class GuardRows(list):
    """Rows read by Store.read_guard_rows: heads (HEAD) whose rest is packed (PACKED:
    `unpacked`), with each segment's guard part (GuardPart) to find them by."""

    def __init__(self):
        super().__init__()
        self.parts = []

    def add(self, data, mark):
        """Append the rows of a guard part's bytes (or map); ValueError when it is not
        the part marked `mark`, or is cut short."""
        part = GuardPart(data)
        if part.mark != mark:
            raise ValueError("the guard part of other rows")
        self.extend(part.take_heads())
        self.parts.append(part)

    def lookup(self, keys, every=()):
        """The `_line`s of the rows posted under any of `keys`, or under each of
        `every` (when not empty); a few others too (keys share buckets)."""
        lines = set()
        for part in self.parts:
            found = set()
            for key in keys:
                found.update(part.posted(key))
            if every:
                groups = sorted((part.posted(key) for key in every), key=len)
                found.update(set(groups[0]).intersection(*groups[1:]))
            lines.update(part.lines[p] for p in found)
        return lines

    def narrow(self, rows, keys, every=()):
        """Those of `rows` (rows of this list, or others) that `lookup(keys, every)`
        may find, unpacked one by one as they are taken; rows that are not packed come
        as they are."""
        posted = self.lookup(keys, every)
        return (unpacked(row) for row in rows if PACKED not in row or row["_line"] in posted)


class GuardPart:
    """The guard part of a segment, as `_guard_part` writes it: a header (marshal: its
    mark (the index's build id and the segment's row count), its heads, the bucket
    count, the positions of the rows in each bucket, where each bucket ends, and where
    each packed row ends: uint32 arrays as bytes), then the packed rows. Postings are
    hashed into buckets (_bucket): a key's rows are among those of its bucket."""

    def __init__(self, data):
        import marshal
        view = memoryview(data)
        length = int.from_bytes(view[:8], "little")
        header = marshal.loads(view[8:8 + length])
        self.mark, self._heads = header["mark"], header["heads"]
        self.lines = [head["_line"] for head in self._heads]
        self.buckets = header["buckets"]
        self.positions, self.bucket_ends, self.ends = (
            memoryview(header[name]).cast("I") for name in ("positions", "bucket_ends", "ends"))
        self.packed = view[8 + length:]
        if len(self.bucket_ends) != self.buckets + 1 or len(self.ends) != len(self.lines) or \
                len(self.positions) != self.bucket_ends[-1] or \
                (self.ends and self.ends[-1] != len(self.packed)):
            raise ValueError("guard part cut short")

    def take_heads(self):
        """The heads, each pointing at its packed row; the part keeps none of them (no
        cycle: rows dropped are freed, and the part's map closed, at once)."""
        heads, self._heads = self._heads, None
        for position, head in enumerate(heads):
            head[PACKED] = (self, position)
        return heads

    def posted(self, key):
        """The positions in the segment of the rows posted in `key`'s bucket."""
        bucket = _bucket(key, self.buckets)
        return self.positions[self.bucket_ends[bucket]:self.bucket_ends[bucket + 1]]

    def row(self, position):
        import marshal
        start = self.ends[position - 1] if position else 0
        return marshal.loads(self.packed[start:self.ends[position]])


def unpacked(row):
    """The whole row (as read_rows gives it, less DETAILS) of a row read by
    read_guard_rows; any other row as it is."""
    packed = row.get(PACKED)
    if packed is None:
        return row
    part, position = packed
    return part.row(position)


def _bucket(key, buckets):
    """The bucket of a posting key (None, or text, numbers and tuples of them): the same
    in every process for keys that are ==, numbers of any type included."""
    import zlib
    return zlib.crc32(_canonical(key).encode("utf-8", "surrogatepass")) % buckets


def _canonical(key):
    if type(key) is str:
        return "s" + key
    if type(key) is tuple or type(key) is list:   # [0.8, 0.95] == [0.8, 0.95]
        return "(" + "|".join(_canonical(item) for item in key) + ")"
    if isinstance(key, (bool, int, float)):
        try:
            return "f" + repr(float(key) + 0.0)   # 8 == 8.0 == 8.0 + 0.0; -0.0 + 0.0 is 0.0
        except OverflowError:
            return "f?"
    return "?"


def _guard_part(rows, posting_keys, mark):
    """The bytes of the guard part (GuardPart) of a segment's `rows` (without DETAILS,
    with features), marked `mark`; its postings: `posting_keys(features, config)` of
    each row."""
    import marshal
    from array import array
    from itertools import accumulate
    buckets = 1 << max(8, (16 * len(rows)).bit_length())   # 16 to 32 a row: few collisions
    by_bucket, seen, heads, packed, ends, size = {}, {}, [], [], array("I"), 0
    for position, row in enumerate(rows):
        heads.append({key: row[key] for key in HEAD if key in row})
        packed.append(marshal.dumps({k: v for k, v in row.items() if k not in _DETAILS}))
        size += len(packed[-1])
        ends.append(size)
        for key in posting_keys(row.get(FEATURES), row.get("config")):
            try:   # most keys recur (words, constants' values): each is hashed once
                bucket = seen.get(key)
                if bucket is None:
                    bucket = seen[key] = _bucket(key, buckets)
            except TypeError:   # a list in it
                bucket = _bucket(key, buckets)
            by_bucket.setdefault(bucket, set()).add(position)
    positions, counts = array("I"), [0] * (buckets + 1)
    for bucket in sorted(by_bucket):
        positions.extend(sorted(by_bucket[bucket]))
        counts[bucket + 1] = len(by_bucket[bucket])
    bucket_ends = array("I", accumulate(counts))
    header = marshal.dumps({"mark": mark, "heads": heads, "buckets": buckets,
                            "positions": positions.tobytes(), "bucket_ends": bucket_ends.tobytes(),
                            "ends": ends.tobytes()})
    return b"".join([len(header).to_bytes(8, "little"), header, *packed])


# The index parts kept apart from the "rows" segments, and the row fields each holds.
_PARTS = {"details": DETAILS, FEATURES: (FEATURES,)}
_SPLIT = frozenset(DETAILS + (FEATURES,))
_DETAILS = frozenset(DETAILS)


def _shared(shared, key, value):
    """`value`, or an equal dict seen before under `key` (so that identical provenance
    and config dicts are one object in the index). Candidates are found by a cheap
    token (the dict's keys and its scalar values) and compared in full."""
    token = (key, tuple(value), tuple(v for v in value.values()
                                      if v is None or isinstance(v, (str, int, float))))
    seen = shared.get(token)
    if seen is not None and seen == value:
        return seen
    value = shared[token] = _interned(value, shared)
    return value


# Fields whose values repeat across rows; the other top-level strings (ids, times,
# descriptions) are mostly unique, and interning those only slows loading down.
_REPEATED_TEXT = ("status", "family", "branch")
# Nested values parsed from JSON (their keys too); provenance and config are
# interned once per distinct dict by `_shared`, the keys slim_row writes are constants.
_NESTED = ("tags", "metrics", "novelty_features", "_facts", "change_set")


def _compacted(row, shared):
    """`row` with the repeated strings of an index row interned, and with `shared`
    its repeated numbers too (see _interned)."""
    for key in _REPEATED_TEXT:
        value = row.get(key)
        if type(value) is str and len(value) <= INTERN_CHARS:
            row[key] = intern(value)
    for key in _NESTED:
        if row.get(key) is not None:
            row[key] = _interned(row[key], shared)
    features = row.get(FEATURES)
    if type(features) is dict:   # (a copy made by _interned)
        # `knobs` is read by nobody (the changes say it); keeping `sig`, the key that
        # memoises scores, in its place leaves a features dict at 10 keys, not 11
        features.pop("knobs", None)
        for key in ("code", "said"):   # what the code changed is often what the words said
            if key in features and features[key] == features.get("changes"):
                features[key] = features["changes"]
    return row


def _interned(value, shared):
    """A copy of the dict, list or tuple `value` (other values are returned as they
    are) with its dict keys and short strings interned and each number equal to one
    seen before in `shared` (of the same type and sign) replaced by that one, at
    every depth: marshal then writes each repeated string or number once (a run's
    config repeats most of the champion's) and loading the index is faster. Values
    parsed from JSON are exact dicts, lists and strs (hence `type(...) is`). Leaves
    are handled in the loop, not by a call each: this runs on every indexed row."""
    kind = type(value)
    if kind is not dict and kind is not list and kind is not tuple:
        return value
    out = []
    for item in (value.values() if kind is dict else value):
        each = type(item)
        if each is str:
            if len(item) <= INTERN_CHARS or kind is tuple:   # row facts: class keys
                item = intern(item)
        elif each is float or each is int:
            item = shared.setdefault((each, item) if item else (each, item, str(item)), item)
        elif each is dict or each is list or each is tuple:
            item = _interned(item, shared)
        out.append(item)
    if kind is dict:
        return dict(zip([intern(key) if type(key) is str else key for key in value], out))
    return out if kind is list else tuple(out)


_GUARD, _PACKET = b', "novelty_guard": ', b', "decision_packet": '
_DECODE = json.JSONDecoder().decode


def _loads(raw):
    """json.loads of a ledger line (UTF-8 bytes) without json.loads' per-call encoding
    detection: a third of the parse time of a 100k-line ledger."""
    return _DECODE(raw.decode("utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8",
                              "surrogatepass"))   # as json.loads decodes bytes


def _parse_for_row(raw):
    """_parse_line for the index: a line as MemoryLab writes it is parsed without its
    novelty_guard (the bulkiest member, which slim rows leave out), cut from the
    top-level `, "novelty_guard": ` to the `, "decision_packet": ` after it (`, "`
    never occurs inside a JSON string). A cut that does not leave one JSON object
    (the members were nested, or in another order) falls back to the whole line."""
    start = raw.find(_GUARD)
    if start > 0:
        end = raw.find(_PACKET, start)
        if end > 0:
            try:
                record = _loads(raw[:start] + raw[end:])
            except ValueError:
                record = None
            if isinstance(record, dict):
                return record, None
    return _parse_line(raw)


def _parse_line(raw, at_end=False):
    """(record, problem) for one ledger line; (None, None) for a blank line."""
    if not raw.strip():
        return None, None
    if at_end:
        return None, "incomplete last line (no newline at end of file); left as is"
    try:
        record = _loads(raw)
    except ValueError as exc:
        return None, f"not valid JSON ({_short(exc)}); line kept, not used"
    if not isinstance(record, dict):
        return None, "not a JSON object; line kept, not used"
    return record, None


def _registry_describes(registry, rows):
    """Cheap evidence that a registry file was built from `rows`: its status counts add
    up to the rows, and its champion (when any) is one of them."""
    counts = registry.get("status_counts")
    champion = registry.get("champion")
    if not isinstance(counts, dict) or not isinstance(registry.get("challengers"), list) or \
            sum(v for v in counts.values() if type(v) is int) != len(rows):
        return False
    if champion is None:
        return True
    run_id = champion.get("run_id") if isinstance(champion, dict) else None
    return isinstance(run_id, str) and any(row.get("run_id") == run_id for row in reversed(rows))


def _short(exc):
    text = str(exc)
    return text if len(text) < 80 else text[:77] + "..."


def _size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return None


def _writer_gone(folder):
    """Whether the writer of a staging folder is gone: its lock file can be locked,
    or, without one, the PID in its name is not alive here."""
    import fcntl
    try:
        fd = os.open(folder + ".lock", os.O_RDWR)
    except FileNotFoundError:
        pid = os.path.basename(folder).split("-", 1)[0]
        return not (pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _python_tag():
    import marshal
    return f"{sys.version_info[0]}.{sys.version_info[1]}/{marshal.version}"


def _signatures(path, offset):
    """Hashes of the first and last SIGNATURE_BYTES before `offset`: cheap evidence
    that the ledger's indexed part is unchanged."""
    if offset <= 0:
        return "", ""
    with open(path, "rb") as f:
        head = f.read(min(offset, SIGNATURE_BYTES))
        f.seek(max(0, offset - SIGNATURE_BYTES))
        tail = f.read(min(offset, SIGNATURE_BYTES))
    return hex_digest("sha1", head), hex_digest("sha1", tail)


@contextmanager
def _gc_paused():
    """Building many small dicts triggers needless cyclic-GC passes (5-10x slower);
    afterwards the rows are frozen out of the collector's sight: they hold no
    cycles, and a full pass over 100k rows would cost ~0.4 s."""
    import gc
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


# ---------------------------------------------------------------- doctor, show
# Primitives for `doctor --repair` and `show`/`compare`; the logic is in doctor.py
# and queries.py.

QUARANTINE = "experiments.quarantine.jsonl"


def quarantine_path(store):
    return os.path.join(store.lab_dir, QUARANTINE)


# The fields after this key in a record as MemoryLab and the earlier fork write it hold
# no field doctor checks; `ledger_lines(light=True)` parses a line only up to it.
_HEAVY_TAIL = b', "novelty_guard": '


def _parse_head(raw, needed):
    """The record of a ledger line parsed only up to its top-level novelty_guard (the
    heavy part), when the fields `needed` are all in that head; else the whole line.
    `, "` never occurs inside a JSON string (its quote would be escaped), and cutting
    at a nested occurrence leaves unbalanced JSON, so a head that parses is the
    record's own leading members."""
    cut = raw.find(_HEAVY_TAIL)
    if cut > 0:
        try:
            head = _loads(raw[:cut] + b"}")
        except ValueError:
            head = None
        if isinstance(head, dict) and all(key in head for key in needed):
            return head, None
    return _parse_line(raw)


def ledger_lines(store, needed=None):
    """Yield (line number, raw bytes without the newline, record or None, problem or
    None) for every non-blank ledger line, parsed as the index build does, except that
    a last line without its newline that is a whole JSON object comes with both its
    record and the problem (the readers skip it; a repair can keep it). Streams the
    file: a 100k-run ledger is never held in memory at once. With `needed` (field
    names), a record may hold only its leading fields, as long as those are among
    them (`_parse_head`): for checks that read a few fields of every record."""
    try:
        f = open(store.ledger_path, "rb")
    except FileNotFoundError:
        return
    with f:
        for number, raw in enumerate(f, 1):
            torn = not raw.endswith(b"\n")  # only the last line can lack it
            raw = raw[:-1] if not torn else raw
            if not raw.strip():
                continue
            record, problem = _parse_line(raw) if needed is None or torn else \
                _parse_head(raw, needed)
            if torn:
                problem = _parse_line(raw, at_end=True)[1] + \
                    ("" if problem else " (a whole record: doctor --repair keeps it)")
            yield number, raw, record, problem


def rewrite_ledger(store, kept, quarantined):
    """Replace the ledger by the raw lines `kept`, after appending the raw lines
    `quarantined` verbatim to the quarantine file beside it (caller holds the
    exclusive lock). Killed in between, a bad line is in both files: nothing lost."""
    assert store._exclusive, "rewrite_ledger needs the exclusive lock"
    if quarantined:
        with open(quarantine_path(store), "ab") as f:
            f.write(b"".join(raw + b"\n" for raw in quarantined))
            f.flush()
            os.fsync(f.fileno())
    write_atomic(store.ledger_path, b"".join(raw + b"\n" for raw in kept))
    store._rows = store._state = None  # the index no longer describes the ledger
    _LOADED.pop(store.ledger_path, None)


def records_at(store, numbers):
    """{line number: record} for the given ledger line numbers (the `_line` of slim
    rows); only those lines are parsed. Lines that are not a record are left out."""
    wanted, found = set(numbers), {}
    if not wanted:
        return found
    last = max(wanted)
    with open(store.ledger_path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if number in wanted:
                record, _ = _parse_line(raw)
                if record is not None:
                    found[number] = record
            if number >= last:
                break
    return found


# ---------------------------------------------------------------- claims and the mirror
# Side files of the claims and the tracking-server mirror (logic in claims.py and
# mirror.py): append-only JSON lines and small JSON state files, never the ledger.

def side_path(store, name):
    return os.path.join(store.lab_dir, name)


def append_event(store, name, event):
    """Append one JSON object as a line of the side file `name` (caller holds the
    exclusive store lock, or the side lock guarding that file): one write, fsynced,
    torn tails fenced as in the ledger."""
    _append_line(side_path(store, name), to_json(event, indent=None))


def read_events(store, name):
    """The JSON objects of the side file `name`, in order; bad or torn lines skipped."""
    try:
        with open(side_path(store, name), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    events = []
    for raw in data.split(b"\n"):
        record, problem = _parse_line(raw)
        if record is not None and not problem:
            events.append(record)
    return events


def read_state(store, name):
    """The JSON object in the side file `name`, or {} when missing or unreadable."""
    try:
        with open(side_path(store, name), "rb") as f:
            state = json.loads(f.read())
    except (OSError, ValueError, RecursionError):
        return {}
    return state if isinstance(state, dict) else {}


def write_state(store, name, state):
    """Replace the side file `name` atomically by the JSON object `state`."""
    os.makedirs(os.path.dirname(side_path(store, name)), exist_ok=True)
    write_atomic(side_path(store, name), to_json(state) + "\n")


def read_or_create(path, text):
    """The content of `path`; when it does not exist, `text` is put there first,
    complete (a temp file hard-linked into place: of two racing processes, both
    read the winner's text)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        pass
    tmp = f"{path}.tmp-{os.getpid()}-{os.urandom(3).hex()}"
    write_atomic(tmp, text)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    with open(path, encoding="utf-8") as f:
        return f.read()


@contextmanager
def side_lock(store, name, wait_s):
    """Hold an exclusive flock on the side file `name` for work that must not hold
    the store lock (network calls). Yields False, holding nothing, when another
    process keeps it longer than `wait_s` seconds."""
    import fcntl
    import time
    os.makedirs(os.path.dirname(side_path(store, name)), exist_ok=True)
    fd = os.open(side_path(store, name), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        yield True
    finally:
        os.close(fd)

