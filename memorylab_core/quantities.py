"""Values written in a clause: numbers, units, multiples, old and new.

``extract_values`` finds every value of a canonical clause (``0.05``, ``5e-2``,
``2**18``, ``512k``, ``5%``, ``double``, ``3x``, ``3*n_embd``, ``seq_len // 4``,
``(0.8, 0.95)``, ``'SSSL'``, ...), marks which are old ("from X", "X ->", "instead
of X"), approximate ("~1M") or steps ("by 4", "2 more"), and masks each with '#'
so that knob patterns do not read digits as words.
"""

import re

from .vocabulary import DIRECTION_WORDS, base_value, compiled

NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?"
_WORD_NUMBERS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "zeros": 0, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "sixteen": 16, "twenty": 20, "thirty": 30,
}
_WORD_MULTIPLIERS = {
    "double": 2, "doubled": 2, "doubling": 2, "twice": 2, "triple": 3, "tripled": 3, "tripling": 3,
    "quadruple": 4, "quadrupled": 4, "halve": 0.5, "halved": 0.5, "halving": 0.5, "half": 0.5,
    "quarter": 0.25, "one third": 1 / 3, "two thirds": 2 / 3, "one quarter": 0.25, "three quarters": 0.75,
}
_PARTS = {"half": 2, "third": 3, "quarter": 4, "fifth": 5, "tenth": 10}
_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9}

# settings a value can be written from: "seq_len // 4", "depth*96", "3/4 of the context", "n_head // 2"
_EXPR_KNOBS = {"depth": "DEPTH", "n layers": "DEPTH", "n layer": "DEPTH", "modeldim": "MODEL_DIM",
               "max seq len": "MAX_SEQ_LEN", "seq len": "MAX_SEQ_LEN", "sequence length": "MAX_SEQ_LEN",
               "context length": "MAX_SEQ_LEN", "seqlen": "MAX_SEQ_LEN", "context": "MAX_SEQ_LEN",
               "n head": "N_HEAD", "n heads": "N_HEAD", "num heads": "N_HEAD", "query heads": "N_HEAD",
               "n query heads": "N_HEAD", "n kv head": "N_KV_HEAD", "n kv heads": "N_KV_HEAD"}
EXPR_WORDS = "|".join(sorted(_EXPR_KNOBS, key=len, reverse=True)).replace(" ", r"\s+")

# value extractors: (regex, kind); applied in order on the canonical clause
_VALUE_PATTERNS = [
    (r"(?<=[a-z)\]])\s*(?:\^|\*\*)\s*\d+\b", "exponent"),   # "logsumexp^2": part of a formula, not a value
    (r"\b(" + EXPR_WORDS + r")\s*(//|/|\*|x)\s*(" + NUMBER + r")(?![\w.])", "knob_expr"),
    (r"\b(?:n|normal|gaussian)\s*\(\s*0(?:\.0*)?\s*,\s*(" + NUMBER + r")\s*\)", "number"),
    (r"\(\s*(" + NUMBER + r")\s*,\s*(" + NUMBER + r")\s*\)", "tuple"),
    (r"(?<![\w.])(\d+)\s*(?:\*\*|\^)\s*(\d+)(?![\w.])", "power"),
    (r"(?<![\w./])(\d+)\s*/\s*(\d+)\s+of\s+(?:the\s+)?(context(?:\s+length)?|seq\s+len|sequence\s+length)\b",
     "fraction_of"),
    # "short windows of a quarter of the context": a window as a share of the sequence
    (r"\b(half|third|quarter|fifth|tenth)\s+(?:of\s+)?(?:the\s+)?"
     r"(context(?:\s+length)?|seq\s+len|sequence\s+length)\b", "part_of"),
    (r"(?<![\w./])(\d+)\s*/\s*(\d+)(?![\w./])", "ratio"),
    (r"(?<![\w.])(" + NUMBER + r")\s*(?:x|\*)\s*(?:modeldim|dim|d|width)\b", "dim_multiple"),
    (r"(?<![\w.])(" + NUMBER + r")\s*(?:x|\*)\s*(" + EXPR_WORDS + r")\b", "knob_expr_left"),
    (r"(?<![\w.])(" + NUMBER + r")\s*x(?![a-z0-9])", "multiple"),
    (r"(?<![\w.])(" + NUMBER + r")\s+times\b", "multiple"),
    (r"(?<![a-z0-9])x\s*(" + NUMBER + r")(?![\w.])", "multiple"),
    (r"(?<![\w.])([-+]?" + NUMBER + r")\s*(?:%|percent\b|pct\b)", "percent"),
    (r"(?<![\w.])(" + NUMBER + r")\s*([kmb])\b", "suffixed"),
    (r"(?<![\w.])([-+]?" + NUMBER + r")(?![\w])", "number"),
    # "the last quarter of training": a share of the run, not a multiple of the setting
    (r"(?:(?<=last\s)|(?<=final\s)|(?<=first\s))(half|third|quarter|fifth|tenth)\b"
     r"|(?<=\ba\s)(half|third|quarter|fifth|tenth)(?=\s+(?:of\s+)?(?:the\s+)?(?:way|run|training|budget|time)\b)",
     "part"),
    (r"\b(" + "|".join(sorted(_WORD_MULTIPLIERS, key=len, reverse=True)) + r")\b", "word_multiple"),
    (r"\b(" + "|".join(_WORD_NUMBERS) + r")\b", "word_number"),
    (r"[\"']([sl]{1,12})[\"']|\b([sl]{3,12})\b", "pattern"),
    (r"\b([sl]{1,2})\b", "short_pattern"),
]

