"""Config fingerprints of train.py: its upper-case constants and a normalised code hash.

A fingerprint is a plain JSON-compatible dict::

    {"constants": {"MATRIX_LR": 0.04, "ADAM_BETAS": [0.8, 0.95], ...},
     "code_sha256": "<64 hex chars>"}

Constants are read with ``ast`` (nothing is imported or executed): module-level
assignments to UPPER_CASE names whose value is a literal or a simple expression of
literals and earlier constants (``2**19``, ``8 * 64``, ``(0.8, 0.95)``, ``"SSSL"``).
Tuples are stored as lists so that a fingerprint survives a JSON round trip
unchanged. Folding has a budget: a constant whose expression has more than MAX_NODES
nodes, or whose value would be an integer of more than MAX_DIGITS digits, a string or
list longer than MAX_LENGTH, is recorded as TOO_LARGE (a ledger line stays small and
nothing huge is ever computed). The code hash ignores comments, blank lines and spacing, so reformatting
train.py or editing a comment keeps the fingerprint; any token change alters it.
"""

import functools
import math
import operator
import re

from . import hex_digest

# ast node classes by name: `ast` is imported only when a source is parsed (a train.py
# read before comes from the memo below, and importing ast costs a warm check ~3 ms)
_BINARY = {"Add": operator.add, "Sub": operator.sub, "Mult": operator.mul,
           "Div": operator.truediv, "FloorDiv": operator.floordiv, "Mod": operator.mod,
           "Pow": operator.pow}
_UNARY = {"USub": operator.neg, "UAdd": operator.pos, "Not": operator.not_}


TOO_LARGE = "<too large>"
MAX_DIGITS = 100
MAX_LENGTH = 1000
MAX_NODES = 1000
_MAX_INT = 10 ** MAX_DIGITS


class _NotConstant(Exception):
    pass


class _TooLarge(Exception):
    pass


def _sized(value):
    """`value` when within the folding budget, else _TooLarge."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _MAX_INT:
        raise _TooLarge
    if isinstance(value, (str, list)) and len(value) > MAX_LENGTH:
        raise _TooLarge
    return value


def _fold_cost(op, left, right):
    """Refuse (with _TooLarge) an operation (`op`, the name of its ast class) whose
    result would blow the budget before computing it: repeating a string or list, or
    a power of a big base."""
    if op == "Mult":
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (str, list)) and isinstance(count, int) and \
                    len(seq) * max(count, 0) > MAX_LENGTH:
                raise _TooLarge
    if op == "Pow" and isinstance(left, int) and isinstance(right, int) and \
            right > 0 and (abs(left).bit_length() - 1) * right > MAX_DIGITS * 4:
        raise _TooLarge


def _evaluate(node, known):
    """Value of a literal-ish expression node; raise _NotConstant otherwise."""
    kind = type(node).__name__
    if kind == "Constant":
        if isinstance(node.value, (int, float, str, bool)) or node.value is None:
            return _sized(_finite(node.value))
        raise _NotConstant
    if kind == "Tuple" or kind == "List":
        return _sized([_evaluate(item, known) for item in node.elts])
    if kind == "Name" and node.id in known:
        if known[node.id] == TOO_LARGE:
            raise _TooLarge
        return known[node.id]
    op = type(getattr(node, "op", None)).__name__
    if kind == "UnaryOp" and op in _UNARY:
        try:
            return _finite(_UNARY[op](_evaluate(node.operand, known)))
        except TypeError as exc:  # e.g. -"a" in a half-edited file
            raise _NotConstant from exc
    if kind == "BinOp" and op in _BINARY:
        left, right = _evaluate(node.left, known), _evaluate(node.right, known)
        if op == "Pow" and isinstance(right, (int, float)) and abs(right) > 64:
            raise _NotConstant
        _fold_cost(op, left, right)
        try:
            value = _BINARY[op](left, right)
        except Exception as exc:  # e.g. 1/0 or "a" - 1 in a half-edited file
            raise _NotConstant from exc
        return _sized(_finite(value))
    raise _NotConstant


def _finite(value):
    """A float that is not finite (1e999, inf arithmetic) is no constant: JSON cannot hold it."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _NotConstant
    return value


