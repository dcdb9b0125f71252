"""views.py (pure) and the show / list / compare / brief commands through the CLI."""

import json
import os
import unittest

from mlhelpers import LabCase, commit_change

from memorylab_core import views


def row(run_id, status="keep", val_bpb=0.99, ts="2026-01-01T00:00:00Z", **extra):
    base = {"run_id": run_id, "timestamp_utc": ts, "commit": run_id[-7:], "status": status,
            "family": "general", "tags": [], "description": f"idea {run_id}",
            "metrics": {"val_bpb": val_bpb, "peak_vram_mb": 40960.0}}
    base.update(extra)
    return base


class ResolveRunTest(unittest.TestCase):
    rows = [row("20260101T000000Z-aaaaaaa"), row("20260101T010000Z-bbbbbbb"),
            row("20260101T010500Z-bbbcccc")]

    def test_exact_prefix_commit_and_champion(self):
        self.assertEqual(views.resolve_run(self.rows, "20260101T000000Z-aaaaaaa")["commit"],
                         "aaaaaaa")
        self.assertEqual(views.resolve_run(self.rows, "20260101T0000")["commit"], "aaaaaaa")
        self.assertEqual(views.resolve_run(self.rows, "bbbc")["commit"], "bbbcccc")
        self.assertEqual(views.resolve_run(self.rows, "champion",
                                           champion_id="20260101T010000Z-bbbbbbb")["commit"],
                         "bbbbbbb")

    def test_ambiguous_missing_and_no_champion(self):
        with self.assertRaisesRegex(views.RunNotFound, "ambiguous"):
            views.resolve_run(self.rows, "20260101T01")
        with self.assertRaisesRegex(views.RunNotFound, "ambiguous"):
            views.resolve_run(self.rows, "bbb")
        with self.assertRaisesRegex(views.RunNotFound, "no run matches"):
            views.resolve_run(self.rows, "zzz")
        with self.assertRaisesRegex(views.RunNotFound, "no champion"):
            views.resolve_run(self.rows, "champion")
        with self.assertRaises(views.RunNotFound):
            views.resolve_run(self.rows, "  ")


class FilterRunsTest(unittest.TestCase):
    rows = [row("20260101T000000Z-aaaaaaa", ts="2026-01-01T00:00:00Z", tags=["lr"]),
            row("20260101T050000Z-bbbbbbb", "discard", ts="2026-01-01T05:00:00Z",
                family="optim", tags=["lr", "wd"]),
            row("20260101T030000Z-ccccccc", "crash", None, ts="2026-01-01T03:00:00Z"),
            {"run_id": "odd", "status": 7, "tags": "not a list", "timestamp_utc": None}]

    def ids(self, **kw):
        return [r["run_id"] for r in views.filter_runs(self.rows, **kw)]

    def test_newest_first_and_filters(self):
        self.assertEqual(self.ids(), ["20260101T050000Z-bbbbbbb", "20260101T030000Z-ccccccc",
                                      "20260101T000000Z-aaaaaaa", "odd"])
        self.assertEqual(self.ids(status="crash"), ["20260101T030000Z-ccccccc"])
        self.assertEqual(self.ids(status="keep,crash"), ["20260101T030000Z-ccccccc",
                                                         "20260101T000000Z-aaaaaaa"])
        self.assertEqual(self.ids(family="optim"), ["20260101T050000Z-bbbbbbb"])
        self.assertEqual(self.ids(tag="LR"), ["20260101T050000Z-bbbbbbb",
                                              "20260101T000000Z-aaaaaaa"])
        self.assertEqual(self.ids(since_hours=4, now="2026-01-01T06:00:00Z"),
                         ["20260101T050000Z-bbbbbbb", "20260101T030000Z-ccccccc"])

    def test_list_entry_tolerates_odd_rows(self):
        entry = views.list_entry(self.rows[3])
        self.assertEqual(entry["val_bpb"], None)
        self.assertEqual(entry["status"], "")


