"""Regressions for findings of a black-box QA pass over the CLI, through the CLI in
temporary git repos with MEMORYLAB_NOW injected (see mlhelpers.LabCase). Each test
names its finding."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mlhelpers import CLI, LEDGER, LabCase, commit_change  # noqa: E402


def strict_json(text):
    """json.loads that refuses NaN/Infinity, as jq or JSON.parse do."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


class QaCase(LabCase):
    def setUp(self):
        super().setUp()
        self.ok("init")

    def log_json(self, description, val_bpb, status="keep", *flags, **values):
        summary = self.summary(val_bpb=val_bpb, **values)
        result = self.ok("log", "--description", description, "--status", status,
                         "--summary", summary, "--json", *flags)
        return strict_json(result.out)


class NoFailureAfterTheCommitPoint(QaCase):
    """#1: once the ledger line is appended, `log` exits 0 with the run id; a failed
    derived file is a warning and is repaired on the next write."""

    def test_report_failure_is_a_warning(self):
        os.makedirs(self.path("results", "memorylab", "reports", "latest.html"))
        summary = self.summary(val_bpb=0.99)
        result = self.cli("log", "--description", "b", "--status", "keep", "--summary",
                          summary, "--report")
        self.assertEqual(result.code, 0, result)
        self.assertIn("Logged run", result.out)
        self.assertIn("warning: run ", result.err)
        self.assertIn("report", result.err)
        self.assertEqual(len(self.records()), 1)

    def test_results_tsv_failure_is_a_warning_and_repaired_next_write(self):
        os.unlink(self.path("results.tsv"))
        os.makedirs(self.path("results.tsv"))
        summary = self.summary(val_bpb=0.99)
        result = self.cli("log", "--description", "x", "--status", "keep", "--summary",
                          summary, "--json")
        self.assertEqual(result.code, 0, result)
        data = strict_json(result.out)
        self.assertTrue(data["warnings"])
        self.assertIn("results.tsv", result.err)
        self.assertEqual([r["run_id"] for r in self.records()], [data["run_id"]])
        os.rmdir(self.path("results.tsv"))
        self.ok("init")  # the next writer completes the transaction
        self.assertEqual(len(self.tsv()), 2)
        self.assertFalse(os.path.exists(self.path("results", "memorylab", ".pending.json")))

    def test_report_output_directory_is_an_input_error(self):  # finding 12
        os.makedirs(self.path("adir"))
        self.assertIn("is a directory", self.fails("report", "--output", "adir"))


class StoreTrust(QaCase):
    """#6 stale index after a same-length edit, #7 forged registry, #9 read-only store."""

    def test_same_length_edit_of_a_middle_line_rebuilds_the_index(self):
        for number in range(5):
            self.log_json(f"idea number {number}", 0.99 + number / 1000)
        self.ok("list")  # warm the index
        data = self.ledger()
        edited = data.replace(b'"description": "idea number 2"',
                              b'"description": "ZZZZ number 2"', 1)
        self.assertEqual(len(edited), len(data))
        stat = os.stat(self.path(LEDGER))
        with open(self.path(LEDGER), "r+b") as f:
            f.write(edited)
        os.utime(self.path(LEDGER), ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        self.assertIn("ZZZZ number 2", self.ok("list").out)

    def test_forged_registry_is_not_trusted(self):
        self.log_json("baseline", 0.99)
        with open(self.path("results", "memorylab", "champion_challenger.json"), "w") as f:
            json.dump({"experiments": 1, "champion": {"run_id": "fake", "val_bpb": 0.1}}, f)
        brief = self.ok("brief").out
        self.assertNotIn("fake", brief)
        self.assertIn("at 0.990000 val_bpb", brief)

    @unittest.skipUnless(hasattr(os, "geteuid") and os.geteuid() == 0 and
                         os.path.exists("/usr/bin/setpriv") and
                         os.path.exists("/usr/bin/python3"), "needs root, setpriv, /usr/bin/python3")
    def test_read_only_store_can_be_read(self):
        self.log_json("baseline", 0.99)
        os.chmod(self.tmp, 0o755)
        subprocess.run(["chmod", "-R", "a+rX,go-w", self.tmp], check=True)
        for argv in (["list"], ["brief"], ["show", "champion"], ["check", "--description", "x"]):
            done = subprocess.run(
                ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                 "/usr/bin/python3", CLI, *argv], cwd=self.repo, env=self.env,
                capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, (argv, done.stderr))


