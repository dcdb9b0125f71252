"""One knob's canonical change from its mentions and values in a clause.

``build_change`` turns a knob, the words that name it, the values attached to it
and the clause's direction words into ``{"knob", "direction", "value", "raw"}``:
a number resolved against the current setting ("double" -> 2 x base, "by 25%",
"2 fewer"), a switch turned on or off, a choice picked among alternatives
("replace relu^2 with swiglu" -> swiglu), a window pattern, a value-embedding
layout.
"""

import re

from .quantities import OLD_BEFORE, compare_direction, reduce_pattern
from .vocabulary import (ABSOLUTE_MULTIPLE_KNOBS, DIRECTION_WORDS, FRACTION_KNOBS, INTEGER_KNOBS, KNOBS,
                         OFF_IS_NOT_ZERO, base_value, compiled)


def direction_words(masked):
    """[(position, direction, word)] of a clause's direction words, in text order."""
    found = []
    for pattern, direction in compiled(DIRECTION_WORDS):
        for m in pattern.finditer(masked):
            found.append((m.start(), direction, m.group(0)))
    found.sort()
    return found


def pick_direction(words):
    """One direction from a clause's direction words: the first up/down word wins
    (a value, when given, still corrects it), else the first off/on word."""
    kinds = [d for _, d, _ in words]
    for group in (("up", "down"), ("off", "on")):
        present = [d for d in kinds if d in group]
        if present:
            return present[0]
    return None


def _choice_target(mentions, masked):
    """The chosen word among a choice knob's mentions ('replace A with B' -> B)."""
    candidates = []
    choices = [m for m in mentions if m["choice"] is not None]
    for i, m in enumerate(choices):
        before = masked[:m["start"]]
        after = masked[m["end"]:]
        # "replace A with B": A is old when a B follows ("replace muon with adamw for the matrices": adamw is new)
        old = bool(re.search(OLD_BEFORE, before) or re.match(r"^\s*(?:->|to\b)", after)
                   or (re.match(r"^\s*(?:with|by|for)\b", after) and not re.search(r"\b(?:to|into)\s*$", before)
                       and re.search(r"\b(?:replac|swap|switch|chang|substitut)\w*", before)
                       and i + 1 < len(choices)))
        candidates.append((m["choice"], old))
    fresh = [c for c, old in candidates if not old]
    return fresh[-1] if fresh else None


def _value_embeds_layout(masked):
    """('all' | 'alternating' | 'last' | 'first' | None) from a value-embeddings clause."""
    found = []
    for pattern, layout in ((r"\b(?:all|every|each)\s+(?:the\s+)?(?:layers?|blocks?)\b|\beverywhere\b|(?:->|\bto)\s*all\b",
                             "all"),
                            (r"\balternat\w*|\bevery\s+other\b|\bodd\s+(?:layers|blocks)\b", "alternating"),
                            (r"\b(?:last|final)\s+(?:layers?|blocks?)(?:\s+only)?\b|(?:->|=)\s*last\b", "last"),
                            (r"\bfirst\s+(?:layers?|blocks?)\b|(?:->|=)\s*first\b", "first")):
        for m in re.finditer(pattern, masked):
            old = bool(re.search(OLD_BEFORE, masked[:m.start()]) or re.match(r"\s*(?:->|to\b)", masked[m.end():]))
            found.append((m.start(), layout, old))
    found.sort()
    fresh = [layout for _, layout, old in found if not old]
    return fresh[-1] if fresh else None


def build_change(knob, mentions, values, words, masked, base_constants, raw):
    """The canonical change of one knob from its mentions, values and the clause."""
    kind = KNOBS.get(knob, ("num",))[0]
    base = base_value(knob, base_constants)
    direction = pick_direction(words)
    change = {"knob": knob, "direction": None, "value": None, "raw": raw}
    if knob == "VALUE_EMBEDS":
        return _value_embeds_change(change, direction, masked)
    if kind == "switch":
        return _switch_change(change, direction, mentions, masked)
    if knob == "WINDOW_PATTERN":
        return _window_change(change, mentions, values, direction, masked, base)
    if kind == "choice":
        target = _choice_target(mentions, masked)
        if target is not None:
            change.update(direction="set", value=target)
        elif direction == "off":
            change["direction"] = "off"
        return change
    if knob == "ADAM_BETAS":
        tuples = [v for v in values if v["kind"] == "tuple" and not v["old"]]
        if tuples:
            change["value"] = tuples[-1]["number"]
        return change
    return _numeric_change(change, values, direction, masked, base,
                           base_value(knob, base_constants, upstream=False))


