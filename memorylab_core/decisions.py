"""Decision packets: what the agent should do after a run, and why.

``decide(record, board, novelty_guard)`` is a pure function of the just-built record,
the board (registry.Board) of the ledger with the record as its last row, and the
record's novelty guard. The packet has the published fields (summary, next_action,
priority, rationale, hypothesis_status, run, novelty, comparison, error) plus ``class``,
``role``, ``noise``, ``group``, ``test``, ``replicate``, ``throughput``, ``plateau`` and
``recommendation``.

Everything is compared within the record's class on the board (a crash without
provenance belongs to the current class): its champion and runner-up as they were
before the record, the record's replicate group (noise.replicate_key) with the record
added, and the class's noise floor and plateau. A group's score is its mean val_bpb,
counting every non-crash run of it, discarded reruns included (dropping them would bias
the mean low). ``Δ`` is the opponent's mean minus the group's (positive = better); the
opponent is the champion, or the runner-up for a rerun of the champion's group.

Noise: σ = the class floor (noise.floor_from_values: pooled within-group sd shrunk
toward the prior 0.001, else the prior). ``k`` = ``noise_factor`` (default 2). The
"promising" band is 0.0015 while σ is the prior, else max(0.0015, k·σ). While σ is the
prior every packet asks for the baseline reruns (seeds 43, 44) that measure it; once
measured, a σ larger than the effects being tested is said plainly (``noise.advice``).

Rules, first match wins:

1. crash: ``fix_and_retry`` (high) when the error reads like memory exhaustion, else
   ``investigate_crash`` (high). The champion is unchanged: a crash says nothing about
   val_bpb.
2. keep, no champion in its class before: ``promote`` (high), summary
   ``Promote run <run_id>: first champion recorded at <val_bpb> val_bpb.``
3. a kept run, or a rerun (any status) of a group that has a kept run, better than the
   opponent: ``promote`` (high) when Δ ≥ kσ, or when the group has n ≥ 2 and a one-sided
   test says its mean is lower at p < 0.05 (Welch when both sides have n ≥ 2, else a t
   test with the measured σ; none while σ is the prior), except that a rerun of an
   already promoted champion group confirms the champion: ``branch_followup``.
   Otherwise, inside the noise: ``replicate`` (high) naming the seeds still owed, at
   most ``REPLICATE_SEEDS`` extra seeds per candidate; once they are run, the verdict
   is ``abandon`` (medium) with the test that decided it.
4. a rerun of the champion's group with no other group: ``branch_followup``; one whose
   mean now trails the runner-up: ``branch_followup`` from the new leader.
5. a replicate group (n ≥ 2) not better than the champion: ``abandon`` (low).
6. keep otherwise (the published floor): ``replicate`` (medium) when a novel idea or a
   duplicate run, else ``branch_followup`` (high within the band, else medium).
7. discard (published floor): ``abandon`` (low) when it repeats a failure or duplicates a
   run (replicates never do); ``retry`` (medium) within the band of the champion: reset
   and try a stronger variant (a new experiment, which check allows; never a rerun of a
   discard); ``branch_followup`` (low) when it follows a known success; else ``abandon``.
A keep/discard run without a comparable val_bpb gets ``retry`` (medium).

Deliberate departure from the published floor: a discarded rerun of a kept candidate is
judged with its group (rule 3), so its packet may say ``promote`` or ``replicate``; the
status of a rerun describes one seed, the verdict the candidate.

Throughput: every packet compares ``num_steps`` (and tokens) with the champion's; beyond
a 5% gap the summary says the Δ may be throughput rather than the idea. Plateau: when
the class's last 10 runs improved on the best before them by no more than σ, the
summary says so and ``recommendation`` asks for explore mode and the least-tried knobs.

``comparison`` carries the prior champion (before the run) and the current one (after
it), their val_bpb (group means) and the run's delta to each (negative = better).
"""