class DiscardNeverPromotes(QaCase):
    """#2: a discarded run never gets promote; a rerun of the champion is a confirmation."""

    def test_discarded_rerun_of_champion_confirms_it(self):
        self.log_json("baseline", 0.995)
        commit_change(self.repo, "DEPTH = 8", "DEPTH = 10")
        first = self.log_json("increase DEPTH to 10", 0.990)["decision_packet"]
        self.assertEqual(first["next_action"], "promote")
        packet = self.log_json("rerun depth 10 seed 43", 0.9905, "discard")["decision_packet"]
        self.assertIn(packet["next_action"], ("abandon", "retry", "branch_followup"))
        self.assertEqual(packet["next_action"], "branch_followup")
        self.assertIn(f"Branch a follow-up from champion {first['run']['id']}", packet["summary"])
        self.assertIn("confirms it at mean 0.990250 val_bpb (n=2)", packet["summary"])
        self.assertNotIn("new champion", packet["summary"])
        self.assertFalse(packet["comparison"]["is_new_champion"])

    def test_kept_rerun_of_promoted_champion_is_a_confirmation(self):
        self.log_json("baseline", 0.995)
        commit_change(self.repo, "DEPTH = 8", "DEPTH = 10")
        self.log_json("increase DEPTH to 10", 0.990)
        packet = self.log_json("rerun depth 10 seed 43", 0.9902, "keep")["decision_packet"]
        self.assertEqual((packet["next_action"], packet["priority"]), ("branch_followup", "medium"))
        self.assertIn("confirms it at mean 0.990100 val_bpb (n=2)", packet["summary"])
        self.assertNotIn("new champion", packet["summary"])

    def test_discarded_reruns_of_a_candidate_are_judged_with_its_group(self):
        self.log_json("baseline", 1.000)
        commit_change(self.repo, "MATRIX_LR = 0.04", "MATRIX_LR = 0.045")
        first = self.log_json("raise matrix lr to 0.045", 0.9995)["decision_packet"]
        self.assertEqual(first["next_action"], "replicate")
        self.assertEqual(first["replicate"]["seeds"], [43, 44])
        packet = self.log_json("replicate matrix lr 0.045", 0.9997, "discard",
                               "--mode", "replicate", seed=43)["decision_packet"]
        # the discard is one seed of the candidate: the group owes one more seed
        self.assertEqual(packet["next_action"], "replicate")
        self.assertEqual(packet["replicate"]["seeds"], [44])
        packet = self.log_json("replicate matrix lr 0.045", 0.9993, "discard",
                               "--mode", "replicate", seed=44)["decision_packet"]
        # two extra seeds, mean 0.9995: Δ=0.0005 < 2σ and p > 0.05: the verdict
        self.assertEqual(packet["next_action"], "abandon")
        self.assertIn("after 2 extra seeds", packet["summary"])
        self.assertIn("one-sided pooled t p=", packet["summary"])
        self.assertIsNone(packet["replicate"])


