"""Building and validating one run record: inputs, metrics, crash summaries, time.

Everything here either returns a value or raises `InputError` with a one-line
message; nothing is written. The record's schema is in docs/memorylab_api.md.
"""

import json
import os
import re

from . import SCHEMA_VERSION
from .fields import DEFAULT_METRIC_LIMIT, METRIC_LIMITS, is_finite_number

METRIC_FIELDS = ("val_bpb", "training_seconds", "total_seconds", "peak_vram_mb",
                 "mfu_percent", "total_tokens_M", "num_steps", "num_params_M", "depth")
INTEGER_METRICS = ("num_steps", "depth")
REQUIRED_FOR_RESULT = ("val_bpb", "peak_vram_mb")
PROVENANCE_FIELDS = ("started_at_utc", "finished_at_utc", "device", "attention", "torch_version",
                     "time_budget_s", "max_seq_len", "eval_tokens", "seed",
                     "train_py_sha256", "prepare_py_sha256", "summary_schema_version")
STATUSES = ("keep", "discard", "crash")
DEFAULT_FAMILY = "general"
NO_COMMIT = "0000000"  # the commit of a run logged outside git
TAIL_BYTES = 64 * 1024
TAIL_LINES = 20
TAIL_LINE_CHARS = 400
# A sidecar is written just before the process exits and flushes its stdout into
# the log, so a fresh summary can be a little older than its log; a stale one (left
# by an earlier run) is older by at least a whole run.
STALE_SUMMARY_SLACK_S = 2.0
MAX_TEXT_CHARS = 2000        # --description, --hypothesis, --tags (see check_text)
MAX_FAMILY_CHARS = 100
MAX_SINCE_HOURS = 1_000_000  # ~114 years
MAX_NOISE_FACTOR = 1000.0
MAX_WHOLE = 2 ** 53          # integers beyond this are not exact as JSON numbers
MAX_NESTING = 32             # depth of a sidecar's provenance/hyperparameters objects
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# patterns compiled when a run log is read (re caches them), not by every command
_METRIC_LINE = r"^\s*(" + "|".join(METRIC_FIELDS) + r"):\s*(\S+)\s*$"
_ERROR_LINE = r"(?i)(\b\w*(Error|Exception)\b|out of memory|Traceback|Killed|\bFAIL|\berror\b)"
_TAG_SPLIT = re.compile(r"[,\s]+")


class InputError(ValueError):
    """A bad command input; its message is one line, shown as `error: <message>`."""


# ---------------------------------------------------------------- time

def parse_utc(value):
    """An aware UTC datetime from 'YYYY-MM-DDTHH:MM:SS[.fff]Z' or any ISO 8601 time
    with an offset (no offset: UTC), or from a datetime; None when unparseable. The
    one time parser of MemoryLab."""
    from datetime import datetime, timezone
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except (AttributeError, TypeError, ValueError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def format_utc(moment):
    """A datetime as 'YYYY-MM-DDTHH:MM:SSZ' (UTC)."""
    from datetime import timezone
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)


def now_utc(env=None):
    """Now as 'YYYY-MM-DDTHH:MM:SSZ': $MEMORYLAB_NOW when set (tests), else the clock."""
    from datetime import datetime, timezone
    env = os.environ if env is None else env
    injected = env.get("MEMORYLAB_NOW")
    moment = datetime.now(timezone.utc)
    if injected:
        moment = parse_utc(injected)
        if moment is None:
            raise InputError(f"MEMORYLAB_NOW is not an ISO 8601 UTC time: {injected!r}")
        if not 1970 <= moment.year <= 9998:  # run ids bump seconds; windows subtract hours
            raise InputError(f"MEMORYLAB_NOW must be within the years 1970-9998, got {injected!r}")
    return format_utc(moment)


def compact_stamp(iso, plus_seconds=0):
    """'2026-01-01T00:00:00Z' (+ seconds) -> '20260101T000000Z' (run ids, report names)."""
    from datetime import timedelta
    moment = parse_utc(iso) + timedelta(seconds=plus_seconds)
    return moment.strftime("%Y%m%dT%H%M%SZ")


# ---------------------------------------------------------------- options

def check_threshold(value):
    if not 0.0 <= value <= 1.0:
        raise InputError(f"--threshold must be within [0, 1], got {value:g}")
    return value


