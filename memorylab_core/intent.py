"""Intent parsing: turn an experiment description into canonical changes.

A canonical change is a small dict::

    {"knob": "MATRIX_LR", "direction": "up", "value": 0.06, "raw": "bump the Muon lr to 0.06"}

``knob`` is a train.py module constant (MATRIX_LR, DEPTH, WINDOW_PATTERN, ...) or a
named model/optimizer component (VALUE_EMBEDS, QK_NORM, MLP_ACTIVATION, GRAD_CLIP,
LM_HEAD_INIT, ...); see ``vocabulary.KNOBS``. ``direction`` is "up"/"down" for
numbers, "on"/"off" for components, "set" for a choice, or None when the text only
names the knob. ``value`` is the target (a number, a choice such as "swiglu", a
window pattern such as "SSSL") or None. An optional ``"approx": True`` marks values
written approximately (``~1M``, ``512k``).

Values are resolved against the current constants of train.py (``base_constants``,
from ``fingerprint``) and, for anything not there, the upstream defaults; so
"double depth" becomes DEPTH 16 and meets "DEPTH 16".

The parser reads a canonicalised text (``vocabulary``: "learning rate" -> "lr",
"relu^2" -> "relusq") clause by clause: values are pulled out and masked
(``quantities``), knob mentions found (``mentions``), each value attached to the
nearest mention, and each knob's change built (``knob_changes``). This module
splits the text into clauses, applies the rules that span knobs (a qualifier
gives way to what it qualifies, a consequence restates a setting, aliases such as
a head count or a model width), and merges the clauses' changes.
"""

import re

from .knob_changes import build_change, direction_words, pick_direction
from .mentions import find_mentions
from .quantities import EXPR_WORDS, compare_direction, extract_values, reduce_pattern
from .vocabulary import KNOBS, base_value, canonical_text

_KEEP = r"\b(?:keep|kept|leave|hold|unchanged|untouched|as is|as before|nothing|none)\b"
_SPLIT = r";|,\s+(?![^()]*\))|\.\s+|\s+(?:and|plus|then|also|while|but|&|\+)\s+"


# an aside in parentheses is a clause of its own, read after the sentence around it:
# "momentum 0.98 (warmup still from 0.85)", "init c_proj (attn and mlp) to zero"
_ASIDE = r"(?:^|(?<=\s))\(((?:[^()]|\([^()]*\))*)\)"


_OLD_WORDS = {"was", "were", "previously", "formerly", "before", "earlier", "originally", "currently", "rather",
              "than", "instead", "of", "from", "up", "down", "to", "vs", "versus", "baseline", "default", "the",
              "in", "at", "now"}


# an aside that says a setting stays ("(warmup still starts at 0.85)") restates it
_UNCHANGED = r"\b(?:still|unchanged|untouched|as\s+before|as\s+is|same\s+as\s+(?:before|now|baseline))\b"


def _aside(match):
    inner = match.group(1)
    if re.search(_UNCHANGED, inner) and not re.search(r"\b(?:but|while|whereas|instead|now)\b", inner):
        return " "
    # a value with its unit ("(600 steps)") stays with its clause
    words = re.findall(r"[a-z]{2,}", re.sub(r"\b(?:" + EXPR_WORDS + r")\b", "", inner))
    # an old value alone ("(was 0.85 to 0.95)", "(10 rather than 15)", "(up from 8)") stays too
    words = [w for w in words if w not in _OLD_WORDS]
    return f"\x00{inner}\x01" if len(words) >= 2 else match.group(0)


_RATIONALE = (r"\s(?:because|since|now that|so that|in order to|hoping|expecting|to see (?:if|whether)"
              r"|to test (?:if|whether)|as (?:suggested|in)|which should|motivated by)\b.*$")


# ---------------------------------------------------------------- the change part

