"""Tolerant field access over ledger rows (full records or the store's slim rows).

The one home of these helpers: noise, registry, decisions, render and views all read
rows through them. Rows may be hand-edited or come from the earlier fork, so no field
is trusted. A value counts as a number only when it is an int or float that is finite
and not a bool; a val_bpb must also be positive. Anything else (missing, null, the
string "0.90", ``true``, NaN) reads as None.

    is_finite_number(value)   True for a finite int/float that is not a bool
    number(value)             that value as a float, else None
    metric(row, name)         row["metrics"][name] as a number, else None
    val_bpb_of(row)           a positive finite val_bpb, else None
    memory_gb_of(row)         peak VRAM in GB, one decimal, else None
    text_of(row, key)         a text field as a string ('' when missing)
    mapping_of(row, key)      an object field as a dict ({} when missing or not one)
    status_of(row)            the lower-cased status ('' when missing)
    short_commit(value)       the first 7 characters of a commit, lower-cased
    run_entry(row)            the compact description of a run (boards, reports)
"""

import math

COMMIT_LENGTH = 7
# Sane ranges: a metric beyond its limit is refused by `log` and `import-tsv`, and a
# val_bpb beyond it in a hand-edited ledger reads as not comparable (squares of it
# would overflow the noise statistics).
METRIC_LIMITS = {"val_bpb": 1e6, "peak_vram_mb": 1e9}
DEFAULT_METRIC_LIMIT = 1e12


def is_finite_number(value):
    """True for an int or float that is finite (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def number(value):
    """``value`` as a finite float, or None for bools, strings, NaN, infinities and missing."""
    return float(value) if is_finite_number(value) else None


def metric(row, name):
    """The finite number stored as ``row["metrics"][name]``, else None."""
    metrics = row.get("metrics")
    return number(metrics.get(name)) if isinstance(metrics, dict) else None


def val_bpb_of(row):
    """The run's val_bpb when it is a positive finite number, else None (not comparable)."""
    metrics = row.get("metrics")
    value = metrics.get("val_bpb") if type(metrics) is dict else None
    if type(value) is float and 0.0 < value <= 1e6:  # the common case, kept cheap
        return value
    value = number(value)
    return value if value is not None and 0.0 < value <= METRIC_LIMITS["val_bpb"] else None


def memory_gb_of(row):
    """Peak VRAM in GB (MiB / 1024, one decimal) as results.tsv writes it, else None."""
    peak = metric(row, "peak_vram_mb")
    return round(peak / 1024, 1) if peak is not None else None


def text_of(row, key):
    """A text field as a string ('' when missing or null; other values stringified)."""
    value = row.get(key)
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def mapping_of(row, key):
    """An object field (``row[key]``) when it is a dict, else {} (also for a row that
    is not a dict)."""
    value = row.get(key) if isinstance(row, dict) else None
    return value if isinstance(value, dict) else {}


def status_of(row):
    """The lower-cased, stripped status ('' when missing or not text)."""
    status = row.get("status")
    if status == "keep" or status == "discard" or status == "crash":
        return status
    return status.strip().lower() if isinstance(status, str) else ""


def short_commit(value):
    """The first 7 characters of a commit id, lower-cased; '' for anything that is not text."""
    return value.strip()[:COMMIT_LENGTH].lower() if isinstance(value, str) else ""


def run_entry(row):
    """The compact description of one run used by the registry, packets and reports."""
    return {
        "run_id": text_of(row, "run_id"),
        "timestamp_utc": text_of(row, "timestamp_utc"),
        "commit": text_of(row, "commit"),
        "branch": text_of(row, "branch"),
        "family": text_of(row, "family"),
        "status": status_of(row),
        "description": text_of(row, "description"),
        "val_bpb": val_bpb_of(row),
        "memory_gb": memory_gb_of(row),
    }
