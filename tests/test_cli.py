"""CLI scenarios for init, check, log and report (in-process main, temp git repos)."""

import json
import os
import shutil
import unittest

from mlhelpers import LEDGER, NOW, LabCase, commit_change, console_summary, metrics, make_repo

SPEC_FIELDS = {"run_id", "timestamp_utc", "branch", "commit", "parent_commit", "family",
               "status", "description", "hypothesis", "tags", "notes", "metrics", "error",
               "artifacts", "novelty_guard", "decision_packet"}
ADDED_FIELDS = {"schema_version", "provenance", "hyperparameters", "config",
                "novelty_features", "imported"}


class InitTest(LabCase):
    def test_init_creates_layout_and_is_idempotent(self):
        result = self.ok("init")
        self.assertIn("0 runs", result.out)
        for part in ("experiments.jsonl", "champion_challenger.json", "reports", "runs"):
            self.assertTrue(os.path.exists(self.path("results", "memorylab", part)), part)
        self.assertEqual(self.ledger(), b"")
        self.assertEqual(self.tsv(), ["commit\tval_bpb\tmemory_gb\tstatus\tdescription"])
        registry = self.registry()
        self.assertIsNone(registry["champion"])
        self.assertEqual(registry["experiments"], 0)
        before = self.snapshot()
        self.ok("init")
        self.assertEqual(self.snapshot(), before)

    def test_init_keeps_existing_runs(self):
        self.log_keep("raise matrix lr to 0.05")
        before = self.snapshot()
        self.assertIn("1 runs", self.ok("init").out)
        self.assertEqual(self.snapshot(), before)

    def test_cli_modes_are_the_novelty_modes(self):
        import memorylab
        from memorylab_core import novelty
        self.assertEqual(memorylab.MODES, novelty.MODES)

    def test_usage_error_is_one_line_exit_1(self):
        result = self.cli("log", "--description", "x")  # --status missing
        self.assertEqual(result.code, 1)
        self.assertTrue(result.err.startswith("error: "), result.err)
        self.assertEqual(len(result.err.strip().splitlines()), 1)


