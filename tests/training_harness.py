"""Shared helpers for the training tests and the CPU smoke run.

The product files have no test knobs. Tests shrink the fixed constants by
rewriting one `NAME = value` line in *copies* of prepare.py and train.py
(`shrink_constants`), run those copies as processes in a temporary HOME holding
synthetic parquet shards (`make_corpus`), and load train.py's definitions
without its training loop by executing its source up to the `# Setup` banner
(`load_train_definitions`).

Two train.py files are under test. The working copy is what an agent edits on
its experiment branch: tests of mechanisms (attention, the loop, the summary)
run on it and must pass for any reasonable edit of its constants. The released
baseline is pinned in tests/data/train_baseline.py by sha256: tests of the
baseline's figures and rules (parameter counts, FLOPs, groups, learning rates,
schedules, optimizer formulas) run on it, so an experiment never turns them red.
"""

import contextlib
import importlib.util
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import types
import unittest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_PY = os.path.join(REPO_ROOT, "train.py")
BASELINE_TRAIN_PY = os.path.join(REPO_ROOT, "tests", "data", "train_baseline.py")
# Refresh both together when the released baseline changes on purpose (docs/training.md, "Tests").
BASELINE_SHA256 = "276b9f64433459f221edf41ff9e2ee19ddf3755cc2f53919446eaeecd2cd58d8"
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


def load_train_definitions(path=TRAIN_PY):
    """Execute a train.py up to its `# Setup` banner: imports, model, optimizer, constants."""
    with open(path) as f:
        source = f.read()
    lines = source.splitlines(keepends=True)
    cuts = [i for i, line in enumerate(lines) if line.startswith(SETUP_BANNER)]
    assert len(cuts) == 1, f"{path} must have exactly one line starting with {SETUP_BANNER!r}"
    module = types.ModuleType("train_definitions")
    module.__file__ = path
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    saved = os.environ.pop("AUTORESEARCH_SUMMARY_PATH", None)
    try:
        exec(compile("".join(lines[:cuts[0]]), path, "exec"), module.__dict__)
    finally:
        if saved is not None:
            os.environ["AUTORESEARCH_SUMMARY_PATH"] = saved
    return module


def load_baseline_definitions():
    """The released baseline's definitions, after checking the pinned copy is intact."""
    found = sha256_of(BASELINE_TRAIN_PY)
    assert found == BASELINE_SHA256, f"{BASELINE_TRAIN_PY} changed (sha256 {found}); see its pin in {__file__}"
    return load_train_definitions(BASELINE_TRAIN_PY)


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


def write_shrunk_copies(workdir, prepare_overrides, train_overrides, train_py=TRAIN_PY):
    for src, name, overrides in ((PREPARE_PY, "prepare.py", prepare_overrides),
                                 (train_py, "train.py", train_overrides)):
        with open(src) as f:
            text = shrink_constants(f.read(), overrides)
        with open(os.path.join(workdir, name), "w") as f:
            f.write(text)

# -----------------------------------------------------------------------------
# Synthetic corpus: a small made-up language, learnable enough that loss falls

def make_words(rng, count):
    syllables = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "da", "qu", "zo", "shi", "ber", "ton"]
    if count > 1000:  # room for thousands of words, so BPE finds merges for a full 8192-token vocabulary
        syllables += [c + v for c in "bdfghklmnprstvwz" for v in "aeiouy"]
    words = set()
    while len(words) < count:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))))
    return sorted(words)


def make_document(rng, words, successors, sentences_per_doc=(2, 20)):
    """Sentences from a word chain where each word has four likely successors."""
    sentences = []
    word = rng.choice(words)
    for _ in range(rng.randint(*sentences_per_doc)):
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


def make_corpus(home, num_train_shards=2, docs_per_shard=1500, seed=0, num_words=400, sentences_per_doc=(2, 20)):
    """Write train shards 0..n-1 and the validation shard under home's cache."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    data_dir = os.path.join(home, ".cache", "autoresearch", "data")
    os.makedirs(data_dir, exist_ok=True)
    rng = random.Random(seed)
    words = make_words(rng, num_words)
    successors = {word: rng.sample(words, 4) for word in words}
    for index in list(range(num_train_shards)) + [6542]:
        texts = [make_document(rng, words, successors, sentences_per_doc) for _ in range(docs_per_shard)]
        pq.write_table(pa.table({"text": texts}), os.path.join(data_dir, f"shard_{index:05d}.parquet"),
                       row_group_size=500)
    return data_dir

# -----------------------------------------------------------------------------
# Running the copies as processes

def run_script(workdir, home, args, env=None, timeout=600, capture=True):
    """Run `python args...` in workdir with HOME at `home`, offline; output captured or streamed."""
    full_env = dict(os.environ)
    full_env.pop("AUTORESEARCH_SUMMARY_PATH", None)
    full_env.update({"HOME": home, "OMP_NUM_THREADS": str(TORCH_THREADS), "PYTHONUNBUFFERED": "1",
                     "HF_HUB_OFFLINE": "1"})
    full_env.update(env or {})
    return subprocess.run([sys.executable] + list(args), cwd=workdir, env=full_env,
                          capture_output=capture, text=True, timeout=timeout)


def run_pipeline(root, prepare_overrides, train_overrides, num_shards, docs_per_shard, env=None, **corpus):
    """Synthetic corpus -> shrunken prepare.py -> shrunken train.py with the sidecar, output streamed.

    Everything lives under `root`; returns the sidecar's path. A failing step
    exits with a one-line error."""
    home, workdir = os.path.join(root, "home"), os.path.join(root, "run")
    os.makedirs(workdir)
    summary_path = os.path.join(root, "results", "summary.json")
    make_corpus(home, num_train_shards=num_shards, docs_per_shard=docs_per_shard, **corpus)
    write_shrunk_copies(workdir, prepare_overrides, train_overrides)
    print(f"Synthetic corpus and shrunken copies in {root}", flush=True)
    steps = ((["prepare.py", "--num-shards", str(num_shards)], env),
             (["train.py"], dict(env or {}, AUTORESEARCH_SUMMARY_PATH=summary_path)))
    for args, step_env in steps:
        print(f"$ python {' '.join(args)}", flush=True)
        code = run_script(workdir, home, args, env=step_env, timeout=None, capture=False).returncode
        if code != 0:
            sys.exit(f"error: {args[0]} failed with exit code {code}")
    return summary_path


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


@contextlib.contextmanager
def scratch_dir(prefix, keep=False):
    """A temporary directory for a script's run; removed afterwards unless `keep` (then its path is printed)."""
    root = tempfile.mkdtemp(prefix=prefix)
    try:
        yield root
    finally:
        if keep:
            print(f"Kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def print_sidecar(path):
    """Print a run's summary sidecar as indented JSON and return it."""
    sidecar = read_json(path)
    print(f"\nSummary sidecar ({path}):")
    print(json.dumps(sidecar, indent=2, sort_keys=True))
    return sidecar
