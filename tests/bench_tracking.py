"""Push and pull times of the MLflow mirror against a local tracking server.

    python tests/bench_tracking.py [--runs 1000]

Starts `mlflow server` on a free loopback port (sqlite backend, as in the tests),
fills store A with N runs (import-tsv of a synthetic results.tsv), then times:
A's first `sync` (pushes N runs), B's first `sync` (pulls N runs into an empty
store), B's next pulls (at once, then a minute later), the steady state of one more
run (A's `log` with its push, B's `check` with its incremental pull), and `log` and
`check` without a server for comparison.
Each step runs the CLI as a separate process, as an agent would.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mlflow_server  # noqa: E402
from mlhelpers import CLI, make_repo, metrics  # noqa: E402
from memorylab_core.mirror import PULL_OVERLAP_MS  # noqa: E402


def timed(argv, cwd, env):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, CLI, *argv], cwd=cwd, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 2):
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
    return elapsed, done


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    server = mlflow_server.server_or_exit()
    tmp = tempfile.mkdtemp(prefix="memorylab-bench-tracking-")
    try:
        t0 = time.perf_counter()
        server.start()
        print(f"server start: {time.perf_counter() - t0:.1f} s ({server.uri})")
        repo_a, repo_b = make_repo(os.path.join(tmp, "a")), make_repo(os.path.join(tmp, "b"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORYLAB_")}
        env.update(MEMORYLAB_TRACKING_URI=server.uri, MEMORYLAB_EXPERIMENT="bench",
                   MEMORYLAB_TRACKING_TIMEOUT="120")
        rows = ["commit\tval_bpb\tmemory_gb\tstatus\tdescription"]
        for i in range(args.runs):
            status = ("keep", "discard", "discard", "crash")[i % 4]
            bpb = "0.000000" if status == "crash" else f"{0.99 - i * 1e-5:.6f}"
            rows.append(f"{i:07x}\t{bpb}\t{0 if status == 'crash' else 44.0}\t{status}\t"
                        f"idea {i}: set MATRIX_LR to {0.01 + i * 1e-4:.4f}")
        tsv = os.path.join(tmp, "results.tsv")
        with open(tsv, "w") as f:
            f.write("\n".join(rows) + "\n")
        quiet = {k: v for k, v in env.items() if k != "MEMORYLAB_TRACKING_URI"}
        elapsed, _ = timed(["import-tsv", tsv], repo_a, quiet)
        print(f"store A: {args.runs} runs imported in {elapsed:.1f} s (no server)")

        elapsed, done = timed(["sync", "--json"], repo_a, env)
        counts = json.loads(done.stdout)
        print(f"push: {counts['pushed']} runs in {elapsed:.1f} s "
              f"({elapsed / max(1, counts['pushed']) * 1000:.1f} ms per run)")
        elapsed, done = timed(["sync", "--json"], repo_b, env)
        counts = json.loads(done.stdout)
        print(f"pull: {counts['pulled']} runs into an empty store in {elapsed:.1f} s")
        elapsed, done = timed(["sync", "--json"], repo_b, env)
        print(f"pull again at once, nothing new: {elapsed:.2f} s "
              f"(pulled {json.loads(done.stdout)['pulled']})")
        time.sleep(PULL_OVERLAP_MS / 1000 + 1)  # the steady state: a quiet minute later
        elapsed, done = timed(["sync", "--json"], repo_b, env)
        print(f"pull again a minute later, nothing new: {elapsed:.2f} s "
              f"(pulled {json.loads(done.stdout)['pulled']})")

        summary = os.path.join(tmp, "summary.json")
        with open(summary, "w") as f:
            json.dump(metrics(val_bpb=0.97), f)
        elapsed, _ = timed(["log", "--description", "raise WARMDOWN_RATIO to 0.7",
                            "--status", "keep", "--summary", summary], repo_a, env)
        print(f"log one run with its push ({args.runs} runs in the store): {elapsed:.2f} s")
        elapsed_off, _ = timed(["log", "--description", "lower WARMDOWN_RATIO to 0.3",
                                "--status", "discard", "--summary", summary], repo_a, quiet)
        print(f"log one run without a server: {elapsed_off:.2f} s")
        elapsed, done = timed(["check", "--description", "WARMDOWN_RATIO 0.7"], repo_b, env)
        print(f"check with an incremental pull (1 new run): {elapsed:.2f} s")
        elapsed, _ = timed(["check", "--description", "WARMDOWN_RATIO 0.7"], repo_b, quiet)
        print(f"check without a server: {elapsed:.2f} s")
    finally:
        server.remove()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
