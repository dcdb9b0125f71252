#!/usr/bin/env python3
"""Benchmark: whole-process check, log and report on synthetic ledgers.

    python3 tests/bench_memorylab.py              # 1k, 10k and 100k runs
    python3 tests/bench_memorylab.py 1000 10000   # chosen sizes
    python3 tests/bench_memorylab.py --repeat 5 --keep /tmp/bench 10000

Not collected by unittest (no `test` prefix). For each size it writes a realistic
ledger (~2.7 KB records with novelty guard and decision packet, mixed statuses and
families, a few train.py configs) into a fresh git repo, then times
`python memorylab.py ...` as separate processes, each command cold (the slim-row
index deleted first, so this call rebuilds it from the ledger) and warm (median of
--repeat calls). The ledger's train.py is a 10-line stand-in; two more columns time
`check --code` with the repository's own train.py (first after an edit, and again). `report` runs first, so later commands find a registry file, as
they do in a store in use. The first line also times a bare interpreter
(`python -c pass`), the floor under every whole-process figure.
Targets: check <= 0.1 s, log <= 0.5 s, report <= 0.5 s at 10k runs;
check <= 1 s, log <= 2 s, report <= 3 s at 100k runs.

Store figures (`--store`, on top of the command table, per size):
- cold index rebuild (`list` with the index deleted) for the project's format and for
  the earlier fork's format (records with only the published fields, distinct
  descriptions, so novelty features are derived at indexing time);
- `doctor` time and peak memory (max RSS of the process);
- 8 writers: 8 processes each calling `log` --writer-logs times at once; throughput
  (logs/s) and per-log latency p50/p95 of the whole process.
`--import N` times `import-tsv` of an N-row upstream results.tsv into an empty store
while a reader takes the shared lock in a loop, and reports the reader's longest wait.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, HERE)

from mlhelpers import TRAIN_PY, git, make_repo, metrics  # noqa: E402

from memorylab_core import fingerprint, novelty  # noqa: E402

FAMILIES = ("optimizer", "schedule", "architecture", "batch", "init", "regularization")
KNOBS = (("MATRIX_LR", 0.04), ("EMBEDDING_LR", 0.6), ("WARMDOWN_RATIO", 0.5),
         ("DEPTH", 8), ("WEIGHT_DECAY", 0.1), ("WARMUP_RATIO", 0.0))
PHRASES = ("increase {k} to {v}", "lower {k} from {o} to {v}", "set {k} {o} -> {v}",
           "try {k}={v} with a longer warmdown", "{k} {v} instead of {o}")
NOW = "2026-06-01T12:00:00Z"


def make_ideas(rng, count=400):
    """Distinct ideas with their novelty features (computed once, reused by runs)."""
    ideas = []
    for _ in range(count):
        knob, base = rng.choice(KNOBS)
        value = round(base * rng.choice((0.5, 0.75, 1.25, 1.5, 2.0)) + 0.001 * rng.randint(0, 9), 4)
        description = rng.choice(PHRASES).format(k=knob.lower().replace("_", " "), o=base, v=value)
        idea = {"description": description, "hypothesis": f"{knob} is mistuned for 5-minute runs",
                "family": rng.choice(FAMILIES), "tags": [knob.split("_")[0].lower()]}
        ideas.append((idea, novelty.features(idea, dict(KNOBS))))
    return ideas


def make_configs(rng, count=50):
    configs = []
    for i in range(count):
        source = TRAIN_PY.replace("MATRIX_LR = 0.04", f"MATRIX_LR = {0.02 + 0.001 * i}")
        configs.append(fingerprint.fingerprint_source(source))
    return configs


def make_record(i, rng, ideas, configs):
    idea, features = ideas[rng.randrange(len(ideas))]
    status = rng.choices(("keep", "discard", "crash"), (20, 65, 15))[0]
    commit = f"{i * 2654435761 % 16**7:07x}"
    parent = f"{max(0, i - rng.randint(1, 20)) * 2654435761 % 16**7:07x}" if i else None
    seconds = i * 360
    stamp = f"2026{(seconds // 86400) % 12 + 1:02d}{(seconds // 3600) % 28 + 1:02d}T" \
            f"{(seconds // 3600) % 24:02d}{(seconds // 60) % 60:02d}{seconds % 60:02d}Z"
    value = None if status == "crash" else round(rng.uniform(0.97, 1.02), 6)
    values = metrics(val_bpb=value, peak_vram_mb=None if status == "crash" else 45000.0)
    matches = [{"category": "repeat_failure", "score": round(rng.random(), 3),
                "run_id": f"{stamp}-{commit}", "commit": commit, "status": "discard",
                "val_bpb": 0.99, "description": idea["description"]} for _ in range(3)]
    run_id = f"{stamp[:8]}T{stamp[9:15]}Z-{commit}"
    return {
        "schema_version": 2, "run_id": f"{run_id}{i}"[:24] if False else run_id,
        "timestamp_utc": f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:"
                         f"{stamp[13:15]}Z",
        "branch": "autoresearch/jun1", "commit": commit, "parent_commit": parent,
        "family": idea["family"], "status": status, "description": f"{idea['description']}",
        "hypothesis": idea["hypothesis"], "tags": idea["tags"], "notes": "",
        "metrics": dict(values, val_bpb=value),
        "error": {"summary": "torch.OutOfMemoryError: CUDA out of memory", "tail": [
            "Traceback (most recent call last):", "torch.OutOfMemoryError: CUDA out of memory"],
                  "source": "log"} if status == "crash" else None,
        "artifacts": {"run_dir": f"results/memorylab/runs/{run_id}"},
        "novelty_guard": {"classification": "novel", "probe_text": idea["description"],
                          "threshold": 0.62, "match_count": 0,
                          "counts": {"duplicate_run": 0, "repeat_failure": 0,
                                     "incremental_followup": 0, "known_success": 0},
                          "top_matches": matches, "mode": "exploit", "effective_threshold": 0.62,
                          "policy": {"mode": "exploit", "decision": "caution",
                                     "rationale": "new idea, not targeted exploitation"}},
        "decision_packet": {"summary": f"Abandon run {run_id}: worse than the champion.",
                            "next_action": "abandon", "priority": "low",
                            "rationale": "Worse than the champion and not close.",
                            "hypothesis_status": "unsupported", "run": {}, "novelty": {},
                            "comparison": {}, "error": None},
        "provenance": {"device": "NVIDIA H100 80GB HBM3", "time_budget_s": 300,
                       "max_seq_len": 2048, "seed": 42},
        "hyperparameters": {},
        "config": configs[i % len(configs)],
        "novelty_features": features, "imported": None,
    }


PUBLISHED = ("run_id", "timestamp_utc", "branch", "commit", "parent_commit", "family",
             "status", "description", "hypothesis", "tags", "notes", "metrics", "error",
             "artifacts", "novelty_guard", "decision_packet")


def earlier_record(i, rng, ideas, configs):
    """A record as the earlier fork wrote it: the published fields only, and a
    description of its own (real ledgers rarely repeat one word for word)."""
    record = make_record(i, rng, ideas, configs)
    knob, base = rng.choice(KNOBS)
    value = round(base * rng.uniform(0.3, 3.0), 5)
    record["description"] = rng.choice(PHRASES).format(
        k=knob.lower().replace("_", " "), o=base, v=value)
    return {key: record[key] for key in PUBLISHED}


def write_ledger(repo, size, seed=1, earlier=False):
    rng = random.Random(seed)
    ideas, configs = make_ideas(rng), make_configs(rng)
    lab = os.path.join(repo, "results", "memorylab")
    os.makedirs(lab, exist_ok=True)
    total = 0
    make = earlier_record if earlier else make_record
    with open(os.path.join(lab, "experiments.jsonl"), "w") as f:
        for i in range(size):
            line = json.dumps(make(i, rng, ideas, configs)) + "\n"
            total += len(line)
            f.write(line)
    return total / size


# --campaign: ledgers as one agent's campaign writes them with the repository's own
# train.py. Each run changes one constant of the current champion's config to a value
# of its own (keeps move the champion), so every run has its own config, code hash,
# change set and description, as in real ledgers; the synthetic ledgers above reuse
# 400 ideas and 50 configs, which memoised scores and shared objects make cheap.
CAMPAIGN_KNOBS = (("MATRIX_LR", "matrix lr"), ("EMBEDDING_LR", "embedding lr"),
                  ("UNEMBEDDING_LR", "unembedding lr"), ("SCALAR_LR", "scalar lr"),
                  ("WEIGHT_DECAY", "weight decay"), ("WARMDOWN_RATIO", "warmdown ratio"),
                  ("WARMUP_RATIO", "warmup ratio"), ("FINAL_LR_FRAC", "final lr frac"),
                  ("DEPTH", "depth"), ("ASPECT_RATIO", "aspect ratio"),
                  ("HEAD_DIM", "head dim"), ("TOTAL_BATCH_SIZE", "total batch size"))
CAMPAIGN_PHRASES = ("increase {k} to {v}", "lower {k} from {o} to {v}", "{k} {o} -> {v}",
                    "try {k}={v} (was {o})", "{k} {v} instead of {o}, hoping for {w} loss")


def upstream_source(constants=None):
    """The repository's train.py, with `constants` ({NAME: value}) written in."""
    import re
    with open(os.path.join(REPO_ROOT, "train.py")) as f:
        text = f.read()
    for name, value in (constants or {}).items():
        text = re.sub(rf"(?m)^({name}\s*=\s*)[^#\n]*", lambda m: f"{m.group(1)}{value!r} ", text)
    return text