from memorylab_core import noise, stats
from memorylab_core.evidence import NOT_KNOBS, role_of
from memorylab_core.failures import error_text, looks_like_oom
from memorylab_core.fields import memory_gb_of, metric, number, status_of, text_of, val_bpb_of
from memorylab_core.facts import CLASS, GROUP, STATUS
from memorylab_core.registry import group_entry, is_refuted, ranking

ACTIONS = ("promote", "branch_followup", "replicate", "retry", "abandon", "fix_and_retry",
           "investigate_crash")
PRIORITIES = ("high", "medium", "low")
PROMISING_BAND = 0.0015
DEFAULT_NOISE_FACTOR = 2.0
SIGNIFICANCE = 0.05
SEED_ENV = "AUTORESEARCH_SEED"
REPLICATE_SEEDS = 2       # extra seeds per candidate before the verdict
THROUGHPUT_GAP = 0.05     # a num_steps gap beyond this may explain the Δ
RUN_COMMAND = "AUTORESEARCH_SUMMARY_PATH=results/summary.json uv run train.py > run.log 2>&1"
EPSILON = 1e-9  # val_bpb has 6 decimals; float noise must not flip a boundary (0.9915 - 0.99)


def _fmt(value):
    return "n/a" if value is None else f"{value:.6f}"


def _signed(value):
    return "n/a" if value is None else f"{value:+.6f}"


# ---------------------------------------------------------------------------
# Packet parts


def hypothesis_status(record, action):
    """not_stated | supported | mixed | unsupported | inconclusive."""
    if not text_of(record, "hypothesis").strip():
        return "not_stated"
    if action in ("fix_and_retry", "investigate_crash", "retry", "replicate"):
        return "inconclusive"
    if action == "promote":
        return "supported"
    return "mixed" if status_of(record) == "keep" and action != "abandon" else "unsupported"


def _novelty_view(novelty_guard):
    guard = novelty_guard if isinstance(novelty_guard, dict) else {}
    policy = guard.get("policy") if isinstance(guard.get("policy"), dict) else {}
    matches = guard.get("top_matches")
    top = matches[0] if isinstance(matches, list) and matches else None
    top = top if isinstance(top, dict) else None
    if top is not None:
        top = {key: top.get(key) for key in
               ("category", "score", "run_id", "commit", "status", "val_bpb", "description")}
    return {
        "classification": guard.get("classification") or "novel",
        "mode": guard.get("mode") or policy.get("mode") or "exploit",
        "decision": policy.get("decision"),
        "rationale": policy.get("rationale"),
        "top_match": top,
    }


def _error_view(record):
    error = record.get("error")
    if not isinstance(error, dict):
        return None
    view = {"summary": error.get("summary") if isinstance(error.get("summary"), str) else ""}
    for key in ("tail", "source"):
        if key in error:
            view[key] = error[key]
    return view


def _run_view(record):
    return {
        "id": text_of(record, "run_id"),
        "commit": text_of(record, "commit"),
        "status": status_of(record),
        "family": text_of(record, "family"),
        "description": text_of(record, "description"),
        "hypothesis": text_of(record, "hypothesis"),
        "val_bpb": val_bpb_of(record),
        "memory_gb": memory_gb_of(record),
    }


# ---------------------------------------------------------------------------
# The record's class on the board: the board before the record, its group after it


class _Side:
    """A replicate group on the board: its entry, values, n, mean, sd."""

    def __init__(self, entry, values):
        self.entry = entry
        self.key = entry.get("group")
        self.values = values
        self.n = len(values)
        self.mean = stats.mean(values)
        self.sd = stats.sample_sd(values) if len(values) >= 2 else None
        self.kept = entry.get("status") == "keep"
        self.num_steps = entry.get("num_steps")

    @property
    def run_id(self):
        return self.entry.get("run_id")


def _promoted(row):
    """Whether the run's own packet said promote (its group was established then)."""
    packet = row.get("decision_packet")
    return isinstance(packet, dict) and packet.get("next_action") == "promote"