# Agents write what they changed, then how it went: "MATRIX_LR 0.05 (worse than 0.04)",
# "WARMUP 0->0.1 (24 steps) - wastes steps", "log: depth 8->6 keep (0.531 vs 0.530)".
# These words mark a part of a description as a verdict or evidence, not the change.
_VERDICT = (r"\b(?:better|worse|best|worst|revert\w*|kept|keep|discard\w*|marginal\w*|tie|ties|tied|neutral"
            r"|improv\w*|hurt\w*|helps?|helped|regress\w*|nois\w*|overshoot\w*|overfit\w*|killed|crash\w*|oom"
            r"|exit|timed|timeout|stable|matched|exceed\w*|despite|supersed\w*|optimal|optimum|negligible"
            r"|catastroph\w*|wast\w*|slow\w*|fast\w*|diminish\w*|gains?|won|lost|loses|baseline|bpb|loss"
            r"|tok/s|throughput|mb|gb|vram|run\s+#?\d+|confirm\w*|superior|inferior"
            r"|too|ok|fine|no\s+change|nothing|unchanged|same|identical|noise\s+floor|converg\w*|diverg\w*)\b"
            r"|[-+]\d*\.\d{3,}|\d\.\d{3,}\s*(?:vs|->|→)")
# a label that only files the row: "log:", "experiment:", "exp 12:", "re-check"
_LABEL = r"^\s*(?:(?:log|experiment|exp|idea|note|trial|test|attempt|try|retry|rerun|run)\b[\s#\d]*:\s*|(?:re-?check|re-?run|retry|confirm\w*)\s+)"
_TRAILING_VERDICT = r"\s+(?:keep|kept|discard\w*|revert\w*|crash\w*|(?:new\s+)?best|ok|confirm\w*)\s*[.!]*\s*$"
# an aside that names the old value stays with the change: "(was 0.04)", "(replaces ReLU^2)"
_OLD_ASIDE = r"^\s*(?:was|were|from|previously|formerly|originally|replac\w*|instead\s+of|rather\s+than|up\s+from|down\s+from)\b"
# words that open a purpose ("... to match the budget", "... for faster adaptation"):
# what is left of a description from there is no change. Word sets, not one regex
# alternation: compiling that took a check more time than the whole parse.
_PURPOSE_VERBS = frozenset(
    "reduce improve recover avoid speed match see test check get allow let make give help "
    "stabilise stabilize fix prevent learn fit free save exploit compensate counter offset "
    "encourage balance capture smooth accelerate trade compare verify measure isolate probe "
    "push squeeze regain fill use cut lower raise boost".split())
_PURPOSE_QUALITIES = frozenset(
    "faster slower better more less higher lower smoother quicker stabler stable cheaper "
    "extra improved reduced quick fast".split())
_PURPOSE = r"(?i)(?=\s(?:(?:to|so\s+as\s+to|in\s+order\s+to)\s+(\w+)|for\s+(\w+)))"
# context after the change: "at batch 2^13", "after removing logit cap", "with depth 6 + GQA", "on 16GB"
_CONTEXT_WORD = r"\b(?:at|after|with|on|under|given|during|while|using|inside|within)\b"
_CONTEXT = r"\s(?:at|after|with|on|under|given|during|while|using|inside|within)\s+(?![\d.~#=(-])(?!(?:a|the)\s+\d)\S.*$"


def change_part(text):
    """(the change, its asides) of a description: a filing label, verdict and evidence
    asides and tails (parentheses, "; ...", " - ...", ": ..." after a value) removed.
    Asides that are not a verdict are returned apart, "; "-joined: they elaborate the
    change (see ``read``)."""
    t = re.sub(_LABEL, "", " ".join((text or "").split()), flags=re.I)
    asides = []

    def aside(match):
        inner = match.group(1)
        if re.match(_OLD_ASIDE, inner, re.I) or (len(inner.split()) <= 2 and not re.search(r"\d", inner)):
            return match.group(0)   # an old value, or another name of the thing: "gated MLP (SwiGLU)"
        if not re.search(_VERDICT, inner, re.I):
            asides.append(inner)
        return " "
    if "(" in t:
        t = re.sub(r"(?<=[\w.%'\"\]]\s)\(((?:[^()]|\([^()]*\))*)\)", aside, t)
    # a tail after a dash is a comment (a dash inside a formula's brackets is a minus);
    # after a colon, a comment when a value came before
    dash = next((m for m in re.finditer(r"\s+(?:-|--|—|–)\s+", t)
                 if t.count("(", 0, m.start()) == t.count(")", 0, m.start())), None)
    t = t[:dash.start()] if dash else t
    head, colon, tail = t.partition(": ")
    if colon and re.search(r"\d", head):
        t = head
    clauses = re.split(r";\s*", t)
    t = "; ".join([clauses[0]] + [c for c in clauses[1:] if not re.search(_VERDICT, c, re.I)])
    t = re.sub(_TRAILING_VERDICT, "", " ".join(t.split()), flags=re.I)
    return t.strip(" ,;:-"), "; ".join(a.replace(";", ",") for a in asides)


