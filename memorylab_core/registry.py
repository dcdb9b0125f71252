"""The registry: champion board per comparability class, lineages and failure clusters.

Pure functions over ledger records or slim index rows (plain dicts, ledger order). No file,
git or clock access; ``now`` is passed in. Every function is linear in the number of rows
(dictionaries group, a heap keeps the top few), so the registry of a 100k-run ledger takes
a fraction of a second.

Reading is tolerant. A value counts as a number only when it is an int or float that is
finite and not a bool; a val_bpb must also be positive. Anything else (missing, null, the
string "0.90", ``true``, NaN) is "not comparable" and never ranks. Statuses are compared
lower-cased; an unknown status is counted in ``status_counts`` under its own name but
never ranks and never clusters.

Rules (the published contract, refined by issue 5):

- Comparability classes (noise.comparability_class: device, time budget, max_seq_len,
  eval_tokens, prepare.py hash when known; records without any form the "legacy" class).
  Runs are ranked only against runs of their own class; ``classes`` has one section per
  class (champion, challengers, noise floor, plateau), the current class first.
- Current class: the class of the most recent run, skipping CPU classes (device "cpu...")
  while any other class has runs, so a CPU smoke run never displaces a GPU champion. The
  top-level champion, challengers, noise_floor and plateau are those of the current class.
- Replicate groups: runs of one class that may rank (kept or discarded, comparable
  val_bpb) grouped by noise.replicate_key (config fingerprint, else commit). Without
  reruns every run is its own group.
- Champion: the group with the lowest mean val_bpb among groups with a kept run; when no
  run is kept, among groups of discarded runs; crashed runs never. Ties go to the earlier
  group. Its entry is the group's first kept run (the original idea), with ``val_bpb`` =
  the group mean (``run_val_bpb`` = the run's own), n, sd, min, max and ``provisional``
  (n = 1). Without replicates this is exactly "the lowest val_bpb among kept runs".
- Challengers: the next three groups of the same pool, each with ``delta`` = its mean
  minus the champion's (positive means worse).
- Noise floor: noise.noise_floor over the class's replicate groups (pooled within-group
  sd, else the prior 0.001 marked "prior"). Plateau: noise.plateau over the class's
  ranked runs with that σ (last 10 runs), plus the least-tried knobs when flat.
- Lineages: a run's lineage root is found by following ``parent_commit`` while the parent
  is itself a commit in the ledger (commits compared by their first 7 characters; cycles
  stop where they close). Lineages are ranked by their best val_bpb among runs of the
  current class (lineages without one last, then by size); the top five are listed with
  runs, unique commits, kept runs and best run.
- Failure clusters: discarded and crashed runs grouped by a normalised signature, one
  dictionary pass, never pairwise. A crash's signature is its error kind (out of memory,
  else the exception name plus the first words of its message, else the first words of
  the error summary). A discard's signature is the set of knob changes the novelty parser
  found (``novelty_features.changes``: knob and direction), else the salient words of its
  description (lower-cased, numbers and stop words dropped, first five kept, sorted). The
  five largest clusters are listed with label, size, crashes, best val_bpb and examples.
- ``status_counts`` always has keep, discard and crash; ``experiments`` counts every row.
"""

import heapq
import math
import re

from memorylab_core import noise, stats

SCHEMA_VERSION = 2
KNOWN_STATUSES = ("keep", "discard", "crash")
CHALLENGER_COUNT = 3
LINEAGE_COUNT = 5
CLUSTER_COUNT = 5
CLUSTER_EXAMPLES = 3
CLASS_LIMIT = 20
RUN_IDS_SHOWN = 10
PLATEAU_WINDOW = 10
KNOB_ADVICE_COUNT = 3
COMMIT_LENGTH = 7

# ---------------------------------------------------------------------------
# Tolerant field access (the one home for these; decisions and render use them)


def number(value):
    """``value`` as a finite float, or None for bools, strings, NaN, infinities and missing."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def metric(row, name):
    """The finite number stored as ``row["metrics"][name]``, else None."""
    metrics = row.get("metrics")
    return number(metrics.get(name)) if isinstance(metrics, dict) else None


def val_bpb_of(row):
    """The run's val_bpb when it is a positive finite number, else None (not comparable)."""
    metrics = row.get("metrics")
    value = metrics.get("val_bpb") if type(metrics) is dict else None
    if type(value) is float and 0.0 < value < math.inf:  # the common case, kept cheap
        return value
    value = number(value)
    return value if value is not None and value > 0.0 else None


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