def campaign_value(rng, default):
    """A new value for a knob whose upstream value is `default`: within a factor of
    two of it (an integer: a step or two of an eighth away)."""
    if isinstance(default, int):
        return max(1, default + rng.choice((-2, -1, 1, 2)) * max(1, default // 8))
    return round(default * 2 ** rng.uniform(-1.0, 1.0), 6) or round(rng.uniform(0.001, 0.1), 6)


def write_campaign(repo, size, seed=1):
    """A campaign ledger (see CAMPAIGN_KNOBS); returns (bytes per record, the
    champion's constants at the end)."""
    rng = random.Random(seed)
    base = fingerprint.fingerprint_source(upstream_source())["constants"]
    knobs = [(n, words) for n, words in CAMPAIGN_KNOBS if isinstance(base.get(n), (int, float))]
    ideas, configs = make_ideas(rng, 8), make_configs(rng, 2)   # for make_record's other fields
    champion = dict(base)
    lab = os.path.join(repo, "results", "memorylab")
    os.makedirs(lab, exist_ok=True)
    total = 0
    with open(os.path.join(lab, "experiments.jsonl"), "w") as f:
        for i in range(size):
            record = make_record(i, rng, ideas, configs)
            name, words = rng.choice(knobs)
            old = champion[name]
            new = campaign_value(rng, base[name])
            constants = dict(champion, **{name: new})
            description = rng.choice(CAMPAIGN_PHRASES).format(
                k=words, o=old, v=new, w=rng.choice(("lower", "smoother", "better")))
            change_set = {"constants": [{"name": name, "old": old, "new": new}], "hunks": []}
            idea = {"description": description, "hypothesis": f"{words} {rng.randint(1, 10**6)}",
                    "family": record["family"], "tags": [words.split()[0]]}
            record.update(idea, config={
                "constants": constants,
                "code_sha256": f"{rng.getrandbits(256):064x}"}, change_set=change_set,
                novelty_features=novelty.features(idea, champion, change_set))
            if record["status"] == "keep":
                champion = constants
            line = json.dumps(record) + "\n"
            total += len(line)
            f.write(line)
    return total / size, champion


def timed(repo, *argv, rss=False):
    """(wall seconds, CPU seconds) of one whole `python memorylab.py ...` process
    (with `rss`, also its peak resident memory in MB). CPU time (user + sys, git
    children included) is what the wall time would be on an idle machine; on a busy
    one the wall time also counts waiting for a core."""
    import resource
    env = dict(os.environ, MEMORYLAB_NOW=NOW)
    env.pop("MEMORYLAB_ROOT", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # time what users get: cached bytecode
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, "memorylab.py"), *argv],
                            cwd=repo, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 2, 3):
        raise SystemExit(f"{argv[0]} failed: {err}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return (elapsed, cpu, usage.ru_maxrss / 1024) if rss else (elapsed, cpu)


def startup(repeat):
    """(wall, CPU) seconds of a bare `python -c pass`: what no command can go below."""
    import resource
    pairs = []
    for _ in range(max(3, repeat)):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        pairs.append((time.perf_counter() - start, (after.ru_utime - before.ru_utime)
                      + (after.ru_stime - before.ru_stime)))
    return _median(pairs)


def _median(pairs):
    return (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs))