# ---------------------------------------------------------------- clauses

def _assign_values(mentions, values, masked):
    """{mention index: [values]}; each value goes to the nearest mention of its clause,
    the new end of an old pair ("512 -> 768") to the owner of its old end."""
    owned = {i: [] for i in range(len(mentions))}
    if not mentions:
        return owned
    previous = None
    for v in values:
        best, best_gap = 0, None
        for i, m in enumerate(mentions):
            if m["end"] <= v["start"]:
                gap = v["start"] - m["end"]
            elif v["end"] <= m["start"]:
                gap = (m["start"] - v["end"]) + 0.5
            else:
                gap = 0
            if best_gap is None or gap < best_gap:
                best, best_gap = i, gap
        # "modeldim 512 -> 768 at depth 8": the new end of a pair goes with its old end,
        # unless its own unit follows it ("head dim 64 -> 8 heads")
        if previous is not None and previous[0]["old"] and not v["old"] and best_gap >= 1 \
                and re.fullmatch(r"\s*(?:->|to)\s*~?\s*", masked[previous[0]["end"]:v["start"]]):
            best = previous[1]
        owned[best].append(v)
        previous = (v, best)
    return owned


_WD_SCHEDULE = (r"\b(?:constant|fixed|flat|stays?|stay\w*|held|throughout|(?:whole|entire|full)\s+"
                r"(?:run|training)|schedul\w*|ramp\w*|anneal\w*|decay\w*)\b")
_WD_CONSTANT = (r"\b(?:constant|fixed|flat|stays?|stay\w*|held|throughout|whole|entire|no|without|remov\w*"
                r"|drop\w*|disabl\w*|stop\w*|nolonger|never|not|ditch\w*|delet\w*|kill\w*|skip\w*|off)\b"
                r"|\binstead\s+of\s+(?:the\s+|a\s+)?(?:linear\s+)?(?:wd\s+)?(?:decay|ramp|schedul|anneal)|\b(?:ramp|schedul\w*|decay\w*)\s*->")
_SCHEDULE_END = r"\b(?:decay\w*|ramp\w*|anneal\w*)(?:\s+\w+){0,3}\s+to\s*$"
_ADAM_GROUP = {"ADAM_BETA1", "ADAM_BETA2", "ADAM_BETAS", "ADAM_EPS", "ADAM_LR", "ADAM_WEIGHT_DECAY",
               "EMBEDDING_LR", "UNEMBEDDING_LR", "SCALAR_LR", "WEIGHT_DECAY"}
_NUMBER_KINDS = ("number", "power", "suffixed", "word_number", "percent", "multiple", "word_multiple",
                 "dim_multiple")


def _wd_schedule(mentions, values, masked, raw):
    """The WD_SCHEDULE change of a clause about how Muon's weight decay moves over
    training ("keep wd constant", "remove the wd ramp"), or None. The schedule's
    own end point ("decaying it to zero") is removed from ``values``."""
    if not any(m["knob"] in ("WEIGHT_DECAY", "CAUTIOUS_WD") for m in mentions):
        return None
    said = [m.group(0) for m in re.finditer(_WD_SCHEDULE, masked)]
    if not said or (not re.search(r"\bwd\b", masked) and all(w.startswith("decay") for w in said)):
        return None   # "decay the weights only where ...": the verb of the decay, not its schedule
    values[:] = [v for v in values if not (v.get("number") == 0 and re.search(_SCHEDULE_END, masked[:v["start"]]))]
    direction = "off" if re.search(_WD_CONSTANT, masked) else "on"
    return {"knob": "WD_SCHEDULE", "direction": direction, "value": None, "raw": raw}