def status_of(row):
    """The lower-cased status ('' when missing or not text)."""
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


# ---------------------------------------------------------------------------
# Crash kinds (shared with decisions: memory exhaustion means fix_and_retry)

_OOM = re.compile(
    r"out of memory|outofmemory|\bmemoryerror\b|cannot allocate memory|bad_alloc|"
    r"alloc_failed|erroroutofmemory|memoryallocation|resource_exhausted|oom[- _]?kill|"
    r"\boom\b",
    re.IGNORECASE,
)
_EXCEPTION = re.compile(r"\b((?:[A-Za-z_]\w*\.)*([A-Z]\w*(?:Error|Exception|Interrupt|Exit)))\b")
_WORD = re.compile(r"[a-z][a-z_]*")


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
            words = _WORD.findall(message.lower())[:3]
            return " ".join([found.group(2) + (":" if words else "")] + words)
    words = _WORD.findall(summary.lower())[:4]
    return " ".join(words) if words else "unknown error"


# ---------------------------------------------------------------------------
# Replicate groups, champion and challengers (within one comparability class)


def ranked_rows(rows, statuses=None, values=None):
    """(rows, statuses, values) of the rows that may rank: kept or discarded, with a
    comparable val_bpb. ``statuses`` and ``values`` of all rows save recomputing."""
    statuses = [status_of(row) for row in rows] if statuses is None else statuses
    values = [val_bpb_of(row) for row in rows] if values is None else values
    indices = [index for index, status in enumerate(statuses)
               if (status == "keep" or status == "discard") and values[index] is not None]
    return ([rows[index] for index in indices], [statuses[index] for index in indices],
            [values[index] for index in indices])


def group_runs(rows, statuses=None, values=None):
    """{replicate key: group} over the rows that may rank (pass one class's rows).

    A group holds ``indices`` (into ``rows``), ``values``, ``kept`` (count of kept runs),
    and ``first`` (index of its first kept run, else of its first run: the original idea).
    Keys are noise.replicate_key: the config fingerprint, else the commit, else the run.
    ``statuses`` and ``values`` (status_of and val_bpb_of of each row) save recomputing.
    """
    statuses = [status_of(row) for row in rows] if statuses is None else statuses
    values = [val_bpb_of(row) for row in rows] if values is None else values
    groups = {}
    for index, row in enumerate(rows):
        status = statuses[index]
        if status != "keep" and status != "discard":
            continue
        value = values[index]
        key = noise.replicate_key(row) if value is not None else None
        if key is None:
            continue
        group = groups.get(key)
        if group is None:
            group = groups[key] = {"key": key, "indices": [], "values": [], "kept": 0,
                                   "first": index}
        group["indices"].append(index)
        group["values"].append(value)
        if status == "keep":
            if not group["kept"]:
                group["first"] = index
            group["kept"] += 1
    return groups


def group_stats(values):
    """n, mean, sd (None below two runs), min, max of a group's val_bpb values."""
    return {"n": len(values), "mean": stats.mean(values),
            "sd": stats.sample_sd(values) if len(values) >= 2 else None,
            "min": min(values), "max": max(values)}


def _score(group):
    if "mean" not in group:
        group["mean"] = stats.mean(group["values"])
    return group["mean"]


def ranking(groups, count):
    """The ``count`` best groups by mean: groups with a kept run, else all of them."""
    pool = [group for group in groups.values() if group["kept"]] or list(groups.values())
    return heapq.nsmallest(count, pool, key=lambda group: (_score(group), group["indices"][0]))


def group_entry(rows, group, class_key=None):
    """A board entry: the group's representative run (its first kept run) plus the group.

    ``val_bpb`` is the group mean (the run's own value when n = 1; ``run_val_bpb`` keeps
    the run's), with n, sd, min, max, ``provisional`` (rests on a single run), the seeds
    used and the last run ids of the group.
    """
    entry = run_entry(rows[group["first"]])
    summary = group_stats(group["values"])
    entry["run_val_bpb"] = entry["val_bpb"]
    entry["val_bpb"] = summary["mean"]
    entry.update(summary)
    entry["provisional"] = summary["n"] < 2
    entry["group"] = group["key"]
    entry["class"] = class_key
    entry["seeds"] = sorted({noise.run_seed(rows[index]) for index in group["indices"]})
    entry["run_ids"] = [text_of(rows[index], "run_id") for index in group["indices"][-RUN_IDS_SHOWN:]]
    return entry


