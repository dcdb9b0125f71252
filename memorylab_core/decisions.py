"""Decision packets: what the agent should do after a run, and why.

``decide(record, registry_before, novelty_guard, rows=history)`` is a pure function of the
just-built record, the registry as it was before the record, the record's novelty guard
and (optionally, for replicate groups) the ledger rows before the record. The packet has
the published fields (summary, next_action, priority, rationale, hypothesis_status, run,
novelty, comparison, error) plus ``noise``, ``class``, ``group``, ``test``, ``replicate``,
``plateau`` and ``recommendation``.

Everything is compared within the record's comparability class (noise.comparability_class:
device, time budget, max_seq_len, eval_tokens, prepare.py hash; records without them form
the legacy class): its champion, runner-up, replicate groups, noise floor and plateau.
A run's replicate group is noise.replicate_key (config fingerprint, else commit); a group's
score is its mean val_bpb (the run's value when n = 1). Group statistics (n, mean, sd, the
noise floor) count every non-crash run of the group, discarded reruns included: dropping
the discards would keep only the reruns that came out well, a selection that biases the
mean low and the spread small. ``Δ`` is the opponent's score minus
the group's (positive = the run's group is better). The opponent is the class champion
before the run, or the runner-up when the run is a rerun of the champion's group.

Noise: σ = the class's pooled within-group sd (noise.noise_floor, including this run),
else the prior 0.001, marked "prior". ``k`` = ``noise_factor`` (default 2.0, the CLI's
``--noise-factor``). The "promising" band is the earlier fork's 0.0015 while σ is the
prior, else max(0.0015, k·σ): measured noise may widen the published band, never
narrow it.

Rules, first match wins:

1. crash: ``fix_and_retry`` (high) when the error summary or tail reads like memory
   exhaustion (CUDA/HIP/MPS out of memory, OutOfMemoryError, MemoryError, bad_alloc,
   OOM killer...), else ``investigate_crash`` (high).
2. keep, no champion in its class before: ``promote`` (high), summary
   ``Promote run <run_id>: first champion recorded at <val_bpb> val_bpb.``
3. keep (or a discarded rerun of a group that has a kept run), group better than the
   opponent (Δ > 0):
   - ``promote`` (high) when Δ ≥ k·σ, or when the group has n ≥ 2 and a one-sided test
     says its mean is lower at p < 0.05 (Welch when both sides have n ≥ 2; when the
     opponent rests on one run, a t test with the measured pooled σ; none with the prior);
     except that a rerun of the champion's own group whose group was already promoted
     (an earlier run's packet said ``promote``), or that was discarded, confirms the
     champion: ``branch_followup`` (medium), summary ``Branch a follow-up from champion
     <id>: run <id> confirms it at mean ...``; and a discarded rerun of another group
     gets ``retry`` (medium) with the seeds to rerun: a discard is never promoted;
   - else ``replicate`` (high): a win inside the noise. The summary gives Δ, k·σ, σ and n,
     and names the commit to rerun and unused AUTORESEARCH_SEED values (43, 44, ...).
   A discarded run only ever gets ``abandon``, ``retry`` or ``branch_followup`` (the
   published floor): where rules 3-5 would say ``replicate`` for it, it gets ``retry``
   (medium) with the same summary and seeds.
4. a rerun of the champion's group with no other group to compare: ``branch_followup``
   (medium): the baseline is replicated, build on it.
5. a rerun of the champion's group whose mean now trails the runner-up: ``replicate``
   (medium) to settle which is better.
6. keep, a replicate group (n ≥ 2) not better: ``branch_followup`` (medium) when within
   the band, else ``abandon`` (low): the replicates refute the gain.
7. keep otherwise (the published floor): ``replicate`` (medium) when the idea is novel or
   a duplicate run, else ``branch_followup`` (high when within the band, else medium).
8. discard (published floor): ``abandon`` (low) when it repeats a failure or duplicates a
   run; ``retry`` (medium) when within the band of the champion (or better than it);
   ``branch_followup`` (low) when it follows a known success or is an incremental
   follow-up; else ``abandon`` (low). Unknown statuses follow these rules too.
A keep/discard run without a comparable val_bpb gets ``retry`` (medium).

With no replicates (σ = prior) this is the published floor except that a kept run that
beats the champion by less than k·σ (0.002 at the defaults) gets ``replicate`` instead of
``promote``: issue 5's rule.

Plateau: when the class's last N runs (default 10, this run included) improved on the
best before them by no more than σ, the packet's summary and rationale say so and
``recommendation`` asks for explore mode and the least-tried knobs.

Without ``rows`` the registry's section for the run's class is used instead: champion and
runner-up means, the noise floor and plateau as they were before the run, the run's group
only when it is a single-run board entry, and no one-sided tests (they need the values).

``comparison`` carries the prior champion (the class champion before the run) and the
current one (after it: the best group mean, so a within-noise win leads the board,
provisionally, while its packet says ``replicate``), their val_bpb (group means) and the
run's delta to each (run value minus champion, negative = better).
"""

