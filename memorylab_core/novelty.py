"""The novelty guard: is a planned idea new, a repeat, or a follow-up of earlier runs?

Each prior run gets a score in [0, 1] against the planned idea. Evidence comes in
three strengths, strongest first:

1. code: the run's train.py fingerprint has the same normalised code hash as the
   current train.py (score 1.0, always a ``duplicate_run``), or its constants make
   the same delta from the champion's config;
2. parsed intent: both descriptions parse (``intent.parse_changes``) into canonical
   changes (knob, direction, value). Same knob, direction and value is the same
   idea (0.97); same knob and direction with another value is a related follow-up
   (0.56-0.60, below the default threshold); opposite directions, another choice
   and different knobs never match, whatever the threshold, so an idea is never
   blocked as a repeat of its opposite;
3. free text: a weighted token overlap (Dice) of description and tags, less a
   little when each side has words of its own (a substitution), capped at the
   follow-up level when the same words come with other numbers; used when a side
   has no parsed change, scaled by 0.85 when the other side did parse.

Runs at or above the effective threshold match (same family: 0.08 lower); the
category of each match and the policy per mode follow the MemoryLab contract.
Everything here is pure and linear in the history; ``features`` is meant to be
computed once per run and stored as ``novelty_features``.
"""

import heapq
import math
import re

from . import fingerprint, intent, lexical
from .records import DEFAULT_FAMILY

MODES = ("explore", "exploit", "replicate")
DEFAULT_MODE = "exploit"
DEFAULT_THRESHOLD = 0.62
MODE_ADJUSTMENT = {"explore": -0.05, "exploit": 0.0, "replicate": -0.08}
FAMILY_BONUS = 0.08
CATEGORIES = ("duplicate_run", "repeat_failure", "incremental_followup", "known_success")
FEATURES_VERSION = 14

CODE_SCORE = 1.0            # identical normalised train.py
SAME_CONSTANTS_SCORE = 0.95  # same constants as this train.py, other code differs
SAME_SCORE = 0.97           # same knob, direction and value
RELATED_LOW, RELATED_HIGH = 0.56, 0.60  # same knob and direction, other value
MENTION_SCORE = 0.45        # same knob, one side states no direction
OPPOSITE_SCORE = 0.02       # same knob, opposite direction
OTHER_VALUE_SCORE = 0.1     # same knob, another choice (swiglu vs gelu)
ONE_SIDED_TEXT_WEIGHT = 0.85  # text score when only one side parsed
SUBSTITUTION_PENALTY = 0.15   # text score lost when each side has words of its own
DUPLICATE_LEVEL = 0.9       # a kept run matched at/above this is a duplicate

_FAILED = ("discard", "crash")
# parsed evidence that two ideas differ is final: no threshold turns these into matches
_NEVER_MATCH = ("opposite", "other_value", "different")

POLICY = {
    ("novel", "explore"): ("allow", "novel idea: exploring new ground is what explore mode is for"),
    ("novel", "exploit"): ("caution", "novel idea: new, not targeted exploitation of a known success"),
    ("novel", "replicate"): ("block", "nothing to replicate: no earlier run matches this idea"),
    ("duplicate_run", "explore"): ("block", "duplicates an earlier run; explore mode wants new ideas"),
    ("duplicate_run", "exploit"): ("block", "duplicates an earlier run; duplicates belong in replicate mode"),
    ("duplicate_run", "replicate"): ("allow", "replicates an earlier run, which is what replicate mode is for"),
    ("repeat_failure", "explore"): ("block", "repeats an idea that already failed (discarded or crashed)"),
    ("repeat_failure", "exploit"): ("block", "repeats an idea that already failed (discarded or crashed)"),
    ("repeat_failure", "replicate"): ("block", "repeats an idea that already failed; replicate successes, not failures"),
    ("incremental_followup", "explore"): ("block", "a follow-up of a kept run in its family belongs in exploit mode"),
    ("incremental_followup", "exploit"): ("allow", "an incremental follow-up of a kept run in the same family"),
    ("incremental_followup", "replicate"): ("allow", "re-tests a kept run's neighbourhood in its family"),
    ("known_success", "explore"): ("block", "close to a known success; building on it belongs in exploit mode"),
    ("known_success", "exploit"): ("allow", "exploits a known success"),
    ("known_success", "replicate"): ("allow", "re-tests a known success"),
}


def named_family(family):
    """A family an agent named, lower-cased; "" for none or the default one
    (every run without a family has the default, which says nothing about the idea)."""
    family = (family or "").strip().lower()
    return "" if family == DEFAULT_FAMILY else family


def effective_threshold(threshold, mode):
    """Base threshold plus the mode's adjustment, kept within [0, 0.99]."""
    if mode not in MODE_ADJUSTMENT:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    return round(min(0.99, max(0.0, float(threshold) + MODE_ADJUSTMENT[mode])), 4)


