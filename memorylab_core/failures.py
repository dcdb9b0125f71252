"""Failure clusters: discarded and crashed runs grouped by a normalised signature.

Pure functions over ledger rows; one dictionary pass, never pairwise. A crash's signature
is its error kind (out of memory, else the exception name plus the first words of its
message, else the first words of the error summary). A discard's signature is the set of
knob changes the novelty parser found (``novelty_features.changes``: knob and direction),
else the salient words of its description (lower-cased, numbers and stop words dropped,
first five kept, sorted). The largest clusters are listed with label, size, crashes, best
val_bpb and examples. ``looks_like_oom`` is also what decisions use to tell
``fix_and_retry`` from ``investigate_crash``.
"""

import heapq
import re

from memorylab_core.evidence import NOT_KNOBS, role_of
from memorylab_core.fields import run_entry, status_of, text_of, val_bpb_of

CLUSTER_COUNT = 5
CLUSTER_EXAMPLES = 3

_OOM = re.compile(
    r"out of memory|outofmemory|\bmemoryerror\b|cannot allocate memory|bad_alloc|"
    r"alloc_failed|erroroutofmemory|memoryallocation|resource_exhausted|oom[- _]?kill|"
    r"\boom\b",
    re.IGNORECASE,
)
_EXCEPTION = re.compile(r"\b((?:[A-Za-z_]\w*\.)*([A-Z]\w*(?:Error|Exception|Interrupt|Exit)))\b")
_WORD = re.compile(r"[a-z][a-z_]*")

STOP_WORDS = frozenset(
    "a an and the to of for in on at by with from into as is are be it its this that try "
    "trying tried use using used than then via vs per run runs instead maybe slightly bit "
    "also more less".split()
)


# ---------------------------------------------------------------------------
# Crash kinds


def error_text(error):
    """All the text of a record's ``error`` (summary and tail; tail as a list or a string)."""
    if isinstance(error, str):
        return error
    if not isinstance(error, dict):
        return ""
    parts = []
    for key in ("summary", "tail"):
        value = error.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(item for item in value if isinstance(item, str))
    return "\n".join(parts)


def looks_like_oom(text):
    """True when an error text reads like memory exhaustion (CUDA/HIP/MPS OOM, OOM killer...)."""
    return bool(text) and _OOM.search(text) is not None


def crash_kind(error):
    """A short normalised kind for a crash: 'out of memory', 'ValueError: bad shape', ..."""
    text = error_text(error)
    if looks_like_oom(text):
        return "out of memory"
    summary = error.get("summary") if isinstance(error, dict) else error
    summary = summary if isinstance(summary, str) and summary.strip() else text
    for source in (summary, text):
        found = _EXCEPTION.search(source)
        if found:
            message = source[found.end():].split("\n", 1)[0]
            words = _WORD.findall(message.lower())[:5]
            return " ".join([found.group(2) + (":" if words else "")] + words)
    words = _WORD.findall(summary.lower())[:4]
    return " ".join(words) if words else "unknown error"


# ---------------------------------------------------------------------------
# Signatures


def feature_changes(features):
    """Sorted 'knob direction' strings from novelty features, when the parser found any."""
    if not isinstance(features, dict):
        return []
    changes = features.get("changes")
    if not isinstance(changes, list):
        return []
    found = set()
    for change in changes:
        if isinstance(change, dict) and isinstance(change.get("knob"), str):
            direction = change.get("direction")
            direction = direction if isinstance(direction, str) else ""
            if change["knob"] not in NOT_KNOBS:
                found.add((change["knob"] + " " + direction).strip())
    return sorted(found)


def description_key(text):
    """The salient words of a description: lower-cased, stop words and numbers dropped,
    first five kept, sorted (so "increase LR to 0.05" and "increase lr to 0.06" meet)."""
    words = []
    for word in _WORD.findall(text.lower()):
        word = word.strip("_")
        if len(word) < 2 or word in STOP_WORDS or word in words:
            continue
        words.append(word)
        if len(words) == 5:
            break
    return " ".join(sorted(words))


def failure_signature(row):
    """(signature, label) grouping a discarded or crashed run with its kind of failure."""
    if status_of(row) == "crash":
        kind = crash_kind(row.get("error"))
        return "crash:" + kind, "crash: " + kind
    changes = feature_changes(row.get("novelty_features"))
    if changes:
        label = ", ".join(changes)
        return "knobs:" + label, label
    description = text_of(row, "description")
    key = description_key(description)
    label = description.strip().splitlines()[0][:80] if description.strip() else "(no description)"
    return "words:" + key, label


# ---------------------------------------------------------------------------
# Clusters


def failure_clusters(rows, count=CLUSTER_COUNT, statuses=None, values=None, signatures=None):
    """The ``count`` largest clusters of discarded and crashed runs (linear, no pairs).

    Replicates never count. ``statuses``, ``values`` and ``signatures`` (status_of,
    val_bpb_of and failure_signature of each row, None for a replicate; the registry's
    row facts) save recomputing."""
    statuses = [status_of(row) for row in rows] if statuses is None else statuses
    values = [val_bpb_of(row) for row in rows] if values is None else values
    clusters = {}
    for index, status in enumerate(statuses):
        if status != "discard" and status != "crash":
            continue
        if signatures is not None:
            found = signatures[index]  # None: a replicate, never a failure of an idea
            if found is None:
                continue
        elif role_of(rows[index]) == "replicate":
            continue
        else:
            found = failure_signature(rows[index])
        signature, label = found
        cluster = clusters.get(signature)
        if cluster is None:
            cluster = clusters[signature] = {"label": label, "size": 0, "crashes": 0,
                                             "best": None, "examples": [], "last": 0}
        cluster["size"] += 1
        cluster["last"] = index
        if status == "crash":
            cluster["crashes"] += 1
        value = values[index]
        if value is not None and (cluster["best"] is None or value < cluster["best"]):
            cluster["best"] = value
        examples = cluster["examples"]
        examples.append(index)
        if len(examples) > CLUSTER_EXAMPLES:
            del examples[0]

    def order(item):
        signature, cluster = item
        return (-cluster["size"], -cluster["crashes"], -cluster["last"], signature)

    result = []
    for signature, cluster in heapq.nsmallest(count, clusters.items(), key=order):
        result.append({
            "label": cluster["label"],
            "signature": signature,
            "size": cluster["size"],
            "crashes": cluster["crashes"],
            "best_val_bpb": cluster["best"],
            "examples": [_example(rows[index]) for index in reversed(cluster["examples"])],
        })
    return result


def _example(row):
    entry = run_entry(row)
    return {key: entry[key] for key in ("run_id", "commit", "status", "val_bpb", "description")}