def check_since_hours(value):
    """A report/list window: finite, > 0 and at most MAX_SINCE_HOURS (~114 years;
    beyond that the window start would leave the calendar)."""
    if not 0 < value <= MAX_SINCE_HOURS:
        raise InputError(f"--since-hours must be > 0 and <= {MAX_SINCE_HOURS:g}, got {value:g}")
    return value


def check_limit(value):
    """A --limit: at least 1."""
    if value < 1:
        raise InputError(f"--limit must be >= 1, got {value}")
    return value


def check_noise_factor(value):
    """k of `promote needs Δ ≥ kσ`: a finite number > 0 (at most MAX_NOISE_FACTOR)."""
    if not 0 < value <= MAX_NOISE_FACTOR:
        raise InputError(f"--noise-factor must be a finite number > 0 and <= "
                         f"{MAX_NOISE_FACTOR:g}, got {value:g}")
    return value


def check_description(text):
    if not text or not text.strip():
        raise InputError("--description must not be empty")
    return check_text(text.strip(), "--description")


def check_utf8(text, flag):
    """`text` when it is valid Unicode: a byte that was not UTF-8 in the command line
    arrives as a lone surrogate, which no file of the store can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{flag} is not valid UTF-8 (a stray byte at character {exc.start + 1}); "
                         "retype it or fix the shell's encoding") from None
    return text


def check_text(text, flag):
    """`text` when it is at most MAX_TEXT_CHARS long. Descriptions and hypotheses are
    parsed for knobs and matched against every run, at a cost that grows faster than
    their length; details belong in --notes, which is stored but not parsed."""
    if text is not None and len(text) > MAX_TEXT_CHARS:
        raise InputError(f"{flag} is {len(text)} characters long; at most {MAX_TEXT_CHARS} "
                         "are allowed (put details in --notes)")
    return text


def check_family(text, flag="--family"):
    """The idea family (or another short name given with `flag`): stripped; None (the
    default family) when blank; at most MAX_FAMILY_CHARS printable characters."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if len(text) > MAX_FAMILY_CHARS or not text.isprintable():
        raise InputError(f"{flag} must be at most {MAX_FAMILY_CHARS} printable characters "
                         f"on one line, got {text[:40]!r}")
    return text


def check_file(path, flag):
    if not os.path.exists(path):
        raise InputError(f"{flag} file not found: {path}")
    if not os.path.isfile(path):
        raise InputError(f"{flag} is not a regular file: {path}")
    return path


def check_output(path):
    """`report --output PATH`: a file path, not a folder (else the error would name the
    temp file beside it)."""
    if path is not None and os.path.isdir(path):
        raise InputError(f"--output is a directory, not a file: {path}")
    return path


def parse_tags(text):
    """'LR, Warmup' -> ['lr', 'warmup'] (lower-case tokens, order kept, no repeats)."""
    check_text(text, "--tags")
    tags = []
    for token in _TAG_SPLIT.split((text or "").lower()):
        if token and token not in tags:
            tags.append(token)
    return tags


def idea_of(description, hypothesis=None, family=None, tags=()):
    """The planned idea as novelty.assess takes it."""
    return {"description": description, "hypothesis": hypothesis or "",
            "family": family or DEFAULT_FAMILY, "tags": list(tags)}


# ---------------------------------------------------------------- metrics

