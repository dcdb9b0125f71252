"""No GPU? Run the real pipeline end to end on CPU in about a minute and a half.

    .venv/bin/python tests/cpu_smoke.py [--time-budget SECONDS] [--keep]

Builds a small synthetic corpus in a temporary HOME, copies prepare.py and
train.py next to it with shrunken constants (the tiny DEPTH 2, vocab 1024,
T 256 configuration and a short time budget), then runs the copies as
processes: prepare.py trains the tokenizer, train.py trains and evaluates and
prints the usual summary, and its summary sidecar is printed too. Nothing
outside the temporary directory is touched and no network is used.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import training_harness as harness


def run(workdir, home, args, env=None):
    full_env = dict(os.environ, HOME=home, OMP_NUM_THREADS=str(harness.TORCH_THREADS),
                    PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", **(env or {}))
    print(f"$ python {' '.join(args)}", flush=True)
    return subprocess.run([sys.executable] + args, cwd=workdir, env=full_env).returncode


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-budget", type=int, default=60, help="training seconds (default 60)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    missing = harness.missing_modules()
    if missing:
        sys.exit(f"missing training dependencies: {', '.join(missing)} (see docs/training.md)")

    t0 = time.time()
    root = harness.new_tempdir("autoresearch-cpu-smoke-")
    home, workdir = os.path.join(root, "home"), os.path.join(root, "run")
    os.makedirs(workdir)
    summary_path = os.path.join(root, "results", "summary.json")
    try:
        harness.make_corpus(home, num_train_shards=4, docs_per_shard=2000)
        prepare_overrides = dict(harness.TINY_PREPARE, TIME_BUDGET=str(args.time_budget),
                                 EVAL_TOKENS="64 * 8 * 256")
        harness.write_shrunk_copies(workdir, prepare_overrides, harness.TINY_TRAIN)
        print(f"Synthetic corpus and shrunken copies in {root}")
        if run(workdir, home, ["prepare.py", "--num-shards", "4"]) != 0:
            sys.exit("prepare.py failed")
        code = run(workdir, home, ["train.py"], env={"AUTORESEARCH_SUMMARY_PATH": summary_path})
        if code != 0:
            sys.exit(f"train.py failed with exit code {code}")
        print(f"\nSummary sidecar ({summary_path}):")
        with open(summary_path) as f:
            print(json.dumps(json.load(f), indent=2, sort_keys=True))
        print(f"\nCPU smoke run passed in {time.time() - t0:.0f}s")
    finally:
        if args.keep:
            print(f"Kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
