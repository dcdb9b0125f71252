"""The registry: champion board per comparability class, lineages and failure clusters.

Pure functions over ledger records or slim index rows (plain dicts, ledger order). No file,
git or clock access; ``now`` is passed in. Every function is linear in the number of rows
(dictionaries group, a heap keeps the top few), so the registry of a 100k-run ledger takes
a fraction of a second.

Reading is tolerant (fields.py). A value counts as a number only when it is an int or float
that is finite and not a bool; a val_bpb must also be positive. Anything else (missing, null,
the string "0.90", ``true``, NaN) is "not comparable" and never ranks. Statuses are compared
lower-cased; an unknown status is counted in ``status_counts`` under its own name but
never ranks and never clusters.

Rules (the published contract, refined by issue 5):

- Comparability classes (noise.comparability_class: device, time budget, max_seq_len,
  eval_tokens, prepare.py hash when known; records without any form the "legacy" class).
  Runs are ranked only against runs of their own class; ``classes`` has one section per
  class (champion, challengers, noise floor, plateau), the current class first.
- Current class: the class of the latest run that carries provenance; crashes and
  imported rows never switch it, and CPU classes (device "cpu...") are skipped while
  another class with provenance has runs, so a CPU smoke run never displaces a GPU
  champion. A crash without provenance counts in the current class. The top-level
  champion, challengers, noise_floor and plateau are those of the current class.
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
- Noise floor: noise.floor_from_values over the class's replicate groups (pooled
  within-group sd shrunk toward the prior, else the prior 0.001 marked "prior"), with
  ``warning`` when σ is larger than the effects being tested. Plateau: noise.plateau over the class's
  ranked runs with that σ (last 10 runs), plus the least-tried knobs when flat.
- Lineages (lineages.py): ranked by their best val_bpb among runs of the current class;
  the top five are listed.
- Failure clusters (failures.py): discarded and crashed runs grouped by a normalised
  signature, replicates never (a rerun is evidence about its group); the five largest.
- ``status_counts`` always has keep, discard and crash; ``experiments`` counts every row.

Every per-row value is read from the row's facts (facts.py: class, status, val_bpb,
replicate key, commits, failure signature, knobs), which the store's index keeps beside
each slim row, so a registry of 100k rows is a few tight loops over tuples.
"""

import heapq
import math

from memorylab_core import noise, stats
from memorylab_core.evidence import NOT_KNOBS
from memorylab_core.facts import (CLASS, COMMIT, FACTS_VERSION, FAILURE, GROUP, IMPORTED, KNOBS,
                                  PARENT, ROLE, STATUS, VALUE, facts_of)
from memorylab_core.failures import failure_clusters
from memorylab_core.fields import metric, run_entry, status_of, text_of
from memorylab_core.lineages import lineages
from memorylab_core.records import STATUSES

SCHEMA_VERSION = 2
CHALLENGER_COUNT = 3
CLASS_LIMIT = 20
RUN_IDS_SHOWN = 10
PLATEAU_WINDOW = 10
KNOB_ADVICE_COUNT = 3

# ---------------------------------------------------------------------------
# Replicate groups, champion and challengers (within one comparability class)


def ranked_rows(rows, facts=None):
    """(rows, facts) of the rows that may rank: kept or discarded, with a comparable
    val_bpb. ``facts`` (facts_of the rows) saves recomputing."""
    facts = facts_of(rows) if facts is None else facts
    indices = [index for index, fact in enumerate(facts)
               if (fact[STATUS] == "keep" or fact[STATUS] == "discard") and fact[VALUE] is not None]
    return [rows[index] for index in indices], [facts[index] for index in indices]


def group_runs(rows, facts=None):
    """{replicate key: group} over the rows that may rank (pass one class's rows).

    A group holds ``indices`` (into ``rows``), ``values``, ``kept`` (count of kept runs),
    ``first`` (index of its first kept run, else of its first run: the original idea) and
    ``refuted`` (is_refuted). Keys are noise.replicate_key: the config fingerprint, else
    the commit, else the run. ``facts`` (facts_of the rows) saves recomputing.
    """
    facts = facts_of(rows) if facts is None else facts
    groups = {}
    for index, fact in enumerate(facts):
        key = fact[GROUP]  # set only for rows that may rank
        if key is None:
            continue
        group = groups.get(key)
        if group is None:
            group = groups[key] = {"key": key, "indices": [], "values": [], "kept": 0,
                                   "first": index}
        group["indices"].append(index)
        group["values"].append(fact[VALUE])
        if fact[STATUS] == "keep":
            if not group["kept"]:
                group["first"] = index
            group["kept"] += 1
    for group in groups.values():
        group["refuted"] = is_refuted(rows, group["indices"])
    return groups


