"""Knob mentions: which knobs a canonical clause names, and where.

Each knob has a pattern over the canonical text (``vocabulary.canonical_text``) or a
function that picks the knob from its clause ("lr" is MATRIX_LR next to "muon",
UNEMBEDDING_LR next to "lm_head", ...). Specific patterns come before general
ones: the first pattern to claim a span wins.
"""

import re

from .vocabulary import compiled

_QUANTIFIER = r"\b(?:all|every|each|only|uniform\w*|everywhere)\b"


_SPAN = (r"\b(?:over|for|during|in|across|within)\s+(?:only\s+|just\s+|roughly\s+|about\s+|~\s*)?"
         r"(?:the\s+|its\s+)?")


def _lr_knob(clause, match):
    if re.search(r"\b(?:warmup|warmdown)\s+(?:of\s+)?(?:the\s+|all\s+)?$", clause[:match.start()]):
        return None   # "warm up the lr over 5%": the lr is what the schedule moves, not a knob
    if re.search(_SPAN + r"(?:last|final)\b", clause):
        return "WARMDOWN_RATIO"   # "decay the lr over the last 40%"
    if re.search(_SPAN + r"(?:first|initial|opening)\b", clause):
        return "WARMUP_RATIO"     # "ramp the lr up over the first 5%"
    if re.search(r"\b(?:end(?:s|ing)?|final|floor|minimum|min)\b|\bof\s+(?:its\s+|the\s+)?(?:peak|max\w*|initial)\b", clause):
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


def _schedule_shape(clause, match):
    """The LR decay's shape: "cosine warmdown"; "linear decay" only when it is what
    the text changes to ("restore linear decay"), else it describes the decay."""
    shape = match.group(0).replace("linearly", "linear")
    if shape == "linear" and not re.search(r"\b(?:restor\w*|back|revert\w*|switch\w*|replac\w*|instead|use)\b|->", clause):
        return None
    return ("LR_SCHEDULE", shape)


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


def _nesterov_knob(clause, match):
    """"Nesterov momentum 0.98" is the momentum's value; "Nesterov" alone is the switch."""
    switched = re.search(r"\b(?:us(?:e|es|ing)|enabl\w*|add\w*|plain|instead)\b", clause)
    if match.group(0).endswith("momentum") and not switched and (
            re.match(r"\s*(?:(?:to|=|of|at|from|->|:)\s*)?~?\s*#", clause[match.end():])
            or re.search(r"#\s*$", clause[:match.start()])):
        return "MUON_MOMENTUM"
    return "NESTEROV"


def _batch_knob(clause, match):
    """The batch a "batch" names, from the words around it ("batch 2^17 device bs 64"
    names two batches: the unit next to each decides)."""
    near = " ".join(clause[:match.start()].split()[-2:] + clause[match.end():].split()[:1])
    if re.search(r"\btokens?\b", near):
        return "TOTAL_BATCH_SIZE"
    if re.search(r"\b(?:sequences?|seqs?|rows?|micro|device|examples?|samples?)\b", near):
        return "DEVICE_BATCH_SIZE"
    return "BATCH?"  # decided by the value's magnitude later


_NEGATED_BEFORE = (r"\b(?:no|drop\w*|remov\w*|disabl\w*|without|ditch\w*|replac\w*|instead\s+of)"
                   r"(?:\s+(?:the|all|any))?\s*$")


_EVERY_NTH = r"\bevery\s+(other|second|third|fourth|2nd|3rd|4th)\s+layers?\b|\balternat\w*\s+layers?\b"
_NTH = {"other": 2, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}


def _every_nth(clause, kind):
    """'global attention every other layer' -> 'SL'; 'local every 3rd layer' -> 'LLS';
    short and long windows alternating ('alternate local and global attention') -> 'SL'
    ('LS' when it starts with the long one)."""
    if re.search(r"\balternat\w*\b", clause) and re.search(r"\b(?:short|sliding|local)\b", clause) \
            and re.search(r"\b(?:full|long|global)\b", clause):
        return "LS" if re.search(r"\b(?:start\w*|begin\w*)\s+with\s+(?:a\s+|the\s+)?(?:full|long|global)\b", clause) else "SL"
    m = re.search(_EVERY_NTH, clause)
    if not m:
        return None
    n = _NTH.get(m.group(1) or "other", 2)
    return "S" * (n - 1) + "L" if kind == "L" else "L" * (n - 1) + "S"


def _window_long(clause, match):
    if re.search(_NEGATED_BEFORE, clause[:match.start()]):
        return ("WINDOW_PATTERN", "S")   # "no full-attention layers"
    if _every_nth(clause, "L"):
        return ("WINDOW_PATTERN", _every_nth(clause, "L"))
    return ("WINDOW_PATTERN", "L") if re.search(_QUANTIFIER, clause) else ("WINDOW_PATTERN", None)


