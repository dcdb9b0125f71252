"""No GPU? Run the whole pipeline end to end on CPU in about two minutes.

    uv run tests/cpu_smoke.py [--time-budget SECONDS] [--dir DIR]

In DIR (default results/cpu-smoke, kept afterwards):
  home/  a synthetic corpus (a made-up language, no network) in a stand-in HOME,
         rebuilt on every run;
  run/   a git repository of copies of prepare.py and train.py with shrunken
         constants (DEPTH 2, vocab 1024, context 256, a short time budget), the
         run's log and summary sidecar, and a MemoryLab store that keeps every
         smoke run.
The copied prepare.py trains the tokenizer, the copied train.py trains, evaluates
and prints the usual summary, then `memorylab.py log --report` records the run and
writes the morning report. Nothing outside DIR is written.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import training_harness as harness

MEMORYLAB = os.path.join(harness.REPO_ROOT, "memorylab.py")


def run(workdir, home, args, log_path=None, env=None):
    """Run `python args...` in workdir, echoing its output (and copying it to log_path)."""
    full_env = dict(os.environ, HOME=home, OMP_NUM_THREADS=str(harness.TORCH_THREADS),
                    PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", **(env or {}))
    print(f"$ python {' '.join(args)}", flush=True)
    log = open(log_path, "wb") if log_path else None
    with subprocess.Popen([sys.executable] + args, cwd=workdir, env=full_env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process:
        # bytes as they come: train.py redraws its progress line with \r
        for chunk in iter(lambda: process.stdout.read1(1 << 16), b""):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            if log:
                log.write(chunk)
    if log:
        log.close()
    return process.returncode


def memorylab(workdir, *args):
    """`memorylab.py --root workdir ARGS` from workdir; its stdout (exits on failure)."""
    done = subprocess.run([sys.executable, MEMORYLAB, "--root", workdir, *args], cwd=workdir,
                          capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        sys.exit(f"memorylab.py {args[0]} failed with exit code {done.returncode}")
    return done.stdout


def commit_copies(workdir):
    """Make the run folder a git repository of its own holding the shrunken copies, so
    that MemoryLab records their commit and configuration, not the enclosing checkout's.
    A rerun with unchanged copies adds no commit: it is a replicate of the same code."""
    if shutil.which("git") is None:
        return  # MemoryLab records the run outside git (commit 0000000)
    git = ["git", "-c", "user.name=cpu-smoke", "-c", "user.email=cpu-smoke@localhost",
           "-c", "commit.gpgsign=false"]
    if not os.path.isdir(os.path.join(workdir, ".git")):
        subprocess.run(git + ["init", "-q"], cwd=workdir, check=True)
    subprocess.run(git + ["add", "prepare.py", "train.py"], cwd=workdir, check=True)
    if subprocess.run(git + ["diff", "--cached", "--quiet"], cwd=workdir).returncode:
        subprocess.run(git + ["commit", "-q", "-m", "shrunken copies for the CPU smoke run"],
                       cwd=workdir, check=True)


def shown(path):
    """`path` relative to the current directory when it lies below it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-budget", type=int, default=60, help="training seconds (default 60)")
    parser.add_argument("--dir", default=os.path.join(harness.REPO_ROOT, "results", "cpu-smoke"),
                        help="where the run and its MemoryLab store live (default results/cpu-smoke)")
    args = parser.parse_args()
    missing = harness.missing_modules()
    if missing:
        sys.exit(f"error: missing training dependencies: {', '.join(missing)}; "
                 "run this with `uv run tests/cpu_smoke.py`")

    t0 = time.time()
    root = os.path.abspath(args.dir)
    home, workdir = os.path.join(root, "home"), os.path.join(root, "run")
    shutil.rmtree(home, ignore_errors=True)
    os.makedirs(workdir, exist_ok=True)
    log_path, summary_path = os.path.join(workdir, "run.log"), os.path.join(workdir, "summary.json")
    for stale in (log_path, summary_path):
        if os.path.exists(stale):
            os.remove(stale)

    harness.make_corpus(home, num_train_shards=4, docs_per_shard=2000)
    prepare_overrides = dict(harness.TINY_PREPARE, TIME_BUDGET=str(args.time_budget),
                             EVAL_TOKENS="64 * 8 * 256")
    harness.write_shrunk_copies(workdir, prepare_overrides, harness.TINY_TRAIN)
    commit_copies(workdir)
    print(f"Synthetic corpus in {shown(home)}, shrunken prepare.py and train.py in {shown(workdir)}")
    if run(workdir, home, ["prepare.py", "--num-shards", "4"]) != 0:
        sys.exit("error: prepare.py failed")
    code = run(workdir, home, ["train.py"], log_path=log_path,
               env={"AUTORESEARCH_SUMMARY_PATH": summary_path})
    if code != 0:
        sys.exit(f"error: train.py failed with exit code {code} (log: {shown(log_path)})")

    with open(summary_path) as f:
        val_bpb = json.load(f)["val_bpb"]
    memorylab(workdir, "init")
    champion = json.loads(memorylab(workdir, "brief", "--json"))["champion"]
    status = "keep" if champion is None or val_bpb < champion["val_bpb"] else "discard"
    print(f"\n$ python memorylab.py log --status {status} ... --report")
    print(memorylab(workdir, "log", "--status", status, "--summary", summary_path,
                    "--log", log_path, "--report", "--description",
                    f"CPU smoke run: tiny config (depth 2, vocab 1024, context 256), "
                    f"{args.time_budget} s budget"), end="")
    reports = os.path.join(workdir, "results", "memorylab", "reports")
    print(f"\nCPU smoke run done in {time.time() - t0:.0f} s: val_bpb {val_bpb:.6f}")
    print(f"MemoryLab store: {shown(workdir)} (every smoke run is kept there)")
    print(f"Morning report: {shown(os.path.join(reports, 'latest.md'))} "
          f"and {shown(os.path.join(reports, 'latest.html'))}")
    print(f"Next: python3 memorylab.py --root {shown(workdir)} brief")


if __name__ == "__main__":
    main()
