"""The commands as library functions: init, check, log and report.

Each function takes a `Store` and plain values, returns a JSON-ready result dict,
and raises `records.InputError` for bad input before anything is written.
`memorylab.py` only parses arguments, calls these and prints the results.

Data flows one way: sidecar/log/git -> a validated draft record -> novelty
against history -> registry before -> decision packet -> one store transaction
(archive, ledger, results.tsv, registry, index) -> renderings.
"""

import os
from contextlib import contextmanager

from . import claims, gitinfo, records, store as store_module

# How many runs a board may lack for `log` to decide against it: runs that concurrent
# logs appended and are still building the registry for.
CONCURRENT_RUNS = 16


def open_store(root=None, env=None, cwd=None):
    """The store for --root / $MEMORYLAB_ROOT / the git work tree of `cwd`."""
    from . import facts, novelty
    return store_module.Store(
        store_module.find_root(root, env, cwd), enrich=_enrich_row,
        posting_keys=novelty.posting_keys,
        enrich_version=f"{novelty.FEATURES_VERSION}/{facts.FACTS_VERSION}/{novelty.POSTINGS_VERSION}")


def _enrich_row(row):
    """Derived fields of an index row, computed once when the row is indexed instead
    of on every command: current novelty features for a row whose record has none
    (earlier fork's records) or features of an older FEATURES_VERSION or shape, and the
    row facts (`_facts`, facts.row_facts). The parent's constants are
    not in the record, so relative values ("double DEPTH") stay unresolved here
    (base None: the record's own constants are those after the change)."""
    from . import facts, novelty
    if not novelty.is_current(row.get("novelty_features")):
        idea = records.idea_of(row.get("description") or "", row.get("hypothesis"),
                               row.get("family"), row.get("tags") or ())
        row["novelty_features"] = novelty.features(idea, None, row.get("change_set"))
    row["_facts"] = facts.row_facts(row)


# ---------------------------------------------------------------- init

def init_store(store, *, now):
    """Create the layout (idempotent); (re)write the registry when it is missing or
    does not describe the ledger (e.g. after completing a killed log). Returns
    {root, ledger, wrote_registry, runs, bad_lines}."""
    with store.lock():
        store.ensure_layout()
        rows, bad = store.read_rows()
        _, stale = _registry_and_staleness(store, rows, now, write=True)
    return {"root": store.root, "ledger": store.relpath(store.ledger_path),
            "wrote_registry": stale, "runs": len(rows), "bad_lines": bad}


# ---------------------------------------------------------------- train.py

def _working_train_py(cwd):
    tree = gitinfo.work_tree(cwd) or os.path.abspath(cwd or os.getcwd())
    path = os.path.join(tree, gitinfo.TRAIN_PY)
    if not os.path.isfile(path):
        return None, path
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read(), path


CODE_MEMO = "code_memo.marshal"   # fingerprint's memo, in the store's index


@contextmanager
def _code_memo(store):
    """Reads of train.py inside this block use, and extend, the memo of sources read
    by earlier commands (fingerprint.load_memo)."""
    from . import fingerprint
    fingerprint.load_memo(store.read_cache(CODE_MEMO))
    yield
    store.write_cache(CODE_MEMO, fingerprint.memo_state())


def _fingerprint(source):
    from . import fingerprint
    return fingerprint.fingerprint_source(source) if source is not None else None


def _constants(source):
    """train.py's module constants, or None without a train.py or when it does not parse."""
    from . import fingerprint
    try:
        return fingerprint.module_constants(source) if source is not None else None
    except SyntaxError:
        return None


def _planned_code(store, source, code, cwd):
    """(config, constants, change set, problem) of the working train.py (`source`, None
    when there is none). Its constants always: they resolve relative phrases such as
    "double DEPTH". With `code` also its fingerprint (a hash of the tokenized code)
    and its change against the last commit. A train.py that does not parse has
    unknown constants (None, in the config too: not "every constant gone"), and
    `problem` says why it does not parse; else problem is None."""
    with _code_memo(store):
        config = _fingerprint(source) if code else None
        constants = config["constants"] if config else _constants(source)
        change_set = _working_change(cwd, source) if code else None
    if source is None or constants is not None:
        return config, constants, change_set, None
    import ast
    try:
        ast.parse(source)
        problem = "does not parse"
    except SyntaxError as exc:
        problem = exc.msg + (f" (line {exc.lineno})" if exc.lineno else "")
    except ValueError as exc:   # a NUL byte (Python < 3.12)
        problem = str(exc)
    return config, None, change_set, problem


