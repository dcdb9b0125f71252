"""Read-only views over the ledger: show, list, compare and brief.

Every function here is pure: it takes ledger rows (full records or the store's slim
rows, in ledger order) and plain values such as ``now``, and returns JSON-compatible
dicts. The ``format_*`` functions turn those dicts into the CLI's text output.
Filesystem and git access (archived files, train.py diffs) live in queries.py.
"""

from __future__ import annotations

import re
from datetime import timedelta

from .fingerprint import constant_delta
from .records import METRIC_FIELDS, STATUSES, parse_utc
from .fields import mapping_of, metric, run_entry, text_of


class RunNotFound(LookupError):
    """A run reference matched no run, or more than one."""


# C0/C1 control characters and the bidirectional overrides that reorder a terminal line.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match):
    char = match.group()
    return " " if char in "\t\n\r\v\f" else f"\\u{ord(char):04x}"


def one_line(value) -> str:
    """``value`` as printable text on one line: tabs, newlines and carriage returns
    become spaces, other control characters (ANSI escapes) and bidi overrides become
    visible ``\\uXXXX`` escapes. Ledger text is agent-written; printing it raw could
    split a line or drive the terminal. JSON output keeps the text as stored."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return _UNPRINTABLE.sub(_escape, text) if _UNPRINTABLE.search(text) else text


def _newest_first(rows):
    """Rows sorted newest first: by timestamp, ties (and bad timestamps) by ledger order."""
    keyed = [(text_of(row, "timestamp_utc"), index) for index, row in enumerate(rows)]
    keyed.sort(reverse=True)
    return [rows[index] for _, index in keyed]


# ---------------------------------------------------------------- show

def resolve_run(rows, ref: str, *, champion_id: str | None = None) -> dict:
    """The one run that ``ref`` names: a run id, a unique run-id prefix, a unique commit
    prefix, or ``champion``. Raises RunNotFound with a one-line message otherwise."""
    ref = (ref or "").strip()
    if not ref:
        raise RunNotFound("empty run reference")
    if ref == "champion":
        if not champion_id:
            raise RunNotFound("no champion yet")
        ref = champion_id
    exact = [row for row in rows if row.get("run_id") == ref]
    if exact:
        return exact[-1]
    for field in ("run_id", "commit"):
        matches = [row for row in rows if text_of(row, field).startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            ids = ", ".join(text_of(row, "run_id") for row in matches[:5])
            more = "" if len(matches) <= 5 else f" and {len(matches) - 5} more"
            raise RunNotFound(f"run reference {ref!r} is ambiguous: {ids}{more}")
    raise RunNotFound(f"no run matches {ref!r}")


def artifact_paths(record: dict) -> list[str]:
    """The archive paths a record lists (``artifacts`` as a dict of paths, or a list)."""
    artifacts = record.get("artifacts")
    paths = artifacts.values() if isinstance(artifacts, dict) else \
        artifacts if isinstance(artifacts, list) else []
    return [path for path in paths if isinstance(path, str) and path]


# ---------------------------------------------------------------- list

def filter_runs(rows, *, status=None, family=None, tag=None, since_hours=None,
                now=None) -> list[dict]:
    """Rows matching every given filter, newest first.

    ``status`` is one status or a comma-separated list; ``tag`` must be among the
    run's tags; ``since_hours`` keeps runs stamped at or after ``now`` minus that many
    hours and not after ``now`` (``now`` an ISO string or datetime)."""
    statuses = None
    if status:
        statuses = {part.strip() for part in status.split(",") if part.strip()}
    cutoff = None
    if since_hours is not None:
        now_dt = parse_utc(now)
        if now_dt is None:
            raise ValueError("since_hours needs a valid now")
        cutoff = now_dt - timedelta(hours=since_hours)
    tag = tag.strip().lower() if tag else None
    selected = []
    for row in rows:
        if statuses is not None and row.get("status") not in statuses:
            continue
        if family and row.get("family") != family:
            continue
        if tag:
            tags = row.get("tags")
            if not isinstance(tags, list) or tag not in tags:
                continue
        if cutoff is not None:
            stamp = parse_utc(row.get("timestamp_utc"))
            if stamp is None or not cutoff <= stamp <= now_dt:  # future-dated: not "last N h"
                continue
        selected.append(row)
    return _newest_first(selected)


def list_entry(row: dict) -> dict:
    """The compact form of a run used by ``list``, ``compare`` and ``brief``."""
    packet = mapping_of(row, "decision_packet")
    return dict(run_entry(row), next_action=text_of(packet, "next_action") or None,
                origin=text_of(mapping_of(row, "origin"), "store") or None)


# ---------------------------------------------------------------- compare

def compare_runs(run_a: dict, run_b: dict) -> dict:
    """Differences from run A to run B: metric deltas (B minus A), the constants that
    differ between their train.py fingerprints (None when a run has none), and the
    hyperparameters and provenance fields that differ."""
    metrics = []
    for name in METRIC_FIELDS:
        a, b = metric(run_a, name), metric(run_b, name)
        if a is None and b is None:
            continue
        delta = None if a is None or b is None else b - a
        relative = None if delta is None or a == 0 else delta / abs(a)
        metrics.append({"name": name, "a": a, "b": b, "delta": delta,
                        "relative": relative})
    return {
        "a": list_entry(run_a),
        "b": list_entry(run_b),
        "same_commit": bool(run_a.get("commit")) and run_a.get("commit") == run_b.get("commit"),
        "metrics": metrics,
        "config_delta": _config_delta(run_a, run_b),
        "code_changed": _code_changed(run_a, run_b),
        "hyperparameter_delta": _dict_delta(run_a.get("hyperparameters"),
                                            run_b.get("hyperparameters")),
        "provenance_delta": _dict_delta(run_a.get("provenance"), run_b.get("provenance"),
                                        skip=("started_at_utc", "finished_at_utc")),
    }


def _constants(row):
    config = row.get("config")
    if isinstance(config, dict) and isinstance(config.get("constants"), dict):
        return config["constants"]
    return None


def _config_delta(run_a, run_b):
    a, b = _constants(run_a), _constants(run_b)
    return None if a is None or b is None else constant_delta(a, b)


def _code_changed(run_a, run_b):
    """True/False when both runs carry a code hash, else None (unknown)."""
    hashes = []
    for row in (run_a, run_b):
        config = row.get("config")
        code = config.get("code_sha256") if isinstance(config, dict) else None
        if not code:
            return None
        hashes.append(code)
    return hashes[0] != hashes[1]


def _dict_delta(a, b, skip=()):
    """[{name, old, new}] for the keys whose values differ; None if either is absent."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return None
    delta = []
    for name in sorted(set(a) | set(b)):
        if name in skip:
            continue
        if a.get(name) != b.get(name):
            delta.append({"name": name, "old": a.get(name), "new": b.get(name)})
    return delta