def is_refuted(rows, indices):
    """A replicated group whose latest run's packet said ``abandon``: its replicates
    refuted it, so it may not be the champion however low its mean (its commit was
    reset)."""
    if len(indices) < 2:
        return False
    packet = rows[indices[-1]].get("decision_packet")
    return isinstance(packet, dict) and packet.get("next_action") == "abandon"


def _score(group):
    if "mean" not in group:
        group["mean"] = stats.mean(group["values"])
    return group["mean"]


def ranking(groups, count):
    """The ``count`` best groups by mean: groups with a kept run, else all of them;
    refuted groups after all others."""
    pool = [group for group in groups.values() if group["kept"]] or list(groups.values())
    return heapq.nsmallest(count, pool, key=lambda group: (group.get("refuted", False),
                                                           _score(group), group["indices"][0]))


def group_entry(rows, group, class_key=None):
    """A board entry: the group's representative run (its first kept run) plus the group.

    ``val_bpb`` is the group mean (the run's own value when n = 1; ``run_val_bpb`` keeps
    the run's), with n, sd, min, max, ``provisional`` (rests on a single run),
    ``refuted``, ``num_steps`` (the group's mean: throughput varies between reruns), the
    seeds used and the last run ids of the group.
    """
    entry = run_entry(rows[group["first"]])
    summary = noise.group_summary(group["values"])
    entry["run_val_bpb"] = entry["val_bpb"]
    steps = [metric(rows[index], "num_steps") for index in group["indices"]]
    steps = [value for value in steps if value is not None]
    entry["num_steps"] = round(stats.mean(steps), 1) if steps else None  # the group's mean
    entry["val_bpb"] = summary["mean"]
    entry.update(summary)
    entry["provisional"] = summary["n"] < 2
    entry["refuted"] = bool(group.get("refuted"))
    entry["group"] = group["key"]
    entry["class"] = class_key
    entry["seeds"] = sorted({noise.run_seed(rows[index]) for index in group["indices"]})
    entry["run_ids"] = [text_of(rows[index], "run_id") for index in group["indices"][-RUN_IDS_SHOWN:]]
    return entry


def floor_of_groups(groups):
    """noise's floor (noise.floor_from_values) of one class's ``group_runs`` groups."""
    return noise.floor_from_values([group["values"] for group in groups.values()])


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


def champion_of(rows, class_key=None, facts=None):
    """Only the champion entry (or None) of rows of one class (``facts``: facts_of them)."""
    return champion_board(rows, 0, class_key, group_runs(rows, facts))[0]




# ---------------------------------------------------------------------------
# Plateau advice: the least-tried knobs


def knob_counts(rows, facts=None):
    """{knob: number of runs whose parsed changes touched it}; the vocabulary also takes
    the upper-case constants of the latest config fingerprint (count 0 when never tried)."""
    counts = {}
    for fact in (facts_of(rows) if facts is None else facts):
        for knob in fact[KNOBS]:
            counts[knob] = counts.get(knob, 0) + 1
    for row in reversed(rows):
        config = row.get("config")
        constants = config.get("constants") if isinstance(config, dict) else None
        if isinstance(constants, dict) and constants:
            for name in constants:
                if isinstance(name, str) and name not in NOT_KNOBS:
                    counts.setdefault(name, 0)
            break
    return counts


def least_tried_knobs(rows, limit=KNOB_ADVICE_COUNT, facts=None):
    """The ``limit`` knobs tried least often (ties by name); [] when nothing is known."""
    counts = knob_counts(rows, facts)
    return [name for name, _ in heapq.nsmallest(limit, counts.items(), key=lambda kv: (kv[1], kv[0]))]


def plateau_of(rows, sigma, window=PLATEAU_WINDOW, facts=None):
    """noise.plateau over the ranked rows of one class, plus ``recommendation`` and
    ``least_tried_knobs`` (explore mode) when the class is on a plateau.

    Runs before the window matter only through their best, so noise.plateau is handed
    that one run plus the window (the reported ``runs`` is the full count). ``facts``
    (facts_of the rows) saves recomputing."""
    window = max(1, int(window))
    before = rows[:-window]
    if before:
        facts = facts_of(rows) if facts is None else facts
        best = min(range(len(before)), key=lambda index: facts[index][VALUE] or math.inf)
        found = noise.plateau([before[best]] + rows[-window:], sigma, window)
        found["runs"] = len(rows)
    else:
        found = noise.plateau(rows, sigma, window)
    found["least_tried_knobs"] = []
    found["recommendation"] = ""
    if found.get("plateau"):
        knobs = least_tried_knobs(rows, facts=facts)
        found["least_tried_knobs"] = knobs
        found["recommendation"] = (
            f"plateau: no gain > sigma ({found['sigma']:.6f}) in the last {found['window']} runs; "
            "switch to explore mode"
            + (f" and try the least-tried knobs: {', '.join(knobs)}" if knobs else ""))
    return found