def policy(classification, mode):
    """{"mode", "decision", "rationale"} for a classification in a mode (contract table)."""
    decision, rationale = POLICY[(classification, mode)]
    return {"mode": mode, "decision": decision, "rationale": rationale}


def probe_text(idea):
    """The idea's description, hypothesis, family and tags as one line of text."""
    parts = [idea.get("description") or "", idea.get("hypothesis") or "", idea.get("family") or ""]
    tags = idea.get("tags") or []
    if isinstance(tags, str):
        tags = [t for t in tags.split(",")]
    parts.append(" ".join(str(t).strip() for t in tags if str(t).strip()))
    return " ".join(p.strip() for p in parts if p and p.strip())


def _tags_text(tags):
    if isinstance(tags, str):
        tags = tags.split(",")
    return " ".join(str(t) for t in (tags or []))


def code_changes(change_set):
    """Canonical changes of a stored change set (``fingerprint.change_set``): one per
    constant delta, direction against the parent's value, and one "CODE" change whose
    "tokens" say what the other hunks remove and add. None without a change set."""
    if not isinstance(change_set, dict):
        return None
    out = []
    for d in change_set.get("constants") or ():
        out.extend(intent.changes_from_constant(d["name"], d["old"], d["new"]))
    removed, added = set(), set()
    for hunk in change_set.get("hunks") or ():
        for side, lines in zip((removed, added), hunk):
            for line in lines:
                side.update(_CODE_TOKEN.findall(line))
    if removed or added:
        tokens = sorted({"-" + t for t in removed - added} | {"+" + t for t in added - removed})
        out.append({"knob": "CODE", "direction": "set", "value": None, "tokens": tokens})
    return out


def is_current(features):
    """Whether `features` are of this FEATURES_VERSION and of its shape (a record
    written by hand may claim the version and lack fields)."""
    return type(features) is dict and features.get("version") == FEATURES_VERSION and all(
        type(features.get(key)) is list for key in ("changes", "keys", "tokens", "context"))


def features(idea, base_constants=None, change_set=None):
    """Compact, JSON-serialisable matching features of an idea (stored per run).

    Keys: ``version``; ``changes`` (the constants a ``change_set`` changed, else
    the canonical changes parsed from the change part of the description,
    ``intent.read``: each {"knob", "direction", "value"}, with "approx", "reads_as"
    or "aside" when they apply); ``code`` (only with a ``change_set``:
    ``code_changes``); ``knobs`` (sorted knob names of both);
    ``tokens`` (sorted lexical tokens of the change part and tags); ``context``
    (tokens of hypothesis and family not already in ``tokens``); ``values`` (the
    number tokens of the changes' values, when there are any); ``keys`` (the knobs as
    "@KNOB", or the tokens and context when nothing parsed: the prefilter's one
    lookup per run); ``direction`` (the text's one overall direction word, or None);
    ``weight`` and ``weight_all`` (token weight sums, without and with context);
    ``sig`` (a string identifying all of the above, used to memoise scores).
    """
    parsed, change = _read(idea.get("description") or "", base_constants)
    return _features(idea, parsed, change, code_changes(change_set))


_LAST_READ = []   # [(text, base constants), intent.read's result]: check reads one idea thrice


def _read(text, base_constants):
    """intent.read, the last result remembered (callers copy what they change)."""
    if _LAST_READ and _LAST_READ[0][0] == text and _LAST_READ[0][1] == base_constants:
        return _LAST_READ[1]
    result = intent.read(text, base_constants)
    _LAST_READ[:] = [(text, dict(base_constants) if base_constants else base_constants), result]
    return result


def _compact(change):
    compact = {"knob": change["knob"], "direction": change["direction"], "value": change["value"]}
    for flag in ("approx", "reads_as", "aside"):
        if change.get(flag):
            compact[flag] = change[flag]
    return compact


def _features(idea, parsed, description, code=None):
    constants = [c for c in code or () if c["knob"] != "CODE"]
    said = None
    if constants:   # what the code changed is the idea: knobs, and directions against the parent
        said = [_compact(c) for c in parsed]  # kept for a planned idea that has only words
        parsed = constants
    changes = [_compact(c) for c in parsed]
    tokens = lexical.lexical_tokens(description + " " + _tags_text(idea.get("tags")))
    seen = set(tokens)
    context = [
        t for t in lexical.lexical_tokens((idea.get("hypothesis") or "") + " " + (idea.get("family") or ""))
        if t not in seen
    ]
    return _packed(changes, tokens, context, lexical.overall_direction(description), code, said)


def _packed(changes, tokens, context, direction, code=None, said=None):
    """The features dict of parsed parts (see ``features``)."""
    sig = _signature(changes, tokens, context, direction, code)
    weight = round(_weight(tokens), 4)
    knobs, keys, values = _change_fields(changes, tokens, context, code, said)
    out = {"version": FEATURES_VERSION, "changes": changes, "knobs": knobs, "keys": keys, "tokens": tokens,
           "context": context, "direction": direction, "weight": weight,
           "weight_all": round(weight + _weight(context), 4), "sig": sig}
    if values:   # optional keys, absent when empty: stored for every row of the index
        out["values"] = values
    if code:
        out["code"] = code
    if said:
        out["said"] = said
    return out


