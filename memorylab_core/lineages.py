"""Lineages: runs grouped by the commit their line of work started from.

A run's lineage root is found by following ``parent_commit`` while the parent is itself a
commit in the ledger (commits compared by their first 7 characters; cycles stop where
they close). Lineages are ranked by their best val_bpb among the runs allowed to rank
(the registry passes the runs of the current comparability class; lineages without one
last, then by size); the top few are listed with runs, unique commits, kept runs and
best run. Pure and linear in the number of rows.
"""

import heapq

from memorylab_core.fields import run_entry, short_commit, status_of, val_bpb_of

LINEAGE_COUNT = 5


def lineage_roots(rows, commits=None, parents=None):
    """{short commit: short root commit} following parent commits through the ledger.
    ``commits`` and ``parents`` (short_commit of each row's commit and parent_commit)
    save recomputing."""
    commits = [short_commit(row.get("commit")) for row in rows] if commits is None else commits
    parent = {}
    for index, commit in enumerate(commits):
        if commit and commit not in parent:
            parent[commit] = short_commit(rows[index].get("parent_commit")) \
                if parents is None else parents[index]
    root, visiting = {}, set()
    for start in parent:
        if start in root:
            continue
        up = parent[start]
        if not up or up not in parent:  # a root: the common case, no walk
            root[start] = start
            continue
        if up in root:  # the parent's line is known (ledger order: parents come first)
            root[start] = root[up]
            continue
        path, node = [], start
        while True:
            found = root.get(node)
            if found is not None:
                break
            if node in visiting:  # a cycle closes here
                found = node
                break
            visiting.add(node)
            path.append(node)
            up = parent[node]
            if not up or up not in parent:
                found = node
                break
            node = up
        for node in path:
            root[node] = found
        visiting.clear()
    return root


def lineages(rows, count=LINEAGE_COUNT, ranks=None, statuses=None, values=None,
             commits=None, parents=None):
    """The ``count`` best lineages. ``ranks`` (a list of bools, one per row) limits which
    runs may be a lineage's best run (e.g. only runs of the current comparability class).
    ``statuses``, ``values``, ``commits`` and ``parents`` (status_of, val_bpb_of and the
    short commit and parent of each row) save recomputing."""
    statuses = [status_of(row) for row in rows] if statuses is None else statuses
    values = [val_bpb_of(row) for row in rows] if values is None else values
    commits = [short_commit(row.get("commit")) for row in rows] if commits is None else commits
    roots = lineage_roots(rows, commits, parents)
    groups = {}  # root -> [runs, kept, best value, best index, unique commits, branches]
    for commit, root in roots.items():
        group = groups.get(root)
        if group is None:
            group = groups[root] = [0, 0, None, None, 0, set()]
        group[4] += 1
    for index, row in enumerate(rows):
        commit = commits[index]
        root = roots.get(commit) or "(no commit)"
        group = groups.get(root)
        if group is None:
            group = groups[root] = [0, 0, None, None, 0, set()]
        group[0] += 1
        branch = row.get("branch")
        if branch and type(branch) is str and len(group[5]) < 5:
            group[5].add(branch)
        status = statuses[index]
        if status == "keep":
            group[1] += 1
        elif status != "discard":
            continue
        if ranks is not None and not ranks[index]:
            continue
        value = values[index]
        if value is not None and (group[2] is None or value < group[2]):
            group[2], group[3] = value, index

    def order(item):
        root, (runs, _, best, _, _, _) = item
        return (best is None, best or 0.0, -runs, root)

    result = []
    for root, (runs, kept, best, best_index, unique, branches) in heapq.nsmallest(
            count, groups.items(), key=order):
        result.append({
            "root_commit": root,
            "runs": runs,
            "unique_commits": unique,
            "kept_runs": kept,
            "best_run": run_entry(rows[best_index]) if best_index is not None else None,
            "best_val_bpb": best,
            "branches": sorted(branches),
        })
    return result