def floor_of_groups(groups, rows):
    """noise.noise_floor of one class's ranked ``rows`` from their ``group_runs`` groups.

    The same dict as noise.noise_floor(rows) (a test holds them equal) without re-deriving
    every row's class and replicate key, which is most of the registry's time at 100k runs:
    the pooled sd comes from stats.pooled_sd over the groups' values; the prior, the
    zero-spread case and their notes are noise_floor's own.
    """
    replicated = [group for group in groups.values() if len(group["values"]) >= 2]
    measured, dof = stats.pooled_sd([group["values"] for group in replicated])
    if measured is None or measured == 0.0:
        return noise.noise_floor([rows[index] for group in replicated for index in group["indices"]])
    floor = noise.noise_floor([])
    floor.update(sigma=measured, dof=dof, source="measured", groups=len(replicated),
                 measured_sigma=measured, note=None)
    return floor


def champion_board(rows, count=CHALLENGER_COUNT, class_key=None, groups=None):
    """(champion entry or None, challenger entries with ``delta``) for rows of one class.

    Ranked by replicate-group mean; without replicates every run is its own group, so the
    champion is simply the lowest val_bpb (kept runs first). ``delta`` = entry mean minus
    the champion mean (positive = worse).
    """
    groups = group_runs(rows) if groups is None else groups
    best = ranking(groups, count + 1)
    if not best:
        return None, []
    champion = group_entry(rows, best[0], class_key)
    challengers = []
    for group in best[1:]:
        entry = group_entry(rows, group, class_key)
        entry["delta"] = round(entry["val_bpb"] - champion["val_bpb"], 6)
        challengers.append(entry)
    return champion, challengers


def champion_of(rows, class_key=None):
    """Only the champion entry (or None) of rows of one class."""
    return champion_board(rows, 0, class_key)[0]


# ---------------------------------------------------------------------------
# Lineages


def lineage_roots(rows, commits=None):
    """{short commit: short root commit} following parent commits through the ledger."""
    commits = [short_commit(row.get("commit")) for row in rows] if commits is None else commits
    parent = {}
    for row, commit in zip(rows, commits):
        if commit and commit not in parent:
            parent[commit] = short_commit(row.get("parent_commit"))
    root, visiting = {}, set()
    for start in parent:
        if start in root:
            continue
        path, node = [], start
        while True:
            found = root.get(node)
            if found is not None:
                break
            if node in visiting:  # a cycle closes here
                found = node
                break
            visiting.add(node)
            path.append(node)
            up = parent[node]
            if not up or up not in parent:
                found = node
                break
            node = up
        for node in path:
            root[node] = found
        visiting.clear()
    return root


def lineages(rows, count=LINEAGE_COUNT, ranks=None, statuses=None, values=None):
    """The ``count`` best lineages. ``ranks`` (a list of bools, one per row) limits which
    runs may be a lineage's best run (e.g. only runs of the current comparability class).
    ``statuses`` and ``values`` (status_of and val_bpb_of of each row) save recomputing."""
    statuses = [status_of(row) for row in rows] if statuses is None else statuses
    values = [val_bpb_of(row) for row in rows] if values is None else values
    commits = [short_commit(row.get("commit")) for row in rows]
    roots = lineage_roots(rows, commits)
    groups = {}  # root -> [runs, kept, best value, best index, unique commits, branches]
    for commit, root in roots.items():
        group = groups.get(root)
        if group is None:
            group = groups[root] = [0, 0, None, None, 0, set()]
        group[4] += 1
    for index, row in enumerate(rows):
        commit = commits[index]
        root = roots.get(commit) or "(no commit)"
        group = groups.get(root)
        if group is None:
            group = groups[root] = [0, 0, None, None, 0, set()]
        group[0] += 1
        branch = row.get("branch")
        if branch and type(branch) is str and len(group[5]) < 5:
            group[5].add(branch)
        status = statuses[index]
        if status == "keep":
            group[1] += 1
        elif status != "discard":
            continue
        if ranks is not None and not ranks[index]:
            continue
        value = values[index]
        if value is not None and (group[2] is None or value < group[2]):
            group[2], group[3] = value, index

    def order(item):
        root, (runs, _, best, _, _, _) = item
        return (best is None, best or 0.0, -runs, root)

    result = []
    for root, (runs, kept, best, best_index, unique, branches) in heapq.nsmallest(
            count, groups.items(), key=order):
        result.append({
            "root_commit": root,
            "runs": runs,
            "unique_commits": unique,
            "kept_runs": kept,
            "best_run": run_entry(rows[best_index]) if best_index is not None else None,
            "best_val_bpb": best,
            "branches": sorted(branches),
        })
    return result


