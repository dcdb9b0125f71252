"""The morning report as one self-contained HTML page (inline CSS and SVG, no script).

``render_html(report_data)`` takes the same dict that ``report`` writes to
reports/latest.json and returns the page. Nothing is fetched: the page carries a
Content-Security-Policy that forbids scripts and remote loads, and every string that
comes from the ledger goes through ``escape`` (descriptions are written by agents and
may contain anything, markup included).

The progress chart follows upstream's progress.png: val_bpb of every run in ledger
order, kept runs highlighted, the running best of kept runs as a step line, crashes
marked on the bottom edge, values beyond the plotted range pinned to the top edge.
"""

from __future__ import annotations

import html as _html
import json
import math

from .fields import is_finite_number
from .render import champion_words, noise_line

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
CHART_WIDTH, CHART_HEIGHT = 960, 380
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 72, 24, 20, 44
LINE_COLOURS = ("#1a9850", "#4575b4", "#d9a400", "#7b3294")
MAX_LABELS = 24          # descriptions written next to new-best points
TITLE_LIMIT = 5000       # above this many runs only kept runs and crashes get tooltips
LABEL_CHARS = 48
CELL_CHARS = 600

STYLE = """
body{font:14px/1.45 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;
 background:#f6f7f9;color:#1d2330}
main{max-width:1080px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}h3{font-size:15px;margin:16px 0 4px}h2{font-size:18px;margin:28px 0 8px;
 border-bottom:1px solid #d5d9e0;padding-bottom:4px}
.meta{color:#5b6475;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:10px 14px;
 min-width:140px}
.card b{display:block;font-size:20px}.card span{color:#5b6475;font-size:12px}
.champ{background:#fff;border-left:4px solid #1a9850;padding:10px 14px;margin-top:12px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border:1px solid #e1e4ea;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.id,td.num{white-space:nowrap}
.high{color:#b2182b;font-weight:600}.medium{color:#b35806}.low{color:#5b6475}
.keep{color:#1a7f37;font-weight:600}.discard{color:#5b6475}.crash{color:#b2182b}
.empty{color:#5b6475;font-style:italic}
svg{background:#fff;border:1px solid #dde1e7;border-radius:8px;max-width:100%;height:auto}
svg text{font:11px sans-serif;fill:#3a4150}
.mark{fill:#c3c9d4;fill-opacity:.8}
.mark.keep{fill:#1a9850;fill-opacity:1;stroke:#0b4f2a;stroke-width:1}
.mark.none{fill:none;stroke:#d73027;stroke-width:2}
.mark.clipped{fill:#9aa3b2}
.legend{color:#5b6475;font-size:12px;margin:4px 0 0}
code{background:#eef1f5;padding:0 3px;border-radius:3px}
"""

def escape(value) -> str:
    """HTML-escape any value (quotes included) for text and attribute positions."""
    if value is None:
        return ""
    if isinstance(value, float):
        return escape(_fmt_float(value))
    return _html.escape(value if isinstance(value, str) else str(value), quote=True)


