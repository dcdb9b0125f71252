#!/usr/bin/env python3
"""MemoryLab command line: argparse wiring and output formatting only.

    python memorylab.py init
    python memorylab.py check --description TEXT [--code] [--fail-on-similar] [--json]
    python memorylab.py log --description TEXT --status keep|discard|crash [...] [--json]
    python memorylab.py report [--since-hours 16] [--output PATH] [--json]

Exit codes: 0 ok, 1 error (`error: <message>` on stderr, nothing written),
2 blocked by `check --fail-on-similar`, 3 `doctor` found problems. Once `log` has
appended its run to the ledger it exits 0: a failed derived file is a warning.
Reference: docs/memorylab_api.md.
"""

import argparse
import json
import os
import sys

# argparse's own words ("usage:", "error:", "the following arguments are required")
# stay English whatever the locale: agents parse them, and looking a translation up
# imports locale on every command
argparse._ = str
argparse.ngettext = lambda singular, plural, count: singular if count == 1 else plural

EXIT_OK, EXIT_ERROR, EXIT_BLOCKED = 0, 1, 2
EXIT_PROBLEMS = 3  # doctor: problems found that `doctor --repair` fixes
MAX_WARNINGS = 20
PATH_ARGS = ("root", "summary", "log", "output", "path")
POSITIONALS = {"ref": "RUN", "run_a": "RUN_A", "run_b": "RUN_B"}   # their metavars
MODES = ("explore", "exploit", "replicate")  # == novelty.MODES (kept here: no import at parse time)


# ---------------------------------------------------------------- output helpers

def _finite(obj):
    """`obj` with every NaN/±Infinity float replaced by None (records from an earlier
    fork may hold them; bare NaN is not JSON, so strict parsers would reject it)."""
    if isinstance(obj, float):
        return obj if obj - obj == 0 else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    return obj


def _emit_json(obj):
    """One strictly valid JSON object on stdout (non-finite numbers become null)."""
    try:
        text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(obj), indent=2, ensure_ascii=False, allow_nan=False)
    print(text)


def _warn_bad_lines(bad):
    for number, problem in bad[:MAX_WARNINGS]:
        print(f"warning: experiments.jsonl line {number}: {problem}", file=sys.stderr)
    if len(bad) > MAX_WARNINGS:
        print(f"warning: experiments.jsonl: {len(bad) - MAX_WARNINGS} more bad lines "
              "(not shown)", file=sys.stderr)


def _warn_train_py(result):
    """The warning for a working train.py that does not parse (check, claim)."""
    if result.get("train_py_problem"):
        print(_one_line(f"warning: {result.get('train_py') or 'train.py'} does not parse: "
                        f"{result['train_py_problem']}; a run of it would crash at once, and "
                        "its constants are unknown (judged by its code hash and description)"),
              file=sys.stderr)


def _num(value, digits=6):
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and \
        not isinstance(value, bool) else "-"


def _one_line(text):
    """Agent-written text made safe to print on one line (views.one_line)."""
    from memorylab_core.views import one_line
    return one_line(text)


def _bad_lines_json(bad):
    return [{"line": number, "problem": problem} for number, problem in bad]


def _champion_line(champion):
    from memorylab_core.render import champion_line
    return _one_line(champion_line(champion))


def _guard_lines(guard):
    counts = guard.get("counts") or {}
    policy = guard.get("policy") or {}
    lines = [
        f"Classification: {guard.get('classification')}",
        f"Policy ({guard.get('mode')} mode): {policy.get('decision')}: {policy.get('rationale')}",
        f"Effective threshold: {_num(guard.get('effective_threshold'), 3)} "
        f"(base {_num(guard.get('threshold'), 3)})",
        "Counts: " + ", ".join(f"{name}={count}" for name, count in counts.items()),
    ]
    delta = guard.get("config_delta")
    if delta:
        lines.append("Config delta vs champion: " + "; ".join(
            f"{d.get('name')} {d.get('old')!r} -> {d.get('new')!r}" for d in delta))
    matches = guard.get("top_matches") or []
    fix_of = guard.get("fix_of")
    if isinstance(fix_of, dict):
        lines.append(f"Fix of crashed run {fix_of.get('run_id')} ({fix_of.get('commit')}): "
                     f"{fix_of.get('error')}")
    if guard.get("match_count"):
        lines.append("Closest prior runs:")
        for match in matches:
            lines.append(
                f"  {match.get('category') or '-'}  score {_num(match.get('score'), 3)}  "
                f"{match.get('run_id')}  {match.get('commit')}  {match.get('status')}  "
                f"val_bpb {_num(match.get('val_bpb'))}  {match.get('description') or ''}")
    elif not isinstance(fix_of, dict):
        lines.append("Nothing close matched: no prior run at or above the effective threshold.")
    explanation = guard.get("explanation")
    if isinstance(explanation, str) and explanation:
        lines.append(f"Why: {explanation}")
    elif isinstance(explanation, list):
        lines.extend(f"Why: {item}" for item in explanation if isinstance(item, str))
    elif isinstance(explanation, dict) and isinstance(explanation.get("text"), str):
        lines.append(f"Why: {explanation['text']}")
    return [_one_line(line) for line in lines]