def _qualify_mentions(mentions, values, words):
    """Mentions that only qualify another one go: the activation names the MLP, a
    multiple of the model dim in an MLP clause is its ratio, "cautious" decay with
    a number is the decay itself, AdamW before a parameter names the group."""
    knobs = {m["knob"] for m in mentions}
    fresh = [v for v in values if not v["old"]]
    if "SOFTCAP" in knobs:   # "tanh soft-capping": tanh is how the cap is made, not an activation
        mentions = [m for m in mentions if not (m["knob"] == "MLP_ACTIVATION" and m["choice"] == "tanh")]
        knobs = {m["knob"] for m in mentions}
    if "MLP_ACTIVATION" in knobs:
        mentions = [m for m in mentions if m["knob"] != "MLP?"]
    elif any(v["kind"] == "dim_multiple" for v in fresh) and knobs & {"MLP?", "MLP_RATIO"}:
        mentions = [m for m in mentions if m["knob"] != "MODEL_DIM"]
    if "CAUTIOUS_WD" in knobs:
        numeric = any(v["kind"] in _NUMBER_KINDS for v in fresh) or any(d in ("up", "down") for _, d, _ in words)
        if numeric:
            mentions = [dict(m, knob="WEIGHT_DECAY") if m["knob"] == "CAUTIOUS_WD" else m for m in mentions]
        else:
            mentions = [m for m in mentions if m["knob"] != "WEIGHT_DECAY"]
    if knobs & {"EMBEDDING_LR", "ADAM_WEIGHT_DECAY"}:   # "the value-embedding lr": the group, not the component
        mentions = [m for m in mentions if m["knob"] != "VALUE_EMBEDS"]
    if knobs & _ADAM_GROUP:
        mentions = [m for m in mentions if not (m["knob"] == "OPTIMIZER" and m["choice"])]
    return [dict(m, knob="MLP_RATIO") if m["knob"] == "MLP?" else m for m in mentions]


_WITHOUT = r"\b(?:without|with\s+no|minus|but\s+no)\b"


def _drop_context(mentions, owned, masked):
    """'value embeddings without the gates' changes the gates: a knob named before
    'without' with no value of its own only says where the change is."""
    keep = []
    for i, m in enumerate(mentions):
        later = [n for n in mentions[i + 1:] if n["knob"] != m["knob"]]
        if not owned[i] and later and re.search(_WITHOUT, masked[m["end"]:later[0]["start"]]):
            continue
        keep.append(i)
    return [mentions[i] for i in keep], {j: owned[i] for j, i in enumerate(keep)}


def _window_size(mention, owned):
    """SHORT_WINDOW for a window mention with a length in tokens ("shrink the sliding
    windows to 512 tokens"), else the mention's knob."""
    knob = mention["knob"]
    numbers = [v["number"] for v in owned if not v["old"] and v["kind"] in _NUMBER_KINDS
               and isinstance(v.get("number"), float)]
    if knob == "WINDOW_PATTERN" and numbers and numbers[-1] >= 16 and mention["choice"] != "L" \
            and not any(v["kind"] == "pattern" for v in owned):
        return "SHORT_WINDOW"
    return knob


_RAMP_END = (r"(?:\bto|->|\bend\w*\s+(?:at|on)|\breach\w*|\buntil|\btarget\w*(?:\s+of)?|\bpeak\w*(?:\s+(?:at|of))?"
             r"|\bfinal|\bsettl\w*\s+at)\s*~?\s*$")
_REALLY_OLD = r"(?:\binstead\s+of|\brather\s+than|\bwas|\bpreviously|\bformerly|\bvs\.?|\bversus|\bdefault(?:\s+of)?)\s*$"


def _momentum_ramp(mention, owned, masked, base_constants):
    """A momentum warmup written by its end points ("ramps from 0.85 to 0.98") sets the
    momentum it ends at; the start point is no knob. Returns (values of the momentum,
    values left for the warmup steps), or None when the clause names no end point.
    Steps restated at their current count ("to 0.98 over 300 steps") are dropped."""
    if mention["knob"] != "MUON_MOMENTUM_WARMUP":
        return None
    small = [v for v in owned if isinstance(v.get("number"), float) and 0 < v["number"] < 1]
    ends = [v for v in small if not v["old"] and re.search(_RAMP_END, masked[:v["start"]])]
    if not ends:
        return None
    # the old end point: "instead of 0.95", "(was 0.85 to 0.95)", never an old start ("instead of 0.85 -> ...")
    target = ends + [v for v in small if v["old"] and not re.match(r"\s*(?:->|to\b)", masked[v["end"]:])
                     and re.search(_REALLY_OLD + "|" + _RAMP_END, masked[:v["start"]])]
    steps = [v for v in owned if not any(v is w for w in small)]
    current = base_value("MUON_MOMENTUM_WARMUP", base_constants)
    if all(not v["old"] and v.get("number") == current for v in steps):
        steps = []
    return sorted(target, key=lambda v: v["start"]), steps


