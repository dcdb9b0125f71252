"""Rendering: the morning report (data and markdown) and decision packets as markdown.

``report_data(rows, registry, now=..., since_hours=...)`` gathers every fact of the report
into one JSON-ready dict (written as reports/latest.json); ``render_markdown`` turns it into
the morning report. Both are pure and linear in the number of rows. Table cells go through
``md_cell``, the one place that escapes ``|`` and line breaks.

Window: runs whose ``timestamp_utc`` is at or after ``now - since_hours`` and not after
``now`` are in the window; runs with an unreadable timestamp count as before it, runs
stamped after ``now`` (clock skew, hand edits) in neither. The decision queue lists the
window's packets, highest priority first, then newest, at most ``QUEUE_LIMIT``.
"""

import heapq
from datetime import timedelta

from memorylab_core import records
from memorylab_core.fields import mapping_of, number, run_entry, text_of
from memorylab_core.facts import CLASS, STATUS, facts_of
from memorylab_core.decisions import packet_states
from memorylab_core.noise import class_label
from memorylab_core.registry import champion_of, ranked_rows

QUEUE_LIMIT = 50
RECENT_COUNT = 10
PROGRESS_DESCRIPTION_CHARS = 80
PRIORITY_ORDER = {"high": 0, "medium": 1, "low": 2}

# ---------------------------------------------------------------------------
# Helpers


def md_cell(text):
    """A value made safe for one markdown table cell: '|' escaped, line breaks as <br>."""
    if text is None:
        return ""
    text = text if isinstance(text, str) else str(text)
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r\n", "<br>").replace("\r", "<br>").replace("\n", "<br>")


def _stamp_key(value):
    """A sortable UTC 'YYYY-MM-DDTHH:MM:SSZ' string for a row timestamp ('' when unreadable).
    The common canonical form is returned as is, so 100k rows cost no parsing."""
    if isinstance(value, str) and len(value) == 20 and value[10] == "T" and value[19] == "Z":
        return value
    parsed = records.parse_utc(value)
    return records.format_utc(parsed) if parsed else ""


def _fmt(value, digits=6):
    """A number with ``digits`` decimals; '' for None, other values as text."""
    if value is None:
        return ""
    return f"{value:.{digits}f}" if number(value) is not None else str(value)