def _change_fields(changes, tokens, context, code=None, said=None):
    """(knobs, keys, values) of features with these changes (see ``features``)."""
    # the numbers a parsed change moves to: an old value both texts name is no match
    values = sorted({lexical.number_token(c["value"]) for c in changes
                     if isinstance(c["value"], (int, float)) and not isinstance(c["value"], bool)})
    knobs = sorted({c["knob"] for c in changes + (code or [])})
    keys = sorted({"@" + k for c in changes + (code or []) + (said or [])
                   for k in (c["knob"], c.get("reads_as")) if k}) \
        if knobs else sorted(set(tokens + context))
    return knobs, keys, values


def _signature(changes, tokens, context, direction, code=None):
    """A string identifying features (the key that memoises their scores)."""
    sig = "|".join(f"{c['knob']}:{c['direction']}:{c['value']!r}:{c.get('approx', '')}:{c.get('reads_as', '')}"
                   for c in changes)
    sig += "#" + " ".join(tokens) + "#" + " ".join(context) + "#" + str(direction)
    if code:
        sig += "#" + "|".join(f"{c['knob']}:{c['direction']}:{c['value']!r}:{c.get('tokens')}" for c in code)
    return sig


def words_only(f):
    """Current features ``f`` of a run as if it had no change set: what its words
    said (a fix changes the code, so the words are what it shares with a crash).
    None when ``f`` is not current features (the caller derives them again)."""
    if not is_current(f):
        return None
    code = f.get("code")
    if not code:
        return f
    constants = any(c["knob"] != "CODE" for c in code)
    words = f.get("said", []) if constants else f["changes"]
    # the fields that depend on the changes made again; the words' own (weights) stay
    out = {k: v for k, v in f.items() if k not in ("code", "said", "sig", "values")}
    out["changes"] = words
    out["knobs"], out["keys"], values = _change_fields(words, f["tokens"], f["context"])
    if values:
        out["values"] = values
    return out


# ---------------------------------------------------------------- change relations

def _numeric(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _values_equal(a, b, tolerance):
    if _numeric(a) and _numeric(b):
        if a == b:
            return True
        scale = max(abs(a), abs(b))
        return scale > 0 and abs(a - b) <= tolerance * scale
    return a == b


def _closeness(a, b):
    """1.0 for equal numbers, falling to 0 at a factor of 4 apart."""
    if not (_numeric(a) and _numeric(b)) or a <= 0 or b <= 0:
        return 0.5
    return max(0.0, 1.0 - abs(math.log(a / b)) / math.log(4))


_OPPOSITE = {("up", "down"), ("down", "up"), ("on", "off"), ("off", "on")}
_CODE_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d*)?(?:e[-+]?\d+)?")   # names and numbers
SAME_CODE = 0.5   # token Jaccard at which two code changes are one idea written twice


def _code_overlap(a, b):
    a, b = set(a or ()), set(b or ())
    return len(a & b) / len(a | b) if a or b else 1.0


def relate(a, b):
    """How two canonical changes of the same knob relate: (relation, score).

    relation is "same", "related", "mention", "opposite" or "other_value".
    """
    if a["knob"] == "CODE":
        overlap = _code_overlap(a.get("tokens"), b.get("tokens"))
        return ("same", SAME_SCORE) if overlap >= SAME_CODE else ("other_value", OTHER_VALUE_SCORE)
    da, db = a.get("direction"), b.get("direction")
    va, vb = a.get("value"), b.get("value")
    tolerance = intent.value_tolerance(a, b)
    if va is not None and vb is not None and _values_equal(va, vb, tolerance):
        return "same", SAME_SCORE   # the same target is the same config, however each got there
    if (da, db) in _OPPOSITE:
        return "opposite", OPPOSITE_SCORE
    if va is not None and vb is not None:
        if _numeric(va) and _numeric(vb):   # another value of the same number: a re-tune
            return "related", RELATED_LOW + (RELATED_HIGH - RELATED_LOW) * _closeness(va, vb)
        return "other_value", OTHER_VALUE_SCORE
    if da and da == db:
        if va is None and vb is None:
            return "same", SAME_SCORE
        return "related", RELATED_LOW
    if da is None or db is None:
        return "mention", MENTION_SCORE
    return "other_value", OTHER_VALUE_SCORE


def format_change(change):
    """'MATRIX_LR up to 0.06', 'VALUE_EMBEDS off', 'MLP_ACTIVATION = swiglu'."""
    knob, direction, value = change["knob"], change.get("direction"), change.get("value")
    if knob == "CODE":
        return "code " + " ".join((change.get("tokens") or [])[:8])
    if value is None:
        return f"{knob} {direction}" if direction else f"{knob} (mentioned)"
    shown = fingerprint.format_value(value) if not isinstance(value, str) else value
    if direction in ("up", "down"):
        return f"{knob} {direction} to {shown}"
    return f"{knob} = {shown}"