def bench(size, repeat, keep, campaign=False):
    folder = keep or tempfile.mkdtemp(prefix="memorylab-bench-")
    repo = os.path.join(folder, f"repo-{size}" + ("-campaign" if campaign else ""))
    shutil.rmtree(repo, ignore_errors=True)
    started = time.perf_counter()
    if campaign:
        make_repo(repo, upstream_source())
        average, champion = write_campaign(repo, size)
        with open(os.path.join(repo, "train.py"), "w") as f:   # the champion's code, committed
            f.write(upstream_source(champion))
        git(repo, "commit", "-qam", "the champion")
    else:
        make_repo(repo)
        average = write_ledger(repo, size)
    made = time.perf_counter() - started
    summary = os.path.join(repo, "summary.json")
    with open(summary, "w") as f:
        json.dump(metrics(val_bpb=0.985), f)
    index = os.path.join(repo, "results", "memorylab", "index")
    check = ("check", "--description", "increase matrix lr to 0.05", "--code")
    if campaign:   # the agent's next idea, edited into train.py and not committed yet
        value = round(champion["MATRIX_LR"] * 1.37, 6)
        with open(os.path.join(repo, "train.py"), "w") as f:
            f.write(upstream_source(dict(champion, MATRIX_LR=value)))
        check = ("check", "--description", f"increase matrix lr to {value}", "--code")
    counter = iter(range(10**6))

    def log():
        return timed(repo, "log", "--description", f"bench run {next(counter)}",
                     "--status", "discard", "--summary", summary)

    def report():
        return timed(repo, "report")

    def check_():
        return timed(repo, *check)

    result = {}
    for name, run in (("report", report), ("check", check_), ("log", log)):
        shutil.rmtree(index, ignore_errors=True)  # cold: the index is (re)built
        result[name + "_cold"] = run()
        result[name] = _median([run() for _ in range(repeat)])
    result["check_upstream_edit"], result["check_upstream"] = upstream_checks(
        repo, check, repeat, champion if campaign else None)
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return dict(result, size=size, record_bytes=average, generate_s=made)