def checked_metric(name, value, source):
    """A metric as stored: a finite float (int for num_steps/depth) or None.
    Raises InputError naming the field for strings, booleans, NaN and infinities, and
    for impossible values: val_bpb must be > 0, every other metric >= 0, and whole
    numbers at most 2**53 (readers would otherwise ignore or misread them), and every
    metric within its sane range (fields.METRIC_LIMITS: |val_bpb| <= 1e6, peak memory
    <= 1e9 MB, others <= 1e12)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WHOLE:
        raise InputError(f"{source}: metric {name} is too large, got {value!r}")
    if not is_finite_number(value):
        raise InputError(f"{source}: metric {name} must be a finite number, got {value!r}")
    if name == "val_bpb" and not value > 0:
        raise InputError(f"{source}: metric val_bpb must be > 0, got {value!r}")
    limit = METRIC_LIMITS.get(name, DEFAULT_METRIC_LIMIT)
    if abs(value) > limit:
        raise InputError(f"{source}: metric {name} must be at most {limit:g}, got {value!r}")
    if value < 0:
        raise InputError(f"{source}: metric {name} must be >= 0, got {value!r}")
    if name in INTEGER_METRICS:
        if value != int(value):
            raise InputError(f"{source}: metric {name} must be a whole number, got {value!r}")
        if value > MAX_WHOLE:
            raise InputError(f"{source}: metric {name} is too large, got {value!r}")
        return int(value)
    return float(value)


def read_summary(path):
    """The sidecar JSON object at `path` (InputError when unreadable or not an object)."""
    try:
        with open(path, "rb") as f:
            summary = json.loads(f.read())
    except ValueError as exc:
        raise InputError(f"--summary {path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InputError(f"--summary {path} is nested too deeply") from None
    except OSError as exc:
        raise InputError(f"--summary {path} cannot be read: {exc.strerror}") from None
    if not isinstance(summary, dict):
        raise InputError(f"--summary {path} must hold a JSON object")
    return summary


def metrics_from_summary(summary, path, lenient=False):
    """The nine metrics of a sidecar; with `lenient` (a crash) unusable values are None."""
    metrics = {}
    for name in METRIC_FIELDS:
        try:
            metrics[name] = checked_metric(name, summary.get(name), f"--summary {path}")
        except InputError:
            if not lenient:
                raise
            metrics[name] = None
    return metrics


def read_tail(path, max_bytes=TAIL_BYTES):
    """The last `max_bytes` of a (possibly huge, possibly not UTF-8) log as text:
    seeks to the end, never reads the whole file; bad bytes become U+FFFD."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - max_bytes))
        data = f.read()
    if size > max_bytes:
        data = data[data.find(b"\n") + 1:] if b"\n" in data else data
    return data.decode("utf-8", errors="replace")


def tail_lines(text, count=TAIL_LINES):
    """Last `count` non-empty lines; progress lines rewritten with '\\r' count as lines."""
    lines = [line.rstrip() for line in re.split(r"[\r\n]+", text) if line.strip()]
    return [line if len(line) <= TAIL_LINE_CHARS else line[:TAIL_LINE_CHARS] + "..."
            for line in lines[-count:]]


def metrics_from_log(text, path, lenient=False):
    """Metrics from the `key: value` summary lines of a log tail (last one wins).
    Unusable values raise InputError, or with `lenient` (a crash's log, whose figures
    are not results anyway) are recorded as None."""
    found = {}
    for line in re.split(r"[\r\n]+", text):
        match = re.match(_METRIC_LINE, line)
        if match:
            found[match.group(1)] = match.group(2)
    metrics = {}
    for name in METRIC_FIELDS:
        raw = found.get(name)
        if raw is None:
            metrics[name] = None
            continue
        try:
            try:
                value = float(raw)
            except ValueError:
                raise InputError(f"--log {path}: metric {name} must be a finite number, "
                                 f"got {raw!r}") from None
            metrics[name] = checked_metric(name, value, f"--log {path}")
        except InputError:
            if not lenient:
                raise
            metrics[name] = None
    return metrics


def crash_error(error_text, lines, log_given=False):
    """The record's `error` of a crash: {summary, tail, source}. The summary is
    --error when given, else the last line of the log that looks like an error,
    else its last line; source says which ("argument", "log" or "none")."""
    if error_text and error_text.strip():
        summary, source = " ".join(error_text.split()), "argument"
    elif lines:
        candidates = [line for line in lines if re.search(_ERROR_LINE, line)]
        summary, source = (candidates or lines)[-1].strip(), "log"
    elif log_given:
        summary, source = "crash (no --error given and the --log holds no text)", "none"
    else:
        summary, source = "crash (no --error or --log given)", "none"
    return {"summary": summary, "tail": list(lines), "source": source}


# ---------------------------------------------------------------- sidecar metadata

def provenance_from_summary(summary):
    """The sidecar's provenance (nested under "provenance" or at top level)."""
    if not summary:
        return {}
    nested = summary.get("provenance")
    source = nested if isinstance(nested, dict) else summary
    provenance = {key: source[key] for key in PROVENANCE_FIELDS if key in source}
    if "summary_schema_version" not in provenance and "schema_version" in summary:
        provenance["summary_schema_version"] = summary["schema_version"]
    return provenance