def _parse_clause(clause, base_constants, raw):
    values, masked = extract_values(clause, base_constants)
    mentions = find_mentions(clause, masked)
    pattern_values = [v for v in values if v["kind"] == "pattern"]
    if pattern_values and not any(m["knob"] == "WINDOW_PATTERN" for m in mentions):
        mentions.append({"knob": "WINDOW_PATTERN", "start": pattern_values[0]["start"],
                         "end": pattern_values[0]["end"], "choice": None})
        mentions.sort(key=lambda x: x["start"])
    if not mentions:
        return [], None
    words = direction_words(masked)
    schedule = _wd_schedule(mentions, values, masked, raw)
    if schedule:
        words = [w for w in words if w[1] in ("up", "down")]
        if not any(v["kind"] in _NUMBER_KINDS and not v["old"] for v in values):
            mentions = [m for m in mentions if m["knob"] not in ("WEIGHT_DECAY", "CAUTIOUS_WD")]
    elif re.search(_KEEP, masked) and not re.search(r"\bonly\b|\bno\s+(?:momentum\s+warmup|warmdown)\b|\bat\s+~?#", masked):
        return [], None   # "keep beta2", "keep the 0.85 warmup start": what stays is no change
    mentions = _qualify_mentions(mentions, values, words)
    owned = _assign_values(mentions, values, masked)
    mentions, owned = _drop_context(mentions, owned, masked)
    if any(m["knob"] == "N_KV_HEAD" for m in mentions):
        # "kv heads shared by 2 query heads": the query heads (and their number) say how they group
        keep = [i for i, m in enumerate(mentions) if not (m["knob"] == "N_HEAD" and "query" in m.get("text", ""))]
        group = [v for i, m in enumerate(mentions) if i not in keep for v in owned[i] if not v["old"]
                 and v["kind"] in ("number", "word_number")]
        mentions, owned = [mentions[i] for i in keep], {j: owned[i] for j, i in enumerate(keep)}
        if group and re.search(r"\b(?:each|every|per|one)\s+(?:n\s+)?(?:kv|key\s*/?\s*value)\s+heads?\b", masked):
            # "each kv head shared by 2 query heads", "2 query heads per kv head": a group size
            heads = base_value("N_HEAD", base_constants) or 4
            for j, m in enumerate(mentions):
                if m["knob"] == "N_KV_HEAD" and not owned[j] and group[-1]["number"] > 0:
                    owned[j] = [dict(group[-1], number=float(heads / group[-1]["number"]))]
    by_knob = {}
    changes = [schedule] if schedule else []
    for i, m in enumerate(mentions):
        ramp = _momentum_ramp(m, owned[i], masked, base_constants)
        if ramp is not None:
            target, steps = ramp
            changes.append(build_change("MUON_MOMENTUM", [m], target, [], masked, base_constants, raw))
            if not steps:
                continue
            owned[i] = steps
        knob = _window_size(m, owned[i])
        entry = by_knob.setdefault(knob, {"mentions": [], "values": []})
        entry["mentions"].append(m)
        entry["values"].extend(owned[i])
    for knob, entry in by_knob.items():
        vals = sorted(entry["values"], key=lambda v: v["start"])
        changes.append(build_change(knob, entry["mentions"], vals, words, masked, base_constants, raw))
    return changes, pick_direction(words)


def _against_current(value, knob, base_constants, said):
    """A value's direction against the knob's current value in train.py (None when it
    restates it); what the text ``said`` when train.py does not set the knob."""
    current = base_value(knob, base_constants, upstream=False)
    return said if current is None else compare_direction(value, current)