# ---------------------------------------------------------------- commands

def _tags(text):
    from memorylab_core import records
    return records.parse_tags(text)


def cmd_init(args, store, now):
    from memorylab_core import lab
    result = lab.init_store(store, now=now)
    _warn_bad_lines(result["bad_lines"])
    print(f"MemoryLab store ready at {store.root} ({result['runs']} runs in "
          f"{result['ledger']})")
    return EXIT_OK


def cmd_check(args, store, now):
    from memorylab_core import lab
    result = lab.check_idea(store, description=args.description, tags=_tags(args.tags),
                            family=args.family, hypothesis=args.hypothesis, mode=args.mode,
                            threshold=args.threshold, limit=args.limit, code=args.code,
                            cwd=args.cwd, now=now)
    _warn_bad_lines(result["bad_lines"])
    _warn_train_py(result)
    guard = result["novelty_guard"]
    in_flight = result["in_flight"]
    same = [claim for claim in in_flight if claim["same_idea"]]
    blocked = args.fail_on_similar and (
        (guard.get("policy") or {}).get("decision") == "block" or bool(same))
    if args.json:
        _emit_json({"novelty_guard": guard, "blocked": blocked, "runs": result["runs"],
                    "train_py": result["train_py"], "train_py_problem": result["train_py_problem"],
                    "in_flight": in_flight,
                    "bad_lines": _bad_lines_json(result["bad_lines"])})
    else:
        print("\n".join(_guard_lines(guard)
                        + _claim_lines(in_flight, "In flight (other agents):")))
        if blocked:
            print(_one_line(f"Blocked (--fail-on-similar): {same[0]['agent']} has the same "
                            "idea in flight.") if same else "Blocked (--fail-on-similar).")
    return EXIT_BLOCKED if blocked else EXIT_OK


def _claim_lines(claims, heading):
    """A heading and one line per live claim (none when there are no claims)."""
    if not claims:
        return []
    lines = [heading]
    for claim in claims:
        mark = "SAME IDEA  " if claim.get("same_idea") else ""
        where = f" (store {claim['origin']})" if claim.get("origin") else ""
        lines.append(_one_line(f"  {mark}{claim.get('claim_id')}  until {claim.get('expires_at')}"
                               f"  {claim.get('agent')}{where}: {claim.get('description') or ''}"))
    return lines


def cmd_claim(args, store, now):
    from memorylab_core import lab
    result = lab.claim_idea(store, description=args.description, tags=_tags(args.tags),
                            family=args.family, hypothesis=args.hypothesis, code=args.code,
                            ttl_minutes=args.ttl_minutes, cwd=args.cwd, now=now)
    claim, others = result["claim"], result["in_flight"]
    _warn_train_py(result)
    if args.json:
        _emit_json(result)
    elif result["claimed"]:
        print(_one_line(f"Claimed {claim['claim_id']} for {claim['agent']['id']} until "
                        f"{claim['expires_at']}: {claim['description']}"))
        for line in _claim_lines(others, "Also in flight (other agents):"):
            print(line)
    else:
        print("\n".join(_claim_lines(others, "In flight (other agents):")))
        print("Not claimed: another agent has the same idea in flight.")
    return EXIT_OK if result["claimed"] else EXIT_BLOCKED