def upstream_checks(repo, check, repeat, champion=None):
    """(first check after an edit, the same check again): `check --code` with the
    repository's own train.py (~650 lines), edited (an uncommitted constant change,
    new each time). The first check after an edit tokenizes and parses the edited
    file; the committed one was read by an earlier command and comes from the code
    memo. Synthetic ledgers (`champion` None) have a 10-line train.py: upstream's is
    committed in its place first; a campaign's champion is committed already."""
    target = os.path.join(repo, "train.py")
    if champion is None:
        with open(target, "w") as f:
            f.write(upstream_source())
        git(repo, "commit", "-qam", "upstream train.py")
    timed(repo, *check)   # the committed file read once, as `log` would have
    first, again = [], []
    for i in range(repeat):
        with open(target, "w") as f:
            if champion is None:
                f.write(upstream_source() + f"\nBENCH_EDIT = {i + 1}\n")
            else:
                f.write(upstream_source(dict(champion, MATRIX_LR=round(0.011 + 0.001 * i, 6))))
        first.append(timed(repo, *check))
        again.append(timed(repo, *check))
    return _median(first), _median(again)


# One `log` process that also reports the CPU seconds it spent holding the exclusive
# lock (CPU, not wall: on a busy machine a holder also waits for a core).
HOLDER = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from contextlib import contextmanager
from memorylab_core import store
plain, held = store.Store.lock, [0.0]

