"""Shared helpers for MemoryLab tests: temporary git repos, sidecars, in-process CLI.

Not a test module (no `test` prefix). Everything runs without torch and without
the wall clock: MEMORYLAB_NOW is injected.
"""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import memorylab  # noqa: E402

NOW = "2026-01-01T06:00:00Z"
CLI = os.path.join(REPO_ROOT, "memorylab.py")
LEDGER = os.path.join("results", "memorylab", "experiments.jsonl")
REGISTRY = os.path.join("results", "memorylab", "champion_challenger.json")
TRAIN_PY = """\
# A tiny stand-in for train.py: only the constants matter to MemoryLab.
DEPTH = 8
MATRIX_LR = 0.04
EMBEDDING_LR = 0.6
WARMDOWN_RATIO = 0.5
TOTAL_BATCH_SIZE = 2**19


def main():
    return DEPTH * MATRIX_LR
"""
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_NOSYSTEM": "1"}


def git(cwd, *args):
    env = dict(os.environ, **GIT_ENV)
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def make_repo(path, train_py=TRAIN_PY):
    """A git repo at `path` with train.py committed on branch main."""
    os.makedirs(path, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    with open(os.path.join(path, "train.py"), "w") as f:
        f.write(train_py)
    git(path, "add", "train.py")
    git(path, "commit", "-q", "-m", "baseline")
    return path


def commit_change(repo, old, new, message="change"):
    """Edit train.py (replace `old` by `new`) and commit; returns the 7-char commit."""
    path = os.path.join(repo, "train.py")
    with open(path) as f:
        text = f.read()
    assert old in text, old
    with open(path, "w") as f:
        f.write(text.replace(old, new))
    git(repo, "commit", "-q", "-am", message)
    return git(repo, "rev-parse", "--short=7", "HEAD")


def metrics(val_bpb=0.99, peak_vram_mb=45000.0, **extra):
    values = {"val_bpb": val_bpb, "training_seconds": 300.1, "total_seconds": 325.9,
              "peak_vram_mb": peak_vram_mb, "mfu_percent": 39.8, "total_tokens_M": 499.6,
              "num_steps": 953, "num_params_M": 50.3, "depth": 8}
    values.update(extra)
    return {k: v for k, v in values.items() if v is not None}


def console_summary(values):
    """The `---` block train.py prints, from a metrics dict."""
    return "---\n" + "".join(f"{k + ':':<18}{v}\n" for k, v in values.items())


class CliResult:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


class LabCase(unittest.TestCase):
    """A temp dir with a git repo in it (self.repo) and the CLI at hand."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="memorylab-test-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.repo = make_repo(os.path.join(self.tmp, "repo"))
        self.env = {k: v for k, v in os.environ.items() if k != "MEMORYLAB_ROOT"}
        self.env["MEMORYLAB_NOW"] = NOW

    # ---- running the CLI
    def cli(self, *argv, cwd=None, env=None, **env_overrides):
        """Run memorylab.main in-process; returns CliResult(code, out, err)."""
        env = dict(self.env if env is None else env, **env_overrides)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = memorylab.main(list(argv), cwd=cwd or self.repo, env=env)
            except SystemExit as exc:
                code = exc.code
        return CliResult(code, out.getvalue(), err.getvalue())

    def cli_process(self, *argv, cwd=None, **env_overrides):
        """Run `python memorylab.py` as a separate process."""
        env = dict(self.env, **env_overrides)
        done = subprocess.run([sys.executable, CLI, *argv], cwd=cwd or self.repo, env=env,
                              capture_output=True, text=True)
        return CliResult(done.returncode, done.stdout, done.stderr)

    def ok(self, *argv, **kw):
        result = self.cli(*argv, **kw)
        self.assertEqual(result.code, 0, result)
        return result

    def fails(self, *argv, expect=None, **kw):
        """Assert a refusal: a one-line `error:` on stderr that is not the CLI's
        internal-error backstop (a bug must never pass as a refusal) and contains
        `expect` when given, exit 1 and no file changed. Returns the line."""
        before = self.snapshot()
        result = self.cli(*argv, **kw)
        self.assertEqual(result.code, 1, result)
        lines = result.err.strip().splitlines()
        self.assertEqual(len(lines), 1, result.err)
        self.assertTrue(lines[0].startswith("error: "), result.err)
        self.assertNotIn("internal error", lines[0], result.err)
        if expect is not None:
            self.assertIn(expect, lines[0], result.err)
        self.assertEqual(self.snapshot(), before, "a failed command wrote files")
        return lines[0]

    # ---- files
    def path(self, *parts):
        return os.path.join(self.repo, *parts)

    def write(self, name, text, mtime=None):
        path = self.path(name)
        mode = "wb" if isinstance(text, bytes) else "w"
        with open(path, mode) as f:
            f.write(text)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    def summary(self, name="summary.json", mtime=None, **values):
        return self.write(name, json.dumps(metrics(**values)), mtime)

    def log_keep(self, description, val_bpb=0.99, status="keep", *extra, **values):
        summary = self.summary(val_bpb=val_bpb, **values)
        return self.ok("log", "--description", description, "--status", status,
                       "--summary", summary, *extra)

    def ledger(self, root=None):
        with open(os.path.join(root or self.repo, LEDGER), "rb") as f:
            return f.read()

    def records(self, root=None):
        return [json.loads(line) for line in self.ledger(root).splitlines() if line.strip()]

    def tsv(self, root=None):
        with open(os.path.join(root or self.repo, "results.tsv")) as f:
            return f.read().splitlines()

    def registry(self, root=None):
        with open(os.path.join(root or self.repo, REGISTRY)) as f:
            return json.load(f)

    def snapshot(self, root=None):
        """{relative path: bytes} of every file outside .git (and the index cache)."""
        root = root or self.repo
        files = {}
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if d not in (".git", "index")]
            for name in names:
                if name == ".lock":
                    continue
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, root)] = f.read()
        return files