def _fmt_float(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    if value != 0 and abs(value) < 0.01:
        return f"{value:.6f}"
    return f"{value:.6f}" if abs(value) < 10 else f"{value:.1f}"


# ---------------------------------------------------------------- progress chart

def _chart_range(points):
    """(low, high) of the plotted val_bpb range, robust to a few diverged runs."""
    values = sorted(p["val_bpb"] for p in points if is_finite_number(p.get("val_bpb")))
    if not values:
        return None
    low = values[0]
    kept = [p["val_bpb"] for p in points
            if p.get("status") == "keep" and is_finite_number(p.get("val_bpb"))]
    high_candidates = [values[min(len(values) - 1, int(0.95 * len(values)))]]
    if kept:
        high_candidates.append(max(kept))
    high = max(high_candidates)
    if high <= low:
        high = low + max(abs(low) * 0.001, 1e-6)
    pad = (high - low) * 0.06
    return low - pad, high + pad


def _ticks(low, high, count=5):
    step = (high - low) / (count - 1)
    return [low + i * step for i in range(count)]


def progress_svg(points, classes=(), best=None) -> str:
    """The progress chart as an inline <svg>: one ``mark`` element per run. ``best`` is
    _running_best(points), computed here when not given."""
    best = _running_best(points) if best is None else best
    width, height = CHART_WIDTH, CHART_HEIGHT
    left, right = MARGIN_LEFT, width - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, height - MARGIN_BOTTOM
    n = len(points)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="progress" role="img" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
             '<title>Progress: val_bpb of every run in ledger order</title>']
    value_range = _chart_range(points)
    if n == 0 or value_range is None:
        parts.append(f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle">'
                     f'{"No runs yet" if n == 0 else "No run has a val_bpb yet"}</text>')
    low, high = value_range or (0.0, 1.0)

    def x_of(i):
        return left + (right - left) * (0.5 if n == 1 else i / (n - 1))

    def y_of(v):
        return bottom - (bottom - top) * (v - low) / (high - low)

    # axes, grid and tick labels
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#8a93a3"/>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#8a93a3"/>')
    if value_range:
        for v in _ticks(low, high):
            y = y_of(v)
            parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" '
                         f'stroke="#eef1f5"/>')
            parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{v:.4f}</text>')
    if n:
        for i in sorted({0, (n - 1) // 2, n - 1}):
            parts.append(f'<text x="{x_of(i):.1f}" y="{bottom + 16}" text-anchor="middle">'
                         f'{i + 1}</text>')
    parts.append(f'<text x="{(left + right) / 2:.0f}" y="{height - 8}" text-anchor="middle">'
                 f'run (ledger order)</text>')
    parts.append(f'<text transform="translate(14 {(top + bottom) / 2:.0f}) rotate(-90)" '
                 f'text-anchor="middle">val_bpb (lower is better)</text>')
    if value_range:
        parts.append(_best_step_line(best, x_of, y_of, right, classes))
    parts.append(_marks(points, x_of, y_of, top, bottom, high, value_range is not None))
    if value_range:
        parts.append(_best_labels(points, best, x_of, y_of, top))
    parts.append("</svg>")
    return "\n".join(parts)


def _running_best(points):
    """{class: [(index, best)]}: the runs where the running best of kept runs of a
    comparability class improves (render.progress_series carries "best" and "class"
    per point; runs compare only within their class)."""
    steps, last = {}, {}
    for i, p in enumerate(points):
        best, key = p.get("best"), p.get("class", 0)
        if is_finite_number(best) and best != last.get(key):
            steps.setdefault(key, []).append((i, best))
            last[key] = best
    return steps


def _best_step_line(best, x_of, y_of, right, classes=()):
    """One step line per comparability class, in the class's colour (class_colour)."""
    out = []
    for key, steps in best.items():
        i0, v0 = steps[0]
        path = [f"M{x_of(i0):.1f} {y_of(v0):.1f}"]
        for i, v in steps[1:]:
            path.append(f"H{x_of(i):.1f}V{y_of(v):.1f}")
        path.append(f"H{right:.1f}")
        colour = class_colour(key)
        name = classes[key] if isinstance(key, int) and 0 <= key < len(classes) else key
        label = f" ({escape(name)})" if len(classes) > 1 else ""
        out.append(f'<path class="best-line" d="{"".join(path)}" fill="none" '
                   f'stroke="{colour}" stroke-width="2"><title>running best of kept runs'
                   f'{label}</title></path>')
    return "\n".join(out)


def _marks(points, x_of, y_of, top, bottom, high, have_range):
    """One element of class "mark <status>" per run: a dot, a triangle on the top edge
    (beyond the plotted range, class "clipped") or, without a val_bpb, a cross on the
    bottom edge (class "none"). Colours come from the stylesheet to keep 100k marks
    small; run ids and tooltips are left out of the bulk above TITLE_LIMIT runs."""
    small = len(points) <= TITLE_LIMIT
    radius = 4.5 if len(points) <= 200 else (3 if len(points) <= 2000 else 2)
    out = ['<g class="marks">']
    statuses = {}  # raw status -> escaped (a handful of distinct values)
    for i, p in enumerate(points):
        raw = p.get("status")
        status = statuses.get(raw)
        if status is None:
            status = statuses.setdefault(raw, escape(raw or "unknown"))
        v = p.get("val_bpb")
        x = x_of(i)
        run = f' data-run="{escape(p.get("run_id"))}"' if small else ""
        if not is_finite_number(v) or not have_range:
            d = 4 if radius > 3 else 3
            y = bottom - d - 2
            tag, attrs = "path", (f'class="mark {status} none"{run} d="M{x - d:.1f} {y - d:.1f}'
                                  f'l{2 * d} {2 * d}m0 {-2 * d}l{-2 * d} {2 * d}"')
        elif v > high:
            tag, attrs = "path", (f'class="mark {status} clipped"{run} '
                                  f'd="M{x:.1f} {top - 1:.1f}l-4 7h8z"')
        else:
            r = radius + 1 if status == "keep" else radius
            tag, attrs = "circle", (f'class="mark {status}"{run} cx="{x:.1f}" '
                                    f'cy="{y_of(v):.1f}" r="{r:g}"')
        if small or status in ("keep", "crash"):
            shown = _fmt_float(v) if is_finite_number(v) else "-"
            note = f": {escape(p.get('description'))}" if p.get("description") else ""
            out.append(f"<{tag} {attrs}><title>{escape(p.get('run_id'))} {status} "
                       f"{escape(shown)}{note}</title></{tag}>")
        else:
            out.append(f"<{tag} {attrs}/>")
    out.append("</g>")
    return "\n".join(out)


def _best_labels(points, best, x_of, y_of, top):
    """Descriptions of the runs that set a new best (the last MAX_LABELS of them that
    carry one), skipping any that would sit on top of the previous label."""
    out, last_x = ['<g class="labels">'], None
    steps = sorted(step for class_steps in best.values()
                   for step in class_steps)
    for i, v in steps[-MAX_LABELS:]:
        label = points[i].get("description") or ""
        x, y = x_of(i), max(top + 10, y_of(v) - 8)
        if not label or (last_x is not None and x - last_x < 36):
            continue
        last_x = x
        if len(label) > LABEL_CHARS:
            label = label[:LABEL_CHARS - 1] + "…"
        out.append(f'<text class="best-label" x="{x + 4:.1f}" y="{y:.1f}" '
                   f'transform="rotate(-20 {x + 4:.1f} {y:.1f})">{escape(label)}</text>')
    out.append("</g>")
    return "\n".join(out)


# ---------------------------------------------------------------- tables

def _get(path):
    """A getter for a dotted key path ("best_run.run_id") into a dict."""
    keys = path.split(".")

    def get(row):
        value = row
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value
    return get


def _cell(value, kind="") -> str:
    if value is None or value == "":
        return '<td class="empty">-</td>'
    if kind == "delta" and is_finite_number(value):
        return f'<td class="num">{escape(f"{value:+.6f}")}</td>'
    if is_finite_number(value):
        text = _fmt_float(value) if isinstance(value, float) else str(value)
        return f'<td class="num">{escape(text)}</td>'
    if isinstance(value, bool):
        value = "yes" if value else "no"
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = json.dumps(value, sort_keys=True, default=str)
    text = value if isinstance(value, str) else str(value)
    if len(text) > CELL_CHARS:
        text = text[:CELL_CHARS - 1] + "…"
    css = f' class="{text}"' if kind == "tag" and text in (
        "keep", "discard", "crash", "high", "medium", "low") else \
        ' class="id"' if kind == "id" else ""
    return f"<td{css}>{escape(text)}</td>"


def table(rows, columns, empty="Nothing here yet.") -> str:
    """An HTML table of dict rows. ``columns``: (header, key path, kind) triples;
    kind "tag" colours status/priority words, "delta" prints a signed number, "id"
    keeps run ids and commits on one line."""
    rows = [r for r in (rows or []) if isinstance(r, dict)]
    if not rows:
        return f'<p class="empty">{escape(empty)}</p>'
    getters = [(_get(path), kind) for _, path, kind in columns]
    head = "".join(f"<th>{escape(header)}</th>" for header, _, _ in columns)
    body = "\n".join("<tr>" + "".join(_cell(get(r), kind) for get, kind in getters) + "</tr>"
                     for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


QUEUE_COLUMNS = (("priority", "priority", "tag"), ("action", "next_action", ""),
                 ("run", "run_id", "id"), ("status", "status", "tag"),
                 ("summary", "summary", ""))
BOARD_COLUMNS = (("#", "rank", ""), ("run", "run_id", "id"), ("commit", "commit", "id"),
                 ("val_bpb", "val_bpb", ""), ("n", "n", ""), ("±sd", "sd", ""),
                 ("Δ champion", "delta", "delta"), ("single run", "provisional", ""),
                 ("memory GB", "memory_gb", ""), ("description", "description", ""))
LINEAGE_COLUMNS = (("root", "root_commit", "id"), ("runs", "runs", ""),
                   ("commits", "unique_commits", ""), ("kept", "kept_runs", ""),
                   ("best val_bpb", "best_val_bpb", ""), ("best run", "best_run.run_id", "id"),
                   ("branches", "branches", ""), ("best description", "best_run.description", ""))
CLUSTER_COLUMNS = (("label", "label", ""), ("size", "size", ""), ("crashes", "crashes", ""),
                   ("best val_bpb", "best_val_bpb", ""), ("examples", "example_text", ""))
RECENT_COLUMNS = (("run", "run_id", "id"), ("time", "timestamp_utc", "id"),
                  ("commit", "commit", "id"), ("status", "status", "tag"),
                  ("val_bpb", "val_bpb", ""), ("memory GB", "memory_gb", ""),
                  ("action", "next_action", ""), ("description", "description", ""))


def _clusters(clusters):
    """Failure clusters with their examples flattened to one text column."""
    out = []
    for cluster in clusters or []:
        if isinstance(cluster, dict):
            examples = [e.get("description") or e.get("run_id") for e in
                        cluster.get("examples") or [] if isinstance(e, dict)]
            out.append(dict(cluster, example_text=" · ".join(str(e) for e in examples if e)))
    return out


# ---------------------------------------------------------------- page

def _section(title, body, anchor):
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>\n{body}\n</section>'


def _dict(value):
    return value if isinstance(value, dict) else {}


def _headline(data) -> str:
    head = _dict(data.get("headline"))
    counts = _dict(head.get("status_counts"))
    cards = [("runs in window", head.get("experiments")),
             ("runs in ledger", data.get("experiments")),
             ("keep", counts.get("keep")), ("discard", counts.get("discard")),
             ("crash", counts.get("crash"))]
    html_cards = "".join(f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>'
                         for k, v in cards if v is not None)
    parts = [f'<div class="cards">{html_cards}</div>']
    champion = champion_words(head.get("champion"))
    if champion:
        parts.append(f'<div class="champ" id="champion">Current champion: '
                     f'{escape(champion)}</div>')
    else:
        parts.append('<p class="empty">No champion yet.</p>')
    change = head.get("change_vs_before_window")
    before = _dict(head.get("champion_before_window"))
    if is_finite_number(change) and before.get("run_id"):
        parts.append(f'<p>Change vs the champion before the window '
                     f'(<code>{escape(before.get("run_id"))}</code>, '
                     f'{escape(before.get("val_bpb"))}): <b>{escape(f"{change:+.6f}")}</b></p>')
    noise = data.get("noise_floor") or head.get("noise_floor")
    if noise:
        parts.append(f"<p>Noise floor {_noise_text(noise)}</p>")
    if head.get("class_count", 0) > 1 and head.get("current_class_label"):
        parts.append(f"<p>Comparability class: {escape(head['current_class_label'])} "
                     f"({escape(head['class_count'])} classes; each has its own board)</p>")
    plateau = _dict(data.get("plateau") or head.get("plateau"))
    if plateau.get("plateau"):
        parts.append(f'<p class="high">Plateau: {escape(plateau.get("recommendation") or "")}</p>')
    return "\n".join(parts)


def _noise_text(noise):
    return escape(noise_line(noise))


def _boards(data):
    """The champion board; with several comparability classes, one board per class
    (the current class first), since runs only compare within their class."""
    boards = [b for b in data.get("class_boards") or [] if isinstance(b, dict)]
    if len(boards) <= 1:
        label = boards[0].get("label") if boards else None
        note = f'<p class="legend">Comparability class: {escape(label)}</p>' if label else ""
        return table(data.get("champion_board"), BOARD_COLUMNS, "No ranked runs yet.") + note
    parts = []
    for number, board in enumerate(boards):
        tag = " (current)" if number == 0 else " (CPU smoke runs)" if board.get("smoke") else ""
        parts.append(f"<h3>{escape(board.get('label'))}{tag}</h3>\n<p>"
                     f"{escape(board.get('experiments'))} runs; noise floor "
                     f"{_noise_text(board.get('noise_floor'))}</p>\n"
                     + table(board.get("board"), BOARD_COLUMNS, "No ranked runs yet."))
    return "\n".join(parts)


def class_colour(key):
    """The line colour of a class (its index among the series classes; the first green)."""
    return LINE_COLOURS[key % len(LINE_COLOURS)] if isinstance(key, int) else LINE_COLOURS[0]


def _class_legend(labels, best):
    """The classes that have a step line, by readable label, in the colours of their lines."""
    drawn = sorted(key for key in best if isinstance(key, int))
    if len(labels) < 2 or not drawn:
        return ""
    items = "; ".join(f'<span style="color:{class_colour(key)}">■</span> {escape(labels[key])}'
                      for key in drawn if key < len(labels))
    return f'\n<p class="legend">Step lines by comparability class: {items}</p>'


def render_html(report_data: dict) -> str:
    """The whole report page as a string (UTF-8 text, no external references)."""
    data = _dict(report_data)
    window = _dict(data.get("window"))
    points = [p for p in data.get("series") or [] if isinstance(p, dict)]
    classes = list(data.get("series_classes") or [])
    labels = list(data.get("series_class_labels") or classes)
    best = _running_best(points)
    kept = sum(1 for p in points if p.get("status") == "keep")
    crashes = sum(1 for p in points if p.get("status") == "crash")
    queue_total = data.get("decision_queue_total")
    queue = [item for item in data.get("decision_queue") or []
             if isinstance(item, dict) and item.get("state", "open") == "open"]
    still_open = data.get("decision_queue_open", len(queue))
    closed = queue_total - still_open if is_finite_number(queue_total) and \
        is_finite_number(still_open) else 0
    queue_note = (f'<p class="legend">{escape(len(queue))} of {escape(still_open)} open '
                  f'decisions shown; {escape(closed)} closed (acted on or superseded).</p>'
                  if closed or (is_finite_number(still_open) and still_open > len(queue)) else "")
    sections = [
        _section("Headline", _headline(data), "headline"),
        _section("Progress", progress_svg(points, labels, best) + _class_legend(labels, best) +
                 f'\n<p class="legend">{len(points)} runs in ledger order: green dots are kept '
                 f'runs ({kept}), grey dots discarded, red crosses crashes ({crashes}); the green '
                 f'step line is the running best of kept runs; triangles on the top edge are '
                 f'runs beyond the plotted range.</p>', "progress-chart"),
        _section("Decision Queue", table(queue, QUEUE_COLUMNS, "No open decisions in the window.")
                 + queue_note, "decision-queue"),
        _section("Champion Board", _boards(data), "champion-board"),
        _section("Best Lineages", table(data.get("lineages"), LINEAGE_COLUMNS,
                                        "No lineages yet."), "lineages"),
        _section("Failure Clusters", table(_clusters(data.get("failure_clusters")),
                                           CLUSTER_COLUMNS, "No failures recorded."),
                 "failure-clusters"),
        _section("Recent Runs", table(data.get("recent_ledger"), RECENT_COLUMNS,
                                      "No runs yet."), "recent-runs"),
    ]
    meta = []
    if data.get("generated_at_utc"):
        meta.append(f"Generated {escape(data['generated_at_utc'])}")
    hours = window.get("since_hours")
    if hours is not None:
        shown = f"{hours:g}" if is_finite_number(hours) else hours
        meta.append(f"window: last {escape(shown)} hours")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>Morning Report · MemoryLab</title>\n"
        f"<style>{STYLE}</style></head>\n<body><main>\n<h1>Morning Report</h1>\n"
        f'<p class="meta">{" · ".join(meta)}</p>\n'
        + "\n".join(sections) + "\n</main></body></html>\n"
    )