def _without_last(group, rows, facts):
    """A copy of a replicate group without its last run (the record), or None."""
    indices = group["indices"][:-1]
    if not indices:
        return None
    first = next((index for index in indices if facts[index][STATUS] == "keep"), indices[0])
    return {"key": group["key"], "indices": indices, "values": group["values"][:-1],
            "kept": sum(1 for index in indices if facts[index][STATUS] == "keep"),
            "first": first, "refuted": is_refuted(rows, indices)}


def _view(record, board):
    """The record's class as the board shows it with the record as its last row: the
    champion and runner-up before the record, the record's replicate group before it,
    and the class's noise floor and plateau after it."""
    class_key = board.classes[-1]
    section = board.section(class_key)
    ranked, facts = section.ranked, section.ranked_facts
    key = board.facts[-1][GROUP]
    groups = dict(section.groups)
    mine = None
    if key is not None and key in groups:
        mine = _without_last(groups[key], ranked, facts)
        if mine is None:
            del groups[key]
        else:
            groups[key] = mine
    sides = [_Side(group_entry(ranked, group, class_key), group["values"])
             for group in ranking(groups, 2)]
    return {
        "class": class_key,
        "champion": sides[0] if sides else None,
        "runner_up": sides[1] if len(sides) > 1 else None,
        "group_values": list(mine["values"]) if mine else [],
        "group_kept": mine["kept"] if mine else 0,
        "group_seeds": {noise.run_seed(ranked[index]) for index in mine["indices"]}
                       if mine else set(),
        "group_commit": text_of(ranked[mine["indices"][0]], "commit") if mine else "",
        "group_promoted": bool(mine) and any(_promoted(ranked[index])
                                             for index in mine["indices"]),
        "baseline_commit": text_of(ranked[0], "commit") if ranked else "",
        "floor": section.floor,
        "plateau": section.plateau,
    }


# ---------------------------------------------------------------------------
# Rules


def _crash(case):
    text = error_text(case.record.get("error"))
    summary = (_error_view(case.record) or {}).get("summary") or "no error summary recorded"
    summary = " ".join(summary.split())[:160]
    if looks_like_oom(text):
        return ("fix_and_retry", "high",
                f"Fix and retry run {case.run_id}: it ran out of memory ({summary}).",
                "The crash reads like memory exhaustion: lower DEVICE_BATCH_SIZE, the "
                "sequence length or the model size and run it again (the identical config "
                "stays blocked). The champion is unchanged.")
    return ("investigate_crash", "high",
            f"Investigate crash of run {case.run_id}: {summary}.",
            "The run crashed for a reason other than memory: if the cause is trivial, fix it "
            "and rerun the same idea (check allows a fix of a crash); if the idea is broken at "
            "its core, reset and move on. The champion is unchanged.")


def _test(mine, other, floor):
    """One-sided test that ``mine`` (values) has a lower mean than ``other`` (a _Side):
    Welch when both have n ≥ 2, else a t test with the class's σ (measured only)."""
    if len(mine) < 2:
        return None
    if other.n >= 2:
        result = stats.welch_one_sided(mine, other.values)
        method = "welch"
    elif floor["source"] == "measured":
        result = stats.pooled_one_sided(mine, other.values, floor["sigma"],
                                        floor["dof"] + noise.PRIOR_DOF)
        method = "pooled_t"
    else:
        return None
    if result.get("p") is None:
        return None
    return {"method": method, "t": result["t"], "df": result["df"], "p": result["p"],
            "n": len(mine), "n_opponent": other.n}


def _test_words(test):
    if not test:
        return "no test possible (σ is the prior)"
    name = "Welch" if test["method"] == "welch" else "pooled t"
    return f"one-sided {name} p={test['p']:.4f}"