# ---------------------------------------------------------------------------
# Failure clusters

STOP_WORDS = frozenset(
    "a an and the to of for in on at by with from into as is are be it its this that try "
    "trying tried use using used than then via vs per run runs instead maybe slightly bit "
    "also more less".split()
)


def _feature_changes(features):
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
    changes = _feature_changes(row.get("novelty_features"))
    if changes:
        label = ", ".join(changes)
        return "knobs:" + label, label
    description = text_of(row, "description")
    key = description_key(description)
    label = description.strip().splitlines()[0][:80] if description.strip() else "(no description)"
    return "words:" + key, label


def failure_clusters(rows, count=CLUSTER_COUNT, statuses=None, values=None):
    """The ``count`` largest clusters of discarded and crashed runs (linear, no pairs)."""
    statuses = [status_of(row) for row in rows] if statuses is None else statuses
    values = [val_bpb_of(row) for row in rows] if values is None else values
    clusters, memo = {}, {}
    for index, row in enumerate(rows):
        status = statuses[index]
        if status not in ("discard", "crash"):
            continue
        # Many runs share a description or an error; normalise each text once.
        if status == "crash":
            memo_key = ("crash", error_text(row.get("error")))
        else:
            features = row.get("novelty_features")
            sig = features.get("sig") if isinstance(features, dict) else None
            memo_key = ("discard", text_of(row, "description"), sig if isinstance(sig, str) else None)
        found = memo.get(memo_key)
        if found is None:
            found = memo[memo_key] = failure_signature(row)
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


# ---------------------------------------------------------------------------
# Plateau advice: the least-tried knobs


def knob_counts(rows):
    """{knob: number of runs whose parsed changes touched it}; the vocabulary also takes
    the upper-case constants of the latest config fingerprint (count 0 when never tried)."""
    counts = {}
    for row in rows:
        features = row.get("novelty_features")
        changes = features.get("changes") if type(features) is dict else None
        if not changes or type(changes) is not list:
            continue
        for knob in {change.get("knob") for change in changes if type(change) is dict}:
            if knob and type(knob) is str:
                counts[knob] = counts.get(knob, 0) + 1
    for row in reversed(rows):
        config = row.get("config")
        constants = config.get("constants") if isinstance(config, dict) else None
        if isinstance(constants, dict) and constants:
            for name in constants:
                if isinstance(name, str):
                    counts.setdefault(name, 0)
            break
    return counts


def least_tried_knobs(rows, limit=KNOB_ADVICE_COUNT):
    """The ``limit`` knobs tried least often (ties by name); [] when nothing is known."""
    counts = knob_counts(rows)
    return [name for name, _ in heapq.nsmallest(limit, counts.items(), key=lambda kv: (kv[1], kv[0]))]


def plateau_of(rows, sigma, window=PLATEAU_WINDOW, values=None):
    """noise.plateau over the ranked rows of one class, plus ``recommendation`` and
    ``least_tried_knobs`` (explore mode) when the class is on a plateau.

    Runs before the window matter only through their best, so noise.plateau is handed
    that one run plus the window (the reported ``runs`` is the full count). ``values``
    (val_bpb_of of each row) saves recomputing."""
    window = max(1, int(window))
    before = rows[:-window]
    if before:
        values = [val_bpb_of(row) for row in before] if values is None else values
        best = min(range(len(before)), key=lambda index: values[index] or math.inf)
        found = noise.plateau([before[best]] + rows[-window:], sigma, window)
        found["runs"] = len(rows)
    else:
        found = noise.plateau(rows, sigma, window)
    found["least_tried_knobs"] = []
    found["recommendation"] = ""
    if found.get("plateau"):
        knobs = least_tried_knobs(rows)
        found["least_tried_knobs"] = knobs
        found["recommendation"] = (
            f"plateau: no gain > sigma ({found['sigma']:.6f}) in the last {found['window']} runs; "
            "switch to explore mode"
            + (f" and try the least-tried knobs: {', '.join(knobs)}" if knobs else ""))
    return found


# ---------------------------------------------------------------------------
# Comparability classes and the whole registry


def is_smoke_class(class_key):
    """A CPU class (smoke tests): never the current class while another class has runs."""
    return isinstance(class_key, str) and class_key.lower().startswith("device=cpu")


