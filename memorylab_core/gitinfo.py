"""Git provenance of a run: where the work tree is, which commit ran, train.py then.

Every function degrades to None (never raises) when git or the repository is
missing, so MemoryLab also works in a plain directory.
"""

import os

TRAIN_PY = "train.py"


def work_tree(cwd=None):
    """The nearest directory at or above `cwd` holding `.git` (a work tree or a
    linked worktree), or None. No subprocess: this runs on every command."""
    path = os.path.abspath(cwd or os.getcwd())
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def _git(args, cwd, text=True):
    import subprocess
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=text,
                              timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def head_context(cwd):
    """{"branch", "commit" (7 chars), "full_commit", "parent_commit" (7 chars or
    None)} of HEAD in the work tree at `cwd`, or None without git or commits."""
    out = _git(["log", "-1", "--format=%H%n%P%n%D"], cwd)
    if not out:
        return None
    lines = out.split("\n")
    full = lines[0].strip()
    parents = lines[1].split() if len(lines) > 1 else []
    refs = lines[2] if len(lines) > 2 else ""
    branch = None
    for ref in refs.split(","):
        ref = ref.strip()
        if ref.startswith("HEAD -> "):
            branch = ref[len("HEAD -> "):]
    if branch is None:
        branch = "HEAD"  # detached
    return {"branch": branch, "commit": full[:7], "full_commit": full,
            "parent_commit": parents[0][:7] if parents else None,
            "full_parent": parents[0] if parents else None}


def file_at(cwd, commit, path=TRAIN_PY):
    """Text of `path` (relative to the repository top) at `commit`, or None."""
    return _git(["show", f"{commit}:{path}"], cwd)


def patch_from_parent(cwd, commit, path=TRAIN_PY):
    """The diff of `path` from the commit's first parent (or from nothing, for a
    root commit) to the commit, as bytes; b"" when unchanged, None without git."""
    return _git(["diff-tree", "-p", "--root", "--no-commit-id", commit, "--", path], cwd,
                text=False)


def diff_between(cwd, old_commit, new_commit, path=TRAIN_PY):
    """The text diff of `path` from `old_commit` to `new_commit` ("" when equal), or
    None when git or either commit is missing, or is not a hex id (ledger text never
    reaches git's option parser). Used by `compare`."""
    import re
    if not all(isinstance(c, str) and re.fullmatch(r"[0-9a-f]{4,40}", c)
               for c in (old_commit, new_commit)):
        return None
    return _git(["diff", old_commit, new_commit, "--", path], cwd)


def current_branch(tree):
    """The branch checked out in the work tree `tree` ("HEAD" when detached), read
    from its HEAD file without a subprocess; None when `tree` is not a work tree."""
    dot_git = os.path.join(tree, ".git")
    try:
        if os.path.isfile(dot_git):  # a linked worktree: "gitdir: <path>"
            with open(dot_git, encoding="utf-8") as f:
                pointer = f.read().strip()
            if not pointer.startswith("gitdir:"):
                return None
            dot_git = os.path.join(tree, pointer[len("gitdir:"):].strip())
        with open(os.path.join(dot_git, "HEAD"), encoding="utf-8") as f:
            head = f.read().strip()
    except OSError:
        return None
    prefix = "ref: refs/heads/"
    return head[len(prefix):] if head.startswith(prefix) else "HEAD"