class CheckTest(LabCase):
    def test_novel_idea_on_empty_store(self):
        result = self.ok("check", "--description", "use a cosine warmdown schedule")
        self.assertIn("Classification: novel", result.out)
        self.assertIn("Effective threshold: 0.620", result.out)
        self.assertIn("Counts: duplicate_run=0", result.out)
        self.assertIn("Nothing close matched", result.out)
        self.assertIn("Policy (exploit mode): caution", result.out)

    def test_check_writes_nothing(self):
        before = self.snapshot()
        self.ok("check", "--description", "an idea")
        self.assertEqual(self.snapshot(), before)
        self.assertFalse(os.path.exists(self.path("results")))

    def test_json_and_modes(self):
        data = self.ok("check", "--description", "new idea", "--mode", "explore", "--json").json()
        guard = data["novelty_guard"]
        self.assertEqual(guard["classification"], "novel")
        self.assertEqual(guard["mode"], "explore")
        self.assertAlmostEqual(guard["effective_threshold"], 0.57)
        self.assertEqual(guard["policy"]["decision"], "allow")
        self.assertFalse(data["blocked"])
        self.assertEqual(data["runs"], 0)

    def test_fail_on_similar_blocks_a_repeat_failure(self):
        self.log_keep("increase MATRIX_LR from 0.04 to 0.08", 1.01, "discard")
        args = ("check", "--description", "increase MATRIX_LR from 0.04 to 0.08",
                "--fail-on-similar")
        result = self.cli(*args)
        self.assertEqual(result.code, 2, result)
        self.assertIn("Closest prior runs:", result.out)
        self.assertIn("Blocked (--fail-on-similar).", result.out)
        data = self.cli(*args, "--json")
        self.assertEqual(data.code, 2)
        self.assertTrue(data.json()["blocked"])
        match = data.json()["novelty_guard"]["top_matches"][0]
        for key in ("category", "score", "run_id", "commit", "status", "val_bpb", "description"):
            self.assertIn(key, match)
        # Without the flag the same verdict exits 0.
        self.assertEqual(self.cli(*args[:-1]).code, 0)

    def test_limit_and_threshold_are_checked(self):
        self.fails("check", "--description", "x", "--threshold", "1.5")
        self.fails("check", "--description", "x", "--threshold", "-0.1")
        self.fails("check", "--description", "x", "--limit", "0")
        self.fails("check", "--description", "   ")

    def test_code_flags_identical_train_py_as_duplicate(self):
        self.log_keep("baseline run")
        data = self.ok("check", "--description", "something worded differently", "--code",
                       "--json").json()
        guard = data["novelty_guard"]
        self.assertEqual(guard["classification"], "duplicate_run")
        self.assertEqual(data["train_py"], "train.py")

    def test_code_reports_constant_delta_from_champion(self):
        self.log_keep("baseline run")
        with open(self.path("train.py")) as f:
            text = f.read()
        with open(self.path("train.py"), "w") as f:
            f.write(text.replace("MATRIX_LR = 0.04", "MATRIX_LR = 0.05"))
        result = self.ok("check", "--description", "bump the matrix learning rate", "--code")
        self.assertIn("Config delta vs champion: MATRIX_LR", result.out)
        guard = self.ok("check", "--description", "bump it", "--code", "--json").json()
        self.assertEqual(guard["novelty_guard"]["config_delta"],
                         [{"name": "MATRIX_LR", "old": 0.04, "new": 0.05}])

    def test_code_delta_when_the_registry_file_is_stale(self):
        # check reads rows without the fields a registry is built from (provenance
        # among them); with no registry file to trust, the champion must still be
        # the one of the current class: B (H100), not A (better, but on a CPU)
        commit_change(self.repo, "MATRIX_LR = 0.04", "MATRIX_LR = 0.03", "A")
        self.log_keep("run A on a cpu", 0.90, device="cpu")
        commit_change(self.repo, "MATRIX_LR = 0.03", "MATRIX_LR = 0.045", "B")
        self.log_keep("run B on the H100", 0.99, device="NVIDIA H100 80GB HBM3")
        with open(self.path("train.py")) as f:
            text = f.read()
        with open(self.path("train.py"), "w") as f:
            f.write(text.replace("MATRIX_LR = 0.045", "MATRIX_LR = 0.05"))
        fresh = self.ok("check", "--description", "bump it", "--code", "--json").json()
        self.assertEqual(fresh["novelty_guard"]["config_delta"],
                         [{"name": "MATRIX_LR", "old": 0.045, "new": 0.05}])
        os.remove(self.path("results", "memorylab", "champion_challenger.json"))
        for _ in range(2):   # the index rebuilt, then read back
            shutil.rmtree(self.path("results", "memorylab", "index"), ignore_errors=True)
            stale = self.ok("check", "--description", "bump it", "--code", "--json").json()
            self.assertEqual(stale["novelty_guard"], fresh["novelty_guard"])

    def test_code_without_train_py_is_an_error(self):
        plain = os.path.join(self.tmp, "plain")
        os.makedirs(plain)
        self.fails("check", "--description", "x", "--code", cwd=plain)