class _Case:
    """Everything a rule looks at: the run, its group after it, the class board before it."""

    def __init__(self, record, view, novelty, k):
        self.record, self.k = record, k
        self.run_id = text_of(record, "run_id")
        self.status = status_of(record)
        self.role = role_of(record)
        self.value = val_bpb_of(record)
        self.classification = novelty["classification"]
        ranked = self.status in ("keep", "discard") and self.value is not None
        self.values = view["group_values"] + ([self.value] if ranked else [])
        self.n = len(self.values)
        self.mean = stats.mean(self.values) if self.values else None
        kept = view["group_kept"] + (self.status == "keep" and ranked)
        # a kept run, or a rerun (of any status) of a group that has a kept run
        self.contender = ranked and (self.status == "keep" or (kept and self.n >= 2))
        self.kept = kept
        self.key = noise.replicate_key(record)
        self.floor = view["floor"]
        self.sigma = self.floor["sigma"]
        # the published band is a floor: measured noise may widen it, never narrow it
        measured = self.floor.get("source") == "measured"
        self.band = max(PROMISING_BAND, k * self.sigma) if measured else PROMISING_BAND
        self.plateau = view["plateau"]
        self.champion, runner_up = view["champion"], view["runner_up"]
        self.is_champion_group = (self.champion is not None and self.champion.key is not None
                                  and self.champion.key == self.key)
        self.opponent = runner_up if self.is_champion_group else self.champion
        self.promoted = view["group_promoted"]  # an earlier run of the group got promote
        self.used_seeds = view["group_seeds"] | ({noise.run_seed(record)} if ranked else set())
        self.commit = text_of(record, "commit") or view["group_commit"]
        self.baseline_commit = view["baseline_commit"]
        self.test = None
        self.replicate = None

    def advise_replicates(self, seeds, side=None):
        """Ask for reruns of this run's group, or of `side` (another group, a _Side)."""
        commit = self.commit if side is None else side.entry.get("commit")
        words = ", ".join(str(seed) for seed in seeds)
        self.replicate = {
            "commit": commit, "group": self.key if side is None else side.key,
            "n": self.n if side is None else side.n, "seeds": seeds,
            "env": SEED_ENV, "mode": "replicate",
            "commands": [f"{SEED_ENV}={seed} {RUN_COMMAND}" for seed in seeds],
            "note": f"run with train.py as at commit {commit}, one run per seed, and log "
                    "each with --mode replicate"}
        return f"rerun commit {commit} with {SEED_ENV}={words} (--mode replicate)"

    def noise_words(self, delta):
        threshold = self.k * self.sigma
        return (f"Δ={delta:.6f} {'≥' if delta >= threshold - EPSILON else '<'} {self.k:g}σ="
                f"{threshold:.6f} (σ={self.sigma:.6f} {self.floor['source']}, n={self.n})")