# ---------------------------------------------------------------- text similarity

def _weight(tokens):
    w = lexical.token_weight
    return sum(w(t) for t in tokens)


def _overlap(common, weight_a, weight_b):
    """Weighted Dice of two token sets given the shared tokens and each side's
    total weight, less a little when both sides also have words of their own
    ("learned positional embedding" vs "sinusoidal positional embedding" is a
    substitution, a different variant; extra words on one side only elaborate)."""
    w = lexical.token_weight
    shared = sum(w(t) for t in common)
    only_a, only_b = max(0.0, weight_a - shared), max(0.0, weight_b - shared)
    swapped = min(only_a, only_b)
    dice = 2.0 * shared / ((weight_a + weight_b) or 1.0)
    return dice - SUBSTITUTION_PENALTY * swapped / (shared + swapped)


def _text_score(pf, rf):
    """Word overlap of the description+tags tokens (and, when either side has
    them, of all tokens with hypothesis and family, at 0.9)."""
    tokens = rf.get("tokens") or ()
    context = rf.get("context") or ()
    pt, pcx = pf["_tokens"], pf["_context"]
    common = pt.intersection(tokens)
    score = _overlap(common, pf["weight"], rf["weight"]) if common else 0.0
    if pcx or context:
        common_all = pf["_all"].intersection(tokens)
        common_all.update(pf["_all"].intersection(context))
        if common_all:
            score = max(score, 0.9 * _overlap(common_all, pf["weight_all"], rf["weight_all"]))
    if score > 0:
        d1, d2 = pf.get("direction"), rf.get("direction")
        if d1 and d2 and (d1, d2) in _OPPOSITE:
            score *= 0.4
        if score > RELATED_HIGH and pf["_numbers"]:
            theirs = set(rf.get("values") or ()) or {t for t in tokens if t[0].isdigit()}
            if theirs and pf["_numbers"].isdisjoint(theirs):
                score = RELATED_HIGH   # the same words with other numbers: a follow-up, not a repeat
    return max(0.0, score)


def _sides(pf, rf):
    """(planned changes by knob, the run's changes) to compare: what the code changed
    when both sides have it, or one side's constants against the other's words;
    else what the descriptions say."""
    pcode, rcode = pf.get("_code_by_knob"), rf.get("code")
    if pcode and rcode:
        return pcode, rcode
    if pcode and set(pcode) != {"CODE"}:
        return {k: c for k, c in pcode.items() if k != "CODE"}, rf.get("changes") or ()
    if rcode and any(c["knob"] != "CODE" for c in rcode):
        return pf["_by_knob"], [c for c in rcode if c["knob"] != "CODE"]
    return pf["_by_knob"], rf.get("changes") or ()


def _bridge(mine, theirs):
    """``mine`` with a code name keyed by the knob it reads as ("train_batch_tokens" as
    TOTAL_BATCH_SIZE) where ``theirs`` names that knob in words: a code name meets a
    description in words, never another code name."""
    out = dict(mine)
    for knob, c in mine.items():
        reading = c.get("reads_as")
        if reading and knob not in theirs and reading not in out and reading in theirs \
                and not theirs[reading].get("reads_as") and reading == theirs[reading]["knob"]:
            out[reading] = out.pop(knob)
    return out


_NOTHING = (0.0, "different", "")
_BY_CONSTANTS = "(same values of the changed constants)"


def _compare(pf, rf, floor=0.0, explain=True):
    """(score, relation, reason) of a planned idea's features against a run's.

    ``floor``: scores below it do not matter to the caller, which lets the
    one-sided text case be skipped. With ``explain`` False the reason of a parsed
    comparison is None (made later, for the runs shown only).
    """
    result = _compare_sides(pf, rf, *_sides(pf, rf), floor, explain)
    if result is _NOTHING and rf.get("said") and not pf.get("_code_by_knob"):
        # a check before the edit has only words: the run's own words are the fallback
        result = _compare_sides(pf, rf, pf["_by_knob"], rf["said"], floor, explain)
    return result