@contextmanager
def timed_lock(self, exclusive=True):
    with plain(self, exclusive) as locked:
        start = time.process_time()
        try:
            yield locked
        finally:
            held[0] += (time.process_time() - start) if exclusive else 0.0

store.Store.lock = timed_lock
import memorylab
code = memorylab.main(sys.argv[2:])
sys.stderr.write(f"held {held[0]:.4f}\\n")
sys.stdout.flush()
os._exit(code)
"""

WRITER = """
import os, subprocess, sys, time
repo, root, summary, worker, count, holder = sys.argv[1:7]
for i in range(int(count)):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", holder, root, "log", "--description",
                           f"writer {worker} run {i}", "--status", "discard",
                           "--summary", summary], cwd=repo, capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stderr)
    held = done.stderr.rsplit("held ", 1)[1].split()[0]
    print(time.perf_counter() - start, held, flush=True)
"""

READER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from memorylab_core.store import Store
store, longest = Store(sys.argv[1]), 0.0
while True:
    start = time.perf_counter()
    with store.lock(exclusive=False):
        pass
    longest = max(longest, time.perf_counter() - start)
    print(f"{longest:.3f}", flush=True)
    time.sleep(0.05)
"""


def writers(repo, summary, processes=8, each=5):
    """(logs/s, p50 s, p95 s, CPU s per log, median CPU s under the exclusive lock) of
    `processes` concurrent writers, `each` logs apiece. CPU per log (all processes, git
    included) and the time under the lock bound the throughput on an idle machine
    (cores / CPU per log, 1 / lock time), whatever the machine's other load."""
    import resource
    env = dict(os.environ, MEMORYLAB_NOW=NOW)
    env.pop("MEMORYLAB_ROOT", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, repo, REPO_ROOT, summary, str(n),
                               str(each), HOLDER], env=env, stdout=subprocess.PIPE, text=True)
             for n in range(processes)]
    latencies, held = [], []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit("a writer failed")
        for line in out.splitlines():
            latency, hold = line.split()
            latencies.append(float(latency))
            held.append(float(hold))
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    return (len(latencies) / elapsed, statistics.median(latencies), p95, cpu / len(latencies),
            statistics.median(held))