# ---------------------------------------------------------------- brief

def brief_data(rows, registry: dict, *, now: str, last: int = 5) -> dict:
    """One screen for an agent starting or resuming a session, read from the board
    (the registry): the champion (with its replicate n, spread and steps), the noise
    floor, the decisions (open ones first, closed ones counted), the discarded ideas
    to avoid (replicates never among them), crashes, status counts, plateau and the
    next recommended action."""
    from .decisions import noise_advice, packet_states
    from .facts import facts_of
    registry = registry if isinstance(registry, dict) else {}
    champion = registry.get("champion") if isinstance(registry.get("champion"), dict) else None
    counts = dict({status: 0 for status in STATUSES}, **(registry.get("status_counts") or {}))
    states = packet_states(rows, facts_of(rows), registry)
    with_packets = [index for index, state in enumerate(states) if state is not None]
    still_open = [index for index in with_packets if states[index] == "open"]
    chosen = sorted(still_open, reverse=True)[:last]
    chosen += sorted(set(with_packets) - set(still_open), reverse=True)[:last - len(chosen)]
    recent_packets = []
    for index in chosen:
        row = rows[index]
        packet = row["decision_packet"]
        recent_packets.append({
            "run_id": text_of(row, "run_id"),
            "status": text_of(row, "status"),
            "val_bpb": metric(row, "val_bpb"),
            "next_action": text_of(packet, "next_action"),
            "priority": text_of(packet, "priority"),
            "summary": text_of(packet, "summary"),
            "description": text_of(row, "description"),
            "state": states[index],
        })
    clusters = [
        {"label": text_of(c, "label"), "size": c.get("size"), "crashes": c.get("crashes"),
         "best_val_bpb": c.get("best_val_bpb")}
        for c in (registry.get("failure_clusters") or []) if isinstance(c, dict)
    ]
    noise = registry.get("noise_floor") if isinstance(registry.get("noise_floor"), dict) else None
    plateau = registry.get("plateau") if isinstance(registry.get("plateau"), dict) else None
    sections = registry.get("classes") if isinstance(registry.get("classes"), list) else []
    current = sections[0] if sections and isinstance(sections[0], dict) else {}
    advice = noise_advice(noise, current.get("baseline_commit")) if noise and champion else None
    return {
        "generated_at": now,
        "experiments": len(rows),
        "status_counts": counts,
        "champion": _champion_summary(champion),
        "comparability_class": registry.get("current_class_label"),
        "noise_floor": noise,
        "noise_advice": advice,
        "plateau": plateau,
        "last_decisions": recent_packets,
        "open_decisions": len(still_open),
        "closed_decisions": len(with_packets) - len(still_open),
        "failure_clusters": [c for c in clusters if not c["crashes"]],
        "crash_clusters": [c for c in clusters if c["crashes"]],
        "next_action": _next_action(recent_packets, champion, plateau, noise),
    }