def _window_short(clause, match):
    if re.search(re.escape(match.group(0)) + r"\s+(?:size|length|len|of|to|=|#)", clause):
        return "SHORT_WINDOW"
    if re.search(_NEGATED_BEFORE, clause[:match.start()]):
        return ("WINDOW_PATTERN", "L")   # "drop sliding-window attention"
    if _every_nth(clause, "S"):
        return ("WINDOW_PATTERN", _every_nth(clause, "S"))
    return ("WINDOW_PATTERN", "S") if re.search(_QUANTIFIER, clause) else ("WINDOW_PATTERN", None)


_TENSORS = [
    ("LM_HEAD_INIT", r"lmhead"),
    ("VE_GATE_INIT", r"vegate"),
    ("VE_INIT", r"valueembeds"),
    ("WTE_INIT", r"embed"),
    ("MLP_PROJ_INIT", r"mlp\s+(?:c\s+)?(?:out(?:put)?\s+)?proj(?:ection)?s?|mlp\s+down(?:\s+proj\w*)?"),
    ("ATTN_PROJ_INIT", r"(?:attn|attention)(?:\s+c)?(?:\s+out(?:put)?)?\s+proj(?:ection)?s?|\bo\s+proj\b"),
    ("PROJ_INIT", r"(?:out(?:put)?\s+|c\s+)?proj(?:ection)?s?"),
    ("MLP_FC_INIT", r"mlp\s+(?:in(?:put)?|fc|up)(?:\s+proj\w*)?|\bc\s+fc\b"),
    ("QKV_INIT", r"qkv|q\s*[,/]?\s*k\s*[,/]?\s*(?:and\s+)?v(?:\s+proj\w*)?|query\s+key\s+value"),
    ("X0_LAMBDA_INIT", r"xzerolambdas|xzero"),
    ("RESID_LAMBDA_INIT", r"residlambdas"),
]
_INIT = r"(?:init\w*|std|scale|initial\s+value)"


def _init_table():
    """Init patterns of each tensor; every one contains init, std, scale, ~, start or begin."""
    table = []
    for knob, tensor in _TENSORS:
        table.append((rf"\b(?:zero\s+|#+\s+)?init\w*(?:\s+(?:the|of|for|std|scale|all|both))*\s+(?:{tensor})\b"
                      rf"|\b(?:{tensor})(?:\s+(?:weights?|matri(?:x|ces)|layers?))?\s+{_INIT}\b"
                      rf"|\b(?:{tensor})(?:\s+weights?)?\s*~"
                      rf"|\b(?:{tensor})(?:\s+(?:tables?|weights?|matri(?:x|ces)))?\s+(?:start\w*|begin\w*)"
                      rf"\s+(?:at|from)\b"
                      rf"|\b(?:start\w*|begin\w*)\s+(?:the\s+|all\s+)?(?:{tensor})(?:\s+(?:tables?|weights?))?"
                      rf"\s+(?:at|from)\b",
                      knob))
    return table


# an init pattern needs one of these words: the 11 are compiled only for clauses that have one
_INIT_WORDS = r"init|std|scale|~|start|begin"