OLD_BEFORE = (r"(?:\bfrom|\binstead\s+of|\brather\s+than|\bvs\.?|\bversus|\breplac\w*|\bswap\w*"
              r"|\bwas|\bpreviously|\bformerly|\bcurrently|\bdefault(?:\s+of)?|\bbaseline(?:\s+of)?|\bup\s+from"
              r"|\bdown\s+from|\bcompared\s+(?:to|with))"
              r"(?:\s+(?:the|a|an|plain|standard|default|vanilla|regular|current|usual|original))*\s*$")
_OLD_AFTER = (r"^\s*(?:->|to\s+[#~]|by\s+[#~]|→)|^\s*(?:before|previously|earlier|originally|formerly)\s*(?:\)|$)"
              r"|^\s*(?:in|at|for)\s+(?:the\s+)?baseline\b")
# the new end of an old pair is old too: "instead of 0.85 -> 0.95", "(was 300 to 600)"
_OLD_PAIR_BEFORE = (r"(?:\binstead\s+of|\brather\s+than|\bwas|\bpreviously|\bformerly|\bvs\.?|\bversus)"
                    r"\s*~?#+\s*(?:->|to)\s*~?$")
_APPROX_BEFORE = r"(?:~|\babout|\baround|\broughly|\bapprox\w*|\bnearly|\balmost)\s*$"
_DELTA_BEFORE = r"(?:\bby|\badd\w*|\bplus|\+)\s*$"
_DELTA_AFTER = r"^\s*(more|extra|additional|fewer|less)\b"