def _finish(change, base_constants, described=None):
    """Knob aliases that need a value to be resolved; returns a list of changes.
    ``described``: constants the same description sets, which accumulation steps
    ("micro-batch 64, grad accum 4"), widths and head counts ("DEPTH 12, model_dim
    768") are counted against."""
    knob, value = change["knob"], change["value"]
    now = dict(base_constants or {}, **(described or {}))
    if knob == "N_HEAD":
        model_dim = (base_value("DEPTH", now) or 8) * (base_value("ASPECT_RATIO", now) or 64)
        out = dict(change, knob="HEAD_DIM")
        out["direction"] = {"up": "down", "down": "up"}.get(change["direction"], change["direction"])
        if isinstance(value, (int, float)) and value > 0:
            out["value"] = int(round(model_dim / value))
            # heads that keep the current head size restate it ("ASPECT_RATIO 96 with 6 heads")
            out["direction"] = _against_current(out["value"], "HEAD_DIM", base_constants, out["direction"])
        return [out]
    if knob == "MODEL_DIM":
        depth = base_value("DEPTH", now) or 8   # "DEPTH 12 (model_dim 768)": the width follows from the depth
        out = dict(change, knob="ASPECT_RATIO")
        if isinstance(value, (int, float)):
            out["value"] = float(f"{value / depth:.6g}")
            if out["value"] == int(out["value"]):
                out["value"] = int(out["value"])
            # a width equal to the current one restates it ("heads of 64 at width 512")
            out["direction"] = _against_current(out["value"], "ASPECT_RATIO", base_constants, out["direction"])
        return [out]
    if knob == "GRAD_ACCUM":
        if change["direction"] == "off" or value == 0:
            value = 1   # "no grad accumulation": one micro-batch per optimizer step
        # accumulation steps = TOTAL_BATCH_SIZE / (DEVICE_BATCH_SIZE x MAX_SEQ_LEN)
        per_step = (base_value("DEVICE_BATCH_SIZE", now) or 128) * (base_value("MAX_SEQ_LEN", now) or 2048)
        out = dict(change, knob="TOTAL_BATCH_SIZE")
        if isinstance(value, (int, float)):
            out["value"] = int(round(value * per_step))
            # the same tokens per step (a smaller micro-batch, more steps) restates the batch
            out["direction"] = _against_current(out["value"], "TOTAL_BATCH_SIZE", base_constants, out["direction"])
        return [out]
    if knob == "BATCH?":
        if isinstance(value, (int, float)) and value < 4096:
            name = "DEVICE_BATCH_SIZE"
        else:
            name = "TOTAL_BATCH_SIZE"
        out = dict(change, knob=name)
        if isinstance(value, (int, float)):
            # against train.py, unless it restates it: then the text's own direction (its
            # old value, "64 -> 128"), as for a batch knob named outright
            out["direction"] = _against_current(value, name, base_constants, None) or out["direction"]
        return [out]
    if knob == "ADAM_BETAS":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            return [dict(change, knob="ADAM_BETA2")] if change["direction"] else []
        out = []
        for name, v in zip(("ADAM_BETA1", "ADAM_BETA2"), value):
            base = base_value(name, base_constants)
            direction = compare_direction(v, base)
            if direction:
                out.append(dict(change, knob=name, value=v, direction=direction))
        return out
    return [change]


def _without_purpose(change):
    """`change` cut where a purpose opens (see _PURPOSE_VERBS)."""
    for match in re.finditer(_PURPOSE, change):
        verb, quality = match.groups()
        if (verb or "").lower() in _PURPOSE_VERBS or (quality or "").lower() in _PURPOSE_QUALITIES:
            return change[:match.start()]
    return change


def read(text, base_constants=None):
    """(canonical changes, the change's text) of a description: the change part
    (``change_part``) less a purpose ("to match the budget") and, when what is left
    still names a change, less a context clause ("at batch 2^13"). Its asides give a
    value the change lacks ("slower momentum warmup (600 steps)"); else the knobs
    they name besides the change's come as changes marked "aside": True."""
    change, asides = change_part(text)
    if re.search(r"\b(?:to|for)\b", change, re.I):
        change = _without_purpose(change)
    names = {}

    def parse(words):   # words in canonical spelling
        return _parse_text(words, base_constants) if words else []

    def spelled(words):
        return canonical_text(_code_names(words, names))
    canonical = spelled(change)
    parsed = parse(canonical)
    context = re.search(_CONTEXT, canonical) if re.search(_CONTEXT_WORD, canonical) else None
    if context and not re.search(r"\b(?:replac|swap|switch|substitut|instead|rather)", canonical) \
            and (re.search(r"\d", canonical[:context.start()]) or not extract_values(context.group(0))[0]):
        head = parse(canonical[:context.start()])
        # a context names another knob than the change ("at batch 2^13") or none ("at
        # narrow"); a tail that names only the change's own knobs says more of it; a tail
        # with the only value says what the change is ("clip gradients at norm 0.5")
        named = {m["knob"] for m in find_mentions(context.group(0), context.group(0))}
        if head and not (named and named <= {c["knob"] for c in head}):
            parsed = head
    if asides and all(c["value"] is None for c in parsed):
        parsed = parse(spelled(f"{change} ({asides})")) or parsed
    elif asides:
        own = {c["knob"] for c in parsed}
        parsed = parsed + [dict(c, aside=True) for a in asides.split("; ") for c in parse(spelled(f"({a})"))
                           if c["knob"] not in own]
    return [_named(c, names, base_constants) for c in parsed], change