def _dicts(value):
    """The dict items of a list (anything else: none)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _hours(value):
    return f"{value:g}" if number(value) is not None else str(value)


# ---------------------------------------------------------------------------
# Report data


def _queue_item(row, state):
    entry, packet = run_entry(row), mapping_of(row, "decision_packet")
    item = {key: entry[key] for key in ("run_id", "timestamp_utc", "commit", "status")}
    item.update((key, text_of(packet, key)) for key in ("next_action", "priority", "summary"))
    item["state"] = state
    return item


def decision_queue(rows, indices, states, limit=QUEUE_LIMIT):
    """(the ``limit`` most urgent packets of ``rows[indices]``: open before closed, then
    highest priority, then latest in the ledger; the number of packets there; the number
    of them still open). ``states`` is decisions.packet_states of the rows."""
    keyed = []
    for index in indices:
        packet = rows[index].get("decision_packet")
        if isinstance(packet, dict):
            priority = packet.get("priority")
            keyed.append((states[index] != "open",
                          PRIORITY_ORDER.get(priority, 3) if isinstance(priority, str) else 3,
                          -index))
    chosen = heapq.nsmallest(limit, keyed)
    queue = [_queue_item(rows[-negative], states[-negative]) for _, _, negative in chosen]
    return queue, len(keyed), sum(1 for closed, _, _ in keyed if not closed)


def _recent_item(row):
    entry = run_entry(row)
    entry["next_action"] = text_of(mapping_of(row, "decision_packet"), "next_action")
    return entry


def progress_series(rows, facts):
    """The progress-chart series, one point per run in ledger order: index, run_id, status,
    val_bpb, class (index into the returned class list), best (the running best val_bpb of
    kept runs of the point's comparability class so far, None before the first) and
    description (kept runs only, cut to 80 characters, to stay small at 100k runs).
    ``facts`` is facts.facts_of(rows)."""
    series, class_index, best = [], {}, {}
    for index, (row, (key, status, value, *_)) in enumerate(zip(rows, facts)):
        class_number = class_index.setdefault(key, len(class_index))
        description = ""
        if status == "keep":
            description = text_of(row, "description")[:PROGRESS_DESCRIPTION_CHARS]
            if value is not None and (best.get(key) is None or value < best[key]):
                best[key] = value
        series.append({"index": index, "run_id": text_of(row, "run_id"), "status": status,
                       "val_bpb": value, "best": best.get(key), "class": class_number,
                       "description": description})
    return series, list(class_index)


def _board(section):
    """Champion (rank 1) and challengers of a registry or class section."""
    champion = section.get("champion")
    if not isinstance(champion, dict):
        return []
    return [dict(champion, rank=1, delta=0.0)] + [
        dict(entry, rank=rank)
        for rank, entry in enumerate(_dicts(section.get("challengers")), start=2)]


def report_data(rows, registry, *, now, since_hours):
    """Every fact of the morning report as a JSON-ready dict (see the module doc)."""
    rows = [row for row in rows if isinstance(row, dict)]
    registry = registry if isinstance(registry, dict) else {}
    end = records.parse_utc(now)
    if end is None:
        raise ValueError(f"now is not an ISO 8601 time: {now!r}")
    start_key = records.format_utc(end - timedelta(hours=float(since_hours)))
    end_key = records.format_utc(end)
    facts = facts_of(rows)
    current = registry.get("current_class")
    in_window, before = [], []
    counts = {"keep": 0, "discard": 0, "crash": 0, "other": 0}
    for index, row in enumerate(rows):
        key = _stamp_key(row.get("timestamp_utc"))
        if key > end_key:
            continue  # stamped after now (clock skew, a hand edit): in no window
        if key >= start_key:
            in_window.append(index)
            status = facts[index][STATUS]
            counts[status if status in counts else "other"] += 1
        elif facts[index][CLASS] == current:
            before.append(index)
    champion = registry.get("champion") if isinstance(registry.get("champion"), dict) else None
    ranked, ranked_facts = ranked_rows([rows[index] for index in before],
                                       [facts[index] for index in before])
    champion_before = champion_of(ranked, current, ranked_facts)
    change = None
    if champion and champion_before and number(champion.get("val_bpb")) is not None:
        change = round(champion["val_bpb"] - champion_before["val_bpb"], 6)
    states = packet_states(rows, facts, registry)
    queue, total, still_open = decision_queue(rows, in_window, states)
    sections = _dicts(registry.get("classes"))
    series, series_classes = progress_series(rows, facts)
    return {
        "title": "Morning Report",
        "generated_at_utc": records.format_utc(end),
        "window": {"since_hours": since_hours, "start_utc": start_key,
                   "end_utc": records.format_utc(end)},
        "headline": {
            "experiments": len(in_window),
            "status_counts": counts,
            "champion": champion,
            "champion_before_window": champion_before,
            "change_vs_before_window": change,
            "current_class": current,
            "current_class_label": registry.get("current_class_label"),
            "class_count": registry.get("class_count", len(sections)),
            "noise_floor": registry.get("noise_floor"),
            "plateau": registry.get("plateau"),
        },
        "decision_queue": queue,
        "decision_queue_total": total,
        "decision_queue_open": still_open,
        "champion_board": _board(registry),
        "class_boards": [{"class": section.get("class"), "label": section.get("label"),
                          "smoke": section.get("smoke"), "experiments": section.get("experiments"),
                          "noise_floor": section.get("noise_floor"),
                          "plateau": section.get("plateau"), "board": _board(section)}
                         for section in sections],
        "lineages": _dicts(registry.get("lineages")),
        "failure_clusters": _dicts(registry.get("failure_clusters")),
        "recent_ledger": [_recent_item(row) for row in reversed(rows[-RECENT_COUNT:])],
        "status_counts": registry.get("status_counts") or {},
        "noise_floor": registry.get("noise_floor"),
        "plateau": registry.get("plateau"),
        "experiments": len(rows),
        "series_classes": series_classes,
        "series_class_labels": [class_label(key) for key in series_classes],
        "series": series,
    }


# ---------------------------------------------------------------------------
# Markdown


def _table(header, body):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(md_cell(cell) for cell in row) + " |" for row in body)
    return lines


def _spread(entry):
    """'mean of 3 runs ± 0.000100' or 'provisional: a single run'."""
    n = number(entry.get("n")) or 1
    if n < 2:
        return "provisional: a single run"
    return f"mean of {n:g} runs ± {_fmt(entry.get('sd'))}"


def champion_words(champion, quote=str):
    """The one champion line of log, brief, report (text, markdown and HTML) and show:
    'run ID on commit C at V val_bpb (mean of n runs ± sd), M GB, S steps: description',
    ``quote`` applied to the run id and commit; None without a champion."""
    if not isinstance(champion, dict) or not champion.get("run_id"):
        return None
    memory = number(champion.get("memory_gb"))
    steps = number(champion.get("num_steps"))
    return (f"run {quote(text_of(champion, 'run_id'))} on commit "
            f"{quote(text_of(champion, 'commit'))} at {_fmt(number(champion.get('val_bpb')))} "
            f"val_bpb ({_spread(champion)})"
            + (f", {memory:.1f} GB" if memory is not None else "")
            + (f", {steps:g} steps" if steps is not None else "")
            + f": {' '.join(text_of(champion, 'description').split())}")


def champion_line(champion, quote=str, prefix="Champion: "):
    """``prefix`` + champion_words, or 'none yet' without a champion."""
    return prefix + (champion_words(champion, quote) or "none yet")


def _champion_line(champion):
    line = champion_line(champion, lambda text: f"`{text}`", "- Current champion: ")
    return line if champion else line + " (no kept or discarded run with a val_bpb)"


def _change_line(headline):
    before = headline.get("champion_before_window")
    change = headline.get("change_vs_before_window")
    if not before:
        return "- Change vs the champion before the window: no champion before the window"
    if change == 0:
        return (f"- Change vs the champion before the window: none (still run "
                f"`{before.get('run_id')}` at {_fmt(before.get('val_bpb'))})")
    return (f"- Change vs the champion before the window: {change:+.6f} val_bpb (was run "
            f"`{before.get('run_id')}` at {_fmt(before.get('val_bpb'))})")


def noise_line(floor):
    """The one noise line of packets, reports and brief: 'σ = 0.001000 (prior; no
    replicates yet)' or 'σ = 0.000825 (measured sd 0.000600 over 2 dof, shrunk toward
    the prior 0.001000; 1 replicate group(s))', plus the floor's warning when σ is larger
    than the effects being tested."""
    if not isinstance(floor, dict) or number(floor.get("sigma")) is None:
        return "unknown"
    if floor.get("source") == "measured":
        measured, prior = number(floor.get("measured_sigma")), number(floor.get("prior"))
        text = (f"σ = {_fmt(floor['sigma'])} (measured"
                + (f" sd {_fmt(measured)}" if measured is not None else "")
                + f" over {floor.get('dof')} dof"
                + (f", shrunk toward the prior {_fmt(prior)}" if prior is not None else "")
                + (f"; {floor['groups']} replicate group(s)" if floor.get("groups") else "")
                + ")")
    elif floor.get("groups"):
        text = f"σ = {_fmt(floor['sigma'])} (prior: {floor.get('note') or 'not measurable yet'})"
    else:
        text = f"σ = {_fmt(floor['sigma'])} (prior; no replicates yet)"
    for note in (floor.get("warning"), floor.get("steps_note")):
        if isinstance(note, str) and note:
            text = f"{text}. {note[0].upper()}{note[1:]}"
    return text


def _plateau_line(plateau):
    if not isinstance(plateau, dict) or not plateau.get("plateau"):
        return None
    knobs = plateau.get("least_tried_knobs") or []
    return (f"- Plateau: {plateau.get('reason')}; switch to explore mode"
            + (f" and try the least-tried knobs: {', '.join(knobs)}" if knobs else ""))


def _board_table(board):
    if not board:
        return ["No champion yet."]
    rows = []
    for entry in board:
        rank = entry.get("rank")
        if rank == 1 and (number(entry.get("n")) or 1) < 2:
            rank = "1 (provisional)"
        elif entry.get("refuted"):
            rank = f"{rank} (refuted)"
        rows.append([rank, entry.get("run_id"), entry.get("commit"), _fmt(entry.get("val_bpb")),
                     entry.get("n") or 1, _fmt(entry.get("sd")), _fmt(entry.get("delta")),
                     _fmt(entry.get("memory_gb"), 1), entry.get("status"),
                     entry.get("description")])
    return _table(["Rank", "Run", "Commit", "val_bpb", "n", "±", "Delta", "Memory (GB)",
                   "Status", "Description"], rows)


def _board_section(data):
    boards = data.get("class_boards") or []
    if len(boards) <= 1:
        label = boards[0].get("label") if boards else None
        lines = [f"Comparability class: {label}.", ""] if label else []
        return lines + _board_table(data.get("champion_board") or [])
    lines = []
    for position, item in enumerate(boards):
        tag = " (current)" if position == 0 else (" (CPU smoke runs)" if item.get("smoke") else "")
        lines += [f"### {md_cell(item.get('label'))}{tag}", "",
                  f"{item.get('experiments')} runs; noise floor "
                  f"{noise_line(item.get('noise_floor'))}.",
                  ""]
        lines += _board_table(item.get("board") or []) + [""]
    return lines[:-1]


def render_markdown(data):
    """The morning report as markdown, from ``report_data``'s dict."""
    headline = data.get("headline") or {}
    counts = headline.get("status_counts") or {}
    window = data.get("window") or {}
    lines = [
        "# Morning Report",
        "",
        f"Generated {data.get('generated_at_utc')}; window: the last "
        f"{_hours(window.get('since_hours'))} h "
        f"(since {window.get('start_utc')}).",
        "",
        "## Headline",
        "",
        f"- Experiments recorded overnight: {headline.get('experiments', 0)}",
        f"- Keep / discard / crash: {counts.get('keep', 0)} / {counts.get('discard', 0)} / "
        f"{counts.get('crash', 0)}",
        _champion_line(headline.get("champion")),
        _change_line(headline),
        f"- Noise floor: {noise_line(headline.get('noise_floor'))}",
    ]
    if (headline.get("class_count") or 0) > 1:
        lines.append(f"- Comparability class: {headline.get('current_class_label')} "
                     f"({headline.get('class_count')} classes; each has its own board below)")
    plateau = _plateau_line(headline.get("plateau"))
    if plateau:
        lines.append(plateau)
    lines += ["", "## Decision Queue", ""]
    queue = [item for item in data.get("decision_queue") or [] if item.get("state") == "open"]
    total = data.get("decision_queue_total") or 0
    still_open = data.get("decision_queue_open", len(queue))
    if queue:
        lines += _table(["Priority", "Action", "Run", "Summary"],
                        [[item["priority"], item["next_action"], item["run_id"], item["summary"]]
                         for item in queue])
        if still_open > len(queue):
            lines.append(f"\n({still_open - len(queue)} more open decisions not shown.)")
    else:
        lines.append("No open decisions in the window.")
    if total > still_open:
        lines.append(f"\n{total - still_open} closed decisions in the window (acted on or "
                     "superseded by a later run, a verdict or a newer champion) not listed.")
    lines += ["", "## Champion Board", ""] + _board_section(data)
    lines += ["", "## Best Lineages", ""]
    lineages = data.get("lineages") or []
    if lineages:
        lines += _table(["Root commit", "Runs", "Commits", "Kept", "Best run", "Best val_bpb"],
                        [[item.get("root_commit"), item.get("runs"), item.get("unique_commits"),
                          item.get("kept_runs"), (item.get("best_run") or {}).get("run_id", ""),
                          _fmt(item.get("best_val_bpb"))] for item in lineages])
    else:
        lines.append("No lineages yet.")
    lines += ["", "## Failure Clusters", ""]
    clusters = data.get("failure_clusters") or []
    if clusters:
        lines += _table(["Label", "Size", "Crashes", "Best val_bpb", "Examples"],
                        [[item.get("label"), item.get("size"), item.get("crashes"),
                          _fmt(item.get("best_val_bpb")),
                          ", ".join(text_of(example, "run_id")
                                    for example in _dicts(item.get("examples")))]
                         for item in clusters])
    else:
        lines.append("No discarded or crashed runs.")
    lines += ["", "## Recent Ledger", ""]
    recent = data.get("recent_ledger") or []
    if recent:
        lines += _table(["Time", "Run", "Commit", "Status", "val_bpb", "Memory (GB)", "Action",
                         "Description"],
                        [[item.get("timestamp_utc"), item.get("run_id"), item.get("commit"),
                          item.get("status"), _fmt(item.get("val_bpb")),
                          _fmt(item.get("memory_gb"), 1), item.get("next_action"),
                          item.get("description")] for item in recent])
    else:
        lines.append("The ledger is empty.")
    return "\n".join(lines) + "\n"