def _value_embeds_change(change, direction, masked):
    if direction == "off":
        change.update(direction="off", value="off")
        return change
    layout = _value_embeds_layout(masked)
    if layout:
        change.update(direction="set", value=layout)
    elif direction in ("on", "up", "down"):
        change["direction"] = direction
    return change


def _switch_change(change, direction, mentions, masked):
    if any(re.search(r"\b(?:without|with\s+no|minus)\s+(?:the\s+|their\s+|its\s+|any\s+)?$", masked[:m["start"]])
           for m in mentions):
        direction = "off"   # "value embeddings added without their gates"
    if direction in ("off", "down"):
        change["direction"] = "off"
    elif direction in ("on", "up"):
        change["direction"] = "on"
    if change["knob"] == "WEIGHT_TYING":
        if re.search(r"\buntie\w*|\buntying\b|\bseparate\b|\bdecoupl", masked):
            change["direction"] = "off"
        elif change["direction"] is None:
            change["direction"] = "on"   # "tied embeddings", "weight tying"
    elif change["knob"] == "PER_LAYER_EMBED" and change["direction"] is None:
        change["direction"] = "on"       # "per-layer embedding tables": off by default, so named is added
    return change


def _window_change(change, mentions, values, direction, masked, base):
    patterns = [v for v in values if v["kind"] == "pattern" and not v["old"]]
    target = reduce_pattern(patterns[-1]["number"]) if patterns else None
    if target is None:
        target = next((m["choice"] for m in mentions if m["choice"]), None)
    if target is not None:
        change["value"] = target
        change["direction"] = "set"   # a pattern is another choice, not more or less of one
        return change
    long_side = any(re.match(r"(?:full|long|global)", masked[m["start"]:]) for m in mentions)
    short_side = any(re.match(r"(?:short|sliding|local|half)", masked[m["start"]:]) for m in mentions)
    if direction in ("up", "down"):   # "more short windows" means fewer long ones
        change["direction"] = direction if not short_side else {"up": "down", "down": "up"}[direction]
    elif long_side != short_side:
        change["direction"] = "up" if long_side else "down"
    return change


def _numeric_target(knob, values, direction, masked, base):
    """(value, approx, direction) of a numeric knob from its values."""
    fresh = [v for v in values if not v["old"] and v["kind"] != "pattern"]
    absolute = [v for v in fresh if v["kind"] in ("number", "power", "suffixed", "word_number", "tuple")
                and not v.get("delta")]
    percents = [v for v in fresh if v["kind"] == "percent"]
    multiples = [v for v in fresh if v["kind"] in ("multiple", "word_multiple", "dim_multiple")]
    deltas = [v for v in fresh if v.get("delta")]
    if deltas and not base:   # "add 0.0001 z-loss": nothing to add to
        absolute, deltas = absolute + deltas, []
    if knob == "MUON_MOMENTUM_WARMUP":   # steps: "no warmup, fixed at 0.95" names the momentum
        absolute = [v for v in absolute if v["number"] == 0 or v["number"] >= 1]
    if knob == "N_KV_HEAD" and not absolute:
        if re.search(r"\bmqa\b", masked):
            absolute = [{"number": 1, "approx": False}]
        elif re.search(r"\bgqa\b|\bgrouped\b", masked) and direction is None:
            direction = "down"
    if percents and knob in FRACTION_KNOBS and not percents[-1].get("relative"):
        return percents[-1]["number"] / 100.0, False, direction
    if absolute:
        value = absolute[-1]["number"]
        return (None if isinstance(value, list) else value), absolute[-1]["approx"], direction
    if multiples:
        factor = multiples[-1]["number"]
        if (knob in ABSOLUTE_MULTIPLE_KNOBS and multiples[-1]["kind"] != "word_multiple") \
                or multiples[-1]["kind"] == "dim_multiple":
            return factor, False, direction
        if base:
            if direction == "down" and factor > 1:
                factor = 1.0 / factor   # "2x smaller"
            return base * factor, False, direction
    elif percents and base is not None:
        p = percents[-1]["number"] / 100.0
        shrink = direction == "down" or p < 0
        return base * (1 - abs(p) if shrink else 1 + abs(p)), False, direction
    elif deltas and base is not None:
        if re.search(r"\b(?:scal|multipl)\w*", masked):   # "scale the loss by 0.5"
            return base * deltas[-1]["number"], False, direction
        step = deltas[-1]["number"] * deltas[-1]["delta"]
        return base + (-abs(step) if direction == "down" else step), False, direction
    return None, False, direction