def _named(change, names, base_constants):
    """A change of a placeholder knob under its code name, with "reads_as": the knob
    the vocabulary reads in the name's words ("train_batch_tokens" -> TOTAL_BATCH_SIZE),
    so that it can meet a description in words, though never another code name."""
    name = names.get(change["knob"])
    if name is None:
        return change
    value = change["value"]
    words = name.lower().replace("_", " ")
    probe = f"{words} {value}" if isinstance(value, (int, float)) else f"increase {words}"
    reading = [c["knob"] for c in _parse_text(canonical_text(probe), base_constants)]
    out = dict(change, knob=name)
    if reading:
        out["reads_as"] = reading[0]
    return out


# names the parser reads as words of its vocabulary, though written as code
_WORD_NAMES = {"ADAM_BETAS", "MODEL_DIM", "N_EMBD", "D_MODEL", "N_LAYER", "N_LAYERS", "BATCH_SIZE", "DEVICE_BS", "SEQ_LEN",
               "MLP_RATIO", "LR", "WD", "QK_NORM", "Z_LOSS", "VALUE_EMBEDS", "LM_HEAD", "LOGIT_SOFTCAP"}


def _code_names(text, names):
    """``text`` with each setting written as code (``EMA_DECAY``, or ``warmup_steps``
    followed by its value) that
    is neither a known knob nor a word the vocabulary reads (``model_dim``) replaced by
    a placeholder the mention finder takes as a knob of that name: a fork's own
    settings are knobs of their own, not guesses at upstream's. ``names`` maps the
    placeholders back."""
    def replace(match):
        name = match.group(0).upper()
        setting = match.group(0).isupper() or re.match(r"\s*(?:[=:]|->|(?:to|from|of|at)?\s*~?[-+]?\.?\d)",
                                                        text[match.end():])
        if name in KNOBS or name in _WORD_NAMES or not setting:
            return match.group(0)   # a module ("attn c_proj") is no setting
        placeholder = "xid" + re.sub(r"[^a-z0-9]", "", name.lower())
        names[placeholder.upper()] = name
        return placeholder
    return re.sub(r"\b[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+\b", replace, text) if "_" in text else text


def parse_changes(text, base_constants=None):
    """Canonical changes described by ``text`` (see ``read``)."""
    return read(text, base_constants)[0]