class LogTest(LabCase):
    def test_keep_run_from_summary(self):
        summary = self.write("s.json", json.dumps(dict(
            metrics(val_bpb=0.991234),
            hyperparameters={"MATRIX_LR": 0.04},
            provenance={"device": "NVIDIA H100", "seed": 42, "time_budget_s": 300})))
        self.write("run.log", "step 1\n" + console_summary(metrics(val_bpb=0.991234)))
        os.utime(summary, (os.path.getmtime(self.path("run.log")),) * 2)
        result = self.ok("log", "--description", "raise matrix lr to 0.05", "--status", "keep",
                         "--tags", "LR, optim", "--family", "optimizer", "--hypothesis",
                         "faster early progress", "--notes", "first try",
                         "--summary", summary, "--log", self.path("run.log"))
        out = result.out.splitlines()
        record = self.records()[0]
        run_id = record["run_id"]
        commit = record["commit"]
        self.assertEqual(run_id, "20260101T060000Z-" + commit)
        self.assertEqual(out[0], f"Logged run {run_id}")
        self.assertIn("val_bpb: 0.991234", result.out)
        self.assertIn("memory: 43.9 GB", result.out)
        self.assertIn("Decision packet: action=promote priority=high summary=Promote run "
                      f"{run_id}: first champion recorded at 0.991234 val_bpb.", result.out)
        self.assertIn(f"Champion: run {run_id} on commit ", result.out)
        self.assertLessEqual(SPEC_FIELDS | ADDED_FIELDS, set(record))
        self.assertEqual(record["timestamp_utc"], NOW)
        self.assertEqual(record["branch"], "main")
        self.assertEqual(len(commit), 7)
        self.assertIsNone(record["parent_commit"])
        self.assertEqual(record["tags"], ["lr", "optim"])
        self.assertEqual(record["family"], "optimizer")
        self.assertEqual(record["metrics"]["val_bpb"], 0.991234)
        self.assertEqual(record["metrics"]["num_steps"], 953)
        self.assertIsInstance(record["metrics"]["num_steps"], int)
        self.assertIsNone(record["error"])
        self.assertEqual(record["provenance"]["device"], "NVIDIA H100")
        self.assertEqual(record["hyperparameters"], {"MATRIX_LR": 0.04})
        self.assertEqual(record["config"]["constants"]["MATRIX_LR"], 0.04)
        self.assertEqual(len(record["config"]["code_sha256"]), 64)
        self.assertIsNotNone(record["novelty_features"])
        self.assertEqual(record["novelty_guard"]["classification"], "novel")
        self.assertEqual(record["decision_packet"]["next_action"], "promote")
        run_dir = f"results/memorylab/runs/{run_id}"
        self.assertEqual(record["artifacts"]["run_dir"], run_dir)
        for name in ("run.log", "summary.json", "train.patch", "decision_packet.json",
                     "decision_packet.md"):
            self.assertTrue(os.path.isfile(self.path(run_dir, name)), name)
            self.assertIn(os.path.join(run_dir, name), record["artifacts"].values())
        with open(self.path(run_dir, "decision_packet.json")) as f:
            self.assertEqual(json.load(f), record["decision_packet"])
        self.assertEqual(self.tsv()[1], f"{commit}\t0.991234\t43.9\tkeep\traise matrix lr to 0.05")
        self.assertEqual(self.registry()["champion"]["run_id"], run_id)

    def test_metrics_parsed_from_log_when_no_summary(self):
        self.write("run.log", "warming up\r step 5 \r" + console_summary(metrics(val_bpb=0.997)))
        self.ok("log", "--description", "baseline", "--status", "discard",
                "--log", self.path("run.log"))
        record = self.records()[0]
        self.assertEqual(record["metrics"]["val_bpb"], 0.997)
        self.assertEqual(record["metrics"]["depth"], 8)
        self.assertEqual(record["provenance"], {})
        self.assertEqual(record["hyperparameters"], {})

    def test_crash_with_non_utf8_log(self):
        self.write("run.log", b"step 1\n\xff\xfe garbage\nTraceback (most recent call last):\n"
                              b"  File 'train.py'\ntorch.OutOfMemoryError: CUDA out of memory\n\n")
        result = self.ok("log", "--description", "double depth", "--status", "crash",
                         "--log", self.path("run.log"))
        record = self.records()[0]
        self.assertIsNone(record["metrics"]["val_bpb"])
        self.assertEqual(record["error"]["summary"], "torch.OutOfMemoryError: CUDA out of memory")
        self.assertEqual(record["error"]["source"], "log")
        self.assertEqual(record["error"]["tail"][-1], "torch.OutOfMemoryError: CUDA out of memory")
        self.assertIn("\ufffd", record["error"]["tail"][1])
        self.assertIn("action=fix_and_retry priority=high", result.out)
        self.assertEqual(self.tsv()[1].split("\t")[1:4], ["0.000000", "0.0", "crash"])
        with open(self.path(record["artifacts"]["run_log"]), "rb") as f:
            self.assertIn(b"\xff\xfe garbage", f.read())

    def test_crash_with_error_text_and_no_files(self):
        self.ok("log", "--description", "swap to gelu", "--status", "crash",
                "--error", "segfault in\nkernel")
        record = self.records()[0]
        self.assertEqual(record["error"], {"summary": "segfault in kernel", "tail": [],
                                           "source": "argument"})
        self.assertEqual(record["decision_packet"]["next_action"], "investigate_crash")

    def test_crash_ignores_stale_metrics_and_keeps_partial_ones(self):
        self.write("run.log", console_summary({"val_bpb": 0.99, "num_steps": 10}) + "Killed\n")
        self.ok("log", "--description", "x", "--status", "crash", "--log", self.path("run.log"))
        record = self.records()[0]
        self.assertIsNone(record["metrics"]["val_bpb"])
        self.assertEqual(record["metrics"]["num_steps"], 10)
        self.assertEqual(record["error"]["summary"], "Killed")

    def test_json_output(self):
        data = self.log_keep("baseline", 0.99, "keep", "--json").json()
        record = self.records()[0]
        self.assertEqual(data["run_id"], record["run_id"])
        self.assertEqual(data["status"], "keep")
        self.assertEqual(data["val_bpb"], 0.99)
        self.assertEqual(data["memory_gb"], round(45000.0 / 1024, 1))  # as results.tsv
        self.assertEqual(data["memory_gb"], data["champion"]["memory_gb"])
        self.assertEqual(data["decision_packet"], record["decision_packet"])
        self.assertEqual(data["novelty_guard"], record["novelty_guard"])
        self.assertEqual(data["champion"]["run_id"], record["run_id"])
        self.assertEqual(data["artifacts"], record["artifacts"])

    def test_second_champion_and_not_novel_verdict_printed(self):
        self.log_keep("increase MATRIX_LR from 0.04 to 0.08", 0.99)
        commit_change(self.repo, "MATRIX_LR = 0.04", "MATRIX_LR = 0.08")
        result = self.log_keep("increase MATRIX_LR from 0.04 to 0.08", 0.995, "discard")
        self.assertIn("Novelty: ", result.out)
        record = self.records()[1]
        self.assertNotEqual(record["novelty_guard"]["classification"], "novel")
        self.assertIsNotNone(record["parent_commit"])
        self.assertEqual(record["parent_commit"], self.records()[0]["commit"])
        with open(self.path(record["artifacts"]["train_patch"])) as f:
            patch = f.read()
        self.assertIn("-MATRIX_LR = 0.04", patch)
        self.assertIn("+MATRIX_LR = 0.08", patch)

    def test_skip_archive_keeps_only_the_packet(self):
        self.write("run.log", console_summary(metrics()))
        self.ok("log", "--description", "x", "--status", "keep", "--log", self.path("run.log"),
                "--skip-archive")
        record = self.records()[0]
        self.assertEqual(sorted(os.listdir(self.path(record["artifacts"]["run_dir"]))),
                         ["decision_packet.json", "decision_packet.md"])

    def test_same_second_runs_get_distinct_ids(self):
        for _ in range(3):
            self.log_keep("same idea", 0.99, "discard")
        records = self.records()
        ids = [r["run_id"] for r in records]
        commit = records[0]["commit"]
        self.assertEqual(ids, [f"20260101T0600{s:02d}Z-{commit}" for s in range(3)])
        self.assertEqual({r["timestamp_utc"] for r in records}, {NOW})
        self.assertEqual(len(os.listdir(self.path("results", "memorylab", "runs"))), 3 + 1)

    def test_tabs_and_newlines_in_description_keep_five_columns(self):
        self.log_keep("a\tb\nc  d", 0.99)
        rows = self.tsv()
        self.assertEqual(len(rows), 2)
        self.assertEqual(rows[1].split("\t")[4], "a b c d")
        self.assertEqual(len(rows[1].split("\t")), 5)
        self.assertEqual(self.records()[0]["description"], "a\tb\nc  d")

    def test_log_report_flag_writes_report(self):
        result = self.log_keep("baseline", 0.99, "keep", "--report", "--since-hours", "2")
        self.assertIn("Report: results/memorylab/reports/latest.md", result.out)
        with open(self.path("results", "memorylab", "reports", "latest.md")) as f:
            self.assertIn("# Morning Report", f.read())

    def test_log_outside_git_uses_working_train_py(self):
        plain = os.path.join(self.tmp, "plain")
        os.makedirs(plain)
        with open(os.path.join(plain, "train.py"), "w") as f:
            f.write("DEPTH = 4\n")
        with open(os.path.join(plain, "s.json"), "w") as f:
            json.dump(metrics(), f)
        self.ok("log", "--description", "x", "--status", "keep", "--summary", "s.json", cwd=plain)
        record = self.records(plain)[0]
        self.assertEqual(record["commit"], "0000000")
        self.assertIsNone(record["branch"])
        self.assertEqual(record["config"]["constants"], {"DEPTH": 4})
        self.assertNotIn("train_patch", record["artifacts"])

    def test_log_creates_the_store_when_missing(self):
        self.log_keep("baseline")
        self.assertEqual(self.tsv()[0], "commit\tval_bpb\tmemory_gb\tstatus\tdescription")
        self.assertEqual(len(self.tsv()), 2)