def _compare_sides(pf, rf, pc, rc, floor, explain):
    """_compare for the given sides (planned changes by knob, the run's changes)."""
    if pc and rc:
        rk = {}
        for c in rc:
            rk[c["knob"]] = c
        pc, rk = _bridge(pc, rk), _bridge(rk, pc)
        if ("SEED" in pc or "SEED" in rk) and len(pc) + len(rk) > 2:
            # a seed is how an idea is re-run, not an idea of its own
            pc = {k: c for k, c in pc.items() if k != "SEED"} or pc
            rk = {k: c for k, c in rk.items() if k != "SEED"} or rk
        common = [k for k in pc if k in rk]
        # a knob named only in an aside ("(device batch 8)") can tell two ideas apart
        # when both name it, but is not needed for them to be the same
        main = {k for k, c in pc.items() if not c.get("aside")} | {k for k, c in rk.items() if not c.get("aside")}
        if not main.intersection(common):
            return _NOTHING
        union = len(main | set(common))
        total, relations, reasons = 0.0, [], []
        for k in common:
            relation, score = relate(pc[k], rk[k])
            relations.append(relation)
            total += score
            if explain:
                reasons.append(f"{format_change(pc[k])} vs {format_change(rk[k])}"
                               + (f" ({relation})" if len(common) > 1 else ""))
        if "opposite" in relations:
            return OPPOSITE_SCORE, "opposite", "; ".join(reasons) if explain else None
        score = total / union
        if "related" in relations or "other_value" in relations:
            score = min(score, RELATED_HIGH)   # another value of any knob is a follow-up, not a repeat
        if union > len(common) and explain:
            extra = sorted(main - set(common))
            reasons.append("only one side changes " + ", ".join(extra))
        if all(r == "same" for r in relations) and union == len(common):
            relation = "same"
        elif "other_value" in relations and len(relations) == 1 and union == 1:
            relation = "other_value"
        else:
            relation = "related" if any(r in ("same", "related") for r in relations) else relations[0]
        return score, relation, "; ".join(reasons) if explain else None
    if pc or rc:
        if ONE_SIDED_TEXT_WEIGHT < floor:
            return _NOTHING
        return ONE_SIDED_TEXT_WEIGHT * _text_score(pf, rf), "text", "word overlap (only one side parsed)"
    return _text_score(pf, rf), "text", "word overlap"


# ---------------------------------------------------------------- assessment

def _category(relation, score, status, same_family):
    if relation == "code":
        return "duplicate_run"
    if status in _FAILED:
        return "repeat_failure"
    if score >= DUPLICATE_LEVEL:
        return "duplicate_run"
    if same_family:
        return "incremental_followup"
    return "known_success"


def _row_features(row, memo_features):
    f = row.get("novelty_features")
    if is_current(f):
        return f
    key = (row.get("description") or "", row.get("hypothesis") or "",
           row.get("family") or "", _tags_text(row.get("tags")))
    f = memo_features.get(key)
    if f is None:
        f = features({"description": key[0], "hypothesis": key[1], "family": key[2],
                      "tags": row.get("tags")})
        memo_features[key] = f
    return f


def _candidates(history, probe_knobs, probe_words, code):
    """Indices of the rows worth scoring, in ledger order (one pass over history).

    A run that parsed only other knobs than the idea cannot match (parsed evidence
    is final); text that shares no word with the idea scores 0. Rows whose stored
    features are stale are always scored, and so, when ``code`` is (sha, wanted),
    are runs with the same code hash or the same values of the constants changed
    from the champion's config (``wanted``: (name, value) pairs, as _config_hit).
    """
    version = FEATURES_VERSION
    sha, wanted = code or (None, ())
    name, value = wanted[0] if wanted else (None, None)
    rest = wanted[1:]
    # the four comprehensions below differ in one clause each: inlined, not a
    # shared helper, because a function call per row would double the cost
    if probe_knobs:
        apart = ({"@" + k for k in probe_knobs} | probe_words).isdisjoint
        if sha is None:
            return [i for i, row in enumerate(history)
                    if type(f := row.get("novelty_features")) is not dict or f.get("version") != version
                    or not apart(f["keys"])]
        return [i for i, row in enumerate(history)
                if type(f := row.get("novelty_features")) is not dict or f.get("version") != version
                or not apart(f["keys"])
                or ((c := row.get("config")) and (c.get("code_sha256") == sha or (
                    name is not None and (k := c.get("constants")) and k.get(name) == value
                    and (not rest or all(k.get(n) == v for n, v in rest)))))]
    apart = probe_words.isdisjoint   # an idea in words only is compared with every run's words
    if sha is None:
        return [i for i, row in enumerate(history)
                if type(f := row.get("novelty_features")) is not dict or f.get("version") != version
                or not (apart(f["tokens"]) and apart(f["context"]))]
    return [i for i, row in enumerate(history)
            if type(f := row.get("novelty_features")) is not dict or f.get("version") != version
            or not (apart(f["tokens"]) and apart(f["context"]))
            or ((c := row.get("config")) and (c.get("code_sha256") == sha or (
                name is not None and (k := c.get("constants")) and k.get(name) == value
                and (not rest or all(k.get(n) == v for n, v in rest)))))]


POSTINGS_VERSION = 1   # of posting_keys: the index is rebuilt when it changes