def store_bench(size, keep, each):
    """Cold rebuilds (both formats), doctor, and 8 writers on a store of `size` runs."""
    folder = keep or tempfile.mkdtemp(prefix="memorylab-bench-")
    out = {}
    for earlier in (False, True):
        repo = os.path.join(folder, f"store-{size}-{'earlier' if earlier else 'now'}")
        shutil.rmtree(repo, ignore_errors=True)
        make_repo(repo)
        write_ledger(repo, size, earlier=earlier)
        timed(repo, "init")
        index = os.path.join(repo, "results", "memorylab", "index")
        shutil.rmtree(index, ignore_errors=True)
        out["rebuild_earlier" if earlier else "rebuild"] = timed(repo, "list")
        if earlier:
            shutil.rmtree(repo, ignore_errors=True)
            continue
        out["doctor"] = timed(repo, "doctor", rss=True)
        summary = os.path.join(repo, "summary.json")
        with open(summary, "w") as f:
            json.dump(metrics(val_bpb=0.985), f)
        out["writers"] = writers(repo, summary, each=each)
        shutil.rmtree(repo, ignore_errors=True)
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def import_bench(rows, keep):
    """(wall, CPU) of import-tsv of `rows` upstream rows into an empty store, and the
    longest wait of a reader taking the shared lock meanwhile."""
    folder = keep or tempfile.mkdtemp(prefix="memorylab-bench-")
    repo = os.path.join(folder, f"import-{rows}")
    shutil.rmtree(repo, ignore_errors=True)
    make_repo(repo)
    timed(repo, "init")
    rng = random.Random(3)
    ideas = make_ideas(rng)
    path = os.path.join(folder, f"results-{rows}.tsv")
    with open(path, "w") as f:
        f.write("commit\tval_bpb\tmemory_gb\tstatus\tdescription\n")
        for i in range(rows):
            status = rng.choices(("keep", "discard", "crash"), (20, 65, 15))[0]
            bpb = "0.000000" if status == "crash" else f"{rng.uniform(0.97, 1.02):.6f}"
            memory = "0.0" if status == "crash" else "44.0"
            f.write(f"{i * 2654435761 % 16**7:07x}\t{bpb}\t{memory}\t{status}\t"
                    f"{ideas[i % len(ideas)][0]['description']} #{i}\n")
    reader = subprocess.Popen([sys.executable, "-c", READER, repo, REPO_ROOT],
                              stdout=subprocess.PIPE, text=True)
    try:
        result = timed(repo, "import-tsv", path)
    finally:
        reader.terminate()
        out, _ = reader.communicate()
    waits = out.split()
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return result, float(waits[-1]) if waits else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", default=None, help="keep the generated repos in this folder")
    parser.add_argument("--campaign", action="store_true",
                        help="campaign ledgers (a config, change set and description of "
                             "each run's own, the repository's train.py) instead of synthetic ones")
    parser.add_argument("--store", action="store_true",
                        help="store figures instead: rebuilds, doctor, 8 writers")
    parser.add_argument("--writer-logs", type=int, default=5, help="logs per writer (--store)")
    parser.add_argument("--import", dest="import_rows", type=int, default=None,
                        help="time import-tsv of this many rows instead")
    args = parser.parse_args()
    if args.import_rows:
        (wall, cpu), wait = import_bench(args.import_rows, args.keep)
        print(f"import-tsv {args.import_rows} rows: {wall:.2f} s wall / {cpu:.2f} s CPU; "
              f"longest reader wait {wait:.3f} s; load {os.getloadavg()[0]:.2f}")
        return
    if args.store:
        print("runs  rebuild wall/CPU  earlier wall/CPU  doctor wall/CPU/MB   "
              "8 writers logs/s p50 p95 CPU/log lock-CPU")
        for size in args.sizes:
            r = store_bench(size, args.keep, args.writer_logs)
            print(f"{size:>7} {r['rebuild'][0]:7.2f}/{r['rebuild'][1]:<7.2f} "
                  f"{r['rebuild_earlier'][0]:7.2f}/{r['rebuild_earlier'][1]:<7.2f} "
                  f"{r['doctor'][0]:6.2f}/{r['doctor'][1]:<6.2f}/{r['doctor'][2]:<6.0f} "
                  f"{r['writers'][0]:6.2f} {r['writers'][1]:5.2f} {r['writers'][2]:5.2f} "
                  f"{r['writers'][3]:5.3f} {r['writers'][4]:5.3f}",
                  flush=True)
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; seconds, whole process")
    wall, cpu = startup(args.repeat)
    print(f"bare interpreter (python -c pass): {wall:.3f}/{cpu:.3f}")
    columns = ("check", "log", "report")
    print("wall / CPU seconds per whole process (cold: index rebuilt; warm: median;\n"
          "upstream: check --code with the repository's train.py, first after an edit, again)")
    print(f"{'runs':>7} {'rec B':>5} " + " ".join(f"{c + ' cold':>13} {c + ' warm':>13}"
                                                   for c in columns)
          + f" {'upstream edit':>13} {'again':>13}")
    for size in args.sizes:
        r = bench(size, args.repeat, args.keep, args.campaign)
        cells = []
        for key in [k for c in columns for k in (c + "_cold", c)] + \
                ["check_upstream_edit", "check_upstream"]:
            cells.append(f"{r[key][0]:>6.3f}/{r[key][1]:<6.3f}")
        print(f"{r['size']:>7} {r['record_bytes']:>5.0f} " + " ".join(cells), flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
