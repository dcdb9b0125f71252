"""How noisy is val_bpb, and which runs may be compared at all.

Pure functions over ledger rows (full records or the store's slim rows, plain
dicts, in ledger order). Rows may be hand-edited or written by the earlier fork,
so no field is trusted: a row whose val_bpb is missing, null, a string, a bool or
not finite, and every crash, is simply not comparable and is skipped.

    comparable_val_bpb(row)       the val_bpb a row contributes, or None
    comparability_class(row)      key of the runs it may be compared with
    class_label(key)              that key in words, for reports
    split_by_class(rows)          {class key: [rows]} in ledger order
    replicate_key(row)            which runs count as reruns of the same config
    replicate_groups(rows)        n, mean, sd, min, max ... per replicate group
    group_summary(values)         n, mean, sd, min, max of one group's values
    noise_floor(rows)             pooled within-group sd, or the prior
    floor_from_values(lists)      the same from replicate groups' val_bpb lists
    plateau(rows, sigma, window)  did the last runs improve by more than sigma?
    next_seeds(group, count)      AUTORESEARCH_SEED values not tried yet

Everything is a single pass over the rows.
"""

from memorylab_core.fields import mapping_of, number, status_of, val_bpb_of
from memorylab_core.stats import mean, pooled_sd, sample_sd

__all__ = [
    "PRIOR_SIGMA", "PRIOR_DOF", "DEFAULT_SEED", "LEGACY_CLASS", "CLASS_FIELDS",
    "comparable_val_bpb", "run_seed", "comparability_class", "class_label",
    "split_by_class", "replicate_key", "replicate_groups", "group_summary", "noise_floor",
    "floor_from_values", "plateau", "next_seeds",
]

# Run-to-run spread of a 5-minute val_bpb is roughly 0.0005-0.002 (seed and
# kernel non-determinism); 0.001 stands in until replicates measure it.
PRIOR_SIGMA = 0.001
# The prior is worth this many degrees of freedom: with few replicates the measured sd
# is shrunk toward it (one pair alone is a poor estimate), with many it hardly matters.
PRIOR_DOF = 2
DEFAULT_SEED = 42          # train.py's seed when AUTORESEARCH_SEED is unset
LEGACY_CLASS = "legacy"    # rows that say nothing about how they were run

# provenance field -> short name used in class keys, in key order
CLASS_FIELDS = (
    ("device", "device"),
    ("attention", "attention"),  # a CUDA run on the SDPA fallback is slower than one on FA3
    ("time_budget_s", "budget_s"),
    ("max_seq_len", "seq"),
    ("eval_tokens", "eval_tokens"),
    ("prepare_py_sha256", "prepare"),
)
_HASH_CHARS = 12           # prepare.py hash prefix kept in a class key


# --- reading fields defensively -----------------------------------------------

def _text(value):
    return value.strip() if isinstance(value, str) and value.strip() else None


def comparable_val_bpb(row):
    """Return the row's val_bpb as a float when it may be compared, else None.

    None for non-dicts, crashes (status compared case-insensitively), and a
    val_bpb that is missing, null, not a number (strings and bools included),
    not finite or not positive.
    """
    if not isinstance(row, dict) or status_of(row) == "crash":
        return None
    return val_bpb_of(row)


def run_seed(row):
    """Return the run's AUTORESEARCH_SEED (provenance.seed), DEFAULT_SEED if unknown.

    Integers, integral floats and integer strings are accepted; anything else
    counts as unknown.
    """
    seed = mapping_of(row, "provenance").get("seed")
    if isinstance(seed, bool):
        return DEFAULT_SEED
    if isinstance(seed, int):
        return seed
    if isinstance(seed, float) and seed.is_integer():
        return int(seed)
    if isinstance(seed, str):
        try:
            return int(seed.strip())
        except ValueError:
            pass
    return DEFAULT_SEED


# --- comparability classes ----------------------------------------------------

def _class_value(field, value):
    if field in ("device", "attention"):
        text = _text(value)
        return text.replace(";", ",") if text else None
    if field == "prepare_py_sha256":
        text = _text(value)
        return text[:_HASH_CHARS].lower() if text else None
    value = number(value)
    if value is None:
        return None
    return str(int(value)) if value.is_integer() else repr(value)


def comparability_class(row):
    """Return the key of the class of runs this row may be compared with.

    Built from the row's provenance: device name, attention backend (fa3 or
    sdpa), time budget, max_seq_len, eval_tokens and the prepare.py hash
    (first 12 hex digits), each only when
    known, e.g. ``"device=NVIDIA H100 80GB HBM3;budget_s=300;seq=2048;
    eval_tokens=20971520;prepare=3f2a0c9d1b7e"``. Rows that know none of these
    (the earlier fork's records, log-parsed runs) share ``"legacy"``.
    """
    provenance = mapping_of(row, "provenance")
    parts = []
    for field, short in CLASS_FIELDS:
        value = _class_value(field, provenance.get(field))
        if value is not None:
            parts.append(f"{short}={value}")
    return ";".join(parts) if parts else LEGACY_CLASS