def cmd_sync(args, store, now):
    mirror = _mirror(args, store, now, args.env)
    if mirror is None:
        from memorylab_core.records import InputError
        raise InputError("sync needs --tracking-uri or MEMORYLAB_TRACKING_URI")
    counts = mirror.sync(full=args.full)
    _print_skipped(counts)
    if counts["warnings"]:  # what was done before the failure stays done
        print(_one_line(f"error: {counts['warnings'][0]}"), file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        _emit_json(dict(counts, tracking_uri=mirror.uri, experiment=mirror.experiment))
    elif counts["busy"]:
        print("Another process of this store is syncing; nothing done.")
    else:
        print(f"Synced with {mirror.uri} (experiment {mirror.experiment}): pushed "
              f"{counts['pushed']} runs, pulled {counts['pulled']} runs; claims opened "
              f"{counts['claims_opened']}, closed {counts['claims_closed']}, in flight "
              f"elsewhere {counts['claims_in_flight'] or 0}")
    return EXIT_OK


def cmd_log(args, store, now):
    from memorylab_core import lab
    from memorylab_core.fields import memory_gb_of
    result = lab.log_run(
        store, description=args.description, status=args.status, tags=_tags(args.tags),
        family=args.family, hypothesis=args.hypothesis, notes=args.notes,
        summary_path=args.summary, log_path=args.log, error_text=args.error, mode=args.mode,
        threshold=args.threshold, limit=args.limit, skip_archive=args.skip_archive,
        with_report=args.report, since_hours=args.since_hours,
        noise_factor=args.noise_factor, now=now, cwd=args.cwd)
    _warn_bad_lines(result["bad_lines"])
    record, registry = result["record"], result["registry"]
    for problem in result["warnings"]:  # after the commit point: the run is recorded
        print(_one_line(f"warning: run {record['run_id']} was recorded, but {problem}; "
                        "it is repaired on the next write"), file=sys.stderr)
    packet = record["decision_packet"] or {}
    metrics = record["metrics"]
    guard = record["novelty_guard"] or {}
    champion = registry.get("champion")
    if args.json:
        _emit_json({"run_id": record["run_id"], "status": record["status"],
                    "val_bpb": metrics.get("val_bpb"),
                    "memory_gb": memory_gb_of(record),
                    "novelty_guard": guard, "decision_packet": packet,
                    "champion": champion, "artifacts": record["artifacts"],
                    "report_paths": result["report_paths"], "warnings": result["warnings"],
                    "bad_lines": _bad_lines_json(result["bad_lines"])})
        return EXIT_OK
    memory = memory_gb_of(record)
    print(f"Logged run {record['run_id']}")
    print(f"Status: {record['status']}  val_bpb: {_num(metrics.get('val_bpb'))}  "
          f"memory: {_num(memory, 1)} GB")
    if guard.get("classification") not in (None, "novel"):
        policy = guard.get("policy") or {}
        print(_one_line(f"Novelty: {guard.get('classification')} (policy "
                        f"{policy.get('decision')}: {policy.get('rationale')})"))
    print(_one_line(f"Decision packet: action={packet.get('next_action')} "
                    f"priority={packet.get('priority')} summary={packet.get('summary')}"))
    print(_champion_line(champion))
    for path in result["report_paths"]:
        print(f"Report: {path}")
    return EXIT_OK


def cmd_report(args, store, now):
    from memorylab_core import lab
    result = lab.make_report(store, now=now, since_hours=args.since_hours, output=args.output)
    _warn_bad_lines(result["bad_lines"])
    data = result["report"]
    headline = data.get("headline") or {}
    if args.json:
        _emit_json({"paths": result["paths"], "generated_at_utc": data.get("generated_at_utc"),
                    "window": data.get("window"), "headline": headline,
                    "experiments": data.get("experiments"),
                    "bad_lines": _bad_lines_json(result["bad_lines"])})
        return EXIT_OK
    counts = headline.get("status_counts") or {}
    print(f"Morning report: {headline.get('experiments', 0)} experiments in the last "
          f"{args.since_hours:g} h (keep / discard / crash: {counts.get('keep', 0)} / "
          f"{counts.get('discard', 0)} / {counts.get('crash', 0)})")
    print(_champion_line(headline.get("champion")))
    for path in result["paths"]:
        print(f"Wrote {path}")
    return EXIT_OK


# ---------------------------------------------------------------- query and repair commands

def _json_or_text(args, data, text):
    bad = data.get("bad_lines") or []
    _warn_bad_lines(bad)
    data["bad_lines"] = _bad_lines_json(bad)
    if args.json:
        _emit_json(data)
    else:
        print(text)
    return EXIT_OK


def cmd_show(args, store, now):
    from memorylab_core import queries, views
    data = queries.show_run(store, args.ref, now=now)
    text = views.format_show(data["run"], data["files"])
    if data["missing_files"]:
        text += "\n  missing: " + ", ".join(data["missing_files"])
    return _json_or_text(args, data, text)


def cmd_list(args, store, now):
    from memorylab_core import queries, views
    if args.claims:
        from memorylab_core import claims
        live = [claims.summary(c) for c in claims.all_claims(store, now)]
        text = "\n".join(_claim_lines(live, "Live claims:")) or "No live claims."
        return _json_or_text(args, {"claims": live}, text)
    data = queries.list_runs(store, now=now, status=args.status, family=args.family,
                             tag=args.tag, since_hours=args.since_hours, limit=args.limit)
    text = views.format_list(data["runs"])
    if data["matched"] > len(data["runs"]):
        text += f"\n({len(data['runs'])} of {data['matched']} matching runs shown)"
    return _json_or_text(args, data, text)


def cmd_compare(args, store, now):
    from memorylab_core import queries, views
    data = queries.compare(store, args.run_a, args.run_b, now=now, cwd=args.cwd)
    return _json_or_text(args, data, views.format_compare(data, data["train_py_diff"]))


def cmd_brief(args, store, now):
    from memorylab_core import claims, queries, views
    data = queries.brief(store, now=now, last=args.last)
    data["in_flight"] = [claims.summary(c) for c in claims.all_claims(store, now)]
    text = "\n".join([views.format_brief(data)]
                     + _claim_lines(data["in_flight"], "In flight (live claims):"))
    return _json_or_text(args, data, text)


def cmd_doctor(args, store, now):
    from memorylab_core import doctor
    if args.repair:
        data = doctor.repair(store, now=now)
        left = data["after"]["problems"]
        text = doctor.format_findings(data, repaired=data)
    else:
        data = doctor.diagnose(store, now=now)
        left = data["problems"]
        text = doctor.format_findings(data)
    if args.json:
        _emit_json(data)
    else:
        print(text)
    return EXIT_PROBLEMS if left else EXIT_OK


def cmd_import_tsv(args, store, now):
    from memorylab_core import importer
    data = importer.import_tsv(store, args.path, now=now, dry_run=args.dry_run,
                               strict=args.strict, class_name=args.class_name)
    for problem in data["warnings"]:
        print(_one_line(f"warning: the last imported batch was recorded, but {problem}; "
                        "the rows after it were not imported: run import-tsv again"),
              file=sys.stderr)
    for bad in data["bad_rows"]:
        print(_one_line(f"warning: line {bad['line']} skipped: {bad['problem']}"),
              file=sys.stderr)
    verb = "Would import" if args.dry_run else "Imported"
    text = (f"{verb} {len(data['imported'])} of {data['rows']} rows from {data['source']} "
            f"({data['skipped']} already in the ledger"
            + (f", {len(data['bad_rows'])} bad rows skipped)" if data["bad_rows"] else ")"))
    return _json_or_text(args, data, text)


# ---------------------------------------------------------------- parser

# What `memorylab.py COMMAND --help` explains beyond the flags: a description and one
# example per command. A new command adds its entry here (tests/test_docs_cli.py checks).
COMMAND_HELP = {
    "init": (
        "Create the store under the root: results/memorylab/ (ledger experiments.jsonl, "
        "registry champion_challenger.json, reports/, runs/) and results.tsv. Idempotent; "
        "log creates the same files itself, so init is optional.",
        "python3 memorylab.py init"),
    "check": (
        "Novelty guard for a planned idea, before you run it: compares the idea with every "
        "logged run and prints the classification (novel, duplicate_run, repeat_failure, "
        "incremental_followup, known_success), the policy decision for --mode, and the "
        "closest prior runs. Reads only. With --code the current train.py's configuration "
        "is compared too.",
        'python3 memorylab.py check --description "raise MATRIX_LR to 0.05" --code '
        "--fail-on-similar"),
    "log": (
        "Record one finished run: its metrics, git context, a novelty verdict, and a "
        "decision packet with the next action; appends to the ledger and results.tsv and "
        "archives the log, summary and train.py patch under results/memorylab/runs/.\n\n"
        "keep and discard need val_bpb and peak_vram_mb, read from --summary (train.py's "
        "sidecar) or else from the summary lines at the end of --log; crash needs neither "
        "(--error or the log's last lines describe it). A --summary older than --log by "
        "more than 2 s is refused as a stale sidecar from an earlier run.",
        "AUTORESEARCH_SUMMARY_PATH=results/summary.json uv run train.py > run.log 2>&1\n"
        '  python3 memorylab.py log --status keep --description "MATRIX_LR 0.04 -> 0.05" '
        "\\\n      --summary results/summary.json --log run.log"),
    "report": (
        "Render the morning report of the runs logged in the last --since-hours hours. "
        "Writes results/memorylab/reports/latest.md, latest.html (with the progress "
        "chart), latest.json and a timestamped copy YYYYMMDDTHHMMSSZ.md, all under the "
        "store root; with --output, only the markdown, to that path.",
        "python3 memorylab.py report --since-hours 12"),
    "show": (
        "Show one run: its record, decision packet and archived files.",
        "python3 memorylab.py show champion"),
    "list": (
        "List runs, newest first, optionally filtered.",
        "python3 memorylab.py list --status keep,discard --limit 5"),
    "compare": (
        "Compare two runs: metric deltas, the constants that differ and the train.py "
        "diff between their commits.",
        "python3 memorylab.py compare champion 20261122T011000Z"),
    "brief": (
        "One screen to start or resume a session: the champion, the noise floor, the "
        "last decisions, failure clusters to avoid and the next recommended action.",
        "python3 memorylab.py brief --json"),
    "doctor": (
        "Check the ledger, registry and run archives; exit 3 when problems are found. "
        "--repair quarantines unreadable ledger lines, renews duplicate run ids and "
        "rewrites the registry.",
        "python3 memorylab.py doctor --repair"),
    "import-tsv": (
        "Import an upstream results.tsv into the ledger; rows already imported are "
        "skipped, so it can be run again.",
        "python3 memorylab.py import-tsv results.tsv --dry-run"),
    "claim": (
        "Claim a planned idea for this agent (host, worktree, branch) before running it, "
        "so that other agents sharing the store or the tracking server see it in flight. "
        "Exit 2, nothing recorded, when another agent has the same idea in flight; log "
        "releases the claim; it expires after --ttl-minutes.",
        'python3 memorylab.py claim --description "raise MATRIX_LR to 0.05" --code'),
    "sync": (
        "Push this store's runs and claims to the MLflow tracking server and pull the "
        "runs and live claims of other stores; prints the counts.",
        "python3 memorylab.py sync --tracking-uri http://127.0.0.1:5000"),
}


class _Parser(argparse.ArgumentParser):
    """Usage errors follow the CLI's convention: `error: <message>`, exit 1."""

    def error(self, message):
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        sys.exit(EXIT_ERROR)

    def format_help(self):
        """The help, with a command's description wrapped to 78 columns paragraph by
        paragraph (done here, not when the parser is built: most runs show no help)."""
        if self.description and getattr(self, "wrap_description", False):
            import textwrap
            self.description = "\n\n".join(textwrap.fill(part, 78, break_on_hyphens=False)
                                             for part in self.description.split("\n\n"))
        return super().format_help()


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, sized without importing shutil: argparse makes one for
    every add_argument, and shutil (imported for the terminal's width alone) costs
    several ms of every command."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        super().__init__(prog, indent_increment, max_help_position,
                         _columns() - 2 if width is None else width)


def _columns():
    """shutil.get_terminal_size().columns: $COLUMNS, else the terminal's, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _parent():
    """A parser of shared arguments, for `parents=`."""
    return argparse.ArgumentParser(add_help=False, formatter_class=_Formatter)


class _Unbuilt:
    """Stands in for the parser of a command that is not running: its arguments are
    never built (building every command's parser is a tenth of a short command's
    work). The running command's own help and errors do not list the others."""

    def add_argument(self, *args, **kwargs):
        pass

    def set_defaults(self, **kwargs):
        pass


def command_of(argv):
    """The command named by `argv` (skipping --root, or an abbreviation of it, and
    its value), or None: also for a help flag before the command or `--`, whose
    answers list every command."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("-h", "--help", "--"):
            return None
        elif arg.startswith("-"):
            skip = "=" not in arg and len(arg) > 2 and "--root".startswith(arg)
        else:
            return arg
    return None


def build_parser(command=None):
    """The whole command line; with `command`, only that command's parser is built
    (a run of one command never needs the others')."""
    common = _parent()
    common.add_argument("--root", default=argparse.SUPPRESS, metavar="PATH",
                        help="store root (see memorylab.py --help)")
    as_json = _parent()
    as_json.add_argument("--json", action="store_true",
                         help="print one JSON object on stdout instead of text")
    idea = _parent()
    idea.add_argument("--description", required=True, help="what the run changes")
    idea.add_argument("--tags", default="",
                      help="comma- or space-separated tags (lower-cased)")
    idea.add_argument("--family", default=None, help="idea family (default: general)")
    idea.add_argument("--hypothesis", default=None, help="why it should help")
    idea.add_argument("--mode", choices=MODES, default="exploit",
                      help="novelty policy mode (default: exploit)")
    idea.add_argument("--threshold", type=float, default=None,
                      help="base similarity threshold in [0, 1] (default: 0.62)")
    idea.add_argument("--limit", type=int, default=3, help="closest runs to show (default: 3)")

    tracking = _parent()
    tracking.add_argument("--tracking-uri", default=None,
                          help="mirror the store on this MLflow tracking server "
                               "(default: $MEMORYLAB_TRACKING_URI; none: no mirror)")
    tracking.add_argument("--experiment", default=None,
                          help="MLflow experiment shared by the team (default: "
                               "$MEMORYLAB_EXPERIMENT, else the campaign of an "
                               "autoresearch/<tag> branch, else memorylab)")

    parser = _Parser(
        prog="memorylab.py", formatter_class=_Formatter,
        description="MemoryLab: research memory for autoresearch. log records every run in "
                    "an\nappend-only ledger, check guards against repeating an idea, report "
                    "writes the\nmorning report. `memorylab.py COMMAND --help` explains a "
                    "command, with an example.",
        epilog="exit codes: 0 ok; 1 error (one `error:` line on stderr); 2 blocked by "
               "check\n  --fail-on-similar; 3 doctor found problems\n"
               "environment: MEMORYLAB_ROOT (store root), MEMORYLAB_NOW (an ISO 8601 UTC "
               "time used\n  instead of the clock), MEMORYLAB_TRACKING_URI and "
               "MEMORYLAB_EXPERIMENT (the MLflow\n  tracking server and its experiment)\n"
               "reference: docs/memorylab_api.md")
    parser.add_argument("--root", default=None, metavar="PATH",
                        help="store root, before or after the command (default: "
                             "$MEMORYLAB_ROOT, else the git top-level of the current "
                             "directory, else the current directory)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # none: print the help

    def add_parser(name, parents=(), **kwargs):
        if command is not None and name != command:
            return _Unbuilt()
        return sub.add_parser(name, parents=list(parents), formatter_class=_Formatter,
                              **kwargs)

    p = add_parser("init", parents=[common], help="create the store (idempotent)")
    p.set_defaults(run=cmd_init)

    p = add_parser("check", parents=[common, as_json, idea, tracking],
                       help="novelty guard for a planned idea")
    p.add_argument("--code", action="store_true",
                   help="also compare the current train.py's config fingerprint")
    p.add_argument("--fail-on-similar", action="store_true",
                   help="exit 2 when the policy decision is block, or another agent "
                        "has the same idea in flight")
    p.set_defaults(run=cmd_check)

    p = add_parser("log", parents=[common, as_json, idea, tracking],
                       help="record a finished run")
    p.add_argument("--status", required=True, choices=("keep", "discard", "crash"),
                   help="keep (better than the best so far), discard, or crash (no result)")
    p.add_argument("--notes", default=None, help="free-form notes")
    p.add_argument("--summary", default=None,
                   help="train.py's summary sidecar (JSON), the file named by "
                        "AUTORESEARCH_SUMMARY_PATH when the run was started")
    p.add_argument("--log", default=None, help="the run's log (metrics parsed from its tail "
                                               "when no --summary; archived)")
    p.add_argument("--error", default=None, help="crash: one-line error summary")
    p.add_argument("--skip-archive", action="store_true",
                   help="do not copy the log, summary and patch into runs/<run_id>/")
    p.add_argument("--report", action="store_true", help="refresh the morning report too")
    p.add_argument("--since-hours", type=float, default=16.0,
                   help="report window with --report, hours > 0 (default: 16)")
    p.add_argument("--noise-factor", type=float, default=2.0,
                   help="promote needs a gain of at least this many noise sigmas, "
                        "a finite number > 0 (default: 2)")
    p.set_defaults(run=cmd_log)

    p = add_parser("claim", parents=[common, as_json, tracking],
                       help="claim an idea this agent is about to run (exit 2: taken)")
    p.add_argument("--description", required=True, help="what the run will change")
    p.add_argument("--tags", default="", help="comma- or space-separated tags (lower-cased)")
    p.add_argument("--family", default=None, help="idea family (default: general)")
    p.add_argument("--hypothesis", default=None, help="why it should help")
    p.add_argument("--code", action="store_true",
                   help="also record the current train.py's fingerprint")
    p.add_argument("--ttl-minutes", type=float, default=20.0,
                   help="the claim expires after this many minutes (default: 20)")
    p.set_defaults(run=cmd_claim)

    p = add_parser("sync", parents=[common, as_json, tracking],
                       help="push runs and claims to the tracking server, pull the others'")
    p.add_argument("--full", action="store_true",
                   help="pull every run of the experiment, not only those since the last pull")
    p.set_defaults(run=cmd_sync)

    p = add_parser("report", parents=[common, as_json, tracking],
                       help="render the morning report")
    p.add_argument("--since-hours", type=float, default=16.0,
                   help="window in hours (default: 16)")
    p.add_argument("--output", default=None, help="write the markdown only to this path")
    p.set_defaults(run=cmd_report)

    # ---- query and repair commands
    p = add_parser("show", parents=[common, as_json],
                       help="one run: record, decision packet, archived files")
    p.add_argument("ref", metavar="RUN",
                   help="run id, unique prefix of a run id or commit, or 'champion'")
    p.set_defaults(run=cmd_show)

    p = add_parser("list", parents=[common, as_json, tracking], help="runs, newest first")
    p.add_argument("--status", default=None, help="keep, discard or crash (comma-separated)")
    p.add_argument("--family", default=None, help="only this idea family")
    p.add_argument("--tag", default=None, help="only runs with this tag")
    p.add_argument("--since-hours", type=float, default=None,
                   help="only runs of the last N hours")
    p.add_argument("--limit", type=int, default=20, help="at most N runs (default: 20)")
    p.add_argument("--claims", action="store_true",
                   help="list the live claims (ideas in flight) instead of runs")
    p.set_defaults(run=cmd_list)

    p = add_parser("compare", parents=[common, as_json],
                       help="metric deltas, config delta and train.py diff of two runs")
    p.add_argument("run_a", metavar="RUN_A", help="run id, prefix or 'champion'")
    p.add_argument("run_b", metavar="RUN_B", help="run id, prefix or 'champion'")
    p.set_defaults(run=cmd_compare)

    p = add_parser("brief", parents=[common, as_json, tracking],
                       help="one screen to start or resume a session")
    p.add_argument("--last", type=int, default=5, help="decisions to show (default: 5)")
    p.set_defaults(run=cmd_brief)

    p = add_parser("doctor", parents=[common, as_json],
                       help="check the ledger, registry and archives (exit 3: problems)")
    p.add_argument("--repair", action="store_true",
                   help="quarantine bad lines, renew duplicate run ids, rewrite the registry")
    p.set_defaults(run=cmd_doctor)

    p = add_parser("import-tsv", parents=[common, as_json],
                       help="import an upstream results.tsv into the ledger (idempotent)")
    p.add_argument("path", metavar="PATH", help="the results.tsv to import")
    p.add_argument("--dry-run", action="store_true", help="report what would be imported")
    p.add_argument("--strict", action="store_true",
                   help="fail on the first bad row instead of skipping bad rows")
    p.add_argument("--class", dest="class_name", metavar="NAME", default=None,
                   help="put the file's runs in a comparability class of their own")
    p.set_defaults(run=cmd_import_tsv)

    for name, subparser in sub.choices.items():
        description, example = COMMAND_HELP.get(name, ("", ""))
        subparser.description = description
        subparser.wrap_description = True   # by format_help, when the help is shown
        subparser.epilog = f"example:\n  {example}" if example else None
    return parser


def main(argv=None, *, cwd=None, env=None):
    """Run one command; returns the exit code. `cwd` and `env` default to the
    process's own (tests pass them to run in-process)."""
    from memorylab_core import lab, records
    argv = sys.argv[1:] if argv is None else list(argv)
    command = command_of(argv)
    parser = build_parser(command if command in COMMAND_HELP else None)
    args = parser.parse_args(argv)
    if args.command is None:  # bare `memorylab.py`: usage and the command list
        parser.print_help()
        return EXIT_OK
    env = os.environ if env is None else env
    args.cwd = os.path.abspath(cwd or os.getcwd())
    args.env = env
    for name in PATH_ARGS:  # relative to the command's cwd
        if getattr(args, name, None):
            setattr(args, name, os.path.join(args.cwd, getattr(args, name)))
    store = None
    try:
        for name, value in vars(args).items():   # file paths may hold any bytes; text may not
            if isinstance(value, str) and name not in PATH_ARGS + ("cwd",):
                records.check_utf8(value, POSITIONALS.get(name, f"--{name.replace('_', '-')}"))
        now = records.now_utc(env)
        store = lab.open_store(args.root, env=env, cwd=args.cwd)
        existed = os.path.isdir(store.lab_dir)
        mirror = _mirror(args, store, now, env) if args.command in MIRRORED else None
        if mirror is not None and args.command in PULL_FIRST:
            _sync_quietly(mirror, "the local view is as of the last pull")
        code = args.run(args, store, now)
        if code == EXIT_OK and args.command == "log":
            _after_log(args, store, now, mirror)
        elif code == EXIT_OK and args.command == "claim" and mirror is not None:
            _sync_quietly(mirror, "the claim is recorded locally and pushed by the next "
                                  "command", pull=False)
        if not existed and os.path.isdir(store.lab_dir) and args.command != "init":
            print(f"note: created a new MemoryLab store at {store.root}", file=sys.stderr)
        return code
    except records.InputError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
    except BrokenPipeError:
        _quiet_stdout()  # the reader (`| head`) has what it wanted
        return EXIT_OK
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(_one_line(f"error: {exc.strerror or exc}{where}"), file=sys.stderr)
    except RecursionError:
        print("error: input nested too deeply", file=sys.stderr)
    except Exception as exc:  # a backstop: every failure is one line, never a traceback
        print(_one_line(f"error: internal error: {type(exc).__name__}: {exc}"),
              file=sys.stderr)
    return EXIT_ERROR


# ---------------------------------------------------------------- claims and the mirror

PULL_FIRST = ("check", "brief", "report", "list", "claim")
MIRRORED = PULL_FIRST + ("log",)


def _mirror(args, store, now, env=None):
    """The store's mirror on the tracking server named by --tracking-uri or
    $MEMORYLAB_TRACKING_URI, or None without one."""
    env = os.environ if env is None else env
    if not (getattr(args, "tracking_uri", None) or env.get("MEMORYLAB_TRACKING_URI")):
        return None  # no server: the HTTP client is never imported
    from memorylab_core import gitinfo, mirror
    uri = mirror.tracking_uri(getattr(args, "tracking_uri", None), env)
    if uri is None:
        return None
    branch = gitinfo.current_branch(gitinfo.work_tree(args.cwd) or args.cwd)
    return mirror.Mirror(store, uri, mirror.experiment_name(args.experiment, env, branch),
                         env=env, now=now)


def _sync_quietly(mirror, consequence, pull=True):
    """Sync; a failure is one warning line (the local store is never affected)."""
    counts = mirror.sync(pull=pull)
    _print_skipped(counts)
    for warning in counts["warnings"][:1]:
        print(_one_line(f"warning: {warning}; {consequence}"), file=sys.stderr)


def _print_skipped(counts):
    """One warning line per pulled run that could not be recorded (named once)."""
    for line in counts["skipped"]:
        print(_one_line(f"warning: {line}"), file=sys.stderr)


def _after_log(args, store, now, mirror):
    """A logged run releases its agent's claim, then goes to the tracking server.
    The run is recorded already: a failure here is a warning."""
    from memorylab_core import claims
    try:
        claims.release(store, claims.agent_of(args.cwd)["id"], now)
    except OSError as exc:
        print(_one_line(f"warning: the claim was not released ({exc}); it expires by itself"),
              file=sys.stderr)
    if mirror is not None:
        _sync_quietly(mirror, "the run is recorded locally and pushed by the next command",
                      pull=False)


def _quiet_stdout():
    """Point stdout at /dev/null, so that flushing it at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `memorylab.py show champion | head -1`: not a failure
        pass
    sys.stderr.flush()
    # The OS reclaims a loaded index at once; freeing 100k rows object by object at
    # interpreter exit costs 0.1-0.3 s. Every file was closed by its `with` block.
    os._exit(code)