class BadInputTest(LabCase):
    """Each bad input: one-line error, exit 1, nothing written."""

    def setUp(self):
        super().setUp()
        self.ok("init")

    def log_args(self, *extra, status="keep"):
        return ("log", "--description", "idea", "--status", status, *extra)

    def bad_summary(self, text):
        return self.fails(*self.log_args("--summary", self.write("bad.json", text)))

    def test_non_finite_and_non_numeric_metrics_name_the_field(self):
        for value in ("NaN", "Infinity", "-Infinity", '"0.90"', "true", "[1]"):
            text = json.dumps(metrics(val_bpb=None)).replace("{", '{"val_bpb": %s, ' % value, 1)
            self.assertIn("val_bpb", self.bad_summary(text), value)
        text = json.dumps(metrics(peak_vram_mb=None)).replace("{", '{"peak_vram_mb": NaN, ', 1)
        self.assertIn("peak_vram_mb", self.bad_summary(text))
        self.assertIn("num_steps", self.bad_summary(json.dumps(metrics(num_steps=9.5))))

    def test_keep_and_discard_need_val_bpb_and_memory(self):
        for status in ("keep", "discard"):
            msg = self.fails(*self.log_args("--summary", self.write(
                "s.json", json.dumps(metrics(val_bpb=None))), status=status))
            self.assertIn("val_bpb", msg)
            msg = self.fails(*self.log_args("--summary", self.write(
                "s.json", json.dumps(metrics(peak_vram_mb=None))), status=status))
            self.assertIn("peak_vram_mb", msg)
            self.fails(*self.log_args(status=status))

    def test_log_metric_that_is_not_a_number(self):
        self.write("run.log", "---\nval_bpb:          nan\npeak_vram_mb:     1.0\n")
        self.assertIn("val_bpb", self.fails(*self.log_args("--log", self.path("run.log"))))

    def test_empty_description(self):
        for text in ("", "   \n"):
            self.fails("log", "--description", text, "--status", "crash")

    def test_stale_summary_older_than_log(self):
        summary = self.summary(mtime=1_000_000)
        log = self.write("run.log", "Traceback\nRuntimeError: boom\n", mtime=1_000_600)
        msg = self.fails(*self.log_args("--summary", summary, "--log", log, status="crash"))
        self.assertIn("older than --log", msg)

    def test_since_hours_and_threshold_ranges(self):
        summary = self.summary()
        for value in ("0", "-1"):
            self.fails(*self.log_args("--summary", summary, "--since-hours", value))
            self.fails("report", "--since-hours", value)
        for value in ("1.01", "-0.5"):
            self.fails(*self.log_args("--summary", summary, "--threshold", value))
        self.fails(*self.log_args("--summary", summary, "--noise-factor", "0"))

    def test_missing_and_unreadable_files(self):
        self.fails(*self.log_args("--summary", self.path("nope.json")))
        self.fails(*self.log_args("--log", self.path("nope.log"), status="crash"))
        self.bad_summary("{not json")
        self.bad_summary("[1, 2]")

    def test_bad_time_injection(self):
        self.fails("check", "--description", "x", MEMORYLAB_NOW="yesterday")