class CompareRunsTest(unittest.TestCase):
    def test_metric_config_and_hyperparameter_deltas(self):
        a = row("20260101T000000Z-aaaaaaa", val_bpb=1.0,
                config={"constants": {"LR": 0.04, "DEPTH": 8}, "code_sha256": "x"},
                hyperparameters={"lr": 0.04}, provenance={"device": "H100", "seed": 1})
        b = row("20260101T010000Z-bbbbbbb", val_bpb=0.99,
                config={"constants": {"LR": 0.05, "DEPTH": 8}, "code_sha256": "y"},
                hyperparameters={"lr": 0.05}, provenance={"device": "H100", "seed": 2})
        result = views.compare_runs(a, b)
        bpb = next(m for m in result["metrics"] if m["name"] == "val_bpb")
        self.assertAlmostEqual(bpb["delta"], -0.01)
        self.assertAlmostEqual(bpb["relative"], -0.01)
        self.assertEqual(result["config_delta"], [{"name": "LR", "old": 0.04, "new": 0.05}])
        self.assertTrue(result["code_changed"])
        self.assertEqual(result["hyperparameter_delta"], [{"name": "lr", "old": 0.04, "new": 0.05}])
        self.assertEqual(result["provenance_delta"], [{"name": "seed", "old": 1, "new": 2}])
        self.assertFalse(result["same_commit"])
        text = views.format_compare(result, diff="-LR = 0.04\n+LR = 0.05\n")
        self.assertIn("LR: 0.04 -> 0.05", text)
        self.assertIn("-0.010000", text)
        self.assertIn("+LR = 0.05", text)

    def test_unknown_config_and_crash(self):
        a, b = row("r-aaaaaaa"), row("r-bbbbbbb", "crash", None)
        result = views.compare_runs(a, b)
        self.assertIsNone(result["config_delta"])
        self.assertIsNone(result["code_changed"])
        bpb = next(m for m in result["metrics"] if m["name"] == "val_bpb")
        self.assertIsNone(bpb["delta"])
        self.assertIn("unknown", views.format_compare(result))
        self.assertIn("not available", views.format_compare(result))


class BriefDataTest(unittest.TestCase):
    def test_empty_ledger_recommends_baseline(self):
        brief = views.brief_data([], {}, now="2026-01-01T00:00:00Z")
        self.assertIsNone(brief["champion"])
        self.assertEqual(brief["next_action"]["action"], "baseline")
        self.assertIn("Champion: none yet", views.format_brief(brief))

    def test_champion_decisions_clusters_and_plateau(self):
        packet = {"next_action": "replicate", "priority": "high", "summary": "within noise"}
        rows = [row("r1-aaaaaaa", ts="2026-01-01T00:00:00Z"),
                row("r2-bbbbbbb", ts="2026-01-01T01:00:00Z", decision_packet=packet)]
        registry = {"champion": {"run_id": "r1-aaaaaaa", "commit": "aaaaaaa", "val_bpb": 0.99,
                                 "n": 3, "sd": 0.0004, "provisional": False},
                    "noise_floor": {"sigma": 0.0005, "dof": 4, "source": "measured"},
                    "failure_clusters": [{"label": "crash: out of memory", "size": 2,
                                          "crashes": 2}],
                    "status_counts": {"keep": 2}}
        brief = views.brief_data(rows, registry, now="2026-01-01T02:00:00Z")
        self.assertEqual(brief["next_action"]["action"], "replicate")
        self.assertEqual(brief["status_counts"], {"keep": 2, "discard": 0, "crash": 0})
        text = views.format_brief(brief)
        self.assertIn("at 0.990000 val_bpb (mean of 3 runs ± 0.000400)", text)
        self.assertIn("Noise floor: σ = 0.000500 (measured over 4 dof)", text)
        self.assertIn("crash: out of memory", text)
        registry["plateau"] = {"plateau": True, "recommendation": "try explore mode"}
        brief = views.brief_data(rows, registry, now="2026-01-01T02:00:00Z")
        self.assertEqual(brief["next_action"], {"action": "explore",
                                                "reason": "try explore mode"})


