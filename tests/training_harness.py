"""Shared helpers for the training tests and the CPU smoke run.

The product files have no test knobs. Tests shrink the fixed constants by
rewriting one `NAME = value` line in *copies* of prepare.py and train.py
(`shrink_constants`), run those copies as processes in a temporary HOME holding
synthetic parquet shards (`make_corpus`), and load train.py's definitions
without its training loop by executing its source up to the `# Setup` banner
(`load_train_definitions`).
"""

import importlib.util
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import types
import unittest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_PY = os.path.join(REPO_ROOT, "train.py")
PREPARE_PY = os.path.join(REPO_ROOT, "prepare.py")
SETUP_BANNER = "# Setup"  # train.py's first line after the definitions
TRAINING_DEPS = ("torch", "numpy", "pyarrow", "rustbpe", "tiktoken", "requests")
TORCH_THREADS = 1
SUMMARY_KEYS = ("val_bpb", "training_seconds", "total_seconds", "peak_vram_mb", "mfu_percent",
                "total_tokens_M", "num_steps", "num_params_M", "depth")

# Shrunken constants shared by the end-to-end test and the smoke run: the spec's
# tiny configuration (DEPTH 2, vocab 1024, T 256) with 2 micro-batches per step.
TINY_PREPARE = {"MAX_SEQ_LEN": "256", "VOCAB_SIZE": "1024", "EVAL_TOKENS": "16 * 8 * 256"}
TINY_TRAIN = {"DEPTH": "2", "DEVICE_BATCH_SIZE": "8", "TOTAL_BATCH_SIZE": "2 * 8 * 256"}


def required():
    return os.environ.get("AUTORESEARCH_REQUIRE_TRAINING_DEPS") == "1"


def missing_modules(names=TRAINING_DEPS):
    return [name for name in names if importlib.util.find_spec(name) is None]


def require_training_deps(names=TRAINING_DEPS):
    """Skip (or, when CI requires the deps, fail) if a training dependency is missing."""
    missing = missing_modules(names)
    if not missing:
        return
    message = f"training dependencies missing: {', '.join(missing)}"
    if required():
        raise AssertionError(message + " (AUTORESEARCH_REQUIRE_TRAINING_DEPS=1)")
    raise unittest.SkipTest(message)


def set_torch_threads():
    import torch
    torch.set_num_threads(TORCH_THREADS)


def load_train_definitions():
    """Execute train.py up to its `# Setup` banner: imports, model, optimizer, constants."""
    with open(TRAIN_PY) as f:
        source = f.read()
    lines = source.splitlines(keepends=True)
    cuts = [i for i, line in enumerate(lines) if line.startswith(SETUP_BANNER)]
    assert len(cuts) == 1, f"train.py must have exactly one line starting with {SETUP_BANNER!r}"
    module = types.ModuleType("train_definitions")
    module.__file__ = TRAIN_PY
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    saved = os.environ.pop("AUTORESEARCH_SUMMARY_PATH", None)
    try:
        exec(compile("".join(lines[:cuts[0]]), TRAIN_PY, "exec"), module.__dict__)
    finally:
        if saved is not None:
            os.environ["AUTORESEARCH_SUMMARY_PATH"] = saved
    return module


def load_module_from(path, name, home=None):
    """Import a file under a private name, with HOME pointed elsewhere while it loads."""
    saved = os.environ.get("HOME")
    if home is not None:
        os.environ["HOME"] = home
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if home is not None:
            os.environ["HOME"] = saved
    return module


def shrink_constants(source, overrides):
    """Rewrite each `NAME = ...` module-level line; every name must occur exactly once."""
    for name, value in overrides.items():
        pattern = re.compile(rf"^{re.escape(name)} = .*$", re.MULTILINE)
        source, count = pattern.subn(lambda _: f"{name} = {value}  # shrunk by the test harness", source)
        assert count == 1, f"expected one assignment to {name}, found {count}"
    return source


def write_shrunk_copies(workdir, prepare_overrides, train_overrides):
    for src, overrides in ((PREPARE_PY, prepare_overrides), (TRAIN_PY, train_overrides)):
        with open(src) as f:
            text = shrink_constants(f.read(), overrides)
        with open(os.path.join(workdir, os.path.basename(src)), "w") as f:
            f.write(text)

# -----------------------------------------------------------------------------
# Synthetic corpus: a small made-up language, learnable enough that loss falls

def make_words(rng, count):
    syllables = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "da", "qu", "zo", "shi", "ber", "ton"]
    words = set()
    while len(words) < count:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))))
    return sorted(words)


def make_document(rng, words, successors):
    """Sentences from a word chain where each word has four likely successors."""
    sentences = []
    word = rng.choice(words)
    for _ in range(rng.randint(2, 20)):
        picked = []
        for _ in range(rng.randint(4, 14)):
            picked.append(word)
            word = rng.choices(successors[word], weights=(0.6, 0.25, 0.1, 0.05))[0]
        sentence = " ".join(picked).capitalize()
        if rng.random() < 0.2:
            sentence += f" {rng.randint(0, 9999)}"
        if rng.random() < 0.05:
            sentence += " café 東京"
        sentences.append(sentence + rng.choice([".", ".", ".", "!", "?"]))
    return " ".join(sentences)


def make_corpus(home, num_train_shards=2, docs_per_shard=1500, seed=0):
    """Write train shards 0..n-1 and the validation shard under home's cache."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    data_dir = os.path.join(home, ".cache", "autoresearch", "data")
    os.makedirs(data_dir, exist_ok=True)
    rng = random.Random(seed)
    words = make_words(rng, 400)
    successors = {word: rng.sample(words, 4) for word in words}
    for index in list(range(num_train_shards)) + [6542]:
        texts = [make_document(rng, words, successors) for _ in range(docs_per_shard)]
        pq.write_table(pa.table({"text": texts}), os.path.join(data_dir, f"shard_{index:05d}.parquet"),
                       row_group_size=500)
    return data_dir

# -----------------------------------------------------------------------------
# Running the copies as processes

def run_script(workdir, home, args, env=None, timeout=600):
    full_env = dict(os.environ)
    full_env.pop("AUTORESEARCH_SUMMARY_PATH", None)
    full_env.update({"HOME": home, "OMP_NUM_THREADS": str(TORCH_THREADS), "PYTHONUNBUFFERED": "1",
                     "HF_HUB_OFFLINE": "1"})
    full_env.update(env or {})
    return subprocess.run([sys.executable] + list(args), cwd=workdir, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def parse_summary(stdout):
    """The `key: value` lines after the last `---` line, as strings."""
    lines = stdout.splitlines()
    start = len(lines) - 1 - lines[::-1].index("---")
    summary = {}
    for line in lines[start + 1:]:
        key, sep, value = line.partition(":")
        if sep:
            summary[key] = value.strip()
    return summary


def sha256_of(path):
    import hashlib
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def read_json(path):
    with open(path) as f:
        return json.load(f)


def new_tempdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)
