"""Intent parsing: turn an experiment description into canonical changes.

A canonical change is a small dict::

    {"knob": "MATRIX_LR", "direction": "up", "value": 0.06, "raw": "bump the Muon lr to 0.06"}

``knob`` is a train.py module constant (MATRIX_LR, DEPTH, WINDOW_PATTERN, ...) or a
named model/optimizer component (VALUE_EMBEDS, QK_NORM, MLP_ACTIVATION, GRAD_CLIP,
LM_HEAD_INIT, ...); see ``KNOBS``. ``direction`` is "up"/"down" for numbers,
"on"/"off" for components, "set" for a choice, or None when the text only names the
knob. ``value`` is the target (a number, a choice such as "swiglu", a window
pattern such as "SSSL") or None. An optional ``"approx": True`` marks values written
approximately (``~1M``, ``512k``).

Values are resolved against the current constants of train.py (``base_constants``,
from ``fingerprint``) and, for anything not there, the upstream defaults in
``KNOBS``; so "double depth" becomes DEPTH 16 and meets "DEPTH 16".

The parser is a set of regular expressions over a canonicalised text: synonyms are
first rewritten to one spelling ("learning rate" -> "lr", "relu^2" -> "relusq"),
numbers are pulled out and masked, then knob patterns are matched longest-first
and the numbers are attached to the nearest knob of their clause.
"""

import functools
import math
import re

# ---------------------------------------------------------------- the vocabulary

# name: (kind, upstream default, note). kind: "num" (a number; None default = a
# component that is off unless given a value), "switch" (on/off), "choice" (a word).
KNOBS = {
    "MATRIX_LR": ("num", 0.04, "Muon learning rate of the block matrices"),
    "EMBEDDING_LR": ("num", 0.6, "Adam learning rate of token and value embeddings"),
    "UNEMBEDDING_LR": ("num", 0.004, "Adam learning rate of lm_head"),
    "SCALAR_LR": ("num", 0.5, "Adam learning rate of the per-layer scalars"),
    "ADAM_LR": ("num", 1.0, "all Adam learning rates together (a multiplier)"),
    "LR": ("num", 1.0, "all learning rates together (a multiplier)"),
    "WEIGHT_DECAY": ("num", 0.2, "cautious weight decay of Muon"),
    "ADAM_WEIGHT_DECAY": ("num", 0.0, "weight decay of the Adam groups (embeddings, lm_head)"),
    "CAUTIOUS_WD": ("switch", "on", "Muon's decay only where update and weight agree in sign"),
    "ADAM_BETA1": ("num", 0.8, "first entry of ADAM_BETAS"),
    "ADAM_BETA2": ("num", 0.95, "second entry of ADAM_BETAS"),
    "ADAM_EPS": ("num", 1e-10, "Adam epsilon"),
    "WARMUP_RATIO": ("num", 0.0, "fraction of the budget spent on LR warmup"),
    "WARMDOWN_RATIO": ("num", 0.5, "fraction of the budget spent on the final LR decay"),
    "FINAL_LR_FRAC": ("num", 0.0, "LR at the end of training, as a fraction"),
    "DEPTH": ("num", 8, "number of transformer layers"),
    "ASPECT_RATIO": ("num", 64, "model width per layer (model_dim = DEPTH x ASPECT_RATIO)"),
    "HEAD_DIM": ("num", 128, "attention head dimension"),
    "N_HEAD": ("num", 4, "number of attention heads"),
    "N_KV_HEAD": ("num", 4, "number of key/value heads (GQA / MQA)"),
    "WINDOW_PATTERN": ("choice", "SSSL", "per-layer attention windows, L long, S short"),
    "SHORT_WINDOW": ("num", 1024, "length of the short attention window"),
    "TOTAL_BATCH_SIZE": ("num", 2 ** 19, "tokens per optimizer step"),
    "DEVICE_BATCH_SIZE": ("num", 128, "sequences per forward/backward (micro-batch)"),
    "GRAD_ACCUM": ("num", 2, "gradient accumulation steps"),
    "MAX_SEQ_LEN": ("num", 2048, "sequence / context length"),
    "MLP_RATIO": ("num", 4, "MLP hidden width as a multiple of model_dim"),
    "MLP_ACTIVATION": ("choice", "relusq", "MLP non-linearity (relusq = ReLU squared)"),
    "SOFTCAP": ("num", 15, "logit soft-cap (15 tanh(x / 15))"),
    "ROTARY": ("switch", "on", "rotary position embeddings"),
    "ROTARY_BASE": ("num", 10000, "rotary base (theta)"),
    "QK_NORM": ("switch", "on", "RMS norm of queries and keys"),
    "VALUE_EMBEDS": ("choice", "alternating", "value embeddings: alternating layers, all, last, off"),
    "VE_GATE": ("switch", "on", "the sigmoid gates of the value embeddings"),
    "X0_LAMBDAS": ("switch", "on", "per-layer x0 (input embedding) skip scalars"),
    "RESID_LAMBDAS": ("switch", "on", "per-layer residual scalars"),
    "X0_LAMBDA_INIT": ("num", 0.1, "initial value of the x0 lambdas"),
    "RESID_LAMBDA_INIT": ("num", 1.0, "initial value of the residual lambdas"),
    "WEIGHT_TYING": ("switch", "off", "sharing wte with lm_head"),
    "PER_LAYER_EMBED": ("switch", "off", "a separate embedding table per layer"),
    "Z_LOSS": ("num", None, "z-loss coefficient on the logits"),
    "GRAD_CLIP": ("num", None, "gradient clipping max norm"),
    "LABEL_SMOOTHING": ("num", 0.0, "label smoothing"),
    "DROPOUT": ("num", 0.0, "dropout probability"),
    "LOSS_SCALE": ("num", 1.0, "a multiplier on the training loss"),
    "MUON_MOMENTUM": ("num", 0.95, "Muon momentum (after its warmup)"),
    "MUON_MOMENTUM_WARMUP": ("num", 300, "steps of Muon momentum warmup 0.85 -> 0.95"),
    "MUON_NS_STEPS": ("num", 5, "Muon orthogonalisation (polar express) steps"),
    "MUON_BETA2": ("num", 0.95, "NorMuon second-moment beta"),
    "NORMUON": ("switch", "on", "NorMuon variance reduction"),
    "NESTEROV": ("switch", "on", "Nesterov momentum in Muon"),
    "OPTIMIZER": ("choice", "muon", "optimizer of the block matrices"),
    "NORM": ("choice", "rmsnorm", "normalisation layer"),
    "BIAS": ("switch", "off", "bias terms in linear layers"),
    "SEED": ("num", 42, "random seed"),
    "LM_HEAD_INIT": ("num", 0.001, "init std of lm_head"),
    "WTE_INIT": ("num", 1.0, "init std of the token embedding"),
    "VE_INIT": ("num", 1.0, "init scale of the value embeddings"),
    "VE_GATE_INIT": ("num", 0.0, "init of the value-embedding gates"),
    "QKV_INIT": ("num", 1.0, "init scale of the q/k/v projections"),
    "MLP_FC_INIT": ("num", 1.0, "init scale of the MLP input projection"),
    "ATTN_PROJ_INIT": ("num", 0.0, "init of the attention output projection"),
    "MLP_PROJ_INIT": ("num", 0.0, "init of the MLP output projection"),
    "PROJ_INIT": ("num", 0.0, "init of both output projections"),
}