def class_label(key):
    """Return a comparability class key in words, e.g. for a report heading.

    >>> class_label("device=cpu;budget_s=60;seq=256")
    'cpu, 60 s budget, seq 256'
    >>> class_label("legacy")
    'legacy (no run provenance)'
    """
    if not isinstance(key, str) or key == LEGACY_CLASS or not key:
        return "legacy (no run provenance)"
    words = []
    for part in key.split(";"):
        short, _, value = part.partition("=")
        if short == "device":
            words.append(value)
        elif short == "attention":
            words.append(f"{value} attention")
        elif short == "budget_s":
            words.append(f"{value} s budget")
        elif short == "seq":
            words.append(f"seq {value}")
        elif short == "eval_tokens":
            words.append(f"{value} eval tokens")
        elif short == "prepare":
            words.append(f"prepare.py {value}")
        else:
            words.append(part)
    return ", ".join(words)


def split_by_class(rows):
    """Return {class key: [rows of that class]}, keys in order of first appearance.

    Every dict row is placed, crashes and non-comparable rows included (they
    still belong to a class for counting); non-dict rows are dropped.
    """
    classes = {}
    for row in rows:
        if isinstance(row, dict):
            classes.setdefault(comparability_class(row), []).append(row)
    return classes


# --- replicate groups ---------------------------------------------------------

def replicate_key(row):
    """Return the key under which reruns of the same config are grouped.

    The config fingerprint's code_sha256 when the row has one; otherwise
    ``"commit:<commit>"``; otherwise ``"run:<run_id>"`` (a group of its own);
    None when the row has none of these.
    """
    code_sha = _text(mapping_of(row, "config").get("code_sha256"))
    if code_sha:
        return code_sha
    if not isinstance(row, dict):
        return None
    commit = _text(row.get("commit"))
    if commit:
        return f"commit:{commit}"
    run_id = _text(row.get("run_id"))
    return f"run:{run_id}" if run_id else None


def group_summary(values):
    """n, mean, sd (None below two values), min and max of a group's val_bpb values."""
    return {
        "n": len(values),
        "mean": mean(values),
        "sd": sample_sd(values) if len(values) >= 2 else None,
        "min": min(values),
        "max": max(values),
    }


def replicate_groups(rows):
    """Group the comparable runs by replicate_key.

    Pass the rows of one comparability class: a group mixing devices measures
    the devices, not the noise. Returns, keys in order of first appearance::

        {key: {"n", "mean", "sd" (None when n < 2), "min", "max",
               "values" (val_bpb in ledger order), "run_ids", "commit"
               (the first run's), "seeds" (sorted, distinct; DEFAULT_SEED
               for rows without one), "statuses" ({lower-cased status or
               "unknown": count})}}

    Crashes and rows without a comparable val_bpb are left out.
    """
    raw = {}
    for row in rows:
        value = comparable_val_bpb(row)
        if value is None:
            continue
        key = replicate_key(row)
        if key is None:
            continue
        group = raw.get(key)
        if group is None:
            group = raw[key] = {"values": [], "run_ids": [], "seeds": set(),
                                "statuses": {}, "commit": _text(row.get("commit"))}
        group["values"].append(value)
        group["run_ids"].append(row.get("run_id"))
        group["seeds"].add(run_seed(row))
        status = status_of(row) or "unknown"
        group["statuses"][status] = group["statuses"].get(status, 0) + 1
    groups = {}
    for key, group in raw.items():
        summary = group_summary(group["values"])
        summary.update(values=group["values"], run_ids=group["run_ids"],
                       commit=group["commit"], seeds=sorted(group["seeds"]),
                       statuses=group["statuses"])
        groups[key] = summary
    return groups


def noise_floor(rows):
    """Estimate the run-to-run standard deviation of val_bpb.

    The pooled within-group sd over replicate groups with n >= 2 (groups are
    formed within each comparability class, so mixed rows cannot inflate it).
    Returns::

        {"sigma": float, "dof": int, "source": "measured" | "prior",
         "groups": replicate groups with n >= 2, "prior": PRIOR_SIGMA,
         "measured_sigma": float | None, "note": str | None}

    With no replicate yet sigma is PRIOR_SIGMA, source "prior" and dof 0.
    When every replicate reproduced its value exactly (deterministic reruns,
    which say nothing about seed noise) the prior is kept too, with a note.
    """
    values = {}
    for row in rows:
        value = comparable_val_bpb(row)
        key = replicate_key(row) if value is not None else None
        if key is not None:
            values.setdefault((comparability_class(row), key), []).append(value)
    return floor_from_values(values.values())