def render_packet_markdown(packet):
    """A decision packet as a short markdown page (decision_packet.md)."""
    packet = packet if isinstance(packet, dict) else {}
    run, novelty, comparison = (mapping_of(packet, key) for key in ("run", "novelty", "comparison"))
    lines = [
        f"# Decision packet: {run.get('id', '')}",
        "",
        f"**{packet.get('next_action', '')}** ({packet.get('priority', '')} priority): "
        f"{packet.get('summary', '')}",
        "",
        f"Rationale: {packet.get('rationale', '')}",
        "",
        f"Hypothesis status: {packet.get('hypothesis_status', '')}",
        "",
        "## Run",
        "",
    ]
    lines += _table(["Field", "Value"],
                    [[key, _fmt(run.get(key)) if key == "val_bpb" else run.get(key)]
                     for key in ("id", "commit", "status", "family", "description",
                                 "hypothesis", "val_bpb", "memory_gb")])
    lines += ["", "## Comparison", ""]
    lines += _table(["Field", "Value"], [[key, value] for key, value in comparison.items()])
    noise = packet.get("noise")
    if isinstance(noise, dict):
        klass = mapping_of(packet, "class")
        lines += ["", "## Noise", "",
                  f"Class: {klass.get('label', 'legacy')}. Noise floor {noise_line(noise)}; "
                  f"a win must exceed {_fmt(noise.get('factor'), 1)}σ = "
                  f"{_fmt(noise.get('threshold'))} "
                  "or pass a one-sided test at p < 0.05 over replicates."]
        group = packet.get("group")
        if isinstance(group, dict):
            lines.append(f"Replicate group of this run: n={group.get('n')}, mean "
                         f"{_fmt(group.get('mean'))}, sd {_fmt(group.get('sd')) or 'n/a'}.")
        test = packet.get("test")
        if isinstance(test, dict) and all(isinstance(test.get(key), (int, float))
                                          for key in ("t", "df", "p")):
            lines.append(f"Test: {test.get('method')}, t={test['t']:.3f}, df={test['df']:.1f}, "
                         f"one-sided p={test['p']:.4f}.")
    replicate = packet.get("replicate")
    if isinstance(replicate, dict):
        lines += ["", "## Replicate", "",
                  f"Rerun commit `{replicate.get('commit')}` with "
                  f"{replicate.get('env', 'AUTORESEARCH_SEED')}="
                  f"{', '.join(str(seed) for seed in replicate.get('seeds') or [])} "
                  "(one run per seed, each logged):", "", "```"]
        lines += [str(command) for command in replicate.get("commands") or []] + ["```"]
    recommendation = packet.get("recommendation")
    if isinstance(recommendation, dict):
        knobs = recommendation.get("least_tried_knobs") or []
        lines += ["", "## Plateau", "",
                  f"{recommendation.get('reason')}. Recommended mode: "
                  f"{recommendation.get('mode')}"
                  + (f"; least-tried knobs: {', '.join(knobs)}." if knobs else ".")]
    lines += ["", "## Novelty", ""]
    top = mapping_of(novelty, "top_match")
    lines += _table(["Field", "Value"],
                    [["classification", novelty.get("classification")],
                     ["mode", novelty.get("mode")], ["decision", novelty.get("decision")],
                     ["rationale", novelty.get("rationale")],
                     ["top match", f"{top.get('run_id', '')} ({top.get('category', '')}): "
                                   f"{top.get('description', '')}" if top else "none"]])
    error = mapping_of(packet, "error")
    if error:
        lines += ["", "## Error", "", md_cell(error.get("summary"))]
        tail = error.get("tail")
        if tail:
            tail = "\n".join(str(line) for line in tail) if isinstance(tail, list) else str(tail)
            lines += ["", "```", tail.replace("```", "'''"), "```"]
    return "\n".join(lines) + "\n"