class QueryCliTest(LabCase):
    """show / list / compare / brief through memorylab.main, text and --json."""

    def setUp(self):
        super().setUp()
        self.ok("init")
        self.log_at("2026-01-01T01:00:00Z", "baseline", 0.998, "--tags", "base")
        commit_change(self.repo, "MATRIX_LR = 0.04", "MATRIX_LR = 0.05", "lr up")
        self.log_at("2026-01-01T02:00:00Z", "raise matrix lr to 0.05", 0.990, "--family", "optim",
                    "--tags", "lr")
        commit_change(self.repo, "DEPTH = 8", "DEPTH = 12", "deeper")
        self.ok("log", "--description", "depth 12", "--status", "crash",
                "--error", "CUDA out of memory", MEMORYLAB_NOW="2026-01-01T03:00:00Z")
        self.ids = [r["run_id"] for r in self.records()]

    def log_at(self, now, description, val_bpb, *extra):
        summary = self.summary(val_bpb=val_bpb)
        return self.ok("log", "--description", description, "--status", "keep",
                       "--summary", summary, *extra, MEMORYLAB_NOW=now)

    def test_list_text_json_and_every_filter(self):
        out = self.ok("list").out.splitlines()
        self.assertEqual([line.split()[0] for line in out], self.ids[::-1])
        data = self.ok("list", "--json").json()
        self.assertEqual([r["run_id"] for r in data["runs"]], self.ids[::-1])
        self.assertEqual(data["total"], 3)

        def ids(*flags):
            return [r["run_id"] for r in self.ok("list", "--json", *flags).json()["runs"]]
        self.assertEqual(ids("--status", "crash"), [self.ids[2]])
        self.assertEqual(ids("--family", "optim"), [self.ids[1]])
        self.assertEqual(ids("--tag", "base"), [self.ids[0]])
        self.assertEqual(ids("--since-hours", "4.5"), [self.ids[2], self.ids[1]])
        self.assertEqual(ids("--limit", "1"), [self.ids[2]])
        self.assertIn("1 of 3 matching", self.ok("list", "--limit", "1").out)
        self.assertEqual(self.ok("list", "--tag", "nothing").out.strip(), "No runs match.")

    def test_list_bad_flags(self):
        self.assertIn("--status", self.fails("list", "--status", "won"))
        self.assertIn("--limit", self.fails("list", "--limit", "0"))
        self.assertIn("--since-hours", self.fails("list", "--since-hours", "0"))

    def test_show_by_id_prefix_commit_and_champion(self):
        text = self.ok("show", self.ids[1]).out
        self.assertIn("raise matrix lr to 0.05", text)
        self.assertIn("decision: action=promote", text)
        self.assertIn("decision_packet.json", text)
        data = self.ok("show", "champion", "--json").json()
        self.assertEqual(data["run"]["run_id"], self.ids[1])
        self.assertEqual(data["decision_packet"]["next_action"], "promote")
        self.assertTrue(any(f.endswith("decision_packet.md") for f in data["files"]))
        self.assertEqual(data["missing_files"], [])
        self.assertEqual(self.ok("show", self.ids[2][-7:], "--json").json()["run"]["status"],
                         "crash")
        self.assertIn("ambiguous", self.fails("show", "2026"))
        self.assertIn("no run matches", self.fails("show", "nope"))

    def test_show_reports_missing_archive_files(self):
        os.unlink(self.path("results", "memorylab", "runs", self.ids[0], "decision_packet.md"))
        data = self.ok("show", self.ids[0], "--json").json()
        self.assertEqual(len(data["missing_files"]), 1)
        self.assertIn("missing:", self.ok("show", self.ids[0]).out)

    def test_compare_metrics_config_and_diff(self):
        text = self.ok("compare", self.ids[0], "champion").out
        self.assertIn("MATRIX_LR: 0.04 -> 0.05", text)
        self.assertIn("-0.008000", text)
        self.assertIn("+MATRIX_LR = 0.05", text)
        data = self.ok("compare", self.ids[0], self.ids[2], "--json").json()
        self.assertEqual({d["name"] for d in data["config_delta"]}, {"MATRIX_LR", "DEPTH"})
        self.assertIn("+DEPTH = 12", data["train_py_diff"])
        same = self.ok("compare", self.ids[1], self.ids[1], "--json").json()
        self.assertTrue(same["same_commit"])
        self.assertIsNone(same["train_py_diff"])
        self.assertIn("no run matches", self.fails("compare", self.ids[0], "nope"))

    def test_compare_without_git_history(self):
        import shutil
        shutil.rmtree(self.path(".git"))
        data = self.ok("compare", self.ids[0], self.ids[1], "--json").json()
        self.assertIsNone(data["train_py_diff"])
        self.assertIn("not available", self.ok("compare", self.ids[0], self.ids[1]).out)

    def test_brief_text_and_json(self):
        text = self.ok("brief").out
        self.assertIn(f"Champion: run {self.ids[1]} on commit ", text)
        self.assertIn("(provisional: a single run), 43.9 GB, 953 steps", text)
        self.assertIn("Best so far (the champion value): 0.990000 val_bpb", text)
        self.assertIn("Noise floor: σ = 0.001000 (prior", text)
        self.assertIn("Decisions (1 open, 2 closed; open first):\n  [open] ", text)
        self.assertIn("Next: fix_and_retry", text)
        self.assertIn("out of memory", text)
        data = self.ok("brief", "--json", "--last", "2").json()
        self.assertEqual(len(data["last_decisions"]), 2)
        self.assertEqual(data["status_counts"]["crash"], 1)
        self.assertEqual(data["experiments"], 3)
        self.assertIn("--last", self.fails("brief", "--last", "0"))

    def test_queries_on_fresh_and_torn_stores(self):
        empty = os.path.join(self.tmp, "empty")
        os.makedirs(empty)
        result = self.cli("brief", "--json", "--root", empty)
        self.assertEqual(result.code, 0, result)
        self.assertEqual(result.json()["next_action"]["action"], "baseline")
        with open(self.path("results", "memorylab", "experiments.jsonl"), "ab") as f:
            f.write(b'{"torn')
        result = self.cli("list", "--json")
        self.assertEqual(result.code, 0, result)
        self.assertEqual(len(result.json()["runs"]), 3)
        self.assertIn("line 4", result.err)

    def test_root_flag_and_env(self):
        other = os.path.join(self.tmp, "elsewhere")
        os.makedirs(other)
        data = self.ok("list", "--json", cwd=other, MEMORYLAB_ROOT=self.repo).json()
        self.assertEqual(len(data["runs"]), 3)
        data = self.ok("list", "--json", "--root", self.repo, cwd=other).json()
        self.assertEqual(len(data["runs"]), 3)
        self.assertEqual(json.loads(self.ok("list", "--json", cwd=other).out)["total"], 0)


if __name__ == "__main__":
    unittest.main()