# ---------------------------------------------------------------------------
# Comparability classes and the board


def is_smoke_class(class_key):
    """A CPU class (smoke tests): never the current class while another class has runs."""
    return isinstance(class_key, str) and class_key.lower().startswith("device=cpu")


def noise_warning(floor, ranked_facts, champion):
    """A plain sentence when the measured σ is larger than the effects being tested (the
    median |val_bpb − champion| of the class's experiments, at least two), else None."""
    if floor.get("source") != "measured" or champion is None:
        return None
    effects = sorted(abs(fact[VALUE] - champion["val_bpb"]) for fact in ranked_facts
                     if fact[ROLE] != "replicate" and fact[GROUP] != champion["group"])
    if len(effects) < 2:
        return None
    median = effects[len(effects) // 2]
    if floor["sigma"] <= median:
        return None
    return (f"σ={floor['sigma']:.6f} is larger than the effects being tested (median "
            f"|Δ|={median:.6f} over {len(effects)} ideas): one run cannot rank them; "
            "try bolder changes and expect to replicate before any promotion")


def _steps_of(row):
    """metric(row, "num_steps") with a fast path for the plain number slim rows hold."""
    metrics = row.get("metrics")
    value = metrics.get("num_steps") if type(metrics) is dict else None
    return value if type(value) is int else metric(row, "num_steps")


def steps_note(rows, groups):
    """A sentence when reruns of one config differ by more than 5% in num_steps (the
    time budget is fixed, so a busy or throttled machine changes the steps and σ then
    measures throughput as much as seeds), else None."""
    worst, spread = None, 0.0
    for group in groups.values():
        if len(group["indices"]) < 2:
            continue
        steps = [value for value in map(_steps_of, (rows[index] for index in group["indices"]))
                 if value]
        if len(steps) >= 2 and max(steps) / min(steps) - 1.0 > spread:
            worst, spread = (min(steps), max(steps)), max(steps) / min(steps) - 1.0
    if spread <= 0.05:
        return None
    return (f"reruns of one config ran {worst[0]:g} to {worst[1]:g} steps ({spread:.0%} apart): "
            "σ measures throughput as much as seeds; is the machine shared or throttled?")


class Section:
    """One comparability class on the board: its rows (ledger order) and their facts,
    the rows that may rank and their replicate groups, champion, challengers, noise
    floor (with ``warning`` when σ exceeds the effects tested) and plateau."""

    def __init__(self, rows, facts, class_key, plateau_window=PLATEAU_WINDOW):
        self.rows, self.facts, self.key = rows, facts, class_key
        self.ranked, self.ranked_facts = ranked_rows(rows, facts)
        self.groups = group_runs(self.ranked, self.ranked_facts)
        self.champion, self.challengers = champion_board(self.ranked, CHALLENGER_COUNT,
                                                         class_key, self.groups)
        self.floor = floor_of_groups(self.groups)
        self.floor["warning"] = noise_warning(self.floor, self.ranked_facts, self.champion)
        self.floor["steps_note"] = steps_note(self.ranked, self.groups)
        self.plateau = plateau_of(self.ranked, self.floor["sigma"], plateau_window,
                                  self.ranked_facts)

    def summary(self):
        latest = self.rows[-1] if self.rows else {}
        first = self.ranked[0] if self.ranked else {}
        return {
            "class": self.key,
            "label": noise.class_label(self.key),
            "smoke": is_smoke_class(self.key),
            "experiments": len(self.rows),
            "status_counts": status_counts(self.rows, [fact[STATUS] for fact in self.facts]),
            "latest_run_id": text_of(latest, "run_id"),
            "latest_timestamp_utc": text_of(latest, "timestamp_utc"),
            "baseline_commit": text_of(first, "commit") or None,
            "champion": self.champion,
            "challengers": self.challengers,
            "replicate_groups": sum(1 for group in self.groups.values()
                                    if len(group["values"]) >= 2),
            "noise_floor": self.floor,
            "plateau": self.plateau,
        }


def current_class(facts):
    """The class of the latest run that carries provenance (crashes and imported rows
    never switch it), skipping CPU smoke classes while another such class has runs.
    Without any: the latest class of a run that did not crash, else of any run; None
    for an empty ledger."""
    smoke = fallback = None
    for fact in reversed(facts):
        key = fact[CLASS]
        if fact[STATUS] == "crash":
            continue
        if key == noise.LEGACY_CLASS or fact[IMPORTED]:
            fallback = fallback or key
        elif not is_smoke_class(key):
            return key
        else:
            smoke = smoke or key
    return smoke or fallback or (facts[-1][CLASS] if facts else None)


def campaign_classes(facts, current):
    """Each row's class on the board: its own, except that a crash without provenance
    (a crash writes no sidecar) belongs to the current class: the campaign it
    happened in."""
    legacy = noise.LEGACY_CLASS
    return [current if fact[STATUS] == "crash" and fact[CLASS] == legacy and current else
            fact[CLASS] for fact in facts]


def status_counts(rows, statuses=None):
    """{status: runs}, keep, discard and crash always present ('unknown' for no status)."""
    counts = {status: 0 for status in STATUSES}
    for status in ([status_of(row) for row in rows] if statuses is None else statuses):
        status = status or "unknown"
        counts[status] = counts.get(status, 0) + 1
    return counts


class Board:
    """The registry of a ledger, built once per command and read by log, decide, brief
    and report: one Section per comparability class (the current one first, at most
    ``CLASS_LIMIT``), lineages and failure clusters. ``registry`` is the JSON-ready
    dict written as champion_challenger.json; ``section(key)`` a class's Section."""

    def __init__(self, rows, *, now=None, plateau_window=PLATEAU_WINDOW):
        rows = [row for row in rows if isinstance(row, dict)]
        self.rows = rows
        self.facts = facts = facts_of(rows)
        self.current = current = current_class(facts)
        self.classes = classes = campaign_classes(facts, current)
        by_class = {}
        for index, key in enumerate(classes):
            by_class.setdefault(key, []).append(index)
        order = [current] if current is not None else []
        for key in reversed(classes):
            if len(order) == min(CLASS_LIMIT, len(by_class)):
                break
            if key not in order:
                order.append(key)
        self._by_class, self._plateau_window = by_class, plateau_window
        self._order, self._now = order, now
        self._sections = {}
        self._registry = None

    def record_decision(self, packet):
        """Set the decision packet of the last row (the run being logged) once decided;
        when it refutes (or clears) its replicate group, the class is ranked again."""
        self.rows[-1]["decision_packet"] = packet
        section = self._sections.get(self.classes[-1])
        group = section.groups.get(self.facts[-1][GROUP]) if section is not None else None
        if group is not None and is_refuted(section.ranked, group["indices"]) != group["refuted"]:
            del self._sections[self.classes[-1]]
            self._registry = None

    @property
    def registry(self):
        """The JSON-ready registry (champion_challenger.json)."""
        if self._registry is None:
            self._registry = self._summary()
        return self._registry

    def _summary(self):
        rows, facts, classes, current = self.rows, self.facts, self.classes, self.current
        summaries = [self.section(key).summary() for key in self._order]
        statuses = [fact[STATUS] for fact in facts]
        top = summaries[0] if summaries else {
            "champion": None, "challengers": [], "noise_floor": dict(noise.noise_floor([]),
                                                                     warning=None),
            "plateau": plateau_of([], noise.PRIOR_SIGMA, self._plateau_window)}
        return {
            "schema_version": SCHEMA_VERSION,
            "rules_version": FACTS_VERSION,  # a registry of older rules is rebuilt
            "generated_at_utc": self._now,
            "experiments": len(rows),
            "status_counts": status_counts(rows, statuses),
            "current_class": current,
            "current_class_label": noise.class_label(current) if current is not None else None,
            "champion": top["champion"],
            "challengers": top["challengers"],
            "noise_floor": top["noise_floor"],
            "plateau": top["plateau"],
            "classes": summaries,
            "class_count": len(self._by_class),
            "lineages": lineages(rows, ranks=[key == current for key in classes],
                                 statuses=statuses, values=[fact[VALUE] for fact in facts],
                                 commits=[fact[COMMIT] for fact in facts],
                                 parents=[fact[PARENT] for fact in facts]),
            "failure_clusters": failure_clusters(rows, statuses=statuses,
                                                 values=[fact[VALUE] for fact in facts],
                                                 signatures=[fact[FAILURE] for fact in facts]),
        }

    def section(self, class_key):
        """The Section of a class (built on first use; empty for an unknown class)."""
        found = self._sections.get(class_key)
        if found is None:
            members = self._by_class.get(class_key, [])
            found = self._sections[class_key] = Section(
                [self.rows[index] for index in members], [self.facts[index] for index in members],
                class_key, self._plateau_window)
        return found


def build_registry(rows, *, now=None, plateau_window=PLATEAU_WINDOW):
    """The registry of a ledger (records or slim rows, ledger order) as a JSON-ready dict
    (Board(rows).registry): schema_version, generated_at_utc (``now``), experiments,
    status_counts, current_class, current_class_label, champion (entry or None),
    challengers, noise_floor, plateau (those four of the current class), classes (one
    section per comparability class, the current one first, then by most recent run),
    class_count, lineages, failure_clusters."""
    return Board(rows, now=now, plateau_window=plateau_window).registry
