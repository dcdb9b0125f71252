"""Evidence roles, and which runs the novelty guard may hold against a new idea.

Every record carries a ``role`` (records written before roles existed read as
``experiment``):

- ``experiment``: a new idea;
- ``replicate``: a rerun of an earlier config (logged with ``--mode replicate``, or with
  the same train.py code fingerprint as an earlier run that did not crash, under another
  seed: the same code and seed is the same run logged twice, not a rerun). A replicate
  is evidence about its replicate group: never a failure of an idea, never in a failure
  cluster or an Avoid list, never the cause of a block;
- ``fix``: an idea the guard matched to a crash of it (the same idea, fixed).

A crash says nothing about val_bpb, so the guard never calls an idea a
``repeat_failure`` because a crash matched it: the idea is a fix of that crash, and
``check`` says so ("fix of crashed run X"). An out-of-memory crash blocks only its
identical config (the same normalised train.py, seen by ``check --code``): a smaller
variant is a new run. SEED is never a research knob.
"""

from memorylab_core.fields import status_of
from memorylab_core.noise import run_seed

ROLES = ("experiment", "replicate", "fix")
DEFAULT_ROLE = "experiment"
# A rerun's seed is noise, not an idea; the MFU peak only scales a reported figure.
NOT_KNOBS = frozenset({"SEED", "H100_BF16_PEAK_FLOPS"})


def role_of(row):
    """The row's evidence role; ``experiment`` when it has none (earlier records)."""
    role = row.get("role") if isinstance(row, dict) else None
    return role if role in ROLES else DEFAULT_ROLE


def assign_role(record, history, guard, mode):
    """The role of a new record: ``replicate`` in replicate mode or when an earlier run
    that did not crash had the same train.py code hash and another seed; else ``fix``
    when the guard found it fixes a crash; else ``experiment``."""
    if mode == "replicate":
        return "replicate"
    config = record.get("config")
    code = config.get("code_sha256") if isinstance(config, dict) else None
    if code:
        seed = run_seed(record)
        for row in history:
            theirs = row.get("config")
            if type(theirs) is dict and theirs.get("code_sha256") == code and \
                    status_of(row) != "crash" and run_seed(row) != seed:
                return "replicate"
    if isinstance(guard, dict) and guard.get("fix_of") and record.get("status") != "crash":
        return "fix"  # a crash again is no fix of the earlier one
    return DEFAULT_ROLE


def assess(idea, history, **options):
    """novelty.assess over the runs that may judge an idea, plus the crash rules.

    Replicates are left out (the run they rerun speaks for the idea) and so are
    crashes; the crashes are then matched on their own. A match makes the idea a fix
    of the crash: ``fix_of`` names it and a ``novel`` idea is allowed in every mode
    ("fix of crashed run X"). Only an identical config (same code hash) of an
    out-of-memory crash is blocked. Options are novelty.assess's; `history` may be
    packed rows (store.GuardRows)."""
    from memorylab_core import novelty
    from memorylab_core.store import unpacked
    from memorylab_core.failures import crash_kind, error_text, looks_like_oom
    from memorylab_core.records import DEFAULT_FAMILY
    if idea.get("family") == DEFAULT_FAMILY:
        # the default family is no family stated: it earns no family allowance, or every
        # variant of a failed idea (same knob, another value) would repeat the failure
        idea = dict(idea, family="")
    judged, crashes = [], []
    for row in history:  # plain field reads first: this runs over every row
        status = row.get("status")
        if status == "crash" or (status != "keep" and status != "discard"
                                 and status_of(row) == "crash"):
            crashes.append(row)
        elif row.get("role") != "replicate":
            judged.append(row)
    narrow = getattr(history, "narrow", None)   # packed rows (store.GuardRows)
    guard = novelty.assess(idea, judged, narrow=narrow, **options)
    guard["fix_of"] = None
    if not crashes:
        return guard
    # the same code as a crash (seen with --code), else the same idea in words: a fix
    # changes the code, so the crash is matched by its description, not its config
    config = options.get("config")
    code = config.get("code_sha256") if isinstance(config, dict) else None
    latest = crashes[::-1] if code else []   # the latest crash with this code, if any
    if narrow and latest:
        latest = narrow(latest, [("sha", code)])
    crash = next((row for row in latest if isinstance(row.get("config"), dict)
                  and row["config"].get("code_sha256") == code), None)
    identical = crash is not None
    if crash is None:
        # the same change in code, else in words: a fix changes the code, so its words
        # (what the agent meant) may be all it shares with the crash
        # (the crash's code may not even fold: `DEPTH = 12 * typo` reads as DEPTH unset)
        found = novelty.assess(idea, crashes, narrow=narrow, **options)["top_matches"]
        if not found:
            words_only = {key: value for key, value in options.items()
                          if key not in ("config", "change_set", "champion_config", "plan")}
            found = novelty.assess(idea, crashes, words=True, narrow=narrow,
                                   **words_only)["top_matches"]
        if not found:
            return guard
        crash = next(row for row in reversed(crashes) if row.get("run_id") == found[0]["run_id"])
        if all(match.get("run_id") != crash.get("run_id") for match in guard["top_matches"]):
            # shown with the matches, under its own category: it counts as no failure
            guard["top_matches"] = [dict(found[0], category="fix_of_crash")] + \
                guard["top_matches"][:max(0, options.get("limit", 3) - 1)]
    crash = unpacked(crash)
    run_id = crash.get("run_id")
    oom = looks_like_oom(error_text(crash.get("error")))
    guard["fix_of"] = {"run_id": run_id, "commit": crash.get("commit"),
                       "error": crash_kind(crash.get("error")), "out_of_memory": oom,
                       "identical_config": identical}
    words = f"fix of crashed run {run_id} ({guard['fix_of']['error']})"
    if identical and oom:
        guard["policy"] = {"mode": guard["mode"], "decision": "block",
                           "rationale": f"identical config of run {run_id}, which ran out of "
                                        "memory: make it smaller (batch, sequence or model "
                                        "size) first"}
    elif guard["classification"] == "novel":
        rationale = words + (": the same code as the crash, fine for a transient failure"
                             if identical else ": allowed, judged on its own result")
        guard["policy"] = {"mode": guard["mode"], "decision": "allow", "rationale": rationale}
    else:
        guard["policy"] = dict(guard["policy"], rationale=f"{guard['policy']['rationale']}; "
                                                          f"also a {words}")
    explanation = guard.get("explanation")
    if isinstance(explanation, dict):
        explanation["text"] = f"{explanation.get('text', '')}; {words}".lstrip("; ")
    return guard