def posting_keys(features, config):
    """The keys under which the index posts a run (store.GuardPart): its features'
    keys (as ("key", key)), the words of their tokens and context (plain, and as
    ("loose", word) when its words changed nothing: `assess`'s words filter), None
    when its features are not current (such a run is always a candidate), its code
    hash and each constant's value. `_candidate_keys` names the keys of a planned
    idea: every run that `_candidates` can pick is posted under one of them, or under
    all of a group of them."""
    keys = []
    if is_current(features):
        keys += [("key", key) for key in features["keys"]]
        keys += features["tokens"] + features["context"]
        if not features.get("said") or not features["changes"]:
            keys += [("loose", word) for word in features["tokens"] + features["context"]]
    else:
        keys.append(None)
    if type(config) is dict:
        keys.append(("sha", config.get("code_sha256")))
        constants = config.get("constants")
        if type(constants) is dict:
            keys += [("=", name, value) for name, value in constants.items()]
    return keys


def _candidate_keys(probe_knobs, probe_words, code, words):
    """(any, every): `_candidates` may pick, of an idea (its arguments; `words`:
    assess's, whose filter reads a run's keys, tokens and context alike), the runs
    posted under a key of `any` or under each key of `every`."""
    keys = [None]
    reach = probe_words | {"@" + k for k in probe_knobs}
    if probe_knobs:   # the runs whose keys meet the knobs or words
        keys += [("key", key) for key in reach]
        if words:   # and those whose words changed nothing, by their tokens and context
            keys += [("loose", word) for word in reach]
    else:   # the runs whose tokens or context meet the words
        keys += reach
    sha, wanted = code or (None, ())
    if sha:
        keys.append(("sha", sha))
    return keys, [("=", name, value) for name, value in wanted]


def _config_hit(row, code_sha, constants, wanted, same_text):
    """(score, relation, reason) from a run's config fingerprint, or None: the same
    normalised code (``code_sha``: None for a check in words), or the same values of
    the constants changed (``wanted``); all of ``constants`` the same is the same
    config, said by ``same_text``."""
    config = row.get("config")
    if not config:
        return None
    if code_sha and config.get("code_sha256") == code_sha:
        return CODE_SCORE, "code", "identical train.py (normalised code hash)"
    theirs = config.get("constants") or {}
    if wanted and all(theirs.get(n) == v for n, v in wanted):
        if theirs == constants:
            return SAME_CONSTANTS_SCORE, "same_delta", same_text
        return RELATED_HIGH, "related", _BY_CONSTANTS
    return None


def _planned_config(parsed, base_constants):
    """(constants, delta) of the config a check in words plans: train.py's constants
    (``base_constants``) with the parsed changes applied, and its constant delta,
    when every change sets a constant train.py has to an explicit value of its kind
    (a number for a number, a text for a text); else (None, []). It judges an idea
    against earlier configs as ``check --code`` does once the idea is in the code:
    the same change on another base is a follow-up, not a repeat."""
    if not parsed or not isinstance(base_constants, dict):
        return None, []
    planned = dict(base_constants)
    for change in parsed:
        knob, value = change["knob"], change.get("value")
        old = base_constants.get(knob)
        same_kind = (_numeric(old) and _numeric(value)) or \
            (isinstance(old, str) and isinstance(value, str))
        if not same_kind or change.get("approx"):
            return None, []
        planned[knob] = value
    delta = fingerprint.constant_delta(base_constants, planned)
    return (planned, delta) if delta else (None, [])


def _config_changes(delta):
    """Canonical changes implied by a constant delta (for matching descriptions)."""
    out = []
    for d in delta:
        out.extend(intent.changes_from_constant(d["name"], d["old"], d["new"]))
    return out


def _constants_reason(row, constants, delta_names):
    theirs = (row.get("config") or {}).get("constants") or {}
    others = sorted(k for k in set(theirs) | set(constants)
                    if not fingerprint.same_value(theirs.get(k), constants.get(k)))
    return ("same values of " + ", ".join(delta_names) + "; also differs in " + ", ".join(others[:4])
            + (" ..." if len(others) > 4 else ""))


def _shown_match(row, category, score, relation, reason):
    return {"category": category, "score": round(score, 4), "run_id": row.get("run_id"),
            "commit": row.get("commit"), "status": row.get("status"), "val_bpb": _val_bpb(row),
            "description": row.get("description"), "family": row.get("family") or "",
            "relation": relation, "reason": reason}


def _explanation(changes, top_matches, nearby, in_words=False):
    """``in_words``: the check had no code (a same_delta match is then with the config
    the words plan, not with a fingerprint of train.py)."""
    method = "code" if any(m["relation"] in ("code", "same_delta") for m in top_matches) else (
        "parsed" if changes else "text")
    text = _explanation_text(changes, top_matches, nearby)
    if method == "code":
        text = ("config: " if in_words else "code fingerprint: ") + text
    return {
        "text": text,
        "method": method,
        "changes": changes,
        "summary": "; ".join(format_change(c) for c in changes) or "no known knob recognised",
        "matches": [{"run_id": m["run_id"], "relation": m["relation"], "score": m["score"],
                     "reason": m["reason"]} for m in top_matches],
        "nearby": nearby,
    }