_START_POINT = r"\b(?:start\w*|begin\w*|kick\w*\s+in|trigger\w*|onset)\b"


def _from_start_point(values, masked):
    """'begin the LR decay at 30% progress': the warmdown is the remaining 70%."""
    out = []
    for v in values:
        n = v.get("number")
        if not (re.search(r"\b(?:at|after)\s*$", masked[:v["start"]])
                or re.match(r"\s*(?:of\s+)?(?:the\s+way\s+)?(?:progress|through|into)\b", masked[v["end"]:])):
            out.append(v)
            continue
        if v["kind"] == "percent" and isinstance(n, float) and 0 <= n <= 100:
            v = dict(v, number=100.0 - n)
        elif v["kind"] == "number" and isinstance(n, float) and 0 <= n <= 1:
            v = dict(v, number=1.0 - n)
        out.append(v)
    return out


def _old_number(knob, v):
    """An old value as a number comparable with the new one (a percent of a fraction knob / 100)."""
    if v["kind"] == "percent" and knob in FRACTION_KNOBS:
        return v["number"] / 100.0
    return v["number"]


def _numeric_change(change, values, direction, masked, base, current):
    knob = change["knob"]
    numeric_base = base if isinstance(base, (int, float)) and not isinstance(base, bool) else None
    if knob == "WARMDOWN_RATIO" and re.search(_START_POINT, masked) and not re.search(r"\b(?:last|final)\b", masked):
        values = _from_start_point(values, masked)
    value, approx, direction = _numeric_target(knob, values, direction, masked, numeric_base)
    if value is not None and knob in INTEGER_KNOBS and abs(value - round(value)) < 1e-6:
        value = int(round(value))
    elif isinstance(value, float):
        value = float(f"{value:.6g}")
    if direction == "off" and value is not None and numeric_base is not None \
            and abs(value - numeric_base) <= 1e-9 * max(abs(value), abs(numeric_base), 1e-12):
        value = None   # "drop the 15 softcap": the value named is the current one
    if direction == "off":
        if value is None:
            if numeric_base is None or knob in OFF_IS_NOT_ZERO:
                change["direction"] = "off"   # "remove softcap", "no grad clipping"
            else:
                change.update(direction="down" if numeric_base > 0 else None, value=0)
            return change
        direction = "down"                    # "drop the lr to 0.02"
    switched_on = direction == "on"
    if switched_on:
        direction = None
    if value is None:
        if direction in ("up", "down"):
            change["direction"] = direction
        elif (switched_on or direction is None) and numeric_base is None:
            change["direction"] = "on"        # "add z-loss", "gradient clipping": a component off by default
        return change
    change["value"] = value
    if approx:
        change["approx"] = True
    olds = [v for v in values if v["old"] and isinstance(v.get("number"), float)
            and v["kind"] not in ("multiple", "word_multiple", "dim_multiple")]
    inferred = compare_direction(value, _old_number(knob, olds[-1])) if olds else None
    if inferred is None and isinstance(current, (int, float)) and not isinstance(current, bool):
        inferred = compare_direction(value, current)   # against train.py, never upstream's default
    if numeric_base is None and KNOBS.get(knob, ("num", 0))[1] is None:
        change["direction"] = "on"            # a component that is off by default gets a value
    elif direction in ("up", "down"):
        change["direction"] = direction if inferred in (None, direction) else inferred
    else:
        change["direction"] = inferred
    return change
