"""The vocabulary of train.py ideas: knobs, their upstream defaults, and their spellings.

A knob is a train.py module constant (MATRIX_LR, DEPTH, WINDOW_PATTERN, ...) or a
named model/optimizer component (VALUE_EMBEDS, QK_NORM, MLP_ACTIVATION, ...).
``KNOBS`` gives each one's kind, upstream default and meaning; ``canonical_text``
rewrites the many ways people write a thing ("learning rate", "LR", "lrs") to one
spelling ("lr") so that the rest of the parser matches one word, not ten.

Regular expressions here and in the parser's other modules are kept as strings and
compiled on first use (``re``'s own cache), so importing costs next to nothing.
"""

import functools
import re

from memorylab_core._literals import LITERALS

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
    "WD_SCHEDULE": ("switch", "on", "Muon's weight decay ramps linearly to zero over training"),
    "ADAM_BETA1": ("num", 0.8, "first entry of ADAM_BETAS"),
    "ADAM_BETA2": ("num", 0.95, "second entry of ADAM_BETAS"),
    "ADAM_EPS": ("num", 1e-10, "Adam epsilon"),
    "WARMUP_RATIO": ("num", 0.0, "fraction of the budget spent on LR warmup"),
    "WARMDOWN_RATIO": ("num", 0.5, "fraction of the budget spent on the final LR decay"),
    "FINAL_LR_FRAC": ("num", 0.0, "LR at the end of training, as a fraction"),
    "LR_SCHEDULE": ("choice", "linear", "shape of the LR decay: linear, cosine, exponential"),
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
    "MUON_MOMENTUM_START": ("num", 0.85, "Muon momentum at the start of its warmup"),
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
ABSOLUTE_MULTIPLE_KNOBS = {"MLP_RATIO", "FINAL_LR_FRAC"}   # "3x" is the value 3, "0.1x peak" 0.1, not x base
INTEGER_KNOBS = {"DEPTH", "HEAD_DIM", "N_HEAD", "N_KV_HEAD", "TOTAL_BATCH_SIZE", "DEVICE_BATCH_SIZE",
                 "MAX_SEQ_LEN", "SHORT_WINDOW", "MUON_NS_STEPS", "MUON_MOMENTUM_WARMUP", "SEED",
                 "GRAD_ACCUM", "ASPECT_RATIO", "BATCH?"}   # BATCH?: one of the two batch sizes
OFF_IS_NOT_ZERO = {"SOFTCAP", "ROTARY_BASE", "MAX_SEQ_LEN", "DEPTH", "HEAD_DIM", "N_HEAD", "N_KV_HEAD",
                   "TOTAL_BATCH_SIZE", "DEVICE_BATCH_SIZE", "SEED", "LR", "ADAM_LR"}   # "no softcap" is not softcap 0

# ---------------------------------------------------------------- direction words

# a clause's direction comes from these words: "up"/"down" for numbers, "on"/"off" for components
DIRECTION_WORDS = [
    (r"\b(?:increas\w*|rais\w*|bump\w*|boost\w*|higher|larger|bigger|more|longer|extend\w*|lengthen\w*|grow\w*"
     r"|deeper|wider|widen\w*|greater|up|upscal\w*|scal\w* up|enlarg\w*|expand\w*|nonzero)\b", "up"),
    (r"\b(?:decreas\w*|lower\w*|reduc\w*|cut\w*|shrink\w*|shrunk|smaller|shorter|shorten\w*|fewer|less|narrower"
     r"|shallower|trim\w*|down|tight\w*|downscal\w*|scal\w* down|narrow\w*)\b", "down"),
    (r"\b(?:remov\w*|delet\w*|drop\w*|disabl\w*|no|without|ablat\w*|kill\w*|strip\w*|rip\w* out|get rid of"
     r"|turn\w* off|switch\w* off|off|eliminat\w*|untie\w*|untying|decoupl\w*|skip\w*|stop\w*|nolonger"
     r"|ditch\w*|free)\b", "off"),
    (r"\b(?:add\w*|enabl\w*|introduc\w*|turn\w* on|switch\w* on|re-?enabl\w*|tie|tied|ties|tying|shar\w*|includ\w*)\b",
     "on"),
]