def expression_value(name, operator, number, base_constants):
    """'seq len // 4' -> 512: a value written in terms of another setting's current value."""
    base = base_value(_EXPR_KNOBS[re.sub(r"\s+", " ", name)], base_constants)
    if not isinstance(base, (int, float)) or isinstance(base, bool):
        raise ValueError(name)
    if operator == "//":
        return float(base // number)
    return float(base / number) if operator == "/" else float(base * number)


def extract_values(clause, base_constants=None):
    """Values of a clause and the clause with each value masked by '#'."""
    values = []
    masked = list(clause)
    windowish = re.search(r"\bwindow|\bpattern\b|\b[sl]{3,12}\b", clause)
    for pattern, kind in compiled(_VALUE_PATTERNS):
        if kind in ("short_pattern", "part_of") and not windowish:
            continue
        for m in pattern.finditer("".join(masked)):
            s, e = m.span()
            if "#" in "".join(masked[s:e]):
                continue
            if kind == "exponent":
                masked[s:e] = "#" * (e - s)
                continue
            v = {"kind": kind, "start": s, "end": e, "approx": False}
            try:
                if kind == "tuple":
                    v["number"] = [float(m.group(1)), float(m.group(2))]
                elif kind == "knob_expr":
                    v["kind"] = "number"
                    v["number"] = expression_value(m.group(1), m.group(2), float(m.group(3)), base_constants)
                elif kind == "fraction_of":
                    v["kind"] = "number"
                    v["number"] = expression_value(m.group(3), "*", float(m.group(1)) / float(m.group(2)),
                                                    base_constants)
                elif kind == "part_of":
                    v["kind"] = "number"
                    v["number"] = expression_value(m.group(2), "/", float(_PARTS[m.group(1)]), base_constants)
                elif kind == "knob_expr_left":
                    v["kind"] = "number"
                    v["number"] = expression_value(m.group(2), "*", float(m.group(1)), base_constants)
                elif kind == "power":
                    base, exp = int(m.group(1)), int(m.group(2))
                    if exp > 64:
                        continue
                    v["number"] = float(base ** exp)
                elif kind == "ratio":
                    v["kind"], v["number"] = "number", float(m.group(1)) / float(m.group(2))
                elif kind == "suffixed":
                    v["number"] = float(m.group(1)) * _SUFFIX[m.group(2)]
                    v["approx"] = True
                elif kind == "part":
                    v["kind"], v["number"] = "percent", 100.0 / _PARTS[m.group(1) or m.group(2)]
                elif kind == "word_multiple":
                    v["number"] = float(_WORD_MULTIPLIERS[m.group(1)])
                elif kind == "word_number":
                    v["number"] = float(_WORD_NUMBERS[m.group(1)])
                elif kind == "pattern":
                    v["number"] = (m.group(1) or m.group(2)).upper()
                elif kind == "short_pattern":
                    v["kind"], v["number"] = "pattern", m.group(1).upper()
                else:
                    v["number"] = float(m.group(1))
            except (ValueError, OverflowError, ZeroDivisionError):
                continue
            masked[s:e] = "#" * (e - s)
            values.append(v)
    text = "".join(masked)
    # "by 4" is a step only in a clause that moves something ("increase depth by 4",
    # not "2 kv heads shared by 4 query heads")
    moves = any(pattern.search(text) for pattern, d in compiled(DIRECTION_WORDS) if d in ("up", "down"))
    for v in values:
        before, after = text[:v["start"]], text[v["end"]:]
        # a multiplier word is a verb ("halved to 512"), never the old value
        v["old"] = v["kind"] != "word_multiple" and bool(re.search(OLD_BEFORE, before) or re.match(_OLD_AFTER, after)
                                                         or re.search(_OLD_PAIR_BEFORE, before))
        v["approx"] = v["approx"] or bool(re.search(_APPROX_BEFORE, before))
        delta = re.search(_DELTA_BEFORE, before)
        if delta and delta.group(0).strip() == "by" and not moves:
            delta = None
        if v["kind"] in ("number", "word_number") and (delta or re.match(_DELTA_AFTER, after)):
            v["delta"] = -1 if re.match(r"^\s*(?:fewer|less)\b", after) else 1
        if v["kind"] == "number" and clause[v["start"]] in "+-" and not re.search(r"[=:]\s*$", before):
            # "wd +0.05", "depth -2": a step
            v["delta"], v["number"] = (1 if clause[v["start"]] == "+" else -1), abs(v["number"])
        if v["kind"] == "percent" and re.search(r"(?:\bby|[-+])\s*$", before):
            v["relative"] = True
    values.sort(key=lambda v: v["start"])
    return values, text


def reduce_pattern(pattern):
    """The shortest repeating unit of a window pattern: 'LLLL' -> 'L', 'SLSL' -> 'SL'."""
    p = str(pattern).upper()
    for k in range(1, len(p) + 1):
        if len(p) % k == 0 and p[:k] * (len(p) // k) == p:
            return p[:k]
    return p


def compare_direction(new, old):
    """'up' or 'down' when ``new`` differs from ``old`` (numbers), else None."""
    if isinstance(new, (int, float)) and isinstance(old, (int, float)):
        if new > old * (1 + 1e-9) + 1e-15:
            return "up"
        if new < old * (1 - 1e-9) - 1e-15:
            return "down"
    return None