class OneLineErrors(QaCase):
    """#3 (and #8, #12, #17): every bad input is one `error:` line, exit 1, nothing written."""

    def test_non_finite_and_huge_options(self):
        self.assertIn("--since-hours", self.fails("report", "--since-hours", "inf"))
        self.assertIn("--since-hours", self.fails("report", "--since-hours", "1e308"))
        self.assertIn("--since-hours", self.fails("list", "--since-hours", "inf"))
        summary = self.summary(val_bpb=0.99)
        for bad in ("inf", "nan", "0", "-1"):
            self.assertIn("--noise-factor", self.fails(
                "log", "--description", "x", "--status", "keep", "--summary", summary,
                "--noise-factor", bad))
        self.assertIn("--since-hours", self.fails(
            "log", "--description", "x", "--status", "keep", "--summary", summary,
            "--report", "--since-hours", "1e308"))

    def test_non_finite_values_inside_the_sidecar(self):
        cases = {'{"val_bpb": 0.99, "peak_vram_mb": 1000, "hyperparameters": {"lr": NaN}}':
                 "hyperparameters.lr",
                 '{"val_bpb": 0.99, "peak_vram_mb": 1000, "provenance": {"seed": 1e400}}':
                 "provenance.seed",
                 '{"val_bpb": 0.99, "peak_vram_mb": 1000, "seed": Infinity}': "provenance.seed",
                 '{"val_bpb": 0.99, "peak_vram_mb": 1000, "num_steps": 1e20}': "num_steps"}
        for text, field in cases.items():
            path = self.write("h.json", text)
            self.assertIn(field, self.fails("log", "--description", "y", "--status", "keep",
                                            "--summary", path))

    def test_deep_json_and_far_future_clock(self):
        path = self.write("deep.json", "[" * 100000 + "]" * 100000)
        self.assertIn("nested too deeply", self.fails(
            "log", "--description", "d", "--status", "keep", "--summary", path))
        self.assertIn("MEMORYLAB_NOW", self.fails(
            "log", "--description", "m", "--status", "crash",
            MEMORYLAB_NOW="9999-12-31T23:59:59Z"))

    def test_impossible_metrics_rejected_at_log(self):  # finding 8
        for values, field in (({"val_bpb": -1.0}, "val_bpb must be > 0"),
                              ({"val_bpb": 0.0}, "val_bpb must be > 0"),
                              ({"peak_vram_mb": -5.0}, "peak_vram_mb must be >= 0")):
            path = self.summary(**values)
            self.assertIn(field, self.fails("log", "--description", "neg", "--status", "keep",
                                            "--summary", path))

    def test_crash_log_with_unusable_figures_is_still_recorded(self):
        log = self.write("nan.log", "step 1\nval_bpb:          nan\npeak_vram_mb:     -3\n")
        self.assertIn("val_bpb must be a finite number", self.fails(
            "log", "--description", "nan eval", "--status", "discard", "--log", log))
        self.ok("log", "--description", "nan eval", "--status", "crash", "--log", log)
        (record,) = self.records()
        self.assertEqual((record["metrics"]["val_bpb"], record["metrics"]["peak_vram_mb"]),
                         (None, None))

    def test_import_tsv_rejects_what_log_rejects(self):  # findings 3, 8, 13
        for row, words in (("abc1234\t0.99\t1e308\tkeep\thuge\n", "memory_gb"),
                           ("abc1234\t0.99\t-2\tkeep\tneg\n", "memory_gb"),
                           ("abc1234\t1e300\t40\tkeep\thuge\n", "val_bpb > 0 and <= 1e+06"),
                           ("abc1234\t0.000000\t40\tkeep\tno result\n", "val_bpb > 0")):
            path = self.write("bad.tsv", row)
            self.assertIn(words, self.fails("import-tsv", path, "--strict"))

    def test_import_tsv_skips_a_byte_order_mark(self):  # finding 13
        path = self.write("bom.tsv", "\ufeffcommit\tval_bpb\tmemory_gb\tstatus\tdescription\n"
                                     "abc1234\t0.990000\t44.0\tkeep\tbaseline\n")
        result = self.ok("import-tsv", path, "--json")
        self.assertEqual(len(strict_json(result.out)["imported"]), 1)

    def test_not_a_regular_file_and_empty_crash_log(self):  # finding 12
        self.assertIn("not a regular file", self.fails(
            "log", "--description", "x", "--status", "keep", "--summary", self.tmp))
        log = self.write("empty.log", "")
        record = strict_json(self.ok("log", "--description", "c", "--status", "crash",
                                     "--log", log, "--json").out)
        self.assertNotIn("no --error or --log given", record["decision_packet"]["summary"])

    def test_description_length_is_capped(self):  # finding 17
        self.assertIn("at most 2000", self.fails("check", "--description", "x" * 2001))
        self.assertIn("--hypothesis", self.fails("check", "--description", "x",
                                                 "--hypothesis", "y" * 2001))

    def test_family_is_validated(self):  # finding 10
        self.assertIn("--family", self.fails("check", "--description", "x", "--family", "a\nb"))


class JsonOutput(QaCase):
    """#4, #5: --json always has bad_lines and is strict JSON."""

    def test_every_query_command_reports_bad_lines(self):
        self.log_json("baseline", 0.99)
        self.write("up.tsv", "abc1234\t0.980000\t44.0\tkeep\tup\n")
        with open(self.path(LEDGER), "ab") as f:
            f.write(b'{"torn')
        for argv in (["list"], ["brief"], ["show", "champion"], ["compare", "champion", "champion"],
                     ["import-tsv", "up.tsv", "--dry-run"], ["report"], ["doctor"]):
            result = self.cli(*argv, "--json")
            self.assertIn(result.code, (0, 3), result)
            self.assertTrue(strict_json(result.out)["bad_lines"], argv)

    def test_show_json_turns_legacy_nan_into_null(self):
        record = {"run_id": "20250101T000000Z-7777777", "timestamp_utc": "2025-01-01T00:00:00Z",
                  "commit": "7777777", "status": "discard", "description": "legacy nan",
                  "metrics": {"val_bpb": float("nan"), "peak_vram_mb": float("inf")}}
        with open(self.path(LEDGER), "a") as f:
            f.write(json.dumps(record) + "\n")
        data = strict_json(self.ok("show", "7777777", "--json").out)
        self.assertIsNone(data["run"]["metrics"]["val_bpb"])
        self.assertIsNone(data["run"]["metrics"]["peak_vram_mb"])