def floor_from_values(value_lists):
    """noise_floor from the val_bpb lists of replicate groups (one list per group,
    each within one comparability class); lists of fewer than two values are
    skipped. The one home of the floor's rule (registry calls it with its own
    groups). A measured sd s over dof degrees of freedom gives
    sigma = sqrt((dof·s² + PRIOR_DOF·prior²) / (dof + PRIOR_DOF)), so a first pair of
    runs moves sigma toward what it saw without being trusted alone."""
    replicated = [values for values in value_lists if len(values) >= 2]
    measured, dof = pooled_sd(replicated)
    result = {"sigma": PRIOR_SIGMA, "dof": 0, "source": "prior",
              "groups": len(replicated), "prior": PRIOR_SIGMA,
              "measured_sigma": measured, "note": None}
    if measured is None:
        result["note"] = "no replicate runs yet; sigma is the prior"
    elif measured == 0.0:
        result["note"] = (f"{len(replicated)} replicate group(s) reproduced val_bpb "
                          "exactly; sigma is the prior")
    else:
        shrunk = ((dof * measured ** 2 + PRIOR_DOF * PRIOR_SIGMA ** 2) / (dof + PRIOR_DOF)) ** 0.5
        result.update(sigma=shrunk, dof=dof, source="measured",
                      note=f"measured sd {measured:.6f} over {dof} dof, shrunk toward the "
                           f"prior {PRIOR_SIGMA:.6f} (worth {PRIOR_DOF} dof)")
    return result


# --- plateau ------------------------------------------------------------------

def plateau(rows, sigma, window=10):
    """Did the last ``window`` comparable runs fail to improve by more than sigma?

    ``rows`` are one comparability class in ledger order; crashes and rows
    without a comparable val_bpb do not count as runs. The window's best is
    compared with the best of all runs before it; the class is on a plateau
    when improvement = best_before - best_in_window <= sigma (an invalid sigma
    means PRIOR_SIGMA). Returns::

        {"plateau": bool, "window": int, "runs": comparable runs seen,
         "sigma": float, "best_before": float | None,
         "best_in_window": float | None, "improvement": float | None,
         "first_run_id": first run of the window, "best_run_id": best run of
         the window, "reason": str}

    With fewer than window + 1 comparable runs there is nothing to judge and
    plateau is False.
    """
    window = max(1, int(window))
    sigma = number(sigma)
    if sigma is None or sigma < 0.0:
        sigma = PRIOR_SIGMA
    runs = []
    for row in rows:
        value = comparable_val_bpb(row)
        if value is not None:
            runs.append((value, row.get("run_id")))
    result = {"plateau": False, "window": window, "runs": len(runs), "sigma": sigma,
              "best_before": None, "best_in_window": None, "improvement": None,
              "first_run_id": None, "best_run_id": None, "reason": ""}
    if len(runs) <= window:
        result["reason"] = (f"only {len(runs)} comparable run(s); "
                            f"a plateau needs more than {window}")
        return result
    before, recent = runs[:-window], runs[-window:]
    best_before = min(value for value, _ in before)
    best_in_window, best_run_id = min(recent, key=lambda run: run[0])
    improvement = best_before - best_in_window
    result.update(best_before=best_before, best_in_window=best_in_window,
                  improvement=improvement, first_run_id=recent[0][1],
                  best_run_id=best_run_id, plateau=improvement <= sigma)
    if result["plateau"]:
        result["reason"] = (f"the last {window} runs improved on {best_before:.6f} "
                            f"by {max(improvement, 0.0):.6f}, not more than "
                            f"sigma {sigma:.6f}")
    else:
        result["reason"] = (f"run {best_run_id} improved on {best_before:.6f} by "
                            f"{improvement:.6f} > sigma {sigma:.6f}")
    return result


# --- replicate advice ---------------------------------------------------------

def next_seeds(group, count=2):
    """Return ``count`` AUTORESEARCH_SEED values the group has not used yet.

    ``group`` is a replicate_groups entry (its "seeds" are read) or a plain
    iterable of seeds. Suggestions count up from DEFAULT_SEED, skipping used
    ones: a group that ran only the default seed gets [43, 44].

    >>> next_seeds({"seeds": [42, 44]}, count=3)
    [43, 45, 46]
    """
    seeds = group.get("seeds", ()) if isinstance(group, dict) else group
    used = set()
    for seed in seeds or ():
        if isinstance(seed, int) and not isinstance(seed, bool):
            used.add(seed)
    suggestions = []
    candidate = DEFAULT_SEED
    while len(suggestions) < count:
        if candidate not in used:
            suggestions.append(candidate)
        candidate += 1
    return suggestions