FRACTION_KNOBS = {"WARMUP_RATIO", "WARMDOWN_RATIO", "FINAL_LR_FRAC", "LABEL_SMOOTHING", "DROPOUT"}
ABSOLUTE_MULTIPLE_KNOBS = {"MLP_RATIO"}   # "3x" means the value 3, not 3 x base
INTEGER_KNOBS = {"DEPTH", "HEAD_DIM", "N_HEAD", "N_KV_HEAD", "TOTAL_BATCH_SIZE", "DEVICE_BATCH_SIZE",
                 "MAX_SEQ_LEN", "SHORT_WINDOW", "MUON_NS_STEPS", "MUON_MOMENTUM_WARMUP", "SEED",
                 "GRAD_ACCUM", "ASPECT_RATIO"}
OFF_IS_NOT_ZERO = {"SOFTCAP", "ROTARY_BASE", "MAX_SEQ_LEN", "DEPTH", "HEAD_DIM", "N_HEAD", "N_KV_HEAD",
                   "TOTAL_BATCH_SIZE", "DEVICE_BATCH_SIZE", "SEED", "LR", "ADAM_LR"}   # "no softcap" is not softcap 0
LR_KNOBS = ("MATRIX_LR", "EMBEDDING_LR", "UNEMBEDDING_LR", "SCALAR_LR")

# ---------------------------------------------------------------- canonical spelling

_CANON = [(re.compile(p), r) for p, r in [
    (r"→|⟶|=>|—>|-->", " -> "),
    (r"×", "x"),
    (r"≈", " ~"),
    (r"(\d),(\d{3})(?!\d)", r"\1\2"),
    (r"(\d),(\d{3})(?!\d)", r"\1\2"),
    (r"β\s*1", "beta1"), (r"β\s*2", "beta2"),
    (r"relu\s*(?:\^|\*\*)\s*2\b|relu²|relu\s*2\b|squared\s+relu|relu\s+squared|\brelusq\b|\brelu\s+sq\b", " relusq "),
    (r"\bswi\s*glu\b", "swiglu"), (r"\bge\s*glu\b", "geglu"), (r"\bswish\b", "silu"),
    (r"\bbeta\s*1\b", "betaone"), (r"\bbeta\s*2\b", "betatwo"), (r"\badam\s+betas\b", "adambetas"),
    (r"learning\s+rates?|\blrs\b", "lr"),
    (r"weight\s+decay|\bwd\b", "wd"),
    (r"warm\s*down|cool\s*down", "warmdown"),
    (r"warm\s*up", "warmup"),
    (r"\blr\s+(warmup|warmdown)\b", r"\1"),
    (r"soft\s*cap(?:ping|ped|s)?|logits?\s+cap(?:ping)?|tanh\s+cap(?:ping)?", "softcap"),
    (r"\bz\s*loss\b", "zloss"),
    (r"\battn\b", "attention"), (r"\bpos(?:itional)?\b", "position"), (r"\bparams?\b", "parameters"),
    (r"\bmulti\s*query(?:\s+attention)?\b", "mqa"), (r"\bgrouped\s*query(?:\s+attention)?\b", "gqa"),
    (r"\bq\s*k\s*(?:layer\s*|rms\s*)?norm(?:ali[sz]ation|s)?\b|query\s*(?:/\s*|and\s+)?key\s+(?:rms\s*|layer\s*)?norm\w*", "qknorm"),
    (r"(?:value\s+embed(?:ding)?s?|\bves?)\s+gat(?:e|es|ing)\b", "vegate"),
    (r"value\s+embed(?:ding)?s?|value\s+embeds\b|value\s+residuals?|\bves?\b", "valueembeds"),
    (r"\blm\s*head\b|\bun\s*emb(?:ed(?:ding)?s?|s)?\b|output\s+(?:layer|head|embedding)s?|\bclassifier\b", "lmhead"),
    (r"\bwte\b|token\s+embed(?:ding)?s?|input\s+embed(?:ding)?s?|\bembed(?:ding)?s?\b|\bembs?\b", "embed"),
    (r"\brotary(?:\s+position(?:al)?)?(?:\s+(?:embed|encodings?))?|\brope\b", "rotary"),
    (r"\bx\s*0(?:\s+(?:residual|skip|input))?(?:\s+(?:lambdas?|scalars?|connections?|weights?|skips?|residuals?))+",
     "xzerolambdas"),
    (r"\bx\s*0\b", "xzero"),
    (r"\bresid(?:ual)?\s+(?:lambdas?|scal(?:ar|e)s?)", "residlambdas"),
    (r"(?:\bmlp|\bffn|feed\s*forward)(?:\s+(?:hidden|inner|intermediate))?\s+(?:width|dim(?:ension)?|size|ratio"
     r"|expansion(?:\s+(?:ratio|factor))?|multiplier|mult|factor)\b|\bexpansion\s+(?:ratio|factor)"
     r"|\bmlp\s+(?:hidden|expansion)\b|\bhidden\s+(?:ratio|multiplier)", "mlpratio"),
    (r"\bn\s*embd\b|\bd\s*model\b|\bmodel\s+dim(?:ension)?s?\b|\bembed\s+dim(?:ension)?\b|\bhidden\s+(?:size|dim(?:ension)?)\b"
     r"|\bresidual\s+(?:stream\s+)?width\b|\bmodel\s+width\b", "modeldim"),
    (r"\bgrad(?:ient)?s?\s+(?:norm\s+)?clip\w*|\bclip\w*(?:\s+the)?\s+grad\w*(?:\s+norms?)?|\bmax\s+grad(?:ient)?\s+norm"
     r"|\bgrad(?:ient)?\s+norm\s+clip\w*", "gradclip"),
]]

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?"
_WORD_NUMBERS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "sixteen": 16, "twenty": 20, "thirty": 30,
}
_WORD_MULTIPLIERS = {
    "double": 2, "doubled": 2, "doubling": 2, "twice": 2, "triple": 3, "tripled": 3, "tripling": 3,
    "quadruple": 4, "quadrupled": 4, "halve": 0.5, "halved": 0.5, "halving": 0.5, "half": 0.5,
    "quarter": 0.25,
}
_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9}

