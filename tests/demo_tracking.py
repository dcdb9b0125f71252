"""The shared-lab scenario, step by step, against a local MLflow tracking server.

    python tests/demo_tracking.py [--screenshot docs/screenshot-mlflow.png]

Two stores ("machine A" and "machine B") share one server: A logs, B's check blocks
the same idea and B's brief shows A's champion; A claims an idea and B sees it in
flight until A's log releases it; the server stops, A logs locally, the server comes
back and the next command pushes. Every command runs as a separate process and its
output is printed. With --screenshot, headless Chromium photographs the MLflow UI.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mlflow_server  # noqa: E402
from mlhelpers import CLI, commit_change, make_repo, metrics  # noqa: E402

EXPERIMENT = "autoresearch/demo"


def step(title):
    print(f"\n## {title}")


def run(label, repo, env, *argv):
    done = subprocess.run([sys.executable, CLI, *argv], cwd=repo, env=env,
                          capture_output=True, text=True)
    shown = " ".join(a if " " not in a else repr(a) for a in argv)
    print(f"\n[{label}]$ memorylab.py {shown}   (exit {done.returncode})")
    for line in (done.stdout + done.stderr).rstrip().splitlines():
        print("    " + line)
    return done


def log_run(label, repo, env, tmp, description, status, val_bpb, old=None, new=None):
    if old is not None:
        commit_change(repo, old, new, description)
    summary = os.path.join(tmp, f"summary-{label}.json")
    with open(summary, "w") as f:
        json.dump(dict(metrics(val_bpb=val_bpb), hyperparameters={"seed": 42},
                       provenance={"device": "NVIDIA H100 80GB HBM3", "seed": 42}), f)
    return run(label, repo, env, "log", "--description", description, "--status", status,
               "--summary", summary)


def screenshot(uri, path):
    """Photograph the experiment's run table, and beside it (`<path>-run.png`) the
    page of its best run, with headless Chromium."""
    sys.path.insert(0, os.path.dirname(HERE))
    from memorylab_core import tracking
    client = tracking.Client(uri, {"MEMORYLAB_TRACKING_TIMEOUT": "60"})
    experiment_id = client.experiment_id(EXPERIMENT)
    best = client.search_runs(experiment_id, "tags.`memorylab.kind` = 'run'",
                              order_by=("metrics.val_bpb ASC",))[0]["info"]["run_id"]
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                   "google-chrome"))), None)
    if browser is None:
        sys.exit("no chromium on PATH (apt-get install -y chromium)")
    pages = [(path, f"{uri}/#/experiments/{experiment_id}/runs", "2200,900"),
             (path.replace(".png", "-run.png"),
              f"{uri}/#/experiments/{experiment_id}/runs/{best}", "1600,1400")]
    for target, url, size in pages:
        profile = tempfile.mkdtemp(prefix="memorylab-chromium-")
        try:
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                            "--hide-scrollbars", f"--user-data-dir={profile}",
                            f"--window-size={size}", "--virtual-time-budget=30000",
                            f"--screenshot={os.path.abspath(target)}", url],
                           check=True, capture_output=True, timeout=300)
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        print(f"\nscreenshot: {target}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", default=None, help="PNG path for the MLflow UI")
    args = parser.parse_args()
    server = mlflow_server.server_or_exit()
    tmp = tempfile.mkdtemp(prefix="memorylab-demo-tracking-")
    try:
        server.start()
        repo_a, repo_b = make_repo(os.path.join(tmp, "a")), make_repo(os.path.join(tmp, "b"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORYLAB_")}
        env.update(MEMORYLAB_TRACKING_URI=server.uri, MEMORYLAB_EXPERIMENT=EXPERIMENT,
                   MEMORYLAB_TRACKING_TIMEOUT="60")

        step("1. A logs a baseline and an improvement; B checks the same idea")
        log_run("A", repo_a, env, tmp, "baseline", "keep", 0.9979)
        log_run("A", repo_a, env, tmp, "raise MATRIX_LR to 0.05", "keep", 0.9931,
                "MATRIX_LR = 0.04", "MATRIX_LR = 0.05")
        run("B", repo_b, env, "check", "--description", "MATRIX_LR 0.04 -> 0.05",
            "--fail-on-similar")
        run("B", repo_b, env, "brief")
        run("B", repo_b, env, "list")

        step("2. A claims an idea; B sees it in flight; A's log releases it")
        run("A", repo_a, env, "claim", "--description", "set DEPTH to 12")
        run("B", repo_b, env, "check", "--description", "DEPTH 12", "--fail-on-similar")
        run("B", repo_b, env, "claim", "--description", "deeper: DEPTH = 12")
        run("B", repo_b, env, "claim", "--description", "lower EMBEDDING_LR to 0.3")
        run("A", repo_a, env, "list", "--claims")
        log_run("A", repo_a, env, tmp, "set DEPTH to 12", "discard", 0.9952,
                "DEPTH = 8", "DEPTH = 12")
        run("B", repo_b, env, "check", "--description", "DEPTH 12", "--fail-on-similar")

        step("3. The server stops; A logs locally; the server comes back")
        server.stop()
        log_run("A", repo_a, env, tmp, "raise WARMDOWN_RATIO to 0.7", "keep", 0.9917,
                "WARMDOWN_RATIO = 0.5", "WARMDOWN_RATIO = 0.7")
        run("B", repo_b, env, "brief")
        server.start()
        run("A", repo_a, env, "list", "--limit", "3")
        run("B", repo_b, env, "brief")
        run("A", repo_a, env, "sync")
        run("B", repo_b, env, "sync")
        log_run("B", repo_b, env, tmp, "lower EMBEDDING_LR to 0.3", "discard", 0.9968,
                "EMBEDDING_LR = 0.6", "EMBEDDING_LR = 0.3")
        run("A", repo_a, env, "list")
        if args.screenshot:
            screenshot(server.uri, args.screenshot)
    finally:
        server.remove()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