def _champion_summary(champion):
    """The registry's champion entry, cut to what an agent needs (n and sd come from
    its replicate group; provisional = it rests on a single run)."""
    if not champion:
        return None
    summary = {key: champion.get(key) for key in
               ("run_id", "commit", "val_bpb", "memory_gb", "description", "n", "sd",
                "num_steps")}
    summary["n"] = summary["n"] or 1
    summary["provisional"] = bool(champion.get("provisional", summary["n"] < 2))
    return summary


def _next_action(recent_packets, champion, plateau, noise=None):
    """What to do next: measure the noise while σ is the prior, explore on a plateau,
    else the newest open packet's action."""
    if not champion and not recent_packets:
        return {"action": "baseline",
                "reason": "no runs yet: run train.py unmodified to record the baseline, "
                          "then rerun it with AUTORESEARCH_SEED=43 and 44 (--mode replicate)"}
    last = recent_packets[0]["next_action"] if recent_packets else None
    if champion and (noise or {}).get("source") == "prior" and last in ("promote", None):
        return {"action": "replicate",
                "reason": "measure the noise first: rerun the baseline with "
                          "AUTORESEARCH_SEED=43 and 44 (--mode replicate)"}
    if plateau and plateau.get("plateau"):
        return {"action": "explore",
                "reason": text_of(plateau, "recommendation")
                or "plateau: the last runs brought no gain beyond the noise floor"}
    if recent_packets and recent_packets[0]["state"] == "open":
        packet = recent_packets[0]
        return {"action": packet["next_action"], "run_id": packet["run_id"],
                "reason": packet["summary"]}
    return {"action": "branch_followup",
            "reason": "build on the champion with a new idea (check it first)"}


# ---------------------------------------------------------------- text output

def _num(value, digits=6):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _metric_label(name):
    """Metric names as the text output shows them: memory in GB everywhere."""
    return "memory_gb" if name == "peak_vram_mb" else name


def _metric_text(name, value, signed=False):
    """val_bpb at 6 decimals; peak VRAM as GB at 1 decimal; whole numbers as such;
    other metrics at 4 decimals."""
    if value is None:
        return "-"
    sign = "+" if signed else ""
    if name == "val_bpb":
        return format(value, f"{sign}.6f")
    if name == "peak_vram_mb":
        return format(value / 1024, f"{sign}.1f")
    if float(value).is_integer():
        return format(int(value), f"{sign}d")
    return format(value, f"{sign}.4f")


def format_list(entries) -> str:
    if not entries:
        return "No runs match."
    lines = []
    for e in entries:
        lines.append(
            f"{one_line(e['run_id']):<24} {one_line(e['status']):<7} {_num(e['val_bpb']):>9} "
            f"{_num(e['memory_gb'], 1):>6} GB  {one_line(e['family']) or '-':<12} "
            f"{one_line(e['description'])}"
            + (f"  (from store {one_line(e['origin'])})" if e.get("origin") else ""))
    return "\n".join(lines)


def format_show(record: dict, files: list[str]) -> str:
    entry = list_entry(record)
    lines = [
        f"Run {entry['run_id']}  status={entry['status']}  commit={entry['commit']}"
        f"  family={entry['family'] or '-'}",
        f"  time: {entry['timestamp_utc']}  branch: {text_of(record, 'branch') or '-'}"
        f"  parent: {text_of(record, 'parent_commit') or '-'}",
        f"  description: {entry['description']}",
    ]
    if record.get("hypothesis"):
        lines.append(f"  hypothesis: {text_of(record, 'hypothesis')}")
    if record.get("tags"):
        lines.append(f"  tags: {', '.join(map(str, record.get('tags') or []))}")
    metrics = mapping_of(record, "metrics")
    shown = [f"{_metric_label(name)}={_metric_text(name, metric(record, name))}"
             for name in METRIC_FIELDS
             if metrics.get(name) is not None]
    lines.append("  metrics: " + (" ".join(shown) if shown else "none"))
    error = record.get("error")
    if isinstance(error, dict) and error.get("summary"):
        lines.append(f"  error: {text_of(error, 'summary')}")
    guard = record.get("novelty_guard")
    if isinstance(guard, dict) and guard.get("classification"):
        policy = guard.get("policy") if isinstance(guard.get("policy"), dict) else {}
        lines.append(f"  novelty: {guard.get('classification')} "
                     f"(mode {guard.get('mode', '-')}, decision {policy.get('decision', '-')})")
    packet = record.get("decision_packet")
    if isinstance(packet, dict):
        lines.append(f"  decision: action={text_of(packet, 'next_action')} "
                     f"priority={text_of(packet, 'priority')}")
        if packet.get("summary"):
            lines.append(f"  summary: {text_of(packet, 'summary')}")
    imported = record.get("imported")
    if isinstance(imported, dict):
        lines.append(f"  imported from {text_of(imported, 'source')} row {imported.get('row')}")
    lines.append("  files: " + (", ".join(files) if files else "none archived"))
    return "\n".join(one_line(line) for line in lines)