from memorylab_core import noise, stats
from memorylab_core.failures import error_text, looks_like_oom
from memorylab_core.fields import memory_gb_of, number, status_of, text_of, val_bpb_of
from memorylab_core.facts import CLASS, facts_of, row_facts
from memorylab_core.registry import (floor_of_groups, group_entry, group_runs, plateau_of,
                                     ranked_rows, ranking)

ACTIONS = ("promote", "branch_followup", "replicate", "retry", "abandon", "fix_and_retry",
           "investigate_crash")
PRIORITIES = ("high", "medium", "low")
PROMISING_BAND = 0.0015
DEFAULT_NOISE_FACTOR = 2.0
SIGNIFICANCE = 0.05
SEED_ENV = "AUTORESEARCH_SEED"
REPLICATE_SEEDS = 2
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
# The record's class as it was before the record, and the record's group after it


def _count(value):
    return value if type(value) is int and value >= 1 else 1


class _Side:
    """A replicate group on the board: its entry, values (when known), n, mean, sd."""

    def __init__(self, entry, values=None):
        self.entry = entry
        self.key = entry.get("group")
        self.values = values
        self.n = len(values) if values is not None else _count(entry.get("n"))
        self.mean = stats.mean(values) if values else number(entry.get("val_bpb"))
        self.sd = stats.sample_sd(values) if values and len(values) >= 2 else number(entry.get("sd"))
        self.kept = entry.get("status") == "keep"

    @property
    def run_id(self):
        return self.entry.get("run_id")


def _promoted(row):
    """Whether the run's own packet said promote (its group was established then)."""
    packet = row.get("decision_packet")
    return isinstance(packet, dict) and packet.get("next_action") == "promote"


def _from_rows(record, rows, class_key):
    """The class board before the record, from the rows: champion and runner-up (with
    their values), the record's replicate group so far, all groups and the ranked rows."""
    rows = [row for row in rows if isinstance(row, dict)]
    facts = facts_of(rows)
    members = [index for index, fact in enumerate(facts) if fact[CLASS] == class_key]
    ranked, ranked_facts = ranked_rows([rows[index] for index in members],
                                       [facts[index] for index in members])
    groups = group_runs(ranked, ranked_facts)
    best = ranking(groups, 2)
    sides = [_Side(group_entry(ranked, group, class_key), group["values"]) for group in best]
    key = noise.replicate_key(record)
    mine = groups.get(key)
    return {
        "champion": sides[0] if sides else None,
        "runner_up": sides[1] if len(sides) > 1 else None,
        "group_values": list(mine["values"]) if mine else [],
        "group_kept": mine["kept"] if mine else 0,
        "group_seeds": {noise.run_seed(ranked[index]) for index in mine["indices"]}
                       if mine else set(),
        "group_commit": text_of(ranked[mine["indices"][0]], "commit") if mine else "",
        "group_promoted": bool(mine) and any(_promoted(ranked[index]) for index in mine["indices"]),
        "groups": groups,
        "ranked": ranked,
        "facts": ranked_facts,
        "floor": None,
        "plateau": None,
    }


def _from_registry(record, registry_before, class_key):
    """The same view from the registry alone (no values: the group tests are skipped)."""
    section = None
    classes = registry_before.get("classes")
    if isinstance(classes, list):
        for item in classes:
            if isinstance(item, dict) and item.get("class") == class_key:
                section = item
                break
    elif registry_before.get("current_class", class_key) == class_key:
        section = registry_before  # a registry without class sections
    section = section or {}

    def valid(entry):
        return isinstance(entry, dict) and number(entry.get("val_bpb")) is not None

    champion = section.get("champion") if valid(section.get("champion")) else None
    challengers = section.get("challengers")
    challengers = [entry for entry in challengers if valid(entry)] \
        if isinstance(challengers, list) else []
    floor = section.get("noise_floor")
    if not (isinstance(floor, dict) and number(floor.get("sigma")) and floor["sigma"] > 0):
        floor = None
    key = noise.replicate_key(record)
    view = {"champion": _Side(champion) if champion else None,
            "runner_up": _Side(challengers[0]) if challengers else None,
            "group_values": [], "group_kept": 0, "group_seeds": set(), "group_commit": "",
            "group_promoted": False, "groups": None, "ranked": None, "facts": None, "floor": floor,
            "plateau": section.get("plateau")}
    for entry in ([champion] if champion else []) + challengers:
        if entry.get("group") == key and entry.get("n") == 1:
            view["group_values"] = [number(entry["val_bpb"])]  # only a single run's value is exact
            view["group_kept"] = int(entry.get("status") == "keep")
            seeds = entry.get("seeds")
            seeds = seeds if isinstance(seeds, list) else []
            view["group_seeds"] = {seed for seed in seeds if type(seed) is int}
            view["group_commit"] = text_of(entry, "commit")
    return view


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
                "sequence length or the model size (or fix the leak) and run it again.")
    return ("investigate_crash", "high",
            f"Investigate crash of run {case.run_id}: {summary}.",
            "The run crashed for a reason other than memory; read the log tail, fix the "
            "bug, or drop the idea if it is broken at its core.")