# ---------------------------------------------------------------- canonical spelling

_QUERIES_AND_KEYS = r"(?:the\s+)?(?:quer(?:y|ies)|q)\s*(?:and|&|/|,)\s*(?:the\s+)?(?:keys?|k)\b"

_ORDINAL = {"second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6}

# (pattern, replacement) over lower-cased text, applied in order: longer phrases first
_CANON = [
    (r"→|⟶|=>|—>|-->", " -> "),
    # possessives name the owner: "muon's momentum", "the value embeddings' gates"
    (r"(?<=[a-z])[\'’]s\b|(?<=[a-z]s)[\'’](?=\s|$)", ""),
    (r"×", "x"),
    (r"≈", " ~"),
    (r"(\d),(\d{3})(?!\d)", r"\1\2"),
    (r"(\d),(\d{3})(?!\d)", r"\1\2"),
    (r"β\s*1", "beta1"), (r"β\s*2", "beta2"),
    (r"\b(adam\s*betas?)\s+(?:first|1st)(?:\s+(?:entry|element|value|term|component))?\b", r"adam beta1"),
    (r"\b(adam\s*betas?)\s+(?:second|2nd)(?:\s+(?:entry|element|value|term|component))?\b", r"adam beta2"),
    (r"\b(?:the\s+)?input\s+and\s+output\s+embed(?:ding)?s?\b", "embed and lmhead"),
    (r"\bun\s+(?=[a-z])", "un"),   # "un-tied", "un-gated": the prefix split off by a hyphen
    (r"\bgpt\s*-?\s*(\d)\b", r"gpt\1"),
    # "non-zero init", "stop zero-initialising": an init moved up from zero
    (r"\bnon\s*zero\b|\b(?:stop\w*|no\s+(?:more|longer)|without|remov\w*|drop\w*)\s+(?:the\s+)?zero(?=\s+init)",
     "nonzero"),   # "GPT-2 style": a name, not the value 2
    (r"\bno\s+longer\b", " nolonger "), (r"n[\'’]t\b", " not"),
    (r"\bbs\b", "batch size"),
    # a batch counted in examples per update: "minibatch", "documents per Adam update"
    (r"\bmini\s*-?\s*batch(?:es)?\b|\b(?:documents?|sequences?|samples?|examples?)\s+per\s+(?:\w+\s+)?(?:update|step)\b",
     "batch"),
    # adding the n-th layer makes n layers; removing it leaves n - 1
    (r"\badd\w*\s+(?:a|an|the)\s+(second|third|fourth|fifth|sixth)\s+(?:transformer\s+)?(?:layer|block)\b",
     lambda m: f"increase depth to {_ORDINAL[m.group(1)]}"),
    (r"\b(?:remov\w*|drop\w*|delet\w*)\s+(?:the\s+)?(second|third|fourth|fifth|sixth)\s+(?:transformer\s+)?(?:layer|block)\b",
     lambda m: f"decrease depth to {_ORDINAL[m.group(1)] - 1}"),
    (r"\b(all|every\s+one\s+of\s+the|each\s+of\s+the)\s+\d+\s+(layers|blocks)\b", r"\1 \2"),
    (r"\bs\s+(?=windows?\b)", "short "), (r"\bl\s+(?=windows?\b)", "long "),
    # the logit softcap written as its formula: 15*tanh(logits/15)
    (r"(\d+(?:\.\d+)?)\s*\*?\s*tanh\s*\([^()]*/\s*\1\s*\)(?:\s+cap\w*)?", r" \1 softcap "),
    # the z-loss written as its formula: 1e-4 * logsumexp(logits)**2
    (r"\blog\s*sum\s*exp\s*(?:\([^()]*\))?\s*(?:\*\*|\^)\s*2|\bsquared\s+log\s*sum\s*exp\b", " zloss "),
    (r"\b(?<!un )(?:soft\s*|tanh\s+)?cap(?:ping|ped|s)?\s+(?:the\s+)?(?:output\s+)?logits\b", " softcap "),
    # a schedule written as its formula: "wd * (1 - progress)" is a linear ramp to zero
    (r"(?:\*\s*)?\(\s*1\s*-\s*(?:progress|t|frac\w*|step\s*/\s*\w+)\s*\)|\b1\s*-\s*progress\b", " ramp "),
    (r"\btanh\s*\([^()]*\)\s*cap\w*", " softcap "),
    (r"\b(?:raw|un\s*capped)\s+logits\b|\blogits\s+un\s*capped\b", "no softcap"),
    (r"\bvariance\s+reduction\b", "normuon"),
    (r"\bnope\b|\b(?:no|without)\s+position(?:al)?\s+(?:encodings?|embed\w*)", " no rotary "),
    (r"\bnon\s+(nesterov|cautious)\b", r"no \1"),
    (r"\bsecond\s+moment(?:\s+(?:ema|beta|decay|average|estimate))?\b", "beta2"),
    (r"\bfirst\s+moment(?:\s+(?:ema|beta|decay|average|estimate))?\b", "beta1"),
    (r"\bfeed\s*forward(?:\s+(?:layers?|blocks?|network|net|sublayers?))?\b|\bffn\b", "mlp"),
    (r"relu\s*(?:\^|\*\*)\s*2\b|relu²|relu\s*2\b|squared\s+relu|relu\s+squared|\brelusq\b|\brelu\s+sq\b", " relusq "),
    (r"\bswi\s*glu\b", "swiglu"), (r"\bge\s*glu\b", "geglu"), (r"\bswish\b", "silu"),
    (r"\bbeta\s*1\b", "betaone"), (r"\bbeta\s*2\b", "betatwo"), (r"\badam\s+betas\b", "adambetas"),
    (r"learning\s+rates?|\blrs\b", "lr"),
    (r"weight\s+decay|\bwd\b|\bdecoupled\s+decay\b", "wd"),
    (r"\b(?:plain|standard|vanilla|regular|uncautious|non\s*cautious|unmasked)\s+(?:decoupled\s+)?wd\b",
     "no cautiouswd"),
    # the cautious mask in words: decay only where the update and the parameter agree in sign
    (r"\bsigns?\s+(?:agree|match|coincide|align)\w*|\b(?:agree|match)\w*\s+in\s+sign\b"
     r"|\b(?:have|has|share|with)\s+(?:the\s+)?same\s+sign\b|\bsign\s+agreement\b", " signagree "),
    (r"\bnot\s+(?:just|only|merely)\s+(?:where|when|on|for|to)\b[^,;.]*?\bsignagree\b"
     r"|\b(?:regardless|irrespective)\s+of\s+(?:the\s+)?(?:signs?\b|signagree\b)|\bsignagree\s+or\s+not\b",
     " no cautiouswd "),
    (r"\bwd\s+(?:to|on|for|of)\s+(?:every|each|all)\s+(?:of\s+)?(?:the\s+|its\s+|muon[\'’]?s?\s+)?"
     r"(?:(?:matrix|weight|parameter)\s+)?(?:entry|entries|elements?|coordinates?)\b", "wd no cautiouswd"),
    (r"\bdecoupled\s+wd\b", "wd"),   # AdamW-style decay is a name, not "decoupling" anything
    (r"\bmask\w*(?:\s+(?:the\s+)?(?:muon\s+)?wd)?\s+by\s+(?:the\s+)?(?:update\s+)?signs?\b", "cautious mask"),
    (r"\b(?:only|mask\w*|restrict\w*|limit\w*)\b[^,;.]{0,40}?\b(?:where|when|if|whose|that)\b[^,;.]*?\bsignagree\b",
     " add cautiouswd "),
    (r"warm\s*down|cool\s*down", "warmdown"),
    (r"warm\s*up", "warmup"),
    (r"\blr\s+(warmup|warmdown)\b", r"\1"),
    (r"\b(?:flat|constant)\s+lr(?:\s+schedule)?\b|\blr\s+(?:stays\s+)?(?:flat|constant)\b", "no warmdown"),
    (r"(?:\btanh\s+)?(?:soft\s*cap(?:ping|ped|s)?|logits?\s+cap(?:ping|ped|s)?)(?:\s+logits?)?"
     r"(?:\s+(?:via|with)\s+tanh)?|\btanh\s+cap(?:ping|ped|s)?", "softcap"),
    (r"\bz\s*loss\b", "zloss"),
    (r"\b(?:muon\s+)?momentum\s+(?:constant|fixed|flat)\b|\b(?:constant|fixed|flat)\s+(?:muon\s+)?momentum\b",
     "no momentum warmup"),
    (r"\battn\b", "attention"), (r"\bpos(?:itional)?\b", "position"), (r"\bparams?\b", "parameters"),
    (r"\bmulti\s*query(?:\s+attention)?\b", "mqa"), (r"\bgrouped\s*query(?:\s+attention)?\b", "gqa"),
    # "RMS-normalize queries and keys" is the verb of adding QK norm
    (r"\b(?:rms\s*|layer\s*)?normali[sz](?:e|es|ing)\s+" + _QUERIES_AND_KEYS, "add qknorm"),
    (r"\bq\s*/?\s*k\s*(?:layer\s*|rms\s*)?norm(?:ali[sz](?:ation|ed|ing|e)|ed|s)?\b"
     r"|quer(?:y|ies)\s*(?:/\s*|and\s+|&\s*)?keys?\s+(?:rms\s*|layer\s*)?norm\w*"
     r"|\b(?:rms\s*|layer\s*)?normali[sz]\w*\s+" + _QUERIES_AND_KEYS
     + r"|\b(?:rms\s*|layer\s*)?norm\w*\s+(?:on|of|for)\s+" + _QUERIES_AND_KEYS, "qknorm"),
    (r"\bun\s*gat(?:e|es|ed|ing)\s+(?:the\s+)?(?:value\s+embed(?:ding)?s?|ves?\b)|\b(?:value\s+embed(?:ding)?s?|ves?)\s+un\s*gated\b",
     "valueembeds without vegate"),
    (r"(?:value\s+embed(?:ding)?s?|\bves?)\s+gat(?:e|es|ing)\b", "vegate"),
    (r"\bsigmoid\s+(gat(?:e|es|ing))\b", r"\1"),
    (r"value\s+embed(?:ding)?s?|value\s+embeds\b|value\s+residuals?|\bves?\b", "valueembeds"),
    # a part named by its whole ("the gate on value embeddings") is the part, not the whole
    (r"\bgat(?:e|es|ing)(\s+(?:bias(?:es)?|weights?|parameters|logits?|init\w*|scal(?:ar|e)s?))?\s+(on|of|for|in|inside|off|from)"
     r"\s+(?:the\s+|its\s+|their\s+|each\s+|every\s+|all\s+)?valueembeds\b", r"vegate\1 \2"),
    # "value embeddings without the gates": the gates of the value embeddings
    (r"(\bvalueembeds\b[^,;()]*?\b)(?:their\s+|the\s+|its\s+)?gat(?:e|es|ing)\b", r"\1vegate"),
    (r"\blm\s*head\b|\bun\s*emb(?:ed(?:ding)?s?|s)?\b|output\s+(?:layer|head|embedding)s?|\bclassifier\b", "lmhead"),
    (r"\bwte\b|token\s+embed(?:ding)?s?|input\s+embed(?:ding)?s?|\bembed(?:ding)?s?\b|\bembs?\b", "embed"),
    (r"\brotary(?:\s+position(?:al)?)?(?:\s+(?:embed|encodings?))?|\brope\b", "rotary"),
    (r"\bx\s*0(?:\s+(?:residual|skip|input))?(?:\s+(?:lambdas?|scalars?|connections?|weights?|skips?|residuals?"
     r"|mix(?:ing)?|shortcuts?|paths?|injection))+", "xzerolambdas"),
    (r"\bx\s*0\b(?!\.\d)", "xzero"),
    (r"\b(?:lambdas?|scal(?:ar|e)s?|multipliers?|gains?)\s+(?:on|of|for)\s+(?:the\s+)?(?:x\s*0|xzero)"
     r"(?:\s+(?:residual|skip|input|connections?|paths?|shortcuts?))*\b", "xzerolambdas"),
    (r"\b(?:lambdas?|scal(?:ar|e)s?|multipliers?|gains?)\s+(?:on|of|for)\s+(?:the\s+)?resid(?:ual)?s?"
     r"(?:\s+(?:stream|branch|path|connections?))?\b", "residlambdas"),
    (r"\bresid(?:ual)?(?:\s+(?:scaling|scale|branch|skip))?\s+(?:lambdas?|scal(?:ar|e)s?|multipliers?|gains?)",
     "residlambdas"),
    (r"(?:\bmlp|\bffn|feed\s*forward)(?:\s+(?:hidden|inner|intermediate))?\s+(?:width|dim(?:ension)?|size|ratio"
     r"|expansion(?:\s+(?:ratio|factor))?|multiplier|mult|factor)\b|\bexpansion\s+(?:ratio|factor)"
     r"|\bmlp\s+(?:hidden|expansion)\b|\bhidden\s+(?:ratio|multiplier)", "mlpratio"),
    (r"\bn\s*embd\b|\bd\s*model\b|\bmodel\s+dim(?:ension)?s?\b|\bembed\s+dim(?:ension)?\b|\bhidden\s+(?:size|dim(?:ension)?)\b"
     r"|\bresidual\s+(?:stream\s+)?width\b|\bmodel\s+width\b", "modeldim"),
    # the width per layer of depth is the aspect ratio: "80 channels per layer", "dims per block of depth"
    (r"\b(?:channels?|dims?|dimensions?|width|units?)\s+per\s+(?:layer|block)(?:\s+of\s+depth)?\b", "aspect"),
    # a window of half the context is the short window
    (r"\bhalf\s+context\s+(?:attention|windows?)\b"
     r"|\bhalf\s+context(?=\s+(?:(?:and|or|/|vs)\s+(?:the\s+)?(?:full|long|global)|layers?)\b)", "short window"),
    # "alternate local and global attention" is one pattern, not two clauses
    (r"(\balternat\w*\s+(?:between\s+)?(?:the\s+)?(?:short|sliding|local|long|full|global)\b[a-z ]{0,24}?)"
     r"\s+(?:and|with)\s+(?=(?:the\s+)?(?:short|sliding|local|long|full|global)\b)", r"\1 / "),
    (r"\bgrad(?:ient)?s?\s+(?:norm\s+)?clip\w*|\bclip\w*(?:\s+(?:the|global|total|overall))*\s+grad\w*(?:\s+norms?)?|\bmax(?:imum)?\s+(?:grad(?:ient)?\s+)?norm\b"
     r"|\bgrad(?:ient)?\s+norm\s+clip\w*", "gradclip"),
]


_COMPILED = {}
_TOKEN_SOURCE = (r"""
    (?P<run>[^\\\[\](){}?*+|.^$]+)                  # plain characters
  | (?P<esc>\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|N\{[^}]*\}|[0-7]{1,3}|\d+|.))
  | (?P<cls>\[\^?\]?(?:\\.|[^\]\\])*\])
  | (?P<open>\((?:\?(?:P<\w+>|[:=!]|<[=!]|[^)]*))?)   # ( (?: (?P<n> (?= (?<= ... or flags
  | (?P<close>\))
  | (?P<quant>[?*+]\??|\{\d*(?:,\d*)?\}\??)
  | (?P<bar>\|)
  | (?P<other>.)
""")


@functools.lru_cache(maxsize=1)
def _token_regex():
    """Compiled on first use: a process normally finds every pattern in _literals."""
    return re.compile(_TOKEN_SOURCE, re.X | re.S)


class _Opaque(Exception):
    """A construct the literal analysis does not follow (inline flags, backrefs)."""


def required_literals(pattern):
    r"""Strings one of which any match of `pattern` must contain, or None when that
    cannot be told cheaply. Each top-level alternative contributes the best of its
    mandatory parts: a run of plain characters (two or more, or one non-ASCII
    symbol) or a non-optional group whose alternatives all have one. Escapes other
    than an escaped symbol stand for no literal (`\d` matches any Unicode digit,
    `\x41` is "A"); inline flags give None (they may change what matches)."""
    tokens = [(m.lastgroup, m.group()) for m in _token_regex().finditer(pattern)]
    try:
        return _alternatives(_parse(tokens, 0)[0])
    except _Opaque:
        return None


def _parse(tokens, i):
    """(branches, next index): the alternatives up to the `)` that closes the group
    (or the end), each a list of (kind, value, quantifier) items."""
    branches, items = [], []
    while i < len(tokens):
        kind, text = tokens[i]
        i += 1
        if kind == "close":
            break
        if kind == "bar":
            branches.append(items)
            items = []
        elif kind == "quant":
            if not items:
                raise _Opaque(text)
            last_kind, value, _ = items.pop()
            if last_kind == "run" and len(value) > 1:   # it applies to the last character
                items.append(("run", value[:-1], ""))
                value = value[-1]
            items.append((last_kind, value, text))
        elif kind == "open":
            inner, i = _parse(tokens, i)
            if text in ("(", "(?:") or text.startswith("(?P<"):
                items.append(("group", inner, ""))
            elif text in ("(?=", "(?!", "(?<=", "(?<!"):
                items.append(("look", None, ""))
            else:
                raise _Opaque(text)   # inline flags, (?P=name), comments
        else:
            items.append((kind, text, ""))
    branches.append(items)
    return branches, i


def _alternatives(branches):
    literals = set()
    for items in branches:
        found = _branch_literals(items)
        if found is None:
            return None
        literals |= found
    return literals


def _branch_literals(items):
    best, run = None, ""
    for kind, value, quant in items + [("end", "", "")]:
        optional = quant[:1] in ("?", "*") or quant[:2] in ("{0", "{,", "{}")
        if kind == "esc" and len(value) == 2 and not value[1].isalnum():
            kind, value = "run", value[1]   # an escaped symbol: \. is "."; \d, \x41 ... are opaque
        if kind == "run" and not optional:
            run += value
            if not quant:
                continue
        if len(run) >= 2 or (run and not run.isascii()):
            best = _longer({run}, best)
        run = ""
        if kind == "group" and not optional:
            best = _longer(_alternatives(value), best)
    return best


def _longer(found, best):
    """`found` when its shortest literal is longer than `best`'s (or there is no best)."""
    return found if found and (best is None or min(map(len, found)) > min(map(len, best))) else best


class _LazyPattern:
    """A pattern compiled only when a text could match it: a process parses one or a
    few descriptions, and most of the vocabulary's ~150 patterns cannot match them, so
    skipping their compilation saves most of a `check`'s regex cost."""

    __slots__ = ("source", "literals", "_regex")

    def __init__(self, source):
        literals = LITERALS[source] if source in LITERALS else required_literals(source)
        self.source, self.literals, self._regex = source, literals, None

    def _for(self, text):
        """The compiled pattern, or None when `text` lacks every required literal (one
        method per call: this runs ~250 times for each description parsed)."""
        literals = self.literals
        if literals is not None:
            for literal in literals:
                if literal in text:
                    break
            else:
                return None
        if self._regex is None:
            self._regex = re.compile(self.source)
        return self._regex

    def finditer(self, text):
        regex = self._for(text)
        return regex.finditer(text) if regex is not None else ()

    def search(self, text):
        regex = self._for(text)
        return regex.search(text) if regex is not None else None

    def sub(self, replacement, text):
        regex = self._for(text)
        return regex.sub(replacement, text) if regex is not None else text


def pattern_tables():
    """Every table of patterns the parser matches through ``compiled``."""
    from memorylab_core import mentions, quantities
    return [mentions._PATTERNS, mentions._INIT_PATTERNS, DIRECTION_WORDS, _CANON,
            quantities._VALUE_PATTERNS]


def literals_module():
    """The text of _literals.py: required_literals of every pattern in the tables.
    Deriving them costs a process ~12 ms, more than the compilation it saves, so they
    are derived once here; a pattern missing from the file (edited since) is derived
    at run time, and the suite fails until the file is written again with
    `python3 -m memorylab_core.vocabulary`."""
    found = {source: required_literals(source)
             for table in pattern_tables() for source, _ in table}
    lines = ['"""Generated by `python3 -m memorylab_core.vocabulary`: the literals one of which',
             'every match of a parser pattern contains (vocabulary.required_literals)."""',
             "", "LITERALS = {"]
    for source, literals in found.items():
        lines.append(f"    {source!r}: {tuple(sorted(literals)) if literals else None!r},")
    return "\n".join(lines + ["}", ""])


def compiled(table):
    """A module-level table of (pattern, target) as (lazy pattern, target): each pattern
    is compiled on first use by a text that could match it (see required_literals)."""
    found = _COMPILED.get(id(table))
    if found is None:
        found = _COMPILED[id(table)] = [(_LazyPattern(p), target) for p, target in table]
    return found


@functools.lru_cache(maxsize=4096)
def canonical_text(text):
    """Lower-cased text with synonyms rewritten to one spelling (see _CANON)."""
    t = (text or "").lower().replace("_", " ")
    t = re.sub(r"(?<![0-9]e)(?<=[a-z])-(?=[a-z0-9])|(?<=[0-9])-(?=[a-z])", " ", t)
    for pattern, replacement in compiled(_CANON):
        t = pattern.sub(replacement, t)
    return re.sub(r"\s+", " ", t).strip()


def base_value(knob, base_constants, upstream=True):
    """The current value of a knob: train.py's constant, else (with ``upstream``) the
    upstream default; None if unknown. Directions are judged with ``upstream`` False:
    a fork's train.py need not have upstream's values."""
    if base_constants and knob in base_constants:
        value = base_constants[knob]
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return value
    if knob == "ADAM_BETA1" or knob == "ADAM_BETA2":
        betas = (base_constants or {}).get("ADAM_BETAS")
        if isinstance(betas, (list, tuple)) and len(betas) == 2:
            return betas[0] if knob == "ADAM_BETA1" else betas[1]
    if knob == "MODEL_DIM":
        depth, aspect = base_value("DEPTH", base_constants, upstream), base_value("ASPECT_RATIO", base_constants, upstream)
        return depth * aspect if isinstance(depth, (int, float)) and isinstance(aspect, (int, float)) else None
    if knob == "N_KV_HEAD" and base_constants:   # train.py builds one kv head per query head
        return base_value("N_HEAD", base_constants, upstream)
    if knob == "N_HEAD" and base_constants:   # train.py sets the head size; the count follows from the width
        width, head = base_value("MODEL_DIM", base_constants, upstream), base_value("HEAD_DIM", base_constants, upstream)
        if isinstance(width, (int, float)) and isinstance(head, (int, float)) and head > 0:
            return width / head
    if knob == "GRAD_ACCUM" and base_constants:
        total, device, seq = (base_value(k, base_constants, upstream) for k in
                              ("TOTAL_BATCH_SIZE", "DEVICE_BATCH_SIZE", "MAX_SEQ_LEN"))
        if all(isinstance(v, (int, float)) and v > 0 for v in (total, device, seq)):
            return total / (device * seq)
    spec = KNOBS.get(knob) if upstream else None
    return spec[1] if spec else None


if __name__ == "__main__":
    import os
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "_literals.py"), "w",
              encoding="utf-8") as out:
        out.write(literals_module())
