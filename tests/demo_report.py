"""Build a demo MemoryLab store through the CLI and (optionally) screenshot its HTML report.

    python3 tests/demo_report.py DIR [--screenshot PNG]

Makes a git repo in DIR/repo, commits one train.py change per run and logs ~40 runs
(kept, discarded, crashed, and two replicates of the champion's commit) with `memorylab.py log`, each
at an injected time (MEMORYLAB_NOW), then `memorylab.py report`. With --screenshot it
opens reports/latest.html in headless chromium (no network) and saves a PNG; this is
how docs/screenshot-report.png was made. Not a test module (no `test_` prefix).
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mlhelpers  # noqa: E402

IDEAS = [
    "raise matrix lr to 0.05", "warmdown ratio 0.6", "depth 10", "swiglu mlp activation",
    "double total batch size", "lower embedding lr to 0.4", "add z-loss 1e-4", "qk norm off",
    "weight decay 0.1", "short window 512", "softcap 20", "mlp ratio 3", "muon momentum 0.9",
    "grad clip 1.0", "label smoothing 0.1", "head dim 64", "final lr frac 0.1",
    "rotary base 50000", "value embeds on all layers", "depth 12 with aspect 48",
    "x0 lambda init 0.2", "adam beta2 0.99", "unembedding lr 0.006", "warmup ratio 0.02",
    "matrix lr 0.045 with warmdown 0.6", "gelu instead of relu squared",
    "scalar lr 0.3", "window pattern SSLL", "n kv head 2", "muon ns steps 4",
    "embedding lr 0.8", "total batch 2**18", "weight decay 0.3", "depth 9",
    "mlp ratio 5", "warmdown ratio 0.7",
]
CRASHES = {4: "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
           19: "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.50 GiB",
           27: "RuntimeError: shape mismatch in attention for n_kv_head"}


def build(root):
    repo = mlhelpers.make_repo(os.path.join(root, "repo"))
    env = {k: v for k, v in os.environ.items() if k != "MEMORYLAB_ROOT"}

    def cli(*argv, now):
        done = subprocess.run([sys.executable, mlhelpers.CLI, *argv], cwd=repo,
                              env=dict(env, MEMORYLAB_NOW=now), capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"memorylab {argv[0]} failed: {done.stderr}")
        return done.stdout

    def log(description, status, now, val_bpb=None, error=None):
        if status == "crash":
            with open(os.path.join(repo, "run.log"), "w") as f:
                f.write(f"step 00120 | loss 3.1\nTraceback (most recent call last):\n{error}\n")
            return cli("log", "--description", description, "--status", "crash",
                       "--log", "run.log", now=now)
        with open(os.path.join(repo, "summary.json"), "w") as f:
            json.dump(mlhelpers.metrics(val_bpb=val_bpb,
                                        peak_vram_mb=44800 + random.random() * 900), f)
        return cli("log", "--description", description, "--status", status,
                   "--summary", "summary.json", now=now)

    random.seed(11)
    cli("init", now="2026-01-01T00:00:00Z")
    best = 0.9979
    log("baseline", "keep", "2026-01-01T00:00:00Z", best)
    best_commit = mlhelpers.git(repo, "rev-parse", "HEAD")
    for i, idea in enumerate(IDEAS, 1):
        now = f"2026-01-01T{i * 10 // 60:02d}:{i * 10 % 60:02d}:00Z"
        commit_idea(repo, idea)
        if i - 1 in CRASHES:
            log(idea, "crash", now, error=CRASHES[i - 1])
            continue
        value = round(best + random.gauss(0.0012, 0.0022), 6)
        status = "keep" if value < best else "discard"
        best = min(best, value)
        log(idea, status, now, value)
        if status == "keep":
            best_commit = mlhelpers.git(repo, "rev-parse", "HEAD")
    mlhelpers.git(repo, "reset", "-q", "--hard", best_commit)  # upstream: back to the best
    for seed, now in ((2, "2026-01-01T06:10:00Z"), (3, "2026-01-01T06:20:00Z")):
        log(f"replicate the champion, seed {seed}", "keep", now,
            round(best + random.gauss(0.0003, 0.0006), 6))
    cli("report", "--since-hours", "8", now="2026-01-01T06:30:00Z")
    return os.path.join(repo, "results", "memorylab", "reports", "latest.html")


def screenshot(page, png, size="1200,1600"):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    profile = tempfile.mkdtemp(prefix="memorylab-chromium-")
    try:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--screenshot={os.path.abspath(png)}",
                        f"--window-size={size}", f"file://{page}"],
                       check=True, capture_output=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


FILLER = {"raise", "lower", "to", "with", "instead", "of", "add", "on", "all", "double"}


def commit_idea(repo, idea):
    """Commit a train.py whose code does what `idea` says, as an agent's would: the lab
    reads an idea's identity from the code. "warmdown ratio 0.6" sets WARMDOWN_RATIO =
    0.6; an idea without a number switches a flag named after it on."""
    name = "_".join(w for w in re.findall(r"[a-z]+", idea.lower()) if w not in FILLER).upper()
    value = (re.findall(r"\d+\*\*\d+|\d+(?:\.\d+)?(?:e-?\d+)?", idea) or ["True"])[-1]
    path = os.path.join(repo, "train.py")
    with open(path) as f:
        text = f.read()
    line = f"{name} = {value}"
    text, found = re.subn(rf"^{name} = .*$", line, text, flags=re.M)
    if not found:
        text = text.replace("\n\n\ndef main", f"\n{line}\n\n\ndef main", 1)
    with open(path, "w") as f:
        f.write(text)
    mlhelpers.git(repo, "commit", "-q", "-am", idea)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="an empty or new directory for the demo repo")
    parser.add_argument("--screenshot", help="write a PNG of the HTML report here")
    parser.add_argument("--window-size", default="1200,1600")
    args = parser.parse_args()
    page = build(os.path.abspath(args.dir))
    print(page)
    if args.screenshot:
        screenshot(page, args.screenshot, args.window_size)
        print(args.screenshot)


if __name__ == "__main__":
    main()