def _test(mine, other, floor):
    """One-sided test that ``mine`` (values) has a lower mean than ``other`` (a _Side)."""
    if len(mine) < 2 or other.values is None:
        return None
    if other.n >= 2:
        result = stats.welch_one_sided(mine, other.values)
        method = "welch"
    elif floor["source"] == "measured":
        result = stats.pooled_one_sided(mine, other.values, floor["sigma"], floor["dof"])
        method = "pooled_t"
    else:
        return None
    if result.get("p") is None:
        return None
    return {"method": method, "t": result["t"], "df": result["df"], "p": result["p"],
            "n": len(mine), "n_opponent": other.n}


class _Case:
    """Everything a rule looks at: the run, its group after it, the class board before it."""

    def __init__(self, record, view, novelty, k, plateau_window):
        self.record, self.k = record, k
        self.run_id = text_of(record, "run_id")
        self.status = status_of(record)
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
        if view["groups"] is not None:
            # the floor after this run: the class's groups with the run added to its own
            groups = dict(view["groups"])
            if ranked and self.key is not None:
                mine = groups.get(self.key) or {"values": []}
                groups[self.key] = {"values": mine["values"] + [self.value]}
            self.floor = floor_of_groups(groups)
        else:
            self.floor = view["floor"] if isinstance(view["floor"], dict) else noise.noise_floor([])
        self.sigma = self.floor["sigma"]
        # the published band is a floor: measured noise may widen it, never narrow it
        measured = self.floor.get("source") == "measured"
        self.band = max(PROMISING_BAND, k * self.sigma) if measured else PROMISING_BAND
        if view["ranked"] is not None:
            mine = [row_facts(record)] if ranked else []
            self.plateau = plateau_of(view["ranked"] + ([record] if ranked else []), self.sigma,
                                      plateau_window, view["facts"] + mine)
        else:
            self.plateau = view["plateau"] if isinstance(view["plateau"], dict) else None
        self.champion, runner_up = view["champion"], view["runner_up"]
        self.is_champion_group = (self.champion is not None and self.champion.key is not None
                                  and self.champion.key == self.key)
        self.opponent = runner_up if self.is_champion_group else self.champion
        self.promoted = view["group_promoted"]  # an earlier run of the group got promote
        used = view["group_seeds"] | ({noise.run_seed(record)} if ranked else set())
        self.seeds = noise.next_seeds(used, REPLICATE_SEEDS)
        self.commit = text_of(record, "commit") or view["group_commit"]
        self.test = None
        self.replicate = None

    def advise_replicates(self):
        seeds = ", ".join(str(seed) for seed in self.seeds)
        self.replicate = {
            "commit": self.commit, "group": self.key, "n": self.n, "seeds": self.seeds,
            "env": SEED_ENV,
            "commands": [f"{SEED_ENV}={seed} uv run train.py > run.log 2>&1" for seed in self.seeds],
            "note": f"run with train.py as at commit {self.commit}, one run per seed, and log each"}
        return f"rerun commit {self.commit} with {SEED_ENV}={seeds}"

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
    if opponent is None:
        return ("branch_followup", "medium",
                f"Branch a follow-up from run {case.run_id}: it reruns champion "
                f"{case.champion.run_id}, now {_fmt(mean)} val_bpb over n={n} runs.",
                "The baseline is replicated and nothing else competes yet; build the next idea "
                "on it.")
    delta = opponent.mean - mean
    if delta > EPSILON:
        return _win(case, delta)
    if case.is_champion_group:
        return ("replicate", "medium",
                f"Replicate run {case.run_id}: champion group mean rose to {_fmt(mean)} (n={n}) "
                f"and now trails {opponent.run_id} ({_fmt(opponent.mean)}); "
                f"{case.advise_replicates()} to settle it.",
                "Reruns of the champion disagree with its first result; more seeds decide.")
    if n < 2:
        return None
    gap = -delta
    if gap <= case.band + EPSILON:
        return ("branch_followup", "medium",
                f"Branch a follow-up from run {case.run_id}: its replicates average {_fmt(mean)} "
                f"(n={n}), {gap:+.6f} vs champion {opponent.run_id} ({_fmt(opponent.mean)}).",
                "Replicated and close to the champion but not better; try a stronger variant.")
    return ("abandon", "low",
            f"Abandon run {case.run_id}: its replicates average {_fmt(mean)} (n={n}), "
            f"{gap:+.6f} behind champion {opponent.run_id} ({_fmt(opponent.mean)}).",
            "The replicates show the idea does not beat the champion; move on.")