def _contender(case):
    """Rules 2-6: a kept run (or a rerun of a kept group) against the class board."""
    opponent, mean, n = case.opponent, case.mean, case.n
    if case.champion is None:
        return ("promote", "high",
                f"Promote run {case.run_id}: first champion recorded at {_fmt(case.value)} val_bpb.",
                "No earlier run of this comparability class had a comparable val_bpb; this one "
                "sets the baseline.")
    if opponent is None and n < 1 + REPLICATE_SEEDS:
        # setup: the unmodified baseline runs 1 + REPLICATE_SEEDS times before any idea
        seeds = noise.next_seeds(case.used_seeds, 1 + REPLICATE_SEEDS - n)
        return ("replicate", "high",
                f"Replicate the baseline {case.champion.run_id}: run {case.run_id} reruns it, "
                f"now {_fmt(mean)} val_bpb over n={n} runs; {case.advise_replicates(seeds)} "
                "to finish measuring the noise.",
                f"Setup runs the unmodified baseline {1 + REPLICATE_SEEDS} times before the "
                "first idea, so that every later verdict knows the run-to-run noise.")
    if opponent is None:
        return ("branch_followup", "medium",
                f"Branch a follow-up from champion {case.champion.run_id}: run {case.run_id} "
                f"reruns it, now {_fmt(mean)} val_bpb over n={n} runs.",
                "The baseline is replicated and nothing else competes yet; build the next idea "
                "on it.")
    delta = opponent.mean - mean
    if delta > EPSILON:
        return _win(case, delta)
    if case.is_champion_group and opponent.n < 2 and -delta < case.k * case.sigma - EPSILON:
        # a single run now leads, within the noise: rerun it before anyone builds on it
        seeds = noise.next_seeds(opponent.entry.get("seeds") or (), REPLICATE_SEEDS)
        return ("replicate", "high",
                f"Replicate run {opponent.run_id}: reruns of champion {case.champion.run_id} "
                f"average {_fmt(mean)} (n={n}), behind {opponent.run_id} "
                f"({_fmt(opponent.mean)}, a single run) by {case.noise_words(-delta)}; reset to "
                f"its commit and {case.advise_replicates(seeds, opponent)}.",
                "A single run leads the board by less than the noise: replicate it before "
                "building on it, as any candidate.")
    if case.is_champion_group:
        return ("branch_followup", "medium",
                f"Branch a follow-up from run {opponent.run_id}: reruns of champion "
                f"{case.champion.run_id} average {_fmt(mean)} (n={n}), behind "
                f"{opponent.run_id} ({_fmt(opponent.mean)}), which now leads the board.",
                "The champion's reruns came out worse than its first result; the board's "
                "best group mean decides, so build on the new leader.")
    if n < 2:
        return None
    return ("abandon", "low",
            f"Abandon run {case.run_id}: its replicates average {_fmt(mean)} (n={n}), "
            f"{-delta:+.6f} behind champion {opponent.run_id} ({_fmt(opponent.mean)}); reset "
            f"its commit {case.commit}.",
            "The replicates show the idea does not beat the champion; move on.")


def _win(case, delta):
    """Rule 3: better than the opponent; promote only when the gain clears the noise,
    after at most REPLICATE_SEEDS extra seeds a verdict."""
    opponent, mean, n = case.opponent, case.mean, case.n
    clear = delta >= case.k * case.sigma - EPSILON
    if not clear:
        case.test = _test(case.values, opponent, case.floor)
    test = case.test
    if clear or (test and test["p"] < SIGNIFICANCE):
        if case.is_champion_group and case.promoted:
            return _confirmation(case, delta)
        rationale = "The gain is larger than the noise; build the next experiments on its commit."
        if test:
            return ("promote", "high",
                    f"Promote run {case.run_id}: replicates confirm a new champion at mean "
                    f"{_fmt(mean)} val_bpb (n={n}), Δ={delta:.6f} vs {opponent.run_id} "
                    f"({_fmt(opponent.mean)}, n={opponent.n}); {_test_words(test)} < "
                    f"{SIGNIFICANCE}.", rationale)
        what = f"replicates confirm a new champion at mean {_fmt(mean)} val_bpb (n={n})" \
            if n > 1 else f"new champion at {_fmt(mean)} val_bpb"
        return ("promote", "high",
                f"Promote run {case.run_id}: {what}, beats {opponent.run_id} "
                f"({_fmt(opponent.mean)}) by {case.noise_words(delta)}.", rationale)
    # a candidate that leads the board provisionally is measured against the champion
    role = "runner-up" if case.is_champion_group and case.promoted else "champion"
    if n >= 1 + REPLICATE_SEEDS:
        return ("abandon", "medium",
                f"Abandon run {case.run_id}: after {n - 1} extra seeds its group averages "
                f"{_fmt(mean)} (n={n}), {case.noise_words(delta)} vs {role} {opponent.run_id} "
                f"({_fmt(opponent.mean)}), {_test_words(test)}: not shown better; reset its "
                f"commit {case.commit}.",
                "Replication is bounded: the extra seeds did not show a gain beyond the noise, "
                "so the idea is not worth more runs.")
    seeds = noise.next_seeds(case.used_seeds, 1 + REPLICATE_SEEDS - n)
    p_words = f", {_test_words(test)}" if test else ""
    return ("replicate", "high",
            f"Replicate run {case.run_id}: beats {role} {opponent.run_id} "
            f"({_fmt(opponent.mean)}) by {case.noise_words(delta)}{p_words}; "
            f"{case.advise_replicates(seeds)}.",
            "The gain is inside the noise floor: do not build on it yet. Keep its commit and "
            f"rerun it with the seeds named; at most {REPLICATE_SEEDS} extra seeds, then the "
            f"last packet says promote (Δ ≥ kσ or p < {SIGNIFICANCE}) or abandon.")