def _working_change(cwd, source):
    """The change of the working train.py against its last commit; None without git,
    or when nothing changed (the description is then all there is to go on)."""
    from . import fingerprint
    tree = gitinfo.work_tree(cwd)
    change = fingerprint.change_set(gitinfo.head_file(tree) if tree else None, source)
    return change if change and (change["constants"] or change["hunks"]) else None


def _champion_config(rows, champion):
    """The config fingerprint of the champion's run, or None."""
    run_id = (champion or {}).get("run_id") if isinstance(champion, dict) else None
    if run_id is None:
        return None
    for row in reversed(rows):
        if row.get("run_id") == run_id:
            return store_module.unpacked(row).get("config")
    return None


def registry_now(store, rows, now, write=False):
    """The registry of `rows`: the registry file when it describes the ledger as it
    is (written by the last writer), else built from the rows. With `write`, a
    rebuilt registry is also written to an initialized store (caller holds the
    exclusive lock)."""
    return _registry_and_staleness(store, rows, now, write)[0]


def _current_rules(registry_file):
    """`registry_file` when it was written under today's rules, else None."""
    from . import facts
    if registry_file is not None and registry_file.get("rules_version") == facts.FACTS_VERSION:
        return registry_file
    return None


def _registry_and_staleness(store, rows, now, write):
    """(registry_now's result, whether the registry file was stale)."""
    current = _current_rules(store.fresh_registry(len(rows), rows))
    if current is not None:
        return current, False  # written by the last writer under the same rules
    from . import registry  # only when stale: `check --code` usually never loads it
    current = registry.build_registry(rows, now=now)
    if write and store.initialized():
        store.write_registry(current)
    return current, True


def _guard_registry(store, guard_rows, now):
    """registry_now for rows read by Store.read_guard_rows: the registry file when it
    describes them, else built from all the fields (which those rows lack)."""
    current = _current_rules(store.fresh_registry(len(guard_rows), guard_rows))
    if current is not None:
        return current
    with store.lock(exclusive=False):
        rows, _ = store.read_rows()
    return registry_now(store, rows, now)


# ---------------------------------------------------------------- check

def _checked_idea(description, hypothesis, family, threshold):
    """The idea's inputs as validated for check and log (InputError when bad)."""
    from . import novelty
    return (records.check_description(description),
            records.check_text(hypothesis, "--hypothesis"),
            records.check_family(family),
            records.check_threshold(novelty.DEFAULT_THRESHOLD if threshold is None else threshold))


def check_idea(store, *, description, tags=(), family=None, hypothesis=None, mode="exploit",
               threshold=None, limit=3, code=False, cwd=None, now=None):
    """The novelty guard for a planned idea. With `code`, the current train.py's
    fingerprint is compared too (identical code => duplicate_run; constant delta
    from the champion's config). Replicates and crashes judge an idea by evidence's
    rules. Returns {"novelty_guard", "bad_lines", "train_py"}."""
    from . import evidence
    description, hypothesis, family, threshold = _checked_idea(
        description, hypothesis, family, threshold)
    records.check_limit(limit)
    source, path = _working_train_py(cwd)
    if code and source is None:
        raise records.InputError(f"--code: no train.py at {path}")
    with store.lock(exclusive=False):
        rows, bad = store.read_guard_rows()   # without the fields only boards read
    config, base_constants, change_set, problem = _planned_code(store, source, code, cwd)
    champion_config = None
    if code:
        champion_config = _champion_config(rows, _guard_registry(store, rows, now).get("champion"))
    idea = records.idea_of(description, hypothesis, family, tags)
    guard = evidence.assess(idea, rows, mode=mode, threshold=threshold, limit=limit,
                            base_constants=base_constants, config=config,
                            champion_config=champion_config, change_set=change_set,
                            plan=not code)
    in_flight = claims.in_flight(store, idea, agent=cwd, now=now,
                                 config=config, base_constants=base_constants,
                                 change_set=change_set)
    return {"novelty_guard": guard, "bad_lines": bad, "runs": len(rows),
            "train_py_problem": problem,
            "train_py": store.relpath(path) if source is not None else None,
            "in_flight": in_flight}