def _win(case, delta):
    """Rule 3: better than the opponent; promote only when the gain clears the noise."""
    opponent, mean, n = case.opponent, case.mean, case.n
    clear = delta >= case.k * case.sigma - EPSILON
    if not clear:
        case.test = _test(case.values, opponent, case.floor)
    test = case.test
    if clear or (test and test["p"] < SIGNIFICANCE):
        if case.is_champion_group and (case.promoted or case.status != "keep"):
            return _confirmation(case, delta)
        if case.status != "keep":
            return ("retry", "medium",
                    f"Retry run {case.run_id}: with this discarded rerun its group averages "
                    f"{_fmt(mean)} val_bpb (n={n}), {case.noise_words(delta)} better than "
                    f"champion {opponent.run_id} ({_fmt(opponent.mean)}), but a discarded run "
                    f"is never promoted; {case.advise_replicates()} and keep it if it holds.",
                    "The group looks better than the champion, yet this run was discarded; "
                    "settle it with a kept rerun before building on it.")
        rationale = "The gain is larger than the noise; build the next experiments on its commit."
        if test:
            name = "Welch" if test["method"] == "welch" else "pooled t"
            return ("promote", "high",
                    f"Promote run {case.run_id}: replicates confirm a new champion at mean "
                    f"{_fmt(mean)} val_bpb (n={n}), Δ={delta:.6f} vs {opponent.run_id} "
                    f"({_fmt(opponent.mean)}, n={opponent.n}); one-sided {name} "
                    f"p={test['p']:.4f} < {SIGNIFICANCE}.", rationale)
        what = f"replicates confirm a new champion at mean {_fmt(mean)} val_bpb (n={n})" \
            if n > 1 else f"new champion at {_fmt(mean)} val_bpb"
        return ("promote", "high",
                f"Promote run {case.run_id}: {what}, beats {opponent.run_id} "
                f"({_fmt(opponent.mean)}) by {case.noise_words(delta)}.", rationale)
    p_words = f", one-sided p={test['p']:.3f}" if test else ""
    role = "runner-up" if case.is_champion_group else "champion"
    return ("replicate", "high",
            f"Replicate run {case.run_id}: beats {role} {opponent.run_id} "
            f"({_fmt(opponent.mean)}) by {case.noise_words(delta)}{p_words}; "
            f"{case.advise_replicates()}.",
            "The gain is inside the noise floor: do not build on it yet. Rerun the same commit "
            f"with new seeds; promote once Δ ≥ kσ or the replicate group beats the champion at "
            f"p < {SIGNIFICANCE}.")


def _confirmation(case, delta):
    """Rule 3 for a rerun of the champion's own group that still beats the runner-up
    when the group was already promoted, or the rerun was discarded: it confirms the
    champion; it is not a new one."""
    opponent = case.opponent
    return ("branch_followup", "medium",
            f"Branch a follow-up from champion {case.champion.run_id}: run {case.run_id} "
            f"confirms it at mean {_fmt(case.mean)} val_bpb (n={case.n}), Δ={delta:.6f} vs "
            f"runner-up {opponent.run_id} ({_fmt(opponent.mean)}).",
            "A rerun of the champion's commit, not a new champion: the champion stands; "
            "build the next idea on its commit.")


def _within_discard_floor(case, verdict):
    """A discarded run gets only abandon, retry or branch_followup (the published floor):
    `replicate` advice for a discarded rerun becomes `retry` with the same seeds."""
    action, priority, summary, rationale = verdict
    if case.status == "keep" or action in ("abandon", "retry", "branch_followup"):
        return verdict
    assert action == "replicate", action  # _win never promotes a discarded run
    return ("retry", "medium", summary.replace("Replicate run", "Retry run", 1), rationale)