def _is_constant_name(name):
    return name.isupper() and not name.startswith("_")


def module_constants(source):
    """{NAME: value} for the module-level UPPER_CASE constants of ``source``.

    Names assigned something that is not a simple expression (a call, an attribute)
    are left out; one beyond the folding budget is TOO_LARGE. A later assignment
    overrides an earlier one, as at runtime.
    Raises SyntaxError when the source does not parse.
    """
    constants = _read(source)[1]
    if constants is None:
        raise SyntaxError("train.py does not parse")
    return dict(constants)


def normalized_code(source):
    """train.py's tokens with comments, blank lines and spacing removed, one string.

    Indentation is kept as INDENT/DEDENT markers (it is syntax); docstrings stay.
    Falls back to stripping each line when the source does not tokenize.
    """
    return _read(source)[0]


# Reading a train.py (tokenize and ast: ~35 ms for upstream's) is memoised by the
# sha256 of its text: in the process, and across processes through `memo_state` and
# `load_memo` (lab keeps it in the store's index), so the next `check --code` does
# not read again the train.py that `log` read at the run's commit.
MEMO_SIZE = 32
_MEMO = {}       # sha256 hex of a source -> (normalized code, constants or None)
_FRESH = set()   # keys read in this process, not yet saved


def _read(source):
    """(normalized code, constants or None when the source does not parse)."""
    key = hex_digest("sha256", source.encode("utf-8", "surrogatepass"))
    found = _MEMO.get(key)
    if found is None:
        try:
            constants = _constants_of(source)
        except (SyntaxError, ValueError):   # ValueError: a NUL byte (Python < 3.12)
            constants = None
        found = (_normalize(source), constants)
        _remember(key, found)
        _FRESH.add(key)
    return found


def _remember(key, value):
    _MEMO.pop(key, None)
    _MEMO[key] = value
    while len(_MEMO) > MEMO_SIZE:
        _FRESH.discard(next(iter(_MEMO)))
        del _MEMO[next(iter(_MEMO))]


@functools.lru_cache(maxsize=1)
def _memo_version():
    """What a saved memo is valid for: this module's own code and the Python that
    tokenized and parsed (a change to either may change what a source reads as)."""
    import sys
    with open(__file__, "rb") as f:
        return hex_digest("sha256", f.read())[:16] + " " + sys.version


def load_memo(state):
    """Take in a `memo_state` saved earlier; anything else (another version, a
    damaged file) is ignored."""
    if not (isinstance(state, dict) and state.get("version") == _memo_version()
            and isinstance(state.get("entries"), list)):
        return
    for item in state["entries"]:
        if isinstance(item, tuple) and len(item) == 3 and isinstance(item[0], str) \
                and item[0] not in _MEMO and isinstance(item[1], str) \
                and (item[2] is None or isinstance(item[2], dict)):
            _remember(item[0], (item[1], item[2]))


def memo_state():
    """The memo to save (the last MEMO_SIZE sources read), or None when this process
    read no source that was not in it already."""
    if not _FRESH:
        return None
    _FRESH.clear()
    return {"version": _memo_version(),
            "entries": [(key, code, constants) for key, (code, constants) in _MEMO.items()]}


def _constants_of(source):
    import ast
    tree = ast.parse(source)
    constants = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and _is_constant_name(target.id):
                _fold(constants, target.id, value)
            elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) \
                    and len(target.elts) == len(value.elts):
                for name_node, item in zip(target.elts, value.elts):
                    if isinstance(name_node, ast.Name) and _is_constant_name(name_node.id):
                        _fold(constants, name_node.id, item)
    return constants


