"""Git provenance of a run: where the work tree is, which commit ran, train.py then.

Every function degrades to None (never raises) when git or the repository is
missing, so MemoryLab also works in a plain directory.
"""

import os
import re

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


def commit_times(cwd, commits):
    """{commit as given: committer time (ISO 8601)} for the given hexadecimal commit
    ids (full or abbreviated) that exist in the repository at `cwd`; two git calls
    whatever their number. {} without git."""
    commits = sorted({c for c in commits if re.fullmatch(r"[0-9a-fA-F]{4,40}", c)})
    if not commits:
        return {}
    out = _git(["cat-file", "--batch-check=%(objectname) %(objecttype)"], cwd,
               stdin="\n".join(commits) + "\n")
    if out is None:
        return {}
    full = {}
    for given, line in zip(commits, out.split("\n")):
        parts = line.split()
        if len(parts) == 2 and parts[1] == "commit":
            full[given] = parts[0]
    if not full:
        return {}
    out = _git(["show", "-s", "--no-walk=unsorted", "--stdin", "--format=%H %cI"], cwd,
               stdin="\n".join(sorted(set(full.values()))) + "\n")
    times = dict(line.split(" ", 1) for line in (out or "").split("\n") if " " in line)
    return {given: times[f] for given, f in full.items() if f in times}


def _git(args, cwd, text=True, stdin=None):
    """git's stdout (text decoded as UTF-8, a bad byte becoming U+FFFD: a committed
    train.py or message need not be UTF-8), or None when git fails."""
    import subprocess
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=60,
                              input=stdin.encode("utf-8") if stdin is not None else None)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    if not text:
        return done.stdout
    out = done.stdout.decode("utf-8", errors="replace")
    return out.replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it


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


def head_file(cwd, path=TRAIN_PY):
    """Text of `path` (a file at the repository top) at HEAD, or None. Read from git's
    loose objects when HEAD's commit, tree and blob are all loose (as after a fresh
    commit): no subprocess, which `check --code` would otherwise pay on every call.
    Anything else (packed objects, odd layouts) asks git."""
    text = _loose_head_file(cwd, path)
    return text if text is not None else file_at(cwd, "HEAD", path)


def _loose_head_file(cwd, path):
    import zlib
    git_dir = os.path.join(cwd, ".git")
    try:
        if os.path.isfile(git_dir):   # a linked worktree: refs may live elsewhere, let git answer
            return None
        with open(os.path.join(git_dir, "HEAD"), encoding="ascii") as f:
            head = f.read().strip()
        sha = head
        if head.startswith("ref: "):
            with open(os.path.join(git_dir, head[5:]), encoding="ascii") as f:
                sha = f.read().strip()

        def loose(sha, kind):
            with open(os.path.join(git_dir, "objects", sha[:2], sha[2:]), "rb") as f:
                header, _, body = zlib.decompress(f.read()).partition(b"\0")
            if not header.startswith(kind + b" "):
                raise ValueError(sha)
            return body
        tree = loose(sha, b"commit").split(b"\n", 1)[0].split(b" ")[1].decode("ascii")
        body, name = loose(tree, b"tree"), path.encode("utf-8")
        while body:   # entries: b"<mode> <name>\0" and 20 bytes of object id
            head_end = body.index(b"\0")
            mode, _, entry = body[:head_end].partition(b" ")
            if entry == name and not mode.startswith(b"4"):
                return loose(body[head_end + 1:head_end + 21].hex(), b"blob").decode("utf-8", "replace")
            body = body[head_end + 21:]
        return None
    except (OSError, ValueError, IndexError, zlib.error):
        return None


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