class ReportTest(LabCase):
    def test_report_files_and_output(self):
        self.log_keep("baseline", 0.99)
        self.log_keep("lower lr", 1.01, "discard")
        result = self.ok("report")
        self.assertIn("2 experiments in the last 16 h", result.out)
        self.assertIn("keep / discard / crash: 1 / 1 / 0", result.out)
        reports = self.path("results", "memorylab", "reports")
        self.assertEqual(sorted(os.listdir(reports)),
                         ["20260101T060000Z.md", "latest.html", "latest.json", "latest.md"])
        with open(os.path.join(reports, "latest.md")) as f:
            markdown = f.read()
        for section in ("# Morning Report", "## Headline", "## Decision Queue",
                        "## Champion Board", "## Best Lineages", "## Failure Clusters",
                        "## Recent Ledger", "Keep / discard / crash: 1 / 1 / 0"):
            self.assertIn(section, markdown)
        with open(os.path.join(reports, "latest.json")) as f:
            self.assertEqual(json.load(f)["experiments"], 2)
        out = os.path.join(self.tmp, "elsewhere", "r.md")
        before = sorted(os.listdir(reports))
        self.assertIn(out, self.ok("report", "--output", out).out)
        with open(out) as f:
            self.assertEqual(f.read(), markdown)
        self.assertEqual(sorted(os.listdir(reports)), before)

    def test_report_json_and_window(self):
        self.log_keep("baseline", 0.99)
        later = self.ok("report", "--json", "--since-hours", "1",
                        MEMORYLAB_NOW="2026-01-01T09:00:00Z").json()
        self.assertEqual(later["headline"]["experiments"], 0)
        self.assertIn("results/memorylab/reports/20260101T090000Z.md", later["paths"])
        now = self.ok("report", "--json").json()
        self.assertEqual(now["headline"]["experiments"], 1)

    def test_report_on_empty_store(self):
        self.ok("init")
        self.assertIn("Champion: none yet", self.ok("report").out)