def claim_idea(store, *, description, tags=(), family=None, hypothesis=None, code=False,
               ttl_minutes=claims.DEFAULT_TTL_MINUTES, cwd=None, now):
    """Claim a planned idea for the agent working in `cwd` (claims.py). Refused,
    nothing written, when another agent has the same idea in flight. Returns
    {"claim", "claimed", "in_flight"}."""
    from . import novelty
    description, hypothesis, family, _ = _checked_idea(description, hypothesis, family, None)
    claims.check_ttl(ttl_minutes)
    source, path = _working_train_py(cwd)
    if code and source is None:
        raise records.InputError(f"--code: no train.py at {path}")
    config, base_constants, change_set, problem = _planned_code(store, source, code, cwd)
    idea = records.idea_of(description, hypothesis, family, tags)
    features = novelty.features(idea, base_constants, change_set)  # code is its identity
    claim = claims.make_claim(claims.agent_of(cwd), idea, features, config, now=now,
                              ttl_minutes=ttl_minutes)
    others = claims.add_claim(store, claim, idea, now=now, config=config,
                              base_constants=base_constants, change_set=change_set)
    return {"claim": claim, "claimed": not any(c["same_idea"] for c in others),
            "in_flight": others, "train_py_problem": problem}


# ---------------------------------------------------------------- log

def log_run(store, *, description, status, tags=(), family=None, hypothesis=None, notes=None,
            summary_path=None, log_path=None, error_text=None, mode="exploit", threshold=None,
            limit=3, skip_archive=False, with_report=False, since_hours=16.0,
            noise_factor=2.0, now, cwd=None):
    """Record one finished run (see the module doc for the flow). Validates every
    input before writing; the writes are one transaction under the store lock.
    Returns {"record", "registry", "report_paths", "bad_lines", "warnings"}: once the
    ledger line is appended (the commit point) nothing raises; a failed results.tsv,
    registry or report write becomes a warning and is repaired by the next write."""
    from . import decisions, evidence, novelty, registry
    description, hypothesis, family, threshold = _checked_idea(
        description, hypothesis, family, threshold)
    records.check_since_hours(since_hours)
    records.check_limit(limit)
    records.check_noise_factor(noise_factor)
    inputs = records.gather_inputs(status=status, summary_path=summary_path,
                                   log_path=log_path, error_text=error_text)

    with _code_memo(store):
        git, config, base_constants, patch, change_set = _run_provenance(cwd)
    draft = records.draft_record(now=now, git=git, description=description, status=status,
                                 inputs=inputs, family=family, hypothesis=hypothesis,
                                 tags=tags, notes=notes, config=config, change_set=change_set)
    idea = records.idea_of(description, hypothesis, draft["family"], tags)
    draft["novelty_features"] = novelty.features(idea, base_constants, change_set)

    copies = {}
    if not skip_archive:
        if log_path:
            copies["run.log"] = log_path
        if summary_path:
            copies["summary.json"] = summary_path
    staged = store.stage_archive(copies)
    try:
        if not skip_archive and patch is not None:
            store.write_file(os.path.join(staged, "train.patch"), patch)
        # The board before the run: the registry file when it describes the ledger, or
        # all of it but the last few runs that concurrent logs are still building
        # boards for; else built before the exclusive lock. These rows are read with no
        # lock (held shared while the index loads, it would keep the other writers
        # waiting): they only choose the board; the rows under the lock are the truth.
        rows, _ = store.read_rows()
        registry_before = _current_rules(store.recent_registry(rows, CONCURRENT_RUNS)) or \
            registry_now(store, rows, now)
        with store.lock():
            store.ensure_layout()
            rows_now, bad = store.read_rows()
            if len(rows_now) != len(rows):
                registry_before = _current_rules(store.recent_registry(rows_now, 0)) or \
                    registry_before
            rows = rows_now
            known = {row.get("run_id") for row in rows}
            record = dict(draft)
            record["run_id"] = records.unique_run_id(
                now, record["commit"], lambda run_id: store.taken(run_id, known))
            champion = registry_before.get("champion")
            guard = evidence.assess(
                idea, rows, mode=mode, threshold=threshold, limit=limit,
                base_constants=base_constants, config=config,
                champion_config=_champion_config(rows, champion), change_set=change_set)
            record["novelty_guard"] = guard
            record["role"] = evidence.assign_role(record, rows, guard, mode)
            slim = store_module.slim_row(record, None)
            board = registry.Board(rows + [slim], now=now)  # the one board of this command
            record["decision_packet"] = decisions.decide(record, board, guard,
                                                         noise_factor=noise_factor)
            board.record_decision(store_module.slim_row(record, None)["decision_packet"])
            record["artifacts"] = _artifacts(store, record["run_id"], staged)
            _write_packet(store, staged, record["decision_packet"])
            warnings = store.commit_run(record, staged)
            staged = None  # committed: from here on nothing may fail the command
            ledger_size = store.ledger_size()
        # The registry after the run, built with the lock released and written unless
        # a later writer's is already there.
        after = board.rows
        try:
            registry_after = board.registry
            store.write_registry_if_newer(registry_after, ledger_size)
        except Exception as exc:  # the run is recorded; the next reader rebuilds it
            registry_after = registry_before
            warnings.append(f"the registry was not updated ({type(exc).__name__}: {exc})")
        report_paths = []
        if with_report:
            try:
                with store.lock():
                    rows_now, _ = store.read_rows()
                    board = registry_after if len(rows_now) == len(after) else \
                        registry_now(store, rows_now, now)
                    report_paths = _write_report(store, rows_now, board, now=now,
                                                 since_hours=since_hours)
            except Exception as exc:  # the run is recorded; `report` redoes this
                warnings.append(f"the report was not written ({type(exc).__name__}: {exc})")
    finally:
        if staged is not None:
            import shutil
            shutil.rmtree(staged, ignore_errors=True)
            store.release_staging(staged)
    return {"record": record, "registry": registry_after, "report_paths": report_paths,
            "bad_lines": bad, "warnings": warnings}