class TextOutput(QaCase):
    """#10 control characters, #14 help, #15 bounded doctor, #16 new store note,
    #18 list window, #19 broken pipe, #21 doctor line numbers."""

    def test_control_characters_never_split_a_line(self):
        summary = self.summary(val_bpb=0.99)
        result = self.ok("log", "--description", "keep\nwith \x1b[31mnewline", "--status", "keep",
                         "--summary", summary)
        champion = [line for line in result.out.splitlines() if line.startswith("Champion:")]
        self.assertEqual(len(champion), 1)
        self.assertIn("keep with \\u001b[31mnewline", champion[0])
        self.assertNotIn("\x1b", self.ok("list").out + self.ok("show", "champion").out
                         + self.ok("brief").out)
        self.assertEqual(len(self.ok("list").out.strip().splitlines()), 1)
        self.assertIn("keep\nwith", self.records()[-1]["description"])  # stored as given

    def test_help_mentions_root_and_exit_codes(self):
        result = self.cli_process("--help")
        self.assertIn("--root", result.out)
        self.assertIn("exit codes", result.out)
        self.assertIn("MEMORYLAB_NOW", result.out)

    def test_doctor_text_is_bounded_json_is_not(self):
        self.log_json("baseline", 0.99)
        with open(self.path(LEDGER), "ab") as f:
            f.write(b"garbage\n" * 50)
        text = self.cli("doctor")
        self.assertEqual(text.code, 3)
        self.assertLess(len(text.out.splitlines()), 30)
        self.assertIn("and 30 more", text.out)
        self.assertEqual(len(strict_json(self.cli("doctor", "--json").out)["bad_lines"]), 50)

    def test_doctor_counts_blank_lines(self):
        self.log_json("a", 0.99)
        self.log_json("b", 0.98)
        data = self.ledger().split(b"\n")
        with open(self.path(LEDGER), "wb") as f:
            f.write(data[0] + b"\n\n   \n" + data[1] + b"\ngarbage\n")
        found = strict_json(self.cli("doctor", "--json").out)
        self.assertEqual((found["lines"], found["blank_lines"]), (5, 2))
        self.assertEqual(found["bad_lines"][0]["line"], 5)

    def test_new_store_is_announced(self):
        elsewhere = os.path.join(self.tmp, "elsewhere")
        os.makedirs(elsewhere)
        result = self.ok("report", "--root", elsewhere)
        self.assertIn("note: created a new MemoryLab store", result.err)
        self.assertNotIn("note:", self.ok("report").err)

    def test_list_window_excludes_future_runs(self):
        summary = self.summary(val_bpb=0.99)
        self.ok("log", "--description", "future", "--status", "keep", "--summary", summary,
                MEMORYLAB_NOW="2026-01-02T00:00:00Z")
        self.assertEqual(strict_json(self.ok("list", "--since-hours", "1", "--json").out)["runs"],
                         [])

    def test_report_window_excludes_future_runs(self):  # finding 18
        summary = self.summary(val_bpb=0.99)
        self.ok("log", "--description", "future", "--status", "keep", "--summary", summary,
                MEMORYLAB_NOW="2026-01-02T00:00:00Z")
        data = strict_json(self.ok("report", "--since-hours", "1e-300", "--json").out)
        self.assertEqual(data["headline"]["experiments"], 0)

    def test_broken_pipe_exits_quietly(self):
        env = dict(self.env)
        proc = subprocess.Popen([sys.executable, CLI, "brief"], cwd=self.repo, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()
        err = proc.stderr.read()
        proc.stderr.close()
        self.assertEqual((proc.wait(), err), (0, b""))


if __name__ == "__main__":
    unittest.main()


class ReviewFindings(QaCase):
    """Bad inputs found in the final review: none may stop a run from being recorded."""

    def test_a_non_finite_train_py_constant_is_left_out_of_the_fingerprint(self):
        commit_change(self.repo, "WARMDOWN_RATIO = 0.5", "WARMDOWN_RATIO = 1e999")
        self.ok("log", "--description", "overflowing constant", "--status", "keep",
                "--summary", self.summary(val_bpb=0.99))
        (record,) = self.records()
        self.assertNotIn("WARMDOWN_RATIO", record["config"]["constants"])
        self.assertEqual(record["config"]["constants"]["DEPTH"], 8)

    def test_a_journal_of_the_wrong_shape_is_discarded(self):
        self.write(os.path.join("results", "memorylab", ".pending.json"), '{"experiments": 1}')
        self.ok("log", "--description", "after a stray journal", "--status", "keep",
                "--summary", self.summary(val_bpb=0.99))
        self.assertEqual(len(self.records()), 1)
        self.assertFalse(os.path.exists(self.path("results", "memorylab", ".pending.json")))

    def test_a_crash_sidecar_with_nan_is_still_recorded(self):
        summary = self.write("nan.json", '{"val_bpb": NaN, "peak_vram_mb": 1000.0}')
        self.assertIn("finite", self.fails("log", "--description", "nan", "--status", "discard",
                                           "--summary", summary))
        self.ok("log", "--description", "nan", "--status", "crash", "--summary", summary)
        (record,) = self.records()
        self.assertIsNone(record["metrics"]["val_bpb"])
        self.assertEqual(record["metrics"]["peak_vram_mb"], 1000.0)