def _parse_text(text, base_constants=None):
    """Canonical changes described by the change part ``text``, already in canonical
    spelling (``vocabulary.canonical_text``; see the module docstring).

    Whatever follows a rationale word ("because", "since", "hoping", ...) is the
    why, not the what, and is not parsed.
    """
    canonical = re.sub(_RATIONALE, "", text)
    if not canonical:
        return []
    canonical = re.sub(_ASIDE, _aside, canonical)
    if "\x00" in canonical:   # asides go after the sentence they interrupted
        asides = re.findall(r"\x00(.*?)\x01", canonical)
        canonical = "; ".join([re.sub(r"\s*\x00.*?\x01\s*", " ", canonical)] + asides)
    clauses = []
    for c in (c.strip() for c in re.split(_SPLIT, canonical) if c and c.strip()):
        if clauses and _only_a_value(c):
            clauses[-1] += " " + c   # "larger adam eps, 1e-6": the value of the clause before
        else:
            clauses.append(c)
    parsed = []
    previous_direction = None
    for clause in clauses:
        changes, direction = _parse_clause(clause, base_constants, clause)
        for change in changes:
            if change["direction"] is None and change["value"] is None and previous_direction:
                # a clause without a verb takes the one before: "disable QK norm and softcap"
                change = build_change(change["knob"], [], [], [(0, previous_direction, "")], clause,
                                      base_constants, change["raw"])
            parsed.append(change)
        if direction:
            previous_direction = direction
    described = {c["knob"]: c["value"] for c in parsed
                 if c["knob"] in ("DEVICE_BATCH_SIZE", "MAX_SEQ_LEN", "DEPTH", "ASPECT_RATIO")
                 and isinstance(c["value"], (int, float))}
    merged = {}
    order = []
    for change in parsed:
        for finished in _finish(change, base_constants, described):
            knob = finished["knob"]
            if knob not in merged:
                merged[knob] = finished
                order.append(knob)
            else:
                old = merged[knob]
                if old["value"] is None:   # the first value given wins ("HEAD_DIM=64 12 heads")
                    keep_dir = finished["direction"] or old["direction"]
                    merged[knob] = dict(finished, direction=keep_dir)
    changes = [merged[k] for k in order]
    # SwiGLU-style gated MLPs conventionally come with a 8/3 ratio (same parameters)
    gated = merged.get("MLP_ACTIVATION", {}).get("value") in ("swiglu", "geglu", "reglu")
    if gated:
        changes = [c for c in changes if not (c["knob"] == "MLP_RATIO" and isinstance(c["value"], (int, float))
                                              and abs(c["value"] - 8 / 3) < 0.1)]
    # a component removed takes its parts with it
    if merged.get("VALUE_EMBEDS", {}).get("direction") == "off":
        changes = [c for c in changes if not (c["knob"] in ("VE_GATE", "VE_GATE_INIT", "VE_INIT")
                                              and c["direction"] in ("off", None, "down"))]
    # a knob only named ("parallel attention and mlp blocks") is no evidence of a change
    changes = [c for c in changes if c["direction"] is not None or c["value"] is not None]
    # a value restated at its current setting ("DEPTH 10 with ASPECT_RATIO 64") changes
    # nothing, unless it is all the text says (a revert to the baseline value)
    moved = [c for c in changes if not _restates_base(c, base_constants)]
    return moved if moved else changes


_VALUE_WORDS = {"std", "to", "at", "of", "from", "was", "instead", "rather", "than", "now", "the", "tokens", "steps",
                "layers", "coefficient", "coef", "weight", "value", "scale", "about", "around", "roughly"}


def _only_a_value(clause):
    """True for a clause that is a value and nothing else it could belong to ("1e-6", "std 0.02")."""
    words = re.findall(r"[a-z]{2,}", clause)
    return bool(re.search(r"\d", clause)) and all(w in _VALUE_WORDS for w in words)


def _restates_base(change, base_constants):
    if change["direction"] is not None or change["value"] is None:
        return False
    base = base_value(change["knob"], base_constants)
    value = change["value"]
    if isinstance(value, (int, float)) and isinstance(base, (int, float)):
        return abs(value - base) <= 1e-9 * max(abs(value), abs(base), 1e-12)
    return value == base


# ---------------------------------------------------------------- changes from constants

def changes_from_constant(name, old, new):
    """Canonical changes for one constant delta (``fingerprint.constant_delta`` entry)."""
    if name == "ADAM_BETAS" and isinstance(new, (list, tuple)) and len(new) == 2:
        old = old if isinstance(old, (list, tuple)) and len(old) == 2 else (None, None)
        out = []
        for knob, o, n in zip(("ADAM_BETA1", "ADAM_BETA2"), old, new):
            if o != n:
                out.append({"knob": knob, "direction": compare_direction(n, o) if o is not None else "set",
                            "value": n})
        return out
    if name == "WINDOW_PATTERN" and isinstance(new, str):
        return [{"knob": name, "direction": "set", "value": reduce_pattern(new)}]
    if isinstance(new, bool) or isinstance(old, bool):
        return [{"knob": name, "direction": "on" if new else "off", "value": None}]
    if isinstance(new, (int, float)):
        direction = compare_direction(new, old) if isinstance(old, (int, float)) else "set"
        return [{"knob": name, "direction": direction or "set", "value": new}]
    if new is None:
        return [{"knob": name, "direction": "off", "value": None}]
    return [{"knob": name, "direction": "set", "value": new}]


def value_tolerance(a, b):
    """Relative tolerance for calling two values equal: 10% if either is approximate."""
    return 0.1 if a.get("approx") or b.get("approx") else 0.02