def _explanation_text(changes, top_matches, nearby):
    """One line saying what was understood and why runs matched (or did not)."""
    parts = []
    if changes:
        parts.append("parsed " + "; ".join(format_change(c) for c in changes))
    else:
        parts.append("no known knob recognised, scored by word overlap")
    if top_matches:
        shown = [f"{m['run_id']} ({m['relation']}: {m['reason']})" for m in top_matches[:2]]
        parts.append("matched " + ", ".join(shown))
    for item in nearby[:2]:
        if item["relation"] in ("opposite", "related", "other_value"):
            label = {"opposite": "opposite change", "related": "related follow-up",
                     "other_value": "another value"}[item["relation"]]
            parts.append(f"not a repeat of {item['run_id']} ({label}: {item['reason']})")
    return "; ".join(parts)


def _val_bpb(row):
    metrics = row.get("metrics") or {}
    return metrics.get("val_bpb") if isinstance(metrics, dict) else None


def _probe(f, changes=None):
    """Features made ready to compare as the planned side (``_compare``): sets of
    their tokens and numbers, their changes (default: the parsed ones) and code
    changes by knob."""
    f["_by_knob"] = {c["knob"]: c for c in (f["changes"] if changes is None else changes)}
    f["_code_by_knob"] = {c["knob"]: c for c in f["code"]} if f.get("code") else None
    f["_tokens"] = set(f["tokens"])
    f["_context"] = set(f["context"])
    f["_all"] = f["_tokens"] | f["_context"]
    f["_numbers"] = set(f.get("values") or ()) or {t for t in f["_tokens"] if t[0].isdigit()}
    return f


def same_idea(a, b, threshold=DEFAULT_THRESHOLD):
    """Whether two ideas are the same idea: the one rule the guard applies, for any
    caller that holds two ideas rather than an idea and a ledger. Each is a dict with
    "description" (and optionally "hypothesis", "tags", "change_set" as stored with a
    run, "novelty_features" when already computed). Families play no part: the
    family allowance is the guard's, for runs an agent filed together. Returns
    (same, score, relation, reason)."""
    def of(idea):
        f = idea.get("novelty_features")
        if not is_current(f):
            f = features(idea, None, idea.get("change_set"))
        return f
    score, relation, reason = _compare(_probe(dict(of(a))), of(b))
    return relation not in _NEVER_MATCH and score >= threshold, round(score, 4), relation, reason