# value extractors: (regex, kind); applied in order on the canonical clause
_VALUE_PATTERNS = [(re.compile(p), k) for p, k in [
    (r"\b(?:n|normal|gaussian)\s*\(\s*0(?:\.0*)?\s*,\s*(" + _NUM + r")\s*\)", "number"),
    (r"\(\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*\)", "tuple"),
    (r"(?<![\w.])(\d+)\s*(?:\*\*|\^)\s*(\d+)(?![\w.])", "power"),
    (r"(?<![\w./])(\d+)\s*/\s*(\d+)(?![\w./])", "ratio"),
    (r"(?<![\w.])(" + _NUM + r")\s*(?:x|\*)\s*(?:modeldim|dim|d|width)\b", "dim_multiple"),
    (r"(?<![\w.])(" + _NUM + r")\s*x(?![a-z0-9])", "multiple"),
    (r"(?<![\w.])(" + _NUM + r")\s+times\b", "multiple"),
    (r"(?<![a-z0-9])x\s*(" + _NUM + r")(?![\w.])", "multiple"),
    (r"(?<![\w.])([-+]?" + _NUM + r")\s*(?:%|percent\b|pct\b)", "percent"),
    (r"(?<![\w.])(" + _NUM + r")\s*([kmb])\b", "suffixed"),
    (r"(?<![\w.])([-+]?" + _NUM + r")(?![\w])", "number"),
    (r"\b(" + "|".join(_WORD_MULTIPLIERS) + r")\b", "word_multiple"),
    (r"\b(" + "|".join(_WORD_NUMBERS) + r")\b", "word_number"),
    (r"[\"']([sl]{1,12})[\"']|\b([sl]{3,12})\b", "pattern"),
    (r"\b([sl]{1,2})\b", "short_pattern"),
]]

_DIRECTION_WORDS = [(re.compile(p), d) for p, d in [
    (r"\b(?:increas\w*|rais\w*|bump\w*|boost\w*|higher|larger|bigger|more|longer|extend\w*|lengthen\w*|grow\w*"
     r"|deeper|wider|greater|up|upscal\w*|scal\w* up|enlarg\w*|expand\w*)\b", "up"),
    (r"\b(?:decreas\w*|lower\w*|reduc\w*|cut\w*|shrink\w*|shrunk|smaller|shorter|shorten\w*|fewer|less|narrower"
     r"|shallower|trim\w*|down|tight\w*|downscal\w*|scal\w* down)\b", "down"),
    (r"\b(?:remov\w*|delet\w*|drop\w*|disabl\w*|no|without|ablat\w*|kill\w*|strip\w*|rip\w* out|get rid of"
     r"|turn\w* off|switch\w* off|off|eliminat\w*|untie\w*|untying|decoupl\w*|skip\w*)\b", "off"),
    (r"\b(?:add\w*|enabl\w*|introduc\w*|turn\w* on|switch\w* on|re-?enabl\w*|tie|tied|ties|tying|shar\w*|includ\w*)\b",
     "on"),
]]
_KEEP = re.compile(r"\b(?:keep|kept|leave|hold|unchanged|as is|nothing|none)\b")
_QUANTIFIER = re.compile(r"\b(?:all|every|each|only|uniform\w*|everywhere)\b")
_OLD_BEFORE = re.compile(r"(?:\bfrom|\binstead\s+of|\brather\s+than|\bvs\.?|\bversus|\breplac\w*|\bswap\w*)\s*$")
_OLD_AFTER = re.compile(r"^\s*(?:->|to\s+[#~]|by\s+[#~]|→)")
_APPROX_BEFORE = re.compile(r"(?:~|\babout|\baround|\broughly|\bapprox\w*|\bnearly|\balmost)\s*$")
_DELTA_BEFORE = re.compile(r"(?:\bby|\badd\w*|\bplus|\+)\s*$")
_DELTA_AFTER = re.compile(r"^\s*(more|extra|additional|fewer|less)\b")
_SPLIT = re.compile(r";|,\s+(?![^()]*\))|\.\s+|\s+(?:and|plus|then|also|while|but|&|\+)\s+")


_RATIONALE = re.compile(r"\s(?:because|since|so that|in order to|hoping|expecting|to see (?:if|whether)"
                        r"|to test (?:if|whether)|as (?:suggested|in)|which should|motivated by)\b.*$")


@functools.lru_cache(maxsize=4096)
def canonical_text(text):
    """Lower-cased text with synonyms rewritten to one spelling (see _CANON)."""
    t = (text or "").lower().replace("_", " ")
    t = re.sub(r"(?<![0-9]e)(?<=[a-z])-(?=[a-z0-9])|(?<=[0-9])-(?=[a-z])", " ", t)
    for pattern, replacement in _CANON:
        t = pattern.sub(replacement, t)
    return re.sub(r"\s+", " ", t).strip()


# ---------------------------------------------------------------- knob patterns

def _lr_knob(clause, match):
    if re.search(r"\b(?:end|final|floor|minimum|min)\b", clause):
        return "FINAL_LR_FRAC"
    if re.search(r"\b(?:muon|matri(?:x|ces)|hidden|blocks?)\b", clause):
        return "MATRIX_LR"
    if "lmhead" in clause:
        return "UNEMBEDDING_LR"
    if re.search(r"\bembed\b|valueembeds", clause):
        return "EMBEDDING_LR"
    if re.search(r"\bscalars?\b|lambdas", clause):
        return "SCALAR_LR"
    if re.search(r"\badam", clause):
        return "ADAM_LR"
    return "LR"


