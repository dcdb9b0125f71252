"""Tests for memorylab_core.render: report data, the morning report, packets as markdown."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memorylab_core import decisions, registry, render  # noqa: E402

NOW = "2026-01-02T06:00:00Z"
H100 = {"device": "NVIDIA H100 80GB HBM3", "time_budget_s": 300}
CPU = {"device": "cpu", "time_budget_s": 60}
SECTIONS = ["# Morning Report", "## Headline", "## Decision Queue", "## Champion Board",
            "## Best Lineages", "## Failure Clusters", "## Recent Ledger"]


def run(number, status, val_bpb, stamp, *, priority="low", action="abandon", **fields):
    row = {"run_id": f"run{number:02d}", "timestamp_utc": stamp, "branch": "b",
           "commit": f"{number:07x}", "parent_commit": f"{number - 1:07x}", "family": "",
           "status": status, "description": f"idea {number}", "hypothesis": "", "tags": [],
           "metrics": {"val_bpb": val_bpb, "peak_vram_mb": 46080.0},
           "decision_packet": {"next_action": action, "priority": priority,
                               "summary": f"summary {number}"}}
    row.update(fields)
    return row


def night():
    """Two runs yesterday (before a 16 h window), five in the window."""
    return [
        run(1, "keep", 1.000, "2026-01-01T10:00:00Z", action="promote", priority="high"),
        run(2, "keep", 0.995, "2026-01-01T11:00:00Z", action="promote", priority="high"),
        run(3, "discard", 0.999, "2026-01-01T22:00:00Z"),
        run(4, "keep", 0.990, "2026-01-02T01:00:00Z", action="promote", priority="high"),
        run(5, "crash", None, "2026-01-02T02:00:00Z", action="investigate_crash",
            priority="high", error={"summary": "ValueError: boom"}),
        run(6, "discard", 0.992, "2026-01-02T03:00:00Z", action="retry", priority="medium",
            description="pipes | and\nnewlines"),
        run(7, "keep", 0.991, "2026-01-02T04:00:00Z", action="replicate", priority="medium"),
    ]


def report(rows, since_hours=16):
    data = render.report_data(rows, registry.build_registry(rows, now=NOW), now=NOW,
                              since_hours=since_hours)
    json.dumps(data, allow_nan=False)
    return data


class MdCell(unittest.TestCase):
    def test_escapes_pipes_and_line_breaks(self):
        self.assertEqual(render.md_cell("a|b"), "a\\|b")
        self.assertEqual(render.md_cell("a\nb\r\nc\rd"), "a<br>b<br>c<br>d")
        self.assertEqual(render.md_cell(None), "")
        self.assertEqual(render.md_cell(0.5), "0.5")


class ReportData(unittest.TestCase):
    def test_window_counts_champion_and_change(self):
        data = report(night())
        headline = data["headline"]
        self.assertEqual(headline["experiments"], 5)
        self.assertEqual(headline["status_counts"], {"keep": 2, "discard": 2, "crash": 1, "other": 0})
        self.assertEqual(headline["champion"]["run_id"], "run04")
        self.assertEqual(headline["champion_before_window"]["run_id"], "run02")
        self.assertEqual(headline["change_vs_before_window"], -0.005)
        self.assertEqual(data["window"]["start_utc"], "2026-01-01T14:00:00Z")

    def test_decision_queue_open_first_then_highest_priority_then_newest(self):
        data = report(night())
        queue = data["decision_queue"]
        # one branch: the latest run's packet is open, every earlier one was acted on
        self.assertEqual([(item["run_id"], item["state"]) for item in queue],
                         [("run07", "open"), ("run05", "closed"), ("run04", "closed"),
                          ("run06", "closed"), ("run03", "closed")])
        self.assertEqual((data["decision_queue_total"], data["decision_queue_open"]), (5, 1))

    def test_recent_ledger_latest_ten_newest_first(self):
        rows = [run(n, "discard", 1.0, f"2026-01-02T00:{n:02d}:00Z") for n in range(1, 15)]
        recent = report(rows)["recent_ledger"]
        self.assertEqual([item["run_id"] for item in recent],
                         [f"run{n:02d}" for n in range(14, 4, -1)])

    def test_series_has_every_run_and_the_running_best_of_kept_runs(self):
        data = report(night())
        series = data["series"]
        self.assertEqual(len(series), 7)
        self.assertEqual([point["index"] for point in series], list(range(7)))
        self.assertEqual([point["best"] for point in series],
                         [1.0, 0.995, 0.995, 0.99, 0.99, 0.99, 0.99])
        self.assertIsNone(series[4]["val_bpb"])
        self.assertEqual(series[3]["description"], "idea 4")
        self.assertEqual(series[2]["description"], "")

    def test_classes_get_their_own_boards_and_running_bests(self):
        rows = night()
        for row in rows:
            row["provenance"] = dict(H100)
        rows.append(run(8, "keep", 0.5, "2026-01-02T05:00:00Z", provenance=dict(CPU)))
        data = report(rows)
        self.assertEqual(data["headline"]["champion"]["run_id"], "run04")
        self.assertEqual(len(data["class_boards"]), 2)
        self.assertTrue(data["class_boards"][1]["smoke"])
        self.assertEqual(data["series"][-1]["best"], 0.5)
        self.assertEqual(data["series"][-2]["best"], 0.99)
        markdown = render.render_markdown(data)
        self.assertIn("(current)", markdown)
        self.assertIn("(CPU smoke runs)", markdown)
        self.assertIn("- Comparability class: NVIDIA H100 80GB HBM3, 300 s budget (2 classes", markdown)

    def test_junk_rows_report(self):
        rows = night() + [{}, {"timestamp_utc": 5, "status": ["x"], "metrics": "m",
                               "decision_packet": "p"}, "junk",
                          run(9, "keep", "0.1", "not a time")]
        data = report(rows)
        self.assertEqual(data["headline"]["champion"]["run_id"], "run04")
        render.render_markdown(data)

    def test_junk_registry_reports(self):
        rows = night()
        for junk in ({}, {"champion": 5}, {"champion": {"val_bpb": "x", "n": "2"}, "challengers": "y",
                                           "classes": [1, {"challengers": [3]}], "lineages": None,
                                           "failure_clusters": [2, {"examples": [{}, 3]}]}):
            data = render.report_data(rows, junk, now=NOW, since_hours=16)
            render.render_markdown(data)

    def test_bad_now_is_an_error(self):
        with self.assertRaises(ValueError):
            render.report_data([], {}, now="yesterday", since_hours=16)


class Markdown(unittest.TestCase):
    def test_sections_in_order_and_headline_lines(self):
        markdown = render.render_markdown(report(night()))
        positions = [markdown.index(section) for section in SECTIONS]
        self.assertEqual(positions, sorted(positions))
        self.assertIn("Generated 2026-01-02T06:00:00Z; window: the last 16 h "
                      "(since 2026-01-01T14:00:00Z).", markdown)
        # the lines operators' scripts grep, exactly
        self.assertIn("\n- Experiments recorded overnight: 5\n", markdown)
        self.assertIn("\n- Keep / discard / crash: 2 / 2 / 1\n", markdown)
        self.assertIn("\n- Current champion: run `run04` on commit `0000004` at 0.990000 val_bpb "
                      "(provisional: a single run), 45.0 GB: idea 4\n", markdown)
        # the queue holds only open items and counts the closed ones
        queue = markdown[markdown.index("## Decision Queue"):markdown.index("## Champion Board")]
        self.assertIn("| medium | replicate | run07 | summary 7 |", queue)
        self.assertNotIn("run05", queue)
        self.assertIn("4 closed decisions in the window", queue)
        self.assertIn("- Change vs the champion before the window: -0.005000 val_bpb "
                      "(was run `run02` at 0.995000)", markdown)
        self.assertIn("- Noise floor: σ = 0.001000 (prior; no replicates yet)", markdown)

    def test_table_cells_are_escaped(self):
        markdown = render.render_markdown(report(night()))
        self.assertIn("pipes \\| and<br>newlines", markdown)
        for line in markdown.splitlines():
            if line.startswith("| run06"):
                self.assertEqual(line.count(" | "), 7)

    def test_empty_ledger(self):
        markdown = render.render_markdown(report([]))
        for section in SECTIONS:
            self.assertIn(section, markdown)
        self.assertIn("- Current champion: none yet", markdown)

    def test_replicated_champion_shows_n_and_spread_and_plateau(self):
        rows = [run(1, "keep", 0.9900, "2026-01-02T00:00:00Z", commit="aaaaaaa"),
                run(2, "keep", 0.9902, "2026-01-02T00:01:00Z", commit="aaaaaaa",
                    action="branch_followup")]
        rows += [run(n, "discard", 0.9950, f"2026-01-02T00:{n:02d}:00Z") for n in range(3, 13)]
        markdown = render.render_markdown(report(rows))
        self.assertIn("at 0.990100 val_bpb (mean of 2 runs ± 0.000141)", markdown)
        self.assertIn("| 1 | run01 | aaaaaaa | 0.990100 | 2 | 0.000141 |", markdown)
        self.assertIn("- Noise floor: σ = 0.000821 (measured sd 0.000141 over 1 dof, shrunk toward "
                      "the prior 0.001000; 1 replicate group(s))", markdown)
        self.assertIn("- Plateau: the last 10 runs improved", markdown)
        self.assertIn("switch to explore mode", markdown)


class PacketMarkdown(unittest.TestCase):
    def test_replicate_packet_names_commit_and_seeds(self):
        history = [run(1, "keep", 1.0, "2026-01-02T00:00:00Z")]
        record = run(2, "keep", 0.9995, "2026-01-02T00:01:00Z", description="a | b")
        packet = decisions.decide(record, registry.Board(history + [record]), None)
        markdown = render.render_packet_markdown(packet)
        self.assertTrue(markdown.startswith("# Decision packet: run02\n"))
        self.assertIn("**replicate** (high priority)", markdown)
        self.assertIn("Rerun commit `0000002` with AUTORESEARCH_SEED=43, 44", markdown)
        self.assertIn("AUTORESEARCH_SEED=43 AUTORESEARCH_SUMMARY_PATH=results/summary.json uv run "
                      "train.py > run.log 2>&1", markdown)
        self.assertIn("| description | a \\| b |", markdown)
        self.assertIn("σ = 0.001000 (prior; no replicates yet)", markdown)

    def test_crash_packet_shows_the_tail(self):
        record = run(1, "crash", None, "2026-01-02T00:00:00Z",
                     error={"summary": "ValueError: x", "tail": ["a", 3, "```"]})
        markdown = render.render_packet_markdown(decisions.decide(record, registry.Board([record]),
                                                                  None))
        self.assertIn("## Error", markdown)
        self.assertIn("ValueError: x", markdown)
        self.assertEqual(markdown.count("```"), 2)

    def test_junk_packet(self):
        render.render_packet_markdown(None)
        render.render_packet_markdown({"run": "x", "comparison": None, "error": {"tail": "t"}})


if __name__ == "__main__":
    unittest.main()