def assess(idea, history, *, mode=DEFAULT_MODE, threshold=DEFAULT_THRESHOLD, limit=3,
           base_constants=None, config=None, champion_config=None, change_set=None,
           words=False, plan=False, narrow=None):
    """The contract's novelty_guard dict for ``idea`` against ``history``.

    idea: {"description", "hypothesis", "family", "tags"}. history: ledger records
    or slim rows in ledger order (``novelty_features`` used when current).
    ``config`` is the planned run's train.py fingerprint; ``champion_config`` the
    champion's; ``change_set`` the planned change against train.py's last commit
    (``fingerprint.change_set``): when given, its constants and code are the idea's
    identity and the description only its fallback. Adds "explanation" (parsed changes, matched runs and why) and
    "config_delta" (constant changes from the champion's config) to the contract's
    fields. With ``words``, each run is judged by what its words said (``words_only``,
    no config): how the fix of a crash, whose code differs, is matched to it. With
    ``plan`` and no config, runs' configs are judged against the config the words
    plan (``_planned_config``): how a check in words agrees with ``check --code``
    about the ledger (claims, judged by fingerprint or words alone, leave it off).
    ``narrow`` (store.GuardRows.narrow): ``history`` is packed rows, of which only
    those posted under the idea's keys (``_candidate_keys``) are unpacked and judged.
    """
    eff = effective_threshold(threshold, mode)
    family_eff = max(0.0, eff - FAMILY_BONUS)
    family = named_family(idea.get("family"))
    if base_constants is None and champion_config:
        base_constants = champion_config.get("constants")
    parsed, change = _read(idea.get("description") or "", base_constants)
    code = code_changes(change_set)
    pf = _features(idea, parsed, change, code)
    changes = [dict(c, source="description") for c in parsed]
    if code:
        said = {c["knob"] for c in changes}
        changes += [dict(c, source="code") for c in code if c["knob"] not in said]

    config_delta = []
    code_sha = None
    cur_constants = None
    if config:
        code_sha = config.get("code_sha256")
        cur_constants = config.get("constants")   # None: unknown (train.py does not parse)
        if champion_config:
            config_delta = fingerprint.constant_delta(champion_config.get("constants") or {}, cur_constants)
        described = {c["knob"] for c in changes}
        for c in (_config_changes(config_delta) if code is None else ()):
            if c["knob"] not in described:
                changes.append(dict(c, source="config"))
    _probe(pf, [c for c in changes if c["knob"] != "CODE"])
    delta, same_text = config_delta, "same constants as this train.py"
    if plan and config is None and change_set is None:   # the config the words plan
        cur_constants, delta = _planned_config(parsed, base_constants)
        same_text = "same constants as train.py with this change"
    delta_names = [d["name"] for d in delta if d["new"] is not None]
    same_text += " (" + fingerprint.format_delta(delta) + ")"
    wanted = [(n, cur_constants.get(n)) for n in delta_names]

    memo_scores, memo_features = {}, {}
    floor = family_eff if family else eff   # no run scoring below this can match
    probe_knobs = set(pf["_by_knob"]) | set(pf["_code_by_knob"] or ()) | {
        c["reads_as"] for c in changes if c.get("reads_as")}
    # a run must share a word of the description, tags or hypothesis (a shared family
    # alone is what the family allowance is for, not evidence of the same idea)
    probe_words = pf["_tokens"] | set(lexical.lexical_tokens(idea.get("hypothesis") or ""))
    code = (code_sha, wanted) if code_sha else None
    narrow = narrow or getattr(history, "narrow", None)   # store.GuardRows given whole
    if narrow is not None:
        history = list(narrow(history, *_candidate_keys(probe_knobs, probe_words, code, words)))
    if words:
        # words_only only of the runs that can be candidates (_candidates) once their
        # features are words only: keys those words give are among the run's keys when
        # the words name a knob (said, else changes), else they are its tokens
        reach = {"@" + k for k in probe_knobs} | probe_words
        history = [dict(row, change_set=None, config=None, novelty_features=words_only(f))
                   for row in history
                   if not is_current(f := row.get("novelty_features"))
                   or (probe_knobs and not reach.isdisjoint(f["keys"]))
                   or ((not probe_knobs or not f.get("said") or not f["changes"]) and not (
                       reach.isdisjoint(f["tokens"]) and reach.isdisjoint(f["context"])))]
    matches = []   # (score, index, category, relation, reason)
    nearby = []    # heap of (score, index, relation, reason) for informative non-matches
    counts = {c: 0 for c in CATEGORIES}
    informative = ("related", "opposite", "other_value", "mention")
    # in words, configs judge the runs the words make candidates (a run whose change set
    # set these constants is one: its keys name them); a code hash adds runs of its own
    configs = bool(code_sha or wanted)
    for index in _candidates(history, probe_knobs, probe_words, code):
        row = history[index]
        hit = _config_hit(row, code_sha, cur_constants, wanted, same_text) if configs else None
        if hit is None:
            rf = _row_features(row, memo_features)
            key = rf.get("sig") or _signature(rf["changes"], rf["tokens"], rf["context"],
                                              rf["direction"], rf.get("code"))
            hit = memo_scores.get(key)
            if hit is None:
                hit = _compare(pf, rf, floor, explain=False)
                memo_scores[key] = hit
            if hit[0] < floor and hit[1] not in informative:
                continue
        score, relation, reason = hit
        same_family = bool(family) and named_family(row.get("family")) == family
        if relation in _NEVER_MATCH:
            pass
        elif score >= eff or (same_family and score >= family_eff):
            category = _category(relation, score, row.get("status"), same_family)
            counts[category] += 1
            matches.append((score, index, category, relation, reason))
        if relation in informative and not (matches and matches[-1][1] == index):
            item = (score if relation != "opposite" else 0.5, index, relation, reason)
            if len(nearby) < limit:
                heapq.heappush(nearby, item)
            elif item > nearby[0]:
                heapq.heapreplace(nearby, item)

    classification = next((c for c in CATEGORIES if counts[c]), "novel")

    def spell(row, reason):
        """The reason in words (made only for the runs shown)."""
        if reason is _BY_CONSTANTS:
            return _constants_reason(row, cur_constants, delta_names)
        if reason is None:
            return _compare(pf, _row_features(row, memo_features))[2]
        return reason

    top = heapq.nlargest(max(0, limit), matches, key=lambda m: (m[0], m[1]))
    top_matches = [_shown_match(history[i], category, score, relation, spell(history[i], reason))
                   for score, i, category, relation, reason in top]
    nearby_list = [{"run_id": history[i].get("run_id"), "status": history[i].get("status"),
                    "description": history[i].get("description"), "relation": relation,
                    "reason": spell(history[i], reason)}
                   for _, i, relation, reason in sorted(nearby, reverse=True, key=lambda n: (n[0], n[1]))]
    explanation = _explanation(changes, top_matches, nearby_list, in_words=config is None)
    return {
        "classification": classification,
        "probe_text": probe_text(idea),
        "threshold": threshold,
        "match_count": len(matches),
        "counts": counts,
        "top_matches": top_matches,
        "mode": mode,
        "effective_threshold": eff,
        "policy": policy(classification, mode),
        "explanation": explanation,
        "config_delta": config_delta,
    }