def _wd_knob(clause, match):
    if "muon" not in clause and re.search(r"\badam|\bembed\b|lmhead|valueembeds|\bscalars?\b|lambdas", clause):
        return "ADAM_WEIGHT_DECAY"
    return "WEIGHT_DECAY"


def _beta1_knob(clause, match):
    return "MUON_MOMENTUM" if "muon" in clause else "ADAM_BETA1"


def _beta2_knob(clause, match):
    return "MUON_BETA2" if "muon" in clause else "ADAM_BETA2"


def _momentum_knob(clause, match):
    if re.search(r"\bsteps?\b|\bramp\w*|\bwarmup\b|\bschedule\b", clause):
        return "MUON_MOMENTUM_WARMUP"
    return "ADAM_BETA1" if re.search(r"\badam", clause) else "MUON_MOMENTUM"


def _batch_knob(clause, match):
    if re.search(r"\btokens?\b", clause):
        return "TOTAL_BATCH_SIZE"
    if re.search(r"\b(?:sequences?|seqs?|rows?|micro|device|examples?|samples?)\b", clause):
        return "DEVICE_BATCH_SIZE"
    return "BATCH?"  # decided by the value's magnitude later


def _window_long(clause, match):
    return ("WINDOW_PATTERN", "L") if _QUANTIFIER.search(clause) else ("WINDOW_PATTERN", None)


def _window_short(clause, match):
    if re.search(re.escape(match.group(0)) + r"\s+(?:size|length|len|of|to|=|#)", clause):
        return "SHORT_WINDOW"
    return ("WINDOW_PATTERN", "S") if _QUANTIFIER.search(clause) else ("WINDOW_PATTERN", None)


_TENSORS = [
    ("LM_HEAD_INIT", r"lmhead"),
    ("VE_GATE_INIT", r"vegate"),
    ("VE_INIT", r"valueembeds"),
    ("WTE_INIT", r"embed"),
    ("MLP_PROJ_INIT", r"mlp\s+(?:c\s+)?(?:out(?:put)?\s+)?proj(?:ection)?s?|mlp\s+down(?:\s+proj\w*)?"),
    ("ATTN_PROJ_INIT", r"(?:attn|attention)(?:\s+c)?(?:\s+out(?:put)?)?\s+proj(?:ection)?s?|\bc\s+proj\b|\bo\s+proj\b"),
    ("PROJ_INIT", r"(?:out(?:put)?\s+)?proj(?:ection)?s?"),
    ("MLP_FC_INIT", r"mlp\s+(?:in(?:put)?|fc|up)(?:\s+proj\w*)?|\bc\s+fc\b"),
    ("QKV_INIT", r"qkv|q\s*,?\s*k\s*,?\s*(?:and\s+)?v(?:\s+proj\w*)?|query\s+key\s+value"),
    ("X0_LAMBDA_INIT", r"xzerolambdas|xzero"),
    ("RESID_LAMBDA_INIT", r"residlambdas"),
]
_INIT = r"(?:init\w*|std|scale|initial\s+value)"