class SourceTest(unittest.TestCase):
    def test_sources_compile_without_warnings(self):
        """A compile warning (an invalid escape in a docstring) is printed on the
        first import of a module without cached bytecode, so it lands on stderr of
        an agent's command and breaks the one-line `error:` contract."""
        import glob
        import warnings
        top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        paths = [os.path.join(top, "memorylab.py")] + sorted(
            glob.glob(os.path.join(top, "memorylab_core", "*.py")))
        for path in paths:
            with open(path, encoding="utf-8") as handle:
                source = handle.read()
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                compile(source, path, "exec")


class RootTest(LabCase):
    def test_root_flag_and_env_share_one_store(self):
        shared = os.path.join(self.tmp, "shared")
        other = make_repo(os.path.join(self.tmp, "worktree2"))
        self.summary()
        self.ok("log", "--root", shared, "--description", "a", "--status", "keep",
                "--summary", self.path("summary.json"))
        with open(os.path.join(other, "s.json"), "w") as f:
            json.dump(metrics(val_bpb=0.98), f)
        self.ok("log", "--description", "b", "--status", "keep", "--summary", "s.json",
                cwd=other, MEMORYLAB_ROOT=shared)
        self.assertEqual([r["description"] for r in self.records(shared)], ["a", "b"])
        self.assertFalse(os.path.exists(self.path(LEDGER)))
        self.assertFalse(os.path.exists(os.path.join(other, LEDGER)))
        # --root wins over the environment.
        self.ok("init", "--root", self.repo, MEMORYLAB_ROOT=shared)
        self.assertTrue(os.path.exists(self.path(LEDGER)))
        # The default root is the git top-level, even from a subfolder.
        sub = os.path.join(other, "deep", "er")
        os.makedirs(sub)
        self.ok("init", cwd=sub)
        self.assertTrue(os.path.exists(os.path.join(other, LEDGER)))

    def test_root_before_the_command_in_any_spelling(self):
        # a run builds only its command's parser: the command is found past --root,
        # its abbreviations and its value (even a value that names a command)
        for flags in (["--root", "check"], ["--roo", "check"], ["--root=check"]):
            shared = os.path.join(self.repo, "check")
            self.ok(*flags, "init")
            self.assertTrue(os.path.isfile(os.path.join(shared, LEDGER)), flags)
            shutil.rmtree(shared)

    def test_help_before_a_command_lists_every_command(self):
        for argv in (["-h", "check"], ["--help"], ["-h"]):
            out = self.ok(*argv).out
            for command in ("init", "check", "log", "report", "import-tsv", "doctor"):
                self.assertIn(f"    {command}", out, argv)
        out = self.ok("check", "-h").out
        self.assertIn("--fail-on-similar", out)
        self.assertIn("example:", out)

    def test_subprocess_entry_point(self):
        result = self.cli_process("check", "--description", "anything", "--json")
        self.assertEqual(result.code, 0, result)
        self.assertEqual(json.loads(result.out)["novelty_guard"]["classification"], "novel")


if __name__ == "__main__":
    unittest.main()