def _fold(constants, name, node):
    """Set constants[name] to the folded value of `node` (TOO_LARGE beyond the
    budget), or drop the name when `node` is not a constant expression."""
    import ast
    try:
        if sum(1 for _ in ast.walk(node)) > MAX_NODES:
            raise _TooLarge
        constants[name] = _evaluate(node, constants)
    except _TooLarge:
        constants[name] = TOO_LARGE
    except _NotConstant:
        constants.pop(name, None)


def _normalize(source):
    import io
    import tokenize  # imported here: only the code hash needs it (check without --code does not)
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
    parts = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in skip:
                continue
            if tok.type == tokenize.NEWLINE:
                parts.append("\n")
            elif tok.type == tokenize.INDENT:
                parts.append("<INDENT>")
            elif tok.type == tokenize.DEDENT:
                parts.append("<DEDENT>")
            else:
                parts.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        lines = (line.split("#", 1)[0].strip() for line in source.splitlines())
        return "\n".join(line for line in lines if line)
    return " ".join(parts)


def fingerprint_source(source):
    """{"constants": {...}, "code_sha256": hex} for the text of a train.py; constants
    None (unknown, not none) when it does not parse."""
    constants = _read(source)[1]
    digest = hex_digest("sha256", normalized_code(source).encode("utf-8"))
    return {"constants": dict(constants) if constants is not None else None,
            "code_sha256": digest}


def same_value(a, b):
    """Equal constant values (tuples equal lists, floats to 1e-12 relative)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    return a == b


def constant_delta(base_constants, constants):
    """Constants that differ from ``base_constants``: [{"name", "old", "new"}], by name.

    A constant only in ``constants`` has old None; one only in the base has new None.
    With no base (None) there is nothing to compare against and the delta is [].
    """
    if base_constants is None or constants is None:
        return []
    delta = []
    for name in sorted(set(base_constants) | set(constants)):
        old, new = base_constants.get(name), constants.get(name)
        if not same_value(old, new):
            delta.append({"name": name, "old": old, "new": new})
    return delta


MAX_HUNKS = 20           # of a change set: more hunks than this is a rewrite, kept in part
MAX_HUNK_LINES = 40      # normalised lines kept per side of a hunk
_CONSTANT_LINE = re.compile(r"^[A-Z][A-Z0-9_]*(?: , [A-Z][A-Z0-9_]*)* (?::[^=]*)?= ")


def change_set(old_source, new_source):
    """The change from one train.py to another, as stored with each run:
    {"constants": constant_delta of their module constants, "hunks": [[removed lines],
    [added lines]] of their normalised code (``normalized_code``; comments and spacing
    gone) other than the constants' own assignment lines}. None without both sources.
    When either side does not parse, its constants are unknown (not gone): no
    constant delta, the hunks only."""
    if old_source is None or new_source is None:
        return None
    if old_source == new_source:
        return {"constants": [], "hunks": []}
    try:
        old_constants, new_constants = module_constants(old_source), module_constants(new_source)
    except SyntaxError:
        old_constants = new_constants = None
    import difflib

    def lines(source):
        out = (re.sub(r"^(?:<(?:IN|DE)DENT> )+", "", line.strip()) for line in normalized_code(source).split("\n"))
        return [line for line in out if line and not _CONSTANT_LINE.match(line)]
    a, b = lines(old_source), lines(new_source)
    hunks = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal" and len(hunks) < MAX_HUNKS:
            hunks.append([a[i1:i2][:MAX_HUNK_LINES], b[j1:j2][:MAX_HUNK_LINES]])
    return {"constants": constant_delta(old_constants, new_constants), "hunks": hunks}


def format_value(value):
    """Short text for a constant's value: 0.04, 524288, (0.8, 0.95), 'SSSL'."""
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_delta(delta):
    """'MATRIX_LR 0.04 → 0.05; DEPTH 8 → 12' for a constant_delta list ('' if empty)."""
    return "; ".join(
        f"{d['name']} {format_value(d['old'])} → {format_value(d['new'])}" for d in delta
    )