def _compile_patterns():
    table = []
    for knob, tensor in _TENSORS:
        table.append((rf"\b(?:zero\s+|#+\s+)?init\w*(?:\s+(?:the|of|for|std|scale))*\s+(?:{tensor})\b"
                      rf"|\b(?:{tensor})(?:\s+(?:weights?|matri(?:x|ces)|layers?))?\s+{_INIT}\b"
                      rf"|\b(?:{tensor})(?:\s+weights?)?\s*~|\b(?:{tensor})\s+(?:start\w*|begin\w*)\s+(?:at|from)\b",
                      knob))
    table += [
        (r"\bmatrix\s+lr\b|\bmuon\s+lr\b|\blr\s+(?:of|for)\s+(?:the\s+)?(?:muon|matri(?:x|ces))\b", "MATRIX_LR"),
        (r"\bscalars?\s+lr\b|\blr\s+(?:of|for)\s+(?:the\s+)?scalars?\b", "SCALAR_LR"),
        (r"\blmhead\s+lr\b|\blr\s+(?:of|for)\s+(?:the\s+)?lmhead\b", "UNEMBEDDING_LR"),
        (r"\bembed\s+lr\b|\blr\s+(?:of|for)\s+(?:the\s+)?embed\b", "EMBEDDING_LR"),
        (r"\bfinal\s+lr(?:\s+frac(?:tion)?)?\b|\bmin(?:imum)?\s+lr\b|\blr\s+floor\b|\bfinal\s+lr\b", "FINAL_LR_FRAC"),
        (r"\b(?:muon\s+)?momentum\s+(?:warmup|ramp)\b", "MUON_MOMENTUM_WARMUP"),
        (r"\bwarmup(?:\s+(?:ratio|fraction|frac|steps|phase|period))?\b", "WARMUP_RATIO"),
        (r"\bwarmdown(?:\s+(?:ratio|fraction|frac|phase|period))?\b|\b(?:lr|linear)\s+decay(?:\s+phase)?\b"
         r"|\bdecay\s+phase\b", "WARMDOWN_RATIO"),
        (r"\bcautious\s+wd\b", "CAUTIOUS_WD"),
        (r"\bwd\b", _wd_knob),
        (r"\badambetas\b", "ADAM_BETAS"),
        (r"\bbetaone\b", _beta1_knob),
        (r"\bbetatwo\b", _beta2_knob),
        (r"\b(?:adam\s+)?eps(?:ilon)?\b", "ADAM_EPS"),
        (r"\bnesterov(?:\s+momentum)?\b", "NESTEROV"),
        (r"\bnormuon\b|\bvariance\s+reduction\b", "NORMUON"),
        (r"\b(?:newton\s+schulz|ns|polar\s+express|orthogonali[sz]ation|muon)\s+(?:steps|iterations|iters)\b",
         "MUON_NS_STEPS"),
        (r"\bmomentum\b", _momentum_knob),
        (r"\blr\b", _lr_knob),
        (r"\bembed\s+(?:tables?\s+)?per\s+layer\b|\bper\s+layer\s+embed\b", "PER_LAYER_EMBED"),
        (r"\bweight\s+tying\b|\b(?:un)?ti(?:e|ed|es|ing)\b|\bshar\w*(?=.*\b(?:embed|lmhead)\b)"
         r"|\bseparate\s+(?:embed|lmhead)\b", "WEIGHT_TYING"),
        (r"\bwindow\s+pattern\b|\bwindows?\s+(?:layout|schedule)\b|\battention\s+windows?\b", "WINDOW_PATTERN"),
        (r"\b(?:short\s+|sliding\s+|local\s+)?window\s+(?:size|length|len)\b", "SHORT_WINDOW"),
        (r"\b(?:full|long|global)(?:\s+(?:context|attention|window|windows|causal))+\b|\bfull\s+context\b", _window_long),
        (r"\b(?:short|sliding|local|half)(?:\s+(?:context|attention))?\s+windows?\b|\blocal\s+attention\b", _window_short),
        (r"\btotal\s+batch(?:\s+size)?\b|\btokens?\s+per\s+(?:optimi[sz]er\s+)?(?:step|update|batch)\b"
         r"|\bbatch\s+size\s+in\s+tokens\b|\bglobal\s+batch(?:\s+size)?\b|\beffective\s+batch(?:\s+size)?\b", "TOTAL_BATCH_SIZE"),
        (r"\bdevice\s+batch(?:\s+size)?\b|\bmicro\s*batch(?:es)?(?:\s+size)?\b|\bper\s+device\s+batch(?:\s+size)?\b"
         r"|\bbatch\s+per\s+device\b|\bsequences\s+per\s+(?:forward|micro\s*batch|step|device)\b", "DEVICE_BATCH_SIZE"),
        (r"\bgrad(?:ient)?\s+accum\w*(?:\s+steps)?\b", "GRAD_ACCUM"),
        (r"\bbatch(?:\s+size)?\b", _batch_knob),
        (r"\bmax\s+seq\s+len\b|\bseq(?:uence)?\s+len(?:gth)?\b|\bcontext\s+(?:length|len|size)\b|\bctx(?:\s+len)?\b"
         r"|\bblock\s+size\b|\bseqlen\b", "MAX_SEQ_LEN"),
        (r"\bdepth\b|\bn\s+layers?\b|\bnum(?:ber)?\s+(?:of\s+)?layers\b|\blayer\s+count\b|\bdeeper\b|\bshallower\b"
         r"|#\s+(?:transformer\s+)?(?:layers?|blocks?)\b|\b(?:more|fewer|extra|additional|less)\s+layers\b", "DEPTH"),
        (r"\baspect(?:\s+ratio)?\b|\bwider\b|\bnarrower\b|\bwidth\b", "ASPECT_RATIO"),
        (r"\bmodeldim\b", "MODEL_DIM"),
        (r"\bhead\s+dim(?:ension)?s?\b|\bhead\s+size\b|\bdim(?:ension)?\s+per\s+head\b"
         r"|#+\s+dim(?:ension(?:al)?)?\s+(?:attention\s+)?heads?\b|\bheads\s+of\s+(?:size|dim\w*)\b", "HEAD_DIM"),
        (r"\b(?:n\s+|num\s+|number\s+of\s+)?(?:kv|key\s+value|key/value)\s+heads?\b|\bgqa\b|\bmqa\b|\bgrouped\s+query\b",
         "N_KV_HEAD"),
        (r"\b(?:n\s+|num\s+|number\s+of\s+)?(?:attention\s+)?heads\b|#\s+heads?\b|\bn\s+head\b", "N_HEAD"),
        (r"\bmlpratio\b", "MLP_RATIO"),
        (r"\b(?:mlp\s+)?(?:activation|non\s*linearity)(?:\s+function)?\b", "MLP_ACTIVATION"),
        (r"\b(?:relusq|relu|gelu|swiglu|geglu|reglu|silu|tanh|softplus|sigmoid)\b", ("MLP_ACTIVATION", "@word")),
        (r"\bsoftcap\b", "SOFTCAP"),
        (r"\brotary\s+(?:base|theta|freq\w*(?:\s+base)?)\b|\btheta\b", "ROTARY_BASE"),
        (r"\brotary\b", "ROTARY"),
        (r"\bqknorm\b", "QK_NORM"),
        (r"\bvegate\b", "VE_GATE"),
        (r"\bvalueembeds\b", "VALUE_EMBEDS"),
        (r"\bxzerolambdas\b", "X0_LAMBDAS"),
        (r"\bresidlambdas\b", "RESID_LAMBDAS"),
        (r"\bzloss\b", "Z_LOSS"),
        (r"\bgradclip\b", "GRAD_CLIP"),
        (r"\blabel\s+smooth\w*\b", "LABEL_SMOOTHING"),
        (r"\bdropout\b", "DROPOUT"),
        (r"\bloss\s+scal\w*\b|\bscal\w*\s+(?:the\s+)?loss\b|\bmultipl\w*\s+(?:the\s+)?loss\b", "LOSS_SCALE"),
        (r"\bseed\b", "SEED"),
        (r"\blayer\s*norm\b|\brms\s*norm\b", ("NORM", "@word")),
        (r"\bbias(?:es)?\b", "BIAS"),
        (r"\b(?:adamw|lion|sgd|soap|shampoo)\b", ("OPTIMIZER", "@word")),
        (r"\boptimi[sz]er\b", "OPTIMIZER"),
        (r"\b(?:mlp|ffn)\b", "MLP?"),
    ]
    return [(re.compile(p), target) for p, target in table]


_PATTERNS = _compile_patterns()


# ---------------------------------------------------------------- clause parsing

def _extract_values(clause):
    """Values of a clause and the clause with each value masked by '#'."""
    values = []
    masked = list(clause)
    windowish = re.search(r"\bwindow|\bpattern\b|\b[sl]{3,12}\b", clause)
    for pattern, kind in _VALUE_PATTERNS:
        if kind == "short_pattern" and not windowish:
            continue
        for m in pattern.finditer("".join(masked)):
            s, e = m.span()
            if "#" in "".join(masked[s:e]):
                continue
            v = {"kind": kind, "start": s, "end": e, "approx": False}
            try:
                if kind == "tuple":
                    v["number"] = [float(m.group(1)), float(m.group(2))]
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
            except (ValueError, OverflowError):
                continue
            masked[s:e] = "#" * (e - s)
            values.append(v)
    text = "".join(masked)
    for v in values:
        before, after = text[:v["start"]], text[v["end"]:]
        v["old"] = bool(_OLD_BEFORE.search(before) or _OLD_AFTER.match(after))
        v["approx"] = v["approx"] or bool(_APPROX_BEFORE.search(before))
        if v["kind"] in ("number", "word_number") and (_DELTA_BEFORE.search(before) or _DELTA_AFTER.match(after)):
            v["delta"] = -1 if re.match(r"^\s*(?:fewer|less)\b", after) else 1
        if v["kind"] == "percent" and re.search(r"(?:\bby|[-+])\s*$", before):
            v["relative"] = True
    values.sort(key=lambda v: v["start"])
    return values, text