def _confirmation(case, delta):
    """Rule 3 for a rerun of the champion's own group that still beats the runner-up
    when the group was already promoted: it confirms the champion; it is not a new one."""
    opponent = case.opponent
    return ("branch_followup", "medium",
            f"Branch a follow-up from champion {case.champion.run_id}: run {case.run_id} "
            f"confirms it at mean {_fmt(case.mean)} val_bpb (n={case.n}), Δ={delta:.6f} vs "
            f"runner-up {opponent.run_id} ({_fmt(opponent.mean)}).",
            "A rerun of the champion's commit, not a new champion: the champion stands; "
            "build the next idea on its commit.")


def _kept(case):
    """Rule 7, the published floor for a kept run that is not better than the champion."""
    champion = case.opponent
    gap = case.value - champion.mean
    if case.classification in ("novel", "duplicate_run") and case.role != "replicate":
        what = "a new idea" if case.classification == "novel" else "a rerun of a known config"
        seeds = noise.next_seeds(case.used_seeds, REPLICATE_SEEDS)
        return ("replicate", "medium",
                f"Replicate run {case.run_id}: kept at {_fmt(case.value)} val_bpb, {gap:+.6f} vs "
                f"champion {champion.run_id} ({_fmt(champion.mean)}); "
                f"{case.advise_replicates(seeds)}.",
                f"Kept but not better than the champion, and {what}: rerun it to learn whether "
                "the result holds before building on it.")
    close = gap <= case.band + EPSILON
    return ("branch_followup", "high" if close else "medium",
            f"Branch a follow-up from run {case.run_id}: {_fmt(case.value)} val_bpb, {gap:+.6f} "
            f"vs champion {champion.run_id} ({_fmt(champion.mean)}).",
            ("Within the promising band of the champion; " if close else "")
            + "it extends a known line of work, so push the idea further.")


def _discarded(case):
    """Rule 8, the published floor for a discarded run (and unknown statuses). ``retry``
    asks for a variant (a new experiment: check allows it), never a rerun of a discard."""
    champion, value = case.champion, case.value
    gap = value - champion.mean if champion is not None else None
    if case.classification in ("repeat_failure", "duplicate_run") and case.role != "replicate":
        what = "failure" if case.classification == "repeat_failure" else "run"
        return ("abandon", "low", f"Abandon run {case.run_id}: it repeats an earlier {what}.",
                "The guard matched earlier runs; do not spend more time on this idea.")
    if gap is not None and gap <= case.band + EPSILON:
        example = _stronger_variant(case.record)
        return ("retry", "medium",
                f"Retry run {case.run_id}: {_fmt(value)} val_bpb is within {case.band:.6f} of "
                f"champion {champion.run_id} ({_fmt(champion.mean)}); reset it and try a "
                "stronger variant of the idea"
                + (f" ({example})" if example else "") + " as a new experiment, not a rerun.",
                "Discarded but close to the champion; a bolder variant may tip it over. "
                "Check the variant first: a new value of the same knob is a new idea.")
    if case.classification in ("known_success", "incremental_followup"):
        return ("branch_followup", "low",
                f"Branch a follow-up from run {case.run_id}: it follows a known success "
                f"({_fmt(value)} val_bpb).",
                "The idea is related to a kept run; try a different variant of it.")
    return ("abandon", "low",
            f"Abandon run {case.run_id}: {_fmt(value)} val_bpb, {_signed(gap)} vs champion"
            + (f" {champion.run_id}." if champion is not None else "."),
            "Not better than the champion and not close; move on to another idea.")