def hyperparameters_from_summary(summary):
    value = (summary or {}).get("hyperparameters")
    return value if isinstance(value, dict) else {}


def check_json_values(value, where):
    """Raise InputError naming the field when `value` (a sidecar part stored in the
    record) holds NaN, ±Infinity (also 1e400), an integer beyond 2**53 or objects
    nested deeper than MAX_NESTING: the ledger is strict JSON."""
    stack = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_NESTING:
            raise InputError(f"{path} is nested deeper than {MAX_NESTING} levels")
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if isinstance(item, int) and abs(item) > MAX_WHOLE:
            raise InputError(f"{path} is too large a number, got {item!r}")
        if isinstance(item, float) and not is_finite_number(item):
            raise InputError(f"{path} must be a finite number, got {item!r}")
        if isinstance(item, dict):
            stack.extend((v, f"{path}.{k}", depth + 1) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item))


# ---------------------------------------------------------------- the draft record

def gather_inputs(*, status, summary_path=None, log_path=None, error_text=None):
    """Read and validate the run's files. Returns {metrics, error, summary (the
    sidecar dict or None)}; raises InputError (nothing is written before this
    passes)."""
    if status not in STATUSES:
        raise InputError(f"--status must be one of {', '.join(STATUSES)}, got {status!r}")
    if summary_path:
        check_file(summary_path, "--summary")
    if log_path:
        check_file(log_path, "--log")
    if summary_path and log_path and \
            os.path.getmtime(summary_path) + STALE_SUMMARY_SLACK_S < os.path.getmtime(log_path):
        raise InputError(f"--summary {summary_path} is older than --log {log_path}: "
                         "a stale sidecar from an earlier run? (a crash writes none)")
    summary = read_summary(summary_path) if summary_path else None
    text = read_tail(log_path) if log_path else ""
    if summary is not None:
        metrics = metrics_from_summary(summary, summary_path, lenient=status == "crash")
        check_json_values(provenance_from_summary(summary), f"--summary {summary_path}: provenance")
        check_json_values(hyperparameters_from_summary(summary),
                          f"--summary {summary_path}: hyperparameters")
    elif log_path:
        metrics = metrics_from_log(text, log_path, lenient=status == "crash")
    else:
        metrics = {name: None for name in METRIC_FIELDS}
    if status == "crash":
        metrics["val_bpb"] = None
        error = crash_error(error_text, tail_lines(text), log_given=bool(log_path))
    else:
        missing = [name for name in REQUIRED_FOR_RESULT if metrics.get(name) is None]
        if missing:
            where = "--summary" if summary is not None else "--log" if log_path else \
                "no --summary or --log given"
            raise InputError(f"status {status} needs {' and '.join(missing)} ({where})")
        error = None
    return {"metrics": metrics, "error": error, "summary": summary}


def draft_record(*, now, git, description, status, inputs, family=None, hypothesis=None,
                 tags=(), notes=None, config=None, change_set=None):
    """Every record field known before history is consulted (no run_id,
    novelty_guard, decision_packet or artifacts yet)."""
    git = git or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": None,
        "timestamp_utc": now,
        "branch": git.get("branch"),
        "commit": git.get("commit") or NO_COMMIT,
        "parent_commit": git.get("parent_commit"),
        "family": family or DEFAULT_FAMILY,
        "status": status,
        "description": description,
        "hypothesis": hypothesis or "",
        "tags": list(tags),
        "notes": notes or "",
        "metrics": inputs["metrics"],
        "error": inputs["error"],
        "artifacts": {},
        "novelty_guard": None,
        "decision_packet": None,
        "provenance": provenance_from_summary(inputs["summary"]),
        "hyperparameters": hyperparameters_from_summary(inputs["summary"]),
        "config": config,
        "change_set": change_set,
        "novelty_features": None,
        "imported": None,
    }


def unique_run_id(now, commit, is_taken):
    """`YYYYMMDDTHHMMSSZ-<commit>` from `now`; when taken (another run in the same
    second on the same commit), the id's seconds are bumped until it is free. The
    record's timestamp_utc stays the real time."""
    bump = 0
    while True:
        run_id = f"{compact_stamp(now, bump)}-{commit}"
        if not is_taken(run_id):
            return run_id
        bump += 1