def _run_provenance(cwd):
    """(git context or None, config fingerprint of train.py at the run's commit,
    constants before the change, train.py patch from the parent, change set from the
    parent: ``fingerprint.change_set``). Without git: the working train.py, no patch
    and no change set."""
    from . import fingerprint
    tree = gitinfo.work_tree(cwd)
    git = gitinfo.head_context(tree) if tree else None
    if git is None:
        config = _fingerprint(_working_train_py(cwd)[0])
        return None, config, (config or {}).get("constants"), None, None
    source = gitinfo.file_at(tree, git["full_commit"])
    config = _fingerprint(source)
    base, change_set = config, None
    if git["full_parent"]:
        parent = gitinfo.file_at(tree, git["full_parent"])
        base = _fingerprint(parent) or config
        change_set = fingerprint.change_set(parent, source)
    patch = gitinfo.patch_from_parent(tree, git["full_commit"])
    return git, config, (base or {}).get("constants"), patch, change_set


def _artifacts(store, run_id, staged):
    """{name: path relative to the root} of the files the run's folder will hold."""
    names = sorted(os.listdir(staged)) + ["decision_packet.json", "decision_packet.md"]
    folder = store.relpath(store.run_dir(run_id))
    artifacts = {"run_dir": folder}
    for name in names:
        artifacts[name.replace(".", "_")] = os.path.join(folder, name)
    return artifacts


def _write_packet(store, staged, packet):
    from . import render
    store.write_file(os.path.join(staged, "decision_packet.json"),
                     store_module.to_json(packet) + "\n")
    store.write_file(os.path.join(staged, "decision_packet.md"),
                     render.render_packet_markdown(packet))


# ---------------------------------------------------------------- report

def make_report(store, *, now, since_hours=16.0, output=None):
    """Render the morning report from the ledger: reports/latest.md, a timestamped
    copy, latest.json and latest.html; or only `output` when given. A registry
    file that does not describe the ledger as it is (hand edits, a killed log) is
    rebuilt and rewritten. Returns {"paths",
    "report", "bad_lines"}."""
    records.check_since_hours(since_hours)
    records.check_output(output)
    with store.lock():
        rows, bad = store.read_rows_lean()   # a report compares no ideas
        current = registry_now(store, rows, now, write=True)
        paths, data = _write_report(store, rows, current, now=now, since_hours=since_hours,
                                    output=output, with_data=True)
    return {"paths": paths, "report": data, "bad_lines": bad}


def _write_report(store, rows, current, *, now, since_hours, output=None, with_data=False):
    from . import html, render
    data = render.report_data(rows, current, now=now, since_hours=since_hours)
    markdown = render.render_markdown(data)
    # latest.json holds one point per run: compact, so the C encoder writes it.
    extra = {} if output else {"latest.json": store_module.to_json(data, indent=None) + "\n",
                               "latest.html": html.render_html(data)}
    paths = store.write_report(markdown, records.compact_stamp(now), output=output,
                               extra=extra)
    paths = [store.relpath(p) if not output else p for p in paths]
    return (paths, data) if with_data else paths
