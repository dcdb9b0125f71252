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
import sys
import time

import training_harness as harness


def smoke(root, time_budget=60):
    """Run the tiny pipeline under `root` (output streamed); returns the sidecar's path."""
    prepare_overrides = dict(harness.TINY_PREPARE, TIME_BUDGET=str(time_budget), EVAL_TOKENS="64 * 8 * 256")
    return harness.run_pipeline(root, prepare_overrides, harness.TINY_TRAIN, num_shards=4, docs_per_shard=2000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-budget", type=int, default=60, help="training seconds (default 60)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    missing = harness.missing_modules()
    if missing:
        sys.exit(f"missing training dependencies: {', '.join(missing)} (see docs/training.md)")

    t0 = time.time()
    with harness.scratch_dir("autoresearch-cpu-smoke-", keep=args.keep) as root:
        harness.print_sidecar(smoke(root, args.time_budget))
        print(f"\nCPU smoke run passed in {time.time() - t0:.0f}s")

if __name__ == "__main__":
    main()