def class_section(rows, class_key, *, plateau_window=PLATEAU_WINDOW, statuses=None, values=None):
    """Champion board, noise floor and plateau of the rows of one comparability class."""
    statuses = [status_of(row) for row in rows] if statuses is None else statuses
    ranked, ranked_statuses, ranked_values = ranked_rows(rows, statuses, values)
    groups = group_runs(ranked, ranked_statuses, ranked_values)
    champion, challengers = champion_board(ranked, CHALLENGER_COUNT, class_key, groups)
    floor = floor_of_groups(groups, ranked)
    latest = rows[-1] if rows else {}
    return {
        "class": class_key,
        "label": noise.class_label(class_key),
        "smoke": is_smoke_class(class_key),
        "experiments": len(rows),
        "status_counts": status_counts(rows, statuses),
        "latest_run_id": text_of(latest, "run_id"),
        "latest_timestamp_utc": text_of(latest, "timestamp_utc"),
        "champion": champion,
        "challengers": challengers,
        "replicate_groups": sum(1 for group in groups.values() if len(group["values"]) >= 2),
        "noise_floor": floor,
        "plateau": plateau_of(ranked, floor["sigma"], plateau_window, ranked_values),
    }


def class_keys_of(rows):
    """noise.comparability_class of every row, memoised on the provenance fields it reads
    (a ledger has few distinct classes, and the key is the costly part at 100k rows)."""
    memo, keys = {}, []
    fields = [field for field, _ in noise.CLASS_FIELDS]
    for row in rows:
        provenance = row.get("provenance")
        if not isinstance(provenance, dict) or not provenance:
            keys.append(noise.LEGACY_CLASS)
            continue
        try:
            signature = tuple(map(provenance.get, fields))
            key = memo.get(signature)
        except TypeError:  # an unhashable (hand-edited) value
            keys.append(noise.comparability_class(row))
            continue
        if key is None:
            key = memo[signature] = noise.comparability_class(row)
        keys.append(key)
    return keys


def current_class(class_keys):
    """The class of the most recent run (``class_keys`` in ledger order), skipping CPU
    smoke classes while any other class has runs; None for an empty ledger."""
    fallback = None
    for key in reversed(class_keys):
        if not is_smoke_class(key):
            return key
        fallback = fallback or key
    return fallback


def status_counts(rows, statuses=None):
    """{status: runs}, keep, discard and crash always present ('unknown' for no status)."""
    counts = {status: 0 for status in KNOWN_STATUSES}
    for status in ([status_of(row) for row in rows] if statuses is None else statuses):
        status = status or "unknown"
        counts[status] = counts.get(status, 0) + 1
    return counts


def build_registry(rows, *, now=None, plateau_window=PLATEAU_WINDOW):
    """The registry of a ledger (records or slim rows, ledger order) as a JSON-ready dict.

    Keys: schema_version, generated_at_utc (``now``), experiments, status_counts,
    current_class, current_class_label, champion (entry or None), challengers,
    noise_floor, plateau (those four of the current class), classes (one section per
    comparability class, the current one first, then by most recent run; at most
    ``CLASS_LIMIT``), lineages, failure_clusters.
    """
    rows = [row for row in rows if isinstance(row, dict)]
    class_keys = class_keys_of(rows)
    statuses = [status_of(row) for row in rows]
    values = [val_bpb_of(row) for row in rows]
    by_class = {}
    for index, key in enumerate(class_keys):
        by_class.setdefault(key, []).append(index)
    current = current_class(class_keys)
    order = [current] if current is not None else []
    for key in reversed(class_keys):
        if len(order) == min(CLASS_LIMIT, len(by_class)):
            break
        if key not in order:
            order.append(key)
    sections = []
    for key in order:
        members = by_class[key]
        sections.append(class_section([rows[index] for index in members], key,
                                      plateau_window=plateau_window,
                                      statuses=[statuses[index] for index in members],
                                      values=[values[index] for index in members]))
    top = sections[0] if sections else {"champion": None, "challengers": [],
                                        "noise_floor": noise.noise_floor([]),
                                        "plateau": plateau_of([], noise.PRIOR_SIGMA, plateau_window)}
    in_current = [key == current for key in class_keys]
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at_utc": now,
        "experiments": len(rows),
        "status_counts": status_counts(rows, statuses),
        "current_class": current,
        "current_class_label": noise.class_label(current) if current is not None else None,
        "champion": top["champion"],
        "challengers": top["challengers"],
        "noise_floor": top["noise_floor"],
        "plateau": top["plateau"],
        "classes": sections,
        "class_count": len(by_class),
        "lineages": lineages(rows, ranks=in_current, statuses=statuses, values=values),
        "failure_clusters": failure_clusters(rows, statuses=statuses, values=values),
    }