def format_compare(comparison: dict, diff: str | None = None) -> str:
    a, b = comparison["a"], comparison["b"]
    lines = [one_line(f"A: {a['run_id']} ({a['status']}, {a['commit']}) {a['description']}"),
             one_line(f"B: {b['run_id']} ({b['status']}, {b['commit']}) {b['description']}"),
             "Metrics (B - A):"]
    for m in comparison["metrics"]:
        lines.append(f"  {_metric_label(m['name']):<17} {_metric_text(m['name'], m['a']):>12} "
                     f"{_metric_text(m['name'], m['b']):>12} "
                     f"{_metric_text(m['name'], m['delta'], signed=True):>12}")
    delta = comparison["config_delta"]
    if delta is None:
        lines.append("Config delta: unknown (a run has no train.py fingerprint)")
    elif not delta:
        lines.append("Config delta: no constant differs"
                     + (" (code differs)" if comparison.get("code_changed") else ""))
    else:
        lines.append("Config delta:")
        lines.extend(f"  {d['name']}: {d['old']!r} -> {d['new']!r}" for d in delta)
    for key, title in (("hyperparameter_delta", "Hyperparameters"),
                       ("provenance_delta", "Provenance")):
        if comparison.get(key):
            lines.append(f"{title} that differ:")
            lines.extend(f"  {d['name']}: {d['old']!r} -> {d['new']!r}"
                         for d in comparison[key])
    if comparison.get("same_commit"):
        lines.append("train.py diff: same commit")
    elif diff is None:
        lines.append("train.py diff: not available (git lacks a commit)")
    elif not diff.strip():
        lines.append("train.py diff: none")
    else:
        lines.append("train.py diff:")
        lines.append(diff.rstrip("\n"))
    return "\n".join(lines)


def format_brief(brief: dict) -> str:
    from .render import champion_line, noise_line
    counts = brief["status_counts"]
    lines = [f"MemoryLab brief ({brief['generated_at']}): {brief['experiments']} runs, "
             f"keep/discard/crash {counts.get('keep', 0)}/{counts.get('discard', 0)}/"
             f"{counts.get('crash', 0)}",
             champion_line(brief["champion"])]
    if brief["champion"]:
        lines.append(f"Best so far (the champion value): "
                     f"{_num(brief['champion'].get('val_bpb'))} val_bpb")
    if brief.get("comparability_class"):
        lines.append(f"Comparability class: {brief['comparability_class']}")
    if brief.get("noise_floor"):
        lines.append(f"Noise floor: {noise_line(brief['noise_floor'])}")
    if brief.get("noise_advice") and (brief["noise_floor"] or {}).get("source") == "prior":
        lines.append(f"Noise: {brief['noise_advice']}")
    plateau = brief.get("plateau")
    if plateau and plateau.get("plateau"):
        lines.append("Plateau: the last runs brought no gain beyond the noise floor")
    if brief["last_decisions"]:
        lines.append(f"Decisions ({brief.get('open_decisions', 0)} open, "
                     f"{brief.get('closed_decisions', 0)} closed; open first):")
        for d in brief["last_decisions"]:
            lines.append(f"  [{d['state']}] {d['run_id']} {d['status']:<7} "
                         f"{d['next_action']}/{d['priority']}: {d['summary']}")
    if brief["failure_clusters"]:
        lines.append("Avoid (discarded ideas; their best value says how close they came):")
        for c in brief["failure_clusters"]:
            best = c.get("best_val_bpb")
            best = f", best {best:.6f}" if isinstance(best, float) else ""
            lines.append(f"  {c['label']} (size {c['size']}{best})")
    if brief.get("crash_clusters"):
        lines.append("Crashes (a fix of a crashed idea is allowed):")
        for c in brief["crash_clusters"]:
            lines.append(f"  {c['label']} (size {c['size']})")
    action = brief["next_action"]
    lines.append(f"Next: {action['action']}: {action['reason']}")
    return "\n".join(one_line(line) for line in lines)