def _find_mentions(clause, masked):
    """Knob mentions: [{"knob", "start", "end", "choice"}] in text order."""
    taken = [False] * len(masked)
    mentions = []
    for pattern, target in _PATTERNS:
        for m in pattern.finditer(masked):
            s, e = m.span()
            if s == e or any(taken[s:e]):
                continue
            choice = None
            if callable(target):
                knob = target(masked, m)
            else:
                knob = target
            if isinstance(knob, tuple):
                knob, choice = knob
                if choice == "@word":
                    choice = m.group(0).replace(" ", "")
            for i in range(s, e):
                taken[i] = True
            mentions.append({"knob": knob, "start": s, "end": e, "choice": choice})
    mentions.sort(key=lambda x: x["start"])
    return mentions


def _direction_words(masked):
    found = []
    for pattern, direction in _DIRECTION_WORDS:
        for m in pattern.finditer(masked):
            found.append((m.start(), direction, m.group(0)))
    found.sort()
    return found


def _base_value(knob, base_constants):
    if base_constants and knob in base_constants:
        value = base_constants[knob]
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return value
    if knob == "ADAM_BETA1" or knob == "ADAM_BETA2":
        betas = (base_constants or {}).get("ADAM_BETAS")
        if isinstance(betas, (list, tuple)) and len(betas) == 2:
            return betas[0] if knob == "ADAM_BETA1" else betas[1]
    if knob == "MODEL_DIM":
        depth, aspect = _base_value("DEPTH", base_constants), _base_value("ASPECT_RATIO", base_constants)
        return depth * aspect if isinstance(depth, (int, float)) and isinstance(aspect, (int, float)) else None
    if knob == "GRAD_ACCUM" and base_constants:
        total, device, seq = (_base_value(k, base_constants) for k in
                              ("TOTAL_BATCH_SIZE", "DEVICE_BATCH_SIZE", "MAX_SEQ_LEN"))
        if all(isinstance(v, (int, float)) and v > 0 for v in (total, device, seq)):
            return total / (device * seq)
    spec = KNOBS.get(knob)
    return spec[1] if spec else None