def _stronger_variant(record):
    """'MATRIX_LR further up than 0.06' from the run's first parsed numeric change with a
    direction (the novelty features), else None."""
    features = record.get("novelty_features")
    changes = features.get("changes") if isinstance(features, dict) else None
    for change in changes if isinstance(changes, list) else ():
        if not isinstance(change, dict) or change.get("knob") in NOT_KNOBS:
            continue
        value = number(change.get("value"))
        if change.get("direction") in ("up", "down") and value is not None and \
                isinstance(change.get("knob"), str):
            return f"{change['knob']} further {change['direction']} than {value:g}"
    return None


def _choose(case):
    if case.status == "crash":
        return _crash(case)
    if case.value is None:
        return ("retry", "medium",
                f"Retry run {case.run_id}: it has no comparable val_bpb "
                f"({case.status or 'no'} status); rerun it with the summary sidecar and log "
                "the summary.",
                "Without a finite val_bpb the run cannot be compared.")
    verdict = _contender(case) if case.contender else None
    if verdict is None:
        verdict = _kept(case) if case.status == "keep" else _discarded(case)
    return verdict


def _plateau_note(case):
    """(summary suffix, rationale suffix, recommendation) when the class is on a plateau."""
    plateau = case.plateau
    if not plateau or not plateau.get("plateau"):
        return "", "", None
    knobs = plateau.get("least_tried_knobs") or []
    recommendation = {"mode": "explore", "least_tried_knobs": knobs,
                      "reason": plateau.get("recommendation") or plateau.get("reason")}
    knob_words = f" (least-tried knobs: {', '.join(knobs)})" if knobs else ""
    return (f" Plateau: no gain > σ in the last {plateau.get('window')} runs; switch to explore "
            f"mode{knob_words}.", " " + (plateau.get("recommendation") or ""), recommendation)


def _throughput(case):
    """The run's steps and tokens against the champion's; ``note`` beyond a 5% gap."""
    champion = case.opponent if case.is_champion_group else case.champion
    steps = metric(case.record, "num_steps")
    theirs = champion.num_steps if champion is not None else None
    if steps is None or not theirs:
        return None
    gap = steps / theirs - 1.0
    found = {"num_steps": steps, "champion_num_steps": theirs, "gap": round(gap, 4),
             "total_tokens_M": metric(case.record, "total_tokens_M"),
             "champion_run_id": champion.run_id, "note": None}
    if abs(gap) > THROUGHPUT_GAP + EPSILON:
        found["note"] = (f"{abs(gap):.0%} {'fewer' if gap < 0 else 'more'} steps than champion "
                         f"{champion.run_id} ({steps:g} vs {theirs:g}): the Δ may be throughput "
                         "rather than the idea")
    return found


def noise_advice(floor, baseline_commit):
    """What to do about the noise: measure it (while σ is the prior) or heed the warning."""
    if floor.get("source") != "measured":
        return (f"not measured yet in this class: rerun the baseline (commit "
                f"{baseline_commit or '?'}) with {SEED_ENV}=43 and 44, logged with --mode "
                "replicate")
    return floor.get("warning")


def _comparison(case):
    """Prior champion (before the run) and current champion (after it) of the run's class."""
    champion, opponent, mean = case.champion, case.opponent, case.mean
    current, current_mean = champion, champion.mean if champion else None
    if case.contender:
        still_leads = opponent is None or mean <= opponent.mean
        if champion is None or (case.is_champion_group and still_leads):
            current, current_mean = None, mean
        elif case.is_champion_group:
            current, current_mean = opponent, opponent.mean
        elif case.kept and (mean < champion.mean or not champion.kept):
            current, current_mean = None, mean
    leads = case.contender and current is None
    current_id = case.run_id if leads else (current.run_id if current else None)
    value = case.value

    def delta(reference):
        return round(value - reference, 6) if reference is not None and value is not None else None

    return {
        "is_new_champion": leads and not case.is_champion_group,
        "prior_champion_run_id": champion.run_id if champion else None,
        "prior_champion_val_bpb": champion.mean if champion else None,
        "current_champion_run_id": current_id,
        "current_champion_val_bpb": current_mean,
        "delta_vs_prior_champion": delta(champion.mean if champion else None),
        "delta_vs_current_champion": delta(current_mean),
    }


