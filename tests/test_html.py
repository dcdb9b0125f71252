"""html.py: the self-contained HTML report, its progress chart and its escaping."""

import json
import os
import re
import unittest
from html.parser import HTMLParser

from mlhelpers import LabCase

from memorylab_core import html

EVIL = '<script>alert(1)</script> & <img src=x onerror=alert(2)> "quoted" \'single\''


def point(i, status="keep", val_bpb=0.99, best=None, description="", klass=0):
    return {"index": i, "run_id": f"run-{i}", "status": status, "val_bpb": val_bpb,
            "best": best, "description": description, "class": klass}


def series(values):
    """Points for (status, val_bpb) pairs with the running best of kept runs."""
    points, best = [], None
    for i, (status, value) in enumerate(values):
        if status == "keep" and value is not None and (best is None or value < best):
            best = value
        points.append(point(i, status, value, best, f"idea {i}" if status == "keep" else ""))
    return points


class Elements(HTMLParser):
    """Counts start tags and collects text, as a browser's tokenizer would see them."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.classes, self.text = [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.classes.append((tag, dict(attrs).get("class") or ""))

    def handle_data(self, data):
        self.text.append(data)


def report(points=(), **extra):
    data = {"generated_at_utc": "2026-01-01T06:00:00Z", "window": {"since_hours": 16.0},
            "headline": {"experiments": len(points), "status_counts": {"keep": 1}},
            "series": list(points), "experiments": len(points)}
    data.update(extra)
    return data


class EscapeTest(unittest.TestCase):
    def test_escape_values(self):
        self.assertEqual(html.escape('<a href="x">&\'</a>'),
                         "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;&lt;/a&gt;")
        self.assertEqual(html.escape(None), "")
        self.assertEqual(html.escape(0.9912345678), "0.991235")
        self.assertEqual(html.escape(float("nan")), "-")
        self.assertEqual(html.escape(3), "3")

    def test_ledger_strings_stay_text_everywhere(self):
        entry = {"run_id": EVIL, "commit": EVIL, "status": EVIL, "description": EVIL,
                 "summary": EVIL, "priority": EVIL, "next_action": EVIL, "label": EVIL,
                 "val_bpb": 0.98, "timestamp_utc": EVIL, "root_commit": EVIL,
                 "best_run": {"run_id": EVIL, "description": EVIL}, "branches": [EVIL],
                 "examples": [{"description": EVIL}]}
        points = [point(0, "keep", 0.99, 0.99, EVIL), point(1, EVIL, 0.98, 0.99, EVIL),
                  point(2, "crash", None, 0.99, EVIL)]
        page = html.render_html(report(
            points, generated_at_utc=EVIL, window={"since_hours": EVIL},
            headline={"experiments": EVIL, "status_counts": {"keep": EVIL},
                      "champion": dict(entry, n=EVIL, sd=0.001, memory_gb=EVIL),
                      "champion_before_window": entry, "change_vs_before_window": -0.001},
            decision_queue=[entry], champion_board=[entry], lineages=[entry],
            failure_clusters=[entry], recent_ledger=[entry],
            plateau={"plateau": True, "recommendation": EVIL},
            noise_floor={"sigma": 0.001, "source": EVIL, "dof": EVIL}))
        parsed = Elements(page)
        self.assertNotIn("script", parsed.tags)
        self.assertNotIn("img", parsed.tags)
        self.assertNotIn("<script>", page)
        self.assertNotIn("<img", page)
        self.assertNotIn("onerror=alert(2)>", page.replace("onerror=alert(2)&gt;", ""))
        text = "".join(parsed.text)
        self.assertIn("<script>alert(1)</script>", text)  # shown as text
        # inside the SVG: <title> tooltips and the <text> labels of new bests
        svg = page[page.index("<svg"):page.index("</svg>")]
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", svg)
        self.assertRegex(svg, r'<text class="best-label"[^>]*>&lt;script&gt;')
        self.assertNotIn('class="mark <', page)

    def test_content_security_policy_and_no_external_references(self):
        page = html.render_html(report(series([("keep", 0.99)])))
        self.assertIn("Content-Security-Policy", page)
        self.assertIn("default-src 'none'", page)
        self.assertNotRegex(page, r"(?i)<script|<link|<img|src=|url\(|@import|"
                                  r"https?://(?!www\.w3\.org/2000/svg)")


class ProgressChartTest(unittest.TestCase):
    def marks(self, page):
        return re.findall(r'<(?:circle|path) class="mark (\w+)[^"]*" data-run="([^"]*)"', page)

    def test_one_mark_per_run_with_status(self):
        values = [("keep", 1.0), ("discard", 1.01), ("crash", None), ("keep", 0.99),
                  ("discard", 0.995), ("keep", 0.985)]
        page = html.render_html(report(series(values)))
        marks = self.marks(page)
        self.assertEqual(len(marks), len(values))
        self.assertEqual([m[0] for m in marks], [s for s, _ in values])
        self.assertEqual([m[1] for m in marks], [f"run-{i}" for i in range(len(values))])
        self.assertEqual(page.count("<circle"), 5)  # the crash is a cross, not a dot

    def test_running_best_step_line(self):
        points = series([("keep", 1.0), ("discard", 0.98), ("keep", 0.99), ("keep", 0.995),
                         ("keep", 0.97)])
        steps = html._running_best(points)
        self.assertEqual(steps, {0: [(0, 1.0), (2, 0.99), (4, 0.97)]})
        page = html.progress_svg(points)
        path = re.search(r'<path class="best-line" d="([^"]+)"', page).group(1)
        self.assertEqual(path.count("V"), 2)
        self.assertEqual(len(re.findall(r'class="best-label"', page)), 3)

    def test_one_step_line_per_comparability_class(self):
        points = [point(0, "keep", 1.2, 1.2, "cpu smoke", klass=0),
                  point(1, "keep", 0.99, 0.99, "h100 baseline", klass=1),
                  point(2, "keep", 1.1, 1.1, "cpu better", klass=0),
                  point(3, "keep", 0.98, 0.98, "h100 better", klass=1)]
        self.assertEqual(html._running_best(points), {0: [(0, 1.2), (2, 1.1)],
                                                      1: [(1, 0.99), (3, 0.98)]})
        page = html.render_html(report(points, series_classes=["cpu|<smoke>", "H100|300"]))
        self.assertEqual(page.count('class="best-line"'), 2)
        self.assertIn("comparability class", page)
        self.assertIn("cpu|&lt;smoke&gt;", page)

    def test_outliers_are_pinned_to_the_top_edge(self):
        values = [("keep", 1.0)] + [("discard", 1.0 + i / 1000) for i in range(30)] + \
            [("discard", 7.5)]
        page = html.progress_svg(series(values))
        self.assertEqual(len(self.marks(page)), 32)
        self.assertIn("l-4 7h8z", page)  # the triangle of the diverged run
        ticks = [float(t) for t in re.findall(r'text-anchor="end">([0-9.]+)</text>', page)]
        self.assertEqual(len(ticks), 5)
        self.assertLess(max(ticks), 1.05)  # the axis range ignores the diverged run

    def test_empty_and_single_and_all_crash(self):
        self.assertIn("No runs yet", html.progress_svg([]))
        self.assertEqual(len(self.marks(html.progress_svg(series([("keep", 0.99)])))), 1)
        page = html.progress_svg(series([("crash", None), ("crash", None)]))
        self.assertIn("No run has a val_bpb yet", page)
        self.assertEqual(len(self.marks(page)), 2)

    def test_large_series_stays_small_and_linear(self):
        import random
        random.seed(0)
        points = series([("keep" if i % 7 == 0 else "discard", 1 - i * 1e-6 + random.random() / 100)
                         for i in range(20000)])
        page = html.progress_svg(points)
        self.assertEqual(len(re.findall('class="mark ', page)), 20000)
        self.assertLess(len(page), 20000 * 200)
        self.assertLessEqual(page.count("best-label"), html.MAX_LABELS)


class PageTest(unittest.TestCase):
    def test_sections_and_tables(self):
        board = [{"rank": 1, "run_id": "r1", "commit": "abc1234", "val_bpb": 0.98, "n": 3,
                  "sd": 0.0004, "delta": 0.0, "provisional": False, "memory_gb": 44.0,
                  "description": "best"},
                 {"rank": 2, "run_id": "r2", "commit": "def5678", "val_bpb": 0.981, "n": 1,
                  "sd": None, "delta": 0.001, "provisional": True, "memory_gb": 44.1,
                  "description": "second"}]
        page = html.render_html(report(
            series([("keep", 0.98)]),
            headline={"experiments": 2, "status_counts": {"keep": 2, "discard": 0, "crash": 0},
                      "champion": dict(board[0]), "champion_before_window": {"run_id": "r0",
                                                                              "val_bpb": 0.99},
                      "change_vs_before_window": -0.01},
            champion_board=board,
            decision_queue=[{"priority": "high", "next_action": "promote", "run_id": "r1",
                             "status": "keep", "summary": "Promote run r1"}],
            decision_queue_total=3,
            lineages=[{"root_commit": "aaa0000", "runs": 5, "unique_commits": 4, "kept_runs": 2,
                       "best_val_bpb": 0.98, "best_run": {"run_id": "r1"}, "branches": ["main"]}],
            failure_clusters=[{"label": "crash: out of memory", "size": 2, "crashes": 2,
                               "examples": [{"description": "depth 32"}]}],
            recent_ledger=[{"run_id": "r1", "status": "keep", "val_bpb": 0.98}]))
        for anchor in ("headline", "progress-chart", "decision-queue", "champion-board",
                       "lineages", "failure-clusters", "recent-runs"):
            self.assertIn(f'<section id="{anchor}">', page)
        self.assertIn("+0.001000", page)
        self.assertIn("-0.010000", page)
        self.assertIn("Current champion: run r1 on commit abc1234 at 0.980000 val_bpb (mean of 3 "
                      "runs ± 0.000400), 44.0 GB: best", page)
        self.assertIn("depth 32", page)
        self.assertIn("1 of 1 open decisions shown; 2 closed (acted on or superseded)", page)
        self.assertIn('<td class="high">high</td>', page)
        self.assertIn("window: last 16 hours", page)

    def test_one_board_per_comparability_class(self):
        entry = {"rank": 1, "run_id": "r1", "val_bpb": 0.98, "description": EVIL}
        page = html.render_html(report(
            headline={"class_count": 2, "current_class_label": "H100 | 300 s"},
            class_boards=[{"label": "H100 | 300 s", "experiments": 5, "board": [entry],
                           "noise_floor": {"sigma": 0.0004, "source": "measured", "dof": 3}},
                          {"label": "<cpu>", "smoke": True, "experiments": 2,
                           "board": [dict(entry, run_id="r2")]}]))
        self.assertIn("<h3>H100 | 300 s (current)</h3>", page)
        self.assertIn("<h3>&lt;cpu&gt; (CPU smoke runs)</h3>", page)
        self.assertIn("σ = 0.000400 (measured over 3 dof)", page)
        self.assertIn("2 classes; each has its own board", page)
        self.assertEqual(page.count("<td class=\"id\">r2</td>"), 1)

    def test_empty_report_renders(self):
        page = html.render_html({})
        self.assertIn("No champion yet", page)
        self.assertIn("No runs yet", page)
        self.assertTrue(page.startswith("<!DOCTYPE html>"))
        self.assertIn("No champion yet", html.render_html(None))


class ReportCliTest(LabCase):
    def test_report_writes_html_and_json_beside_markdown(self):
        self.ok("init")
        self.log_keep("baseline", 0.998)
        self.log_keep(EVIL, 0.99)
        self.ok("log", "--description", "deeper <b>bold</b>", "--status", "crash")
        result = self.ok("report", "--json")
        paths = result.json()["paths"]
        reports = os.path.join("results", "memorylab", "reports")
        self.assertIn(os.path.join(reports, "latest.html"), paths)
        self.assertIn(os.path.join(reports, "latest.json"), paths)
        with open(self.path(reports, "latest.html"), encoding="utf-8") as f:
            page = f.read()
        with open(self.path(reports, "latest.json"), encoding="utf-8") as f:
            data = json.load(f)
        self.assertEqual(page, html.render_html(data))
        self.assertEqual(len(re.findall(r'class="mark ', page)), 3)
        parsed = Elements(page)
        self.assertNotIn("script", parsed.tags)
        self.assertNotIn("img", parsed.tags)
        self.assertIn(EVIL, "".join(parsed.text))
        self.assertIn("deeper <b>bold</b>", "".join(parsed.text))


if __name__ == "__main__":
    unittest.main()