def reduce_pattern(pattern):
    """The shortest repeating unit of a window pattern: 'LLLL' -> 'L', 'SLSL' -> 'SL'."""
    p = str(pattern).upper()
    for k in range(1, len(p) + 1):
        if len(p) % k == 0 and p[:k] * (len(p) // k) == p:
            return p[:k]
    return p


def _long_fraction(pattern):
    p = reduce_pattern(pattern)
    return p.count("L") / len(p) if p else 0.0


def _compare_direction(new, old):
    if isinstance(new, (int, float)) and isinstance(old, (int, float)):
        if new > old * (1 + 1e-9) + 1e-15:
            return "up"
        if new < old * (1 - 1e-9) - 1e-15:
            return "down"
    return None


def _pick_direction(words):
    """One direction from a clause's direction words: the first up/down word wins
    (a value, when given, still corrects it), else the first off/on word."""
    kinds = [d for _, d, _ in words]
    for group in (("up", "down"), ("off", "on")):
        present = [d for d in kinds if d in group]
        if present:
            return present[0]
    return None


def _choice_target(mentions, masked, base):
    """The chosen word among a choice knob's mentions ('replace A with B' -> B)."""
    candidates = []
    for m in mentions:
        if m["choice"] is None:
            continue
        before = masked[:m["start"]]
        after = masked[m["end"]:]
        old = bool(_OLD_BEFORE.search(before) or re.match(r"^\s*(?:->|to\b)", after)
                   or (re.match(r"^\s*(?:with|by|for)\b", after)
                       and re.search(r"\b(?:replac|swap|switch|chang|substitut)\w*", before)))
        candidates.append((m["choice"], old))
    fresh = [c for c, old in candidates if not old]
    if fresh:
        non_default = [c for c in fresh if c != base]
        return (non_default or fresh)[-1]
    return None


def _value_embeds_layout(masked):
    """('all' | 'alternating' | 'last' | 'first' | None) from a value-embeddings clause."""
    found = []
    for pattern, layout in ((r"\b(?:all|every|each)\s+(?:the\s+)?layers?\b|\beverywhere\b", "all"),
                            (r"\balternat\w*|\bevery\s+other\b|\bodd\s+layers\b", "alternating"),
                            (r"\b(?:last|final)\s+layers?(?:\s+only)?\b", "last"),
                            (r"\bfirst\s+layers?\b", "first")):
        for m in re.finditer(pattern, masked):
            old = bool(_OLD_BEFORE.search(masked[:m.start()]))
            found.append((m.start(), layout, old))
    found.sort()
    fresh = [layout for _, layout, old in found if not old]
    return fresh[-1] if fresh else None


def _build_change(knob, mentions, values, words, masked, base_constants, raw):
    """The canonical change of one knob from its mentions, values and the clause."""
    kind = KNOBS.get(knob, ("num",))[0]
    base = _base_value(knob, base_constants)
    direction = _pick_direction(words)
    change = {"knob": knob, "direction": None, "value": None, "raw": raw}
    if knob == "VALUE_EMBEDS":
        return _value_embeds_change(change, direction, masked)
    if kind == "switch":
        return _switch_change(change, direction, mentions, masked)
    if knob == "WINDOW_PATTERN":
        return _window_change(change, mentions, values, direction, masked, base)
    if kind == "choice":
        target = _choice_target(mentions, masked, base)
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
    return _numeric_change(change, values, direction, masked, base)


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
    if direction in ("off", "down"):
        change["direction"] = "off"
    elif direction in ("on", "up"):
        change["direction"] = "on"
    if change["knob"] == "WEIGHT_TYING":
        if re.search(r"\buntie\w*|\buntying\b|\bseparate\b|\bdecoupl", masked):
            change["direction"] = "off"
        elif change["direction"] is None:
            change["direction"] = "on"   # "tied embeddings", "weight tying"
    return change


def _window_change(change, mentions, values, direction, masked, base):
    patterns = [v for v in values if v["kind"] == "pattern" and not v["old"]]
    target = reduce_pattern(patterns[-1]["number"]) if patterns else None
    if target is None:
        target = next((m["choice"] for m in mentions if m["choice"]), None)
    if target is not None:
        change["value"] = target
        change["direction"] = _compare_direction(_long_fraction(target), _long_fraction(base or "SSSL")) or "set"
        return change
    long_side = any(re.match(r"(?:full|long|global)", masked[m["start"]:]) for m in mentions)
    short_side = any(re.match(r"(?:short|sliding|local|half)", masked[m["start"]:]) for m in mentions)
    if direction in ("up", "down"):   # "more short windows" means fewer long ones
        change["direction"] = direction if not short_side else {"up": "down", "down": "up"}[direction]
    elif long_side != short_side:
        change["direction"] = "up" if long_side else "down"
    return change


def _numeric_target(knob, values, direction, masked, base):
    """(value, approx, relative, direction) of a numeric knob from its values."""
    fresh = [v for v in values if not v["old"] and v["kind"] != "pattern"]
    absolute = [v for v in fresh if v["kind"] in ("number", "power", "suffixed", "word_number", "tuple")
                and not v.get("delta")]
    percents = [v for v in fresh if v["kind"] == "percent"]
    multiples = [v for v in fresh if v["kind"] in ("multiple", "word_multiple", "dim_multiple")]
    deltas = [v for v in fresh if v.get("delta")]
    if deltas and not base:   # "add 0.0001 z-loss": nothing to add to
        absolute, deltas = absolute + deltas, []
    if knob == "N_KV_HEAD" and not absolute:
        if re.search(r"\bmqa\b", masked):
            absolute = [{"number": 1, "approx": False}]
        elif re.search(r"\bgqa\b|\bgrouped\b", masked) and direction is None:
            direction = "down"
    if knob in FRACTION_KNOBS and absolute and not percents and absolute[-1]["number"] > 1:
        absolute = []   # "warmup 200 steps": a length in steps, not a fraction
        if direction is None and base == 0:
            direction = "up"
    if percents and knob in FRACTION_KNOBS and not percents[-1].get("relative"):
        return percents[-1]["number"] / 100.0, False, False, direction
    if absolute:
        value = absolute[-1]["number"]
        return (None if isinstance(value, list) else value), absolute[-1]["approx"], False, direction
    if multiples:
        factor = multiples[-1]["number"]
        if (knob in ABSOLUTE_MULTIPLE_KNOBS and multiples[-1]["kind"] != "word_multiple") \
                or multiples[-1]["kind"] == "dim_multiple":
            return factor, False, False, direction
        if base:
            if direction == "down" and factor > 1:
                factor = 1.0 / factor   # "2x smaller"
            return base * factor, False, True, direction
    elif percents and base is not None:
        p = percents[-1]["number"] / 100.0
        shrink = direction == "down" or p < 0
        return base * (1 - abs(p) if shrink else 1 + abs(p)), False, True, direction
    elif deltas and base is not None:
        if re.search(r"\b(?:scal|multipl)\w*", masked):   # "scale the loss by 0.5"
            return base * deltas[-1]["number"], False, True, direction
        step = deltas[-1]["number"] * deltas[-1]["delta"]
        return base + (-abs(step) if direction == "down" else step), False, False, direction
    return None, False, False, direction


def _numeric_change(change, values, direction, masked, base):
    knob = change["knob"]
    numeric_base = base if isinstance(base, (int, float)) and not isinstance(base, bool) else None
    value, approx, relative, direction = _numeric_target(knob, values, direction, masked, numeric_base)
    if value is not None and knob in INTEGER_KNOBS and abs(value - round(value)) < 1e-6:
        value = int(round(value))
    elif isinstance(value, float):
        value = float(f"{value:.6g}")
    if relative:
        change["relative"] = True
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
        elif switched_on and numeric_base is None:
            change["direction"] = "on"        # "add z-loss"
        return change
    change["value"] = value
    if approx:
        change["approx"] = True
    olds = [v for v in values if v["old"] and isinstance(v.get("number"), float)]
    inferred = _compare_direction(value, olds[-1]["number"]) if olds else None
    if inferred is None and numeric_base is not None:
        inferred = _compare_direction(value, numeric_base)
    if numeric_base is None and KNOBS.get(knob, ("num", 0))[1] is None:
        change["direction"] = "on"            # a component that is off by default gets a value
    elif direction in ("up", "down"):
        change["direction"] = direction if inferred in (None, direction) else inferred
    else:
        change["direction"] = inferred
    return change


def _assign_values(mentions, values):
    """{mention index: [values]}; each value goes to the nearest mention of its clause."""
    owned = {i: [] for i in range(len(mentions))}
    if not mentions:
        return owned
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
        owned[best].append(v)
    return owned


def _parse_clause(clause, base_constants, raw):
    values, masked = _extract_values(clause)
    mentions = _find_mentions(clause, masked)
    pattern_values = [v for v in values if v["kind"] == "pattern"]
    if pattern_values and not any(m["knob"] == "WINDOW_PATTERN" for m in mentions):
        mentions.append({"knob": "WINDOW_PATTERN", "start": pattern_values[0]["start"],
                         "end": pattern_values[0]["end"], "choice": None})
        mentions.sort(key=lambda x: x["start"])
    if not mentions:
        return [], None
    words = _direction_words(masked)
    if _KEEP.search(masked) and not [v for v in values if not v["old"]]:
        return [], None
    if any(m["knob"] == "MLP_ACTIVATION" for m in mentions):
        mentions = [m for m in mentions if m["knob"] != "MLP?"]
    mentions = [dict(m, knob="MLP_RATIO") if m["knob"] == "MLP?" else m for m in mentions]
    owned = _assign_values(mentions, values)
    by_knob = {}
    for i, m in enumerate(mentions):
        entry = by_knob.setdefault(m["knob"], {"mentions": [], "values": []})
        entry["mentions"].append(m)
        entry["values"].extend(owned[i])
    changes = []
    for knob, entry in by_knob.items():
        vals = sorted(entry["values"], key=lambda v: v["start"])
        changes.append(_build_change(knob, entry["mentions"], vals, words, masked, base_constants, raw))
    return changes, _pick_direction(words)


def _finish(change, base_constants):
    """Knob aliases that need a value to be resolved; returns a list of changes."""
    relative = change.pop("relative", False)
    knob, value = change["knob"], change["value"]
    if knob == "N_HEAD":
        model_dim = (_base_value("DEPTH", base_constants) or 8) * (_base_value("ASPECT_RATIO", base_constants) or 64)
        out = dict(change, knob="HEAD_DIM")
        if isinstance(value, (int, float)) and value > 0:
            out["value"] = int(round(model_dim / value))
        out["direction"] = {"up": "down", "down": "up"}.get(change["direction"], change["direction"])
        return [out]
    if knob == "MODEL_DIM":
        depth = _base_value("DEPTH", base_constants) or 8
        out = dict(change, knob="ASPECT_RATIO")
        if isinstance(value, (int, float)):
            out["value"] = float(f"{value / depth:.6g}")
            if out["value"] == int(out["value"]):
                out["value"] = int(out["value"])
            out["direction"] = _compare_direction(out["value"], _base_value("ASPECT_RATIO", base_constants)) \
                or out["direction"]
        return [out]
    if knob == "GRAD_ACCUM":
        # accumulation steps = TOTAL_BATCH_SIZE / (DEVICE_BATCH_SIZE x MAX_SEQ_LEN)
        per_step = (_base_value("DEVICE_BATCH_SIZE", base_constants) or 128) * \
            (_base_value("MAX_SEQ_LEN", base_constants) or 2048)
        out = dict(change, knob="TOTAL_BATCH_SIZE")
        if isinstance(value, (int, float)):
            out["value"] = int(round(value * per_step))
            out["direction"] = _compare_direction(out["value"], _base_value("TOTAL_BATCH_SIZE", base_constants)) \
                or out["direction"]
        return [out]
    if knob == "BATCH?":
        if isinstance(value, (int, float)) and value < 4096:
            name = "DEVICE_BATCH_SIZE"
        else:
            name = "TOTAL_BATCH_SIZE"
        out = dict(change, knob=name)
        if isinstance(value, (int, float)):
            out["direction"] = _compare_direction(value, _base_value(name, base_constants)) or out["direction"]
        return [out]
    if knob == "LR" and isinstance(value, (int, float)) and value > 0 and not relative:
        name = min(LR_KNOBS, key=lambda k: abs(math.log(value / _base_value(k, base_constants))))
        out = dict(change, knob=name)
        out["direction"] = _compare_direction(value, _base_value(name, base_constants)) or out["direction"]
        return [out]
    if knob == "ADAM_BETAS":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            return [dict(change, knob="ADAM_BETA2")] if change["direction"] else []
        out = []
        for name, v in zip(("ADAM_BETA1", "ADAM_BETA2"), value):
            base = _base_value(name, base_constants)
            direction = _compare_direction(v, base)
            if direction:
                out.append(dict(change, knob=name, value=v, direction=direction))
        return out
    return [change]


def parse_changes(text, base_constants=None):
    """Canonical changes described by ``text`` (see the module docstring).

    Whatever follows a rationale word ("because", "since", "hoping", ...) is the
    why, not the what, and is not parsed.
    """
    canonical = _RATIONALE.sub("", canonical_text(text))
    if not canonical:
        return []
    clauses = [c.strip() for c in _SPLIT.split(canonical) if c and c.strip()]
    merged = {}
    order = []
    previous_direction = None
    for clause in clauses:
        changes, direction = _parse_clause(clause, base_constants, clause)
        for change in changes:
            if change["direction"] is None and change["value"] is None and previous_direction:
                inherited = dict(change)
                kind = KNOBS.get(change["knob"], ("num",))[0]
                if kind in ("switch",) or change["knob"] == "VALUE_EMBEDS":
                    if previous_direction in ("off", "down"):
                        inherited.update(direction="off", value="off" if change["knob"] == "VALUE_EMBEDS" else None)
                    elif previous_direction in ("on", "up"):
                        inherited["direction"] = "on"
                elif previous_direction in ("up", "down"):
                    inherited["direction"] = previous_direction
                change = inherited
            for finished in _finish(change, base_constants):
                knob = finished["knob"]
                if knob not in merged:
                    merged[knob] = finished
                    order.append(knob)
                else:
                    old = merged[knob]
                    if finished["value"] is not None or old["value"] is None:
                        keep_dir = finished["direction"] or old["direction"]
                        merged[knob] = dict(finished, direction=keep_dir)
        if direction:
            previous_direction = direction
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


def _restates_base(change, base_constants):
    if change["direction"] is not None or change["value"] is None:
        return False
    base = _base_value(change["knob"], base_constants)
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
                out.append({"knob": knob, "direction": _compare_direction(n, o) if o is not None else "set",
                            "value": n})
        return out
    if name == "WINDOW_PATTERN" and isinstance(new, str):
        target = reduce_pattern(new)
        direction = _compare_direction(_long_fraction(target), _long_fraction(old)) if isinstance(old, str) else None
        return [{"knob": name, "direction": direction or "set", "value": target}]
    if isinstance(new, bool) or isinstance(old, bool):
        return [{"knob": name, "direction": "on" if new else "off", "value": None}]
    if isinstance(new, (int, float)):
        direction = _compare_direction(new, old) if isinstance(old, (int, float)) else "set"
        return [{"knob": name, "direction": direction or "set", "value": new}]
    if new is None:
        return [{"knob": name, "direction": "off", "value": None}]
    return [{"knob": name, "direction": "set", "value": new}]


def value_tolerance(a, b):
    """Relative tolerance for calling two values equal: 10% if either is approximate."""
    return 0.1 if a.get("approx") or b.get("approx") else 0.02


# ---------------------------------------------------------------- lexical tokens

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


def _number_token(match):
    try:
        return f" {float(match.group(0)):.4g} "
    except ValueError:
        return match.group(0)


def lexical_tokens(text):
    """Sorted distinct content tokens of ``text`` (canonical spelling, numbers normalised)."""
    t = canonical_text(text)
    t = re.sub(r"(\d+)\s*(?:\*\*|\^)\s*(\d+)", lambda m: f" {float(int(m.group(1)) ** min(64, int(m.group(2)))):.4g} ", t)
    t = re.sub(r"(?<![\w.])" + _NUM + r"(?![\w.])", _number_token, t)
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
    found = {d for pattern, d in _DIRECTION_WORDS for _ in pattern.finditer(t)}
    if len(found) == 1:
        return found.pop()
    if found == {"up", "on"}:
        return "up"
    if found == {"down", "off"}:
        return "down"
    return None
