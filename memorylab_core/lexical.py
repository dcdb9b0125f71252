"""Lexical tokens for the free-text fallback of the novelty guard.

When a description names no known knob, ideas are compared by their words:
``lexical_tokens`` gives the canonical content words (synonyms rewritten,
numbers normalised, stop words dropped, light stemming), ``token_weight`` how much
each counts, and ``overall_direction`` the text's one direction, if any.
"""

import re

from .quantities import NUMBER
from .vocabulary import DIRECTION_WORDS, canonical_text, compiled

_STOPWORDS = set("""a an the to of for in on at by with and or from into than then as is are be been it its
this that these those we our i try trying tried use using used set setting instead rather via per vs
model run experiment training train idea test testing see check just also so but more less some all
about something new variant version retry again""".split())
_GENERIC = {"increase": 0.3, "decrease": 0.3, "higher": 0.3, "lower": 0.3, "raise": 0.3, "reduce": 0.3,
            "bump": 0.3, "cut": 0.3, "add": 0.4, "remove": 0.4, "replace": 0.3, "change": 0.3, "layer": 0.5,
            "lr": 0.6, "scale": 0.5, "size": 0.4, "value": 0.4, "ratio": 0.5, "new": 0.3, "small": 0.3,
            "large": 0.3, "bigger": 0.3, "smaller": 0.3, "double": 0.5, "halve": 0.5, "embed": 0.6,
            "block": 0.5, "head": 0.7, "run": 0.3, "make": 0.3}


def _stem(token):
    if token[0].isdigit() or token.startswith("#"):
        return token
    for suffix, keep in (("ing", 4), ("ed", 4), ("es", 4), ("s", 3)):
        if token.endswith(suffix) and len(token) - len(suffix) >= keep and not token.endswith("ss"):
            return token[: -len(suffix)]
    return token


def number_token(value):
    """The token of a number: 4 significant digits (0.04, 5e+05)."""
    return f"{float(value):.4g}"


def _number_token(match):
    try:
        return f" {number_token(match.group(0))} "
    except ValueError:
        return match.group(0)


def lexical_tokens(text):
    """Sorted distinct content tokens of ``text`` (canonical spelling, numbers normalised)."""
    t = canonical_text(text)
    t = re.sub(r"(\d+)\s*(?:\*\*|\^)\s*(\d+)", lambda m: f" {float(int(m.group(1)) ** min(64, int(m.group(2)))):.4g} ", t)
    t = re.sub(r"(?<![\w.])" + NUMBER + r"(?![\w.])", _number_token, t)
    tokens = set()
    for raw in re.findall(r"[a-z0-9][a-z0-9.+-]*", t):
        raw = raw.strip(".")
        if not raw or raw in _STOPWORDS or (len(raw) == 1 and not raw.isdigit()):
            continue
        tokens.add(_stem(raw))
    return sorted(tokens)


def token_weight(token):
    """Weight of a token in the text score: generic experiment words count less."""
    return _GENERIC.get(token, 1.0)


def overall_direction(text):
    """'up', 'down', 'on' or 'off' when the text's direction words agree, else None."""
    t = canonical_text(text)
    found = {d for pattern, d in compiled(DIRECTION_WORDS) for _ in pattern.finditer(t)}
    if len(found) == 1:
        return found.pop()
    if found == {"up", "on"}:
        return "up"
    if found == {"down", "off"}:
        return "down"
    return None