# (pattern, knob) over the masked canonical clause; a knob is a name, (name, choice) or a function
# of the clause and the match that returns either
_PATTERNS = [
    # a setting written as code that the vocabulary does not know (see intent.read)
    (r"\bxid[a-z0-9]+\b", lambda clause, match: match.group(0).upper()),
    (r"\bmatrix\s+lr\b|\bmuon\s+lr\b|\blr\s+(?:of|for)\s+(?:the\s+)?(?:muon|matri(?:x|ces))\b", "MATRIX_LR"),
    (r"\bscalars?\s+lr\b|\blr\s+(?:of|for)\s+(?:the\s+)?scalars?\b", "SCALAR_LR"),
    (r"\blmhead\s+lr\b|\blr\s+(?:of|for)\s+(?:the\s+)?lmhead\b", "UNEMBEDDING_LR"),
    (r"\bembed\s+lr\b|\blr\s+(?:of|for)\s+(?:the\s+)?embed\b", "EMBEDDING_LR"),
    (r"\b(?:of|from)\s+(?:the\s+|its\s+)?peak(?:\s+lr)?\b|\bfinal\s+lr(?:\s+frac(?:tion)?)?\b|\bmin(?:imum)?\s+lr\b"
     r"|\blr\s+floor\b|\bfinal\s+lr\b", "FINAL_LR_FRAC"),
    (r"\b(?:start\w*|initial|begin\w*)\s+(?:the\s+)?(?:muon\s+)?momentum(?:\s+(?:warmup|ramp))?\b"
     r"|\bmomentum\s+start\w*\b",
     "MUON_MOMENTUM_START"),
    (r"\b(?:muon\s+)?momentum\s+(?:warmup|ramp)\b|\bmuon\s+(?:warmup|ramp)\b", "MUON_MOMENTUM_WARMUP"),
    (r"\bwarmup(?:\s+(?:ratio|fraction|frac|steps|phase|period))?\b", "WARMUP_RATIO"),
    (r"\bwarmdown(?:\s+(?:ratio|fraction|frac|phase|period))?\b|\b(?:lr|linear)\s+decay(?:\s+phase)?\b"
     r"|\bdecay\s+phase\b", "WARMDOWN_RATIO"),
    (r"\b(?:cosine|linear|exponential)(?:ly)?(?=\s+(?:lr\s+)?(?:warmdown|decay\w*|anneal\w*|schedule|cooldown))",
     lambda clause, match: _schedule_shape(clause, match)),
    (r"\bcautious(?:wd|(?:\s+(?:wd|masking|mask|decay))+)\b|\bcautious\b(?=.*\bwd\b)"
     r"|\bsign\s+agreement(?:\s+mask\w*)?\b|\b(?:same\s+)?sign(?:\s+(?:matching|consistency))?\s+mask\w*\b"
     r"|\bsignagree\b",
     "CAUTIOUS_WD"),
    (r"\bwd\b", _wd_knob),
    (r"\badambetas\b", "ADAM_BETAS"),
    (r"\bbetaone\b", _beta1_knob),
    (r"\bbetatwo\b", _beta2_knob),
    (r"\b(?:adam\s+)?eps(?:ilon)?\b", "ADAM_EPS"),
    (r"\bnesterov(?:\s+momentum)?\b", _nesterov_knob),
    (r"\bnormuon\b|\bvariance\s+reduction\b", "NORMUON"),
    (r"\b(?:newton\s+schulz|polar\s+express|orthogonali[sz]ation)(?:\s+(?:steps|iterations|iters))?\b"
     r"|\b(?:ns|muon)\s+(?:steps|iterations|iters)\b", "MUON_NS_STEPS"),
    (r"\bmomentum\b", _momentum_knob),
    (r"\blr\b", _lr_knob),
    (r"\bembed\s+(?:tables?\s+)?per\s+layer\b|\bper\s+layer\s+embed\b", "PER_LAYER_EMBED"),
    (r"\bweight\s+tying\b|\b(?:un)?ti(?:e|ed|es|ing)\b|\bshar\w*(?=.*\b(?:embed|lmhead)\b)"
     r"|\bseparate\s+(?:embed|lmhead)\b", "WEIGHT_TYING"),
    (r"\b(?:short\s+|sliding\s+|local\s+)?window\s+(?:size|length|len)\b", "SHORT_WINDOW"),
    (r"\b(?:full|long|global)(?:\s+#+\s+tokens?)?(?:\s+(?:context|attention|window|windows|causal))+\b"
     r"|\bfull\s+context\b", _window_long),
    (r"\b(?:short|sliding|local|half)(?:\s+(?:context|attention))?\s+windows?\b|\blocal\s+attention\b", _window_short),
    (r"\bwindow\s+pattern\b|\bwindows?\s+(?:layout|schedule)\b|\battention\s+windows?\b", "WINDOW_PATTERN"),
    (r"\btotal\s+batch(?:\s+size)?\b|\btokens?\s+per\s+(?:optimi[sz]er\s+)?(?:step|update|batch)\b"
     r"|\bbatch\s+size\s+in\s+tokens\b|\bglobal\s+batch(?:\s+size)?\b|\beffective\s+batch(?:\s+size)?\b", "TOTAL_BATCH_SIZE"),
    # "accumulate 4 micro-batches per step": a count of micro-batches is the accumulation
    (r"\baccumulat\w*(?:\s+over)?\s+#+\s+micro\s*batch(?:es)?\b|#+\s+micro\s*batch(?:es)?\s+per\s+(?:optimi[sz]er\s+)?step\b"
     r"|#+\s+accumulation\s+steps\b", "GRAD_ACCUM"),
    (r"\bdevice\s+batch(?:\s+size)?\b|\bmicro\s*batch(?:es)?(?:\s+size)?\b|\bper\s+device\s+batch(?:\s+size)?\b"
     r"|\bbatch\s+per\s+device\b|\bsequences\s+per\s+(?:forward|micro\s*batch|step|device)\b", "DEVICE_BATCH_SIZE"),
    (r"\bgrad(?:ient)?\s+accum\w*(?:\s+steps)?\b", "GRAD_ACCUM"),
    (r"\bbatch(?:\s+size)?\b", _batch_knob),
    (r"\bmax\s+seq\s+len\b|\bseq(?:uence)?\s+len(?:gth)?\b|\bcontext\s+(?:length|len|size)\b|\bctx(?:\s+len)?\b"
     r"|\bblock\s+size\b|\bseqlen\b|\bcontext(?=\s+(?:to\s+|of\s+|=\s*)?#)|(?<=#)\s+(?:tokens?\s+)?(?:contexts?|ctx)\b(?!\s+(?:window|attention))"
     r"|(?<=#)\s+tokens?\s+(?:sequences?|seqs?|samples?|examples?)\b",
     "MAX_SEQ_LEN"),
    (r"\bdepth\b|\bn\s+layers?\b|\bnum(?:ber)?\s+(?:of\s+)?layers\b|\blayer\s+count\b|\bdeeper\b|\bshallower\b"
     r"|#\s+(?:transformer\s+)?(?:layers?|blocks?)\b|\b(?:more|fewer|extra|additional|less)\s+layers?\b", "DEPTH"),
    (r"\baspect(?:\s+ratio)?\b"
     r"|\b(?:wider|narrower)\b(?!\s+(?:attention\s+)?heads?\b|\s+(?:the\s+)?(?:mlp|mlpratio|hidden)\b)", "ASPECT_RATIO"),
    (r"\bmodeldim\b|\bwidth\b", "MODEL_DIM"),
    (r"\bhead\s+dim(?:ension)?s?\b|\bhead\s+size\b|\bdim(?:ension)?\s+per\s+head\b"
     r"|#+\s+dim(?:ension(?:al)?)?\s+(?:attention\s+)?heads?\b|\bheads\s+of\s+(?:size|dim\w*|#+\s+dim\w*)\b", "HEAD_DIM"),
    (r"\b(?:n\s+|num\s+|number\s+of\s+)?(?:kv|k\s*/\s*v|key\s+value|key/value)\s+heads?\b|\bgqa\b|\bmqa\b|\bgrouped\s+query\b",
     "N_KV_HEAD"),
    (r"\b(?:n\s+|num\s+|number\s+of\s+)?(?:attention\s+|query\s+|q\s+)?heads\b|#\s+heads?\b|\bn\s+head\b", "N_HEAD"),
    # "widen the model to 768 dims": a width written as a count of dimensions
    (r"#+\s+(?:dims?|dimensions?|channels?|wide)\b(?!\s+(?:per\s+)?(?:attention\s+)?heads?\b)"
     r"|\b(?:widen\w*|narrow\w*)\s+(?:the\s+)?(?:model|network|residual\s+stream)\b", "MODEL_DIM"),
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
    (r"\bloss\s+scal\w*\b|\bscal\w*\s+(?:the\s+)?loss\b|\bmultipl\w*\s+(?:the\s+)?(?:training\s+|train\s+)?loss\b", "LOSS_SCALE"),
    (r"\bseed\b", "SEED"),
    (r"\blayer\s*norm\b|\brms\s*norm\b", ("NORM", "@word")),
    (r"(?<!gate )(?<!gates )\bbias(?:es)?\b", "BIAS"),   # "the gate biases" are the gates' own
    (r"\b(?:adamw|lion|sgd|soap|shampoo)\b", ("OPTIMIZER", "@word")),
    (r"\boptimi[sz]er\b", "OPTIMIZER"),
    (r"\b(?:mlp|ffn)\b", "MLP?"),
]


_INIT_PATTERNS = _init_table()


_LOCATION_BEFORE = r"\b(?:after|before|following|preceding|post)\s+(?:the\s+)?$"


def find_mentions(clause, masked):
    """Knob mentions of a masked clause: [{"knob", "start", "end", "choice", "text"}] in text order."""
    taken = [False] * len(masked)
    mentions = []
    tables = (_INIT_PATTERNS, _PATTERNS) if re.search(_INIT_WORDS, masked) else (_PATTERNS,)
    for pattern, target in (entry for table in tables for entry in compiled(table)):
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
            if knob is None:
                continue   # a word that only says what another knob acts on
            if re.search(_LOCATION_BEFORE, masked[:s]):
                continue   # "after rotary", "before lm_head": a place, not a change
            mentions.append({"knob": knob, "start": s, "end": e, "choice": choice, "text": m.group(0)})
    mentions.sort(key=lambda x: x["start"])
    return mentions