def _kept(case):
    """Rule 7, the published floor for a kept run that is not better than the champion."""
    champion = case.opponent
    gap = case.value - champion.mean
    if case.classification in ("novel", "duplicate_run"):
        what = "a new idea" if case.classification == "novel" else "a rerun of a known config"
        case.advise_replicates()
        return ("replicate", "medium",
                f"Replicate run {case.run_id}: kept at {_fmt(case.value)} val_bpb, {gap:+.6f} vs "
                f"champion {champion.run_id} ({_fmt(champion.mean)}).",
                f"Kept but not better than the champion, and {what}: rerun it to learn whether "
                "the result holds before building on it.")
    close = gap <= case.band + EPSILON
    return ("branch_followup", "high" if close else "medium",
            f"Branch a follow-up from run {case.run_id}: {_fmt(case.value)} val_bpb, {gap:+.6f} "
            f"vs champion {champion.run_id} ({_fmt(champion.mean)}).",
            ("Within the promising band of the champion; " if close else "")
            + "it extends a known line of work, so push the idea further.")


def _discarded(case):
    """Rule 8, the published floor for a discarded run (and unknown statuses)."""
    champion, value = case.champion, case.value
    gap = value - champion.mean if champion is not None else None
    if case.classification in ("repeat_failure", "duplicate_run"):
        what = "failure" if case.classification == "repeat_failure" else "run"
        return ("abandon", "low", f"Abandon run {case.run_id}: it repeats an earlier {what}.",
                "The guard matched earlier runs; do not spend more time on this idea.")
    if gap is not None and gap <= case.band + EPSILON:
        return ("retry", "medium",
                f"Retry run {case.run_id}: {_fmt(value)} val_bpb is within {case.band:.6f} of "
                f"champion {champion.run_id} ({_fmt(champion.mean)}).",
                "Discarded but close to the champion; a variant or a rerun may tip it over.")
    if case.classification in ("known_success", "incremental_followup"):
        return ("branch_followup", "low",
                f"Branch a follow-up from run {case.run_id}: it follows a known success "
                f"({_fmt(value)} val_bpb).",
                "The idea is related to a kept run; try a different variant of it.")
    return ("abandon", "low",
            f"Abandon run {case.run_id}: {_fmt(value)} val_bpb, {_signed(gap)} vs champion"
            + (f" {champion.run_id}." if champion is not None else "."),
            "Not better than the champion and not close; move on to another idea.")


def _choose(case):
    if case.status == "crash":
        return _crash(case)
    if case.value is None:
        return ("retry", "medium",
                f"Retry run {case.run_id}: it has no comparable val_bpb "
                f"({case.status or 'no'} status).",
                "Without a finite val_bpb the run cannot be compared; rerun it and log the summary.")
    verdict = _contender(case) if case.contender else None
    if verdict is not None:
        verdict = _within_discard_floor(case, verdict)
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


def decide(record, registry_before, novelty_guard, *, rows=None,
           noise_factor=DEFAULT_NOISE_FACTOR, plateau_window=10):
    """The decision packet for ``record`` given the registry before it (see module doc).

    ``rows``: the ledger before the record (records or slim rows); needed for replicate
    groups, Welch tests and a noise floor that includes this run. ``noise_factor``: k.
    """
    record = record if isinstance(record, dict) else {}
    registry_before = registry_before if isinstance(registry_before, dict) else {}
    k = float(noise_factor)
    if not k > 0:
        raise ValueError(f"noise_factor must be positive, got {noise_factor!r}")
    class_key = noise.comparability_class(record)
    if rows is not None:
        view = _from_rows(record, rows, class_key)
    else:
        view = _from_registry(record, registry_before, class_key)
    novelty = _novelty_view(novelty_guard)
    case = _Case(record, view, novelty, k, plateau_window)
    action, priority, summary, rationale = _choose(case)
    summary_note, rationale_note, recommendation = _plateau_note(case)
    values = case.values
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
        "noise": {"sigma": case.sigma, "dof": case.floor.get("dof"),
                  "source": case.floor.get("source"), "groups": case.floor.get("groups"),
                  "factor": k, "threshold": k * case.sigma, "band": case.band},
        "group": ({"key": case.key, "n": case.n, "mean": case.mean,
                   "sd": stats.sample_sd(values) if case.n >= 2 else None,
                   "min": min(values), "max": max(values)} if values else None),
        "test": case.test,
        "replicate": case.replicate if action in ("replicate", "retry") else None,
        "plateau": case.plateau,
        "recommendation": recommendation,
    }