def decide(record, board, novelty_guard, *, noise_factor=DEFAULT_NOISE_FACTOR):
    """The decision packet for ``record`` (see the module doc).

    ``board``: registry.Board of the ledger with the record as its last row (records
    or slim rows); the rules read the record's class on it. ``noise_factor``: k.
    """
    record = record if isinstance(record, dict) else {}
    k = float(noise_factor)
    if not k > 0:
        raise ValueError(f"noise_factor must be positive, got {noise_factor!r}")
    view = _view(record, board)
    novelty = _novelty_view(novelty_guard)
    case = _Case(record, view, novelty, k)
    action, priority, summary, rationale = _choose(case)
    summary_note, rationale_note, recommendation = _plateau_note(case)
    throughput = _throughput(case) if case.value is not None else None
    if throughput and throughput["note"]:
        summary_note = f" Throughput: {throughput['note']}." + summary_note
    advice = noise_advice(case.floor, case.baseline_commit)
    if advice and case.champion is not None:
        summary_note += f" Noise: {advice}."
    elif advice:
        rationale_note += f" Noise: {advice}."
    values = case.values
    class_key = view["class"]
    return {
        "summary": summary + summary_note,
        "next_action": action,
        "priority": priority,
        "rationale": (rationale + rationale_note).strip(),
        "hypothesis_status": hypothesis_status(record, action),
        "run": _run_view(record),
        "novelty": novelty,
        "comparison": _comparison(case),
        "error": _error_view(record),
        "class": {"key": class_key, "label": noise.class_label(class_key)},
        "role": case.role,
        "noise": {"sigma": case.sigma, "dof": case.floor.get("dof"),
                  "source": case.floor.get("source"), "groups": case.floor.get("groups"),
                  "measured_sigma": case.floor.get("measured_sigma"),
                  "factor": k, "threshold": k * case.sigma, "band": case.band,
                  "advice": advice},
        "group": ({"key": case.key, "n": case.n, "mean": case.mean,
                   "sd": stats.sample_sd(values) if case.n >= 2 else None,
                   "min": min(values), "max": max(values)} if values else None),
        "test": case.test,
        "replicate": case.replicate if action == "replicate" else None,
        "throughput": throughput,
        "plateau": case.plateau,
        "recommendation": recommendation,
    }


def packet_states(rows, facts, registry):
    """'open' or 'closed' for each row's decision packet (None for a row without one).

    A packet is open until acted on or superseded: a later run on its branch closes it
    (acting on a packet means running the next experiment; that run also carries the
    verdict of a replicate group), and a ``promote`` whose group no longer leads its
    class was superseded by a newer champion. ``facts`` are facts_of(rows); the class
    champions come from the registry (Board.registry). One pass, newest first."""
    champions = {}
    for section in registry.get("classes") or () if isinstance(registry, dict) else ():
        if isinstance(section, dict) and isinstance(section.get("champion"), dict):
            champions[section.get("class")] = section["champion"].get("group")
    states, seen = [None] * len(rows), set()
    for index in range(len(rows) - 1, -1, -1):
        row = rows[index]
        branch = text_of(row, "branch")
        packet = row.get("decision_packet")
        if isinstance(packet, dict):
            dethroned = packet.get("next_action") == "promote" and \
                champions.get(facts[index][CLASS]) != facts[index][GROUP]
            states[index] = "closed" if branch in seen or dethroned else "open"
        seen.add(branch)
    return states
