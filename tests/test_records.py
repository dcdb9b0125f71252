"""Building and validating run records: metrics, log tails, crash summaries, ids, time."""

import os
import tempfile
import unittest

from mlhelpers import LabCase, console_summary, metrics

from memorylab_core import records
from memorylab_core.records import InputError


class MetricTest(unittest.TestCase):
    def test_checked_metric(self):
        self.assertEqual(records.checked_metric("val_bpb", 1, "s"), 1.0)
        self.assertIsInstance(records.checked_metric("num_steps", 953.0, "s"), int)
        self.assertIsNone(records.checked_metric("val_bpb", None, "s"))
        for bad in (float("nan"), float("inf"), -float("inf"), "0.90", True, False, [1], {}):
            with self.assertRaisesRegex(InputError, "metric val_bpb"):
                records.checked_metric("val_bpb", bad, "--summary s.json")
        with self.assertRaisesRegex(InputError, "whole number"):
            records.checked_metric("depth", 8.5, "s")

    def test_metrics_from_log_takes_the_last_summary(self):
        text = console_summary(metrics(val_bpb=1.5)) + "again\n" + console_summary(
            metrics(val_bpb=0.997900))
        found = records.metrics_from_log(text, "run.log")
        self.assertEqual(found["val_bpb"], 0.9979)
        self.assertEqual(found["num_steps"], 953)
        self.assertEqual(records.metrics_from_log("nothing here", "run.log")["val_bpb"], None)
        with self.assertRaisesRegex(InputError, "metric depth"):
            records.metrics_from_log("depth: eight\n", "run.log")

    def test_provenance_nested_or_flat(self):
        flat = {"device": "cpu", "seed": 1, "schema_version": 2, "val_bpb": 1.0}
        self.assertEqual(records.provenance_from_summary(flat),
                         {"device": "cpu", "seed": 1, "summary_schema_version": 2})
        nested = {"provenance": {"device": "H100", "other": 1}}
        self.assertEqual(records.provenance_from_summary(nested), {"device": "H100"})
        self.assertEqual(records.provenance_from_summary(None), {})
        self.assertEqual(records.hyperparameters_from_summary({"hyperparameters": 3}), {})


class TailTest(unittest.TestCase):
    def test_huge_log_is_read_from_the_end_only(self):
        with tempfile.NamedTemporaryFile(suffix=".log", delete=False) as f:
            f.truncate(300 * 1024 * 1024)  # sparse: 300 MB without writing them
            f.seek(0, os.SEEK_END)
            f.write(b"\xff\xfe\n" + console_summary(metrics(val_bpb=0.95)).encode())
        self.addCleanup(os.unlink, f.name)
        text = records.read_tail(f.name)
        self.assertLessEqual(len(text), records.TAIL_BYTES)
        self.assertEqual(records.metrics_from_log(text, f.name)["val_bpb"], 0.95)

    def test_tail_lines_split_progress_and_cut_long_lines(self):
        text = "a\r b\r\n\n" + "x" * 1000 + "\n" + "\n".join(str(i) for i in range(30))
        lines = records.tail_lines(text, count=3)
        self.assertEqual(lines, ["27", "28", "29"])
        long = records.tail_lines("x" * 1000)[0]
        self.assertEqual(len(long), records.TAIL_LINE_CHARS + 3)

    def test_crash_error(self):
        lines = ["step 10", "Traceback (most recent call last):", "  x = f()",
                 "ValueError: bad shape", "exiting"]
        self.assertEqual(records.crash_error(None, lines)["summary"], "ValueError: bad shape")
        self.assertEqual(records.crash_error("", ["just this"])["summary"], "just this")
        self.assertEqual(records.crash_error(" oom\n", lines)["source"], "argument")
        self.assertEqual(records.crash_error(None, [])["source"], "none")


class SmallHelpersTest(unittest.TestCase):
    def test_tags(self):
        self.assertEqual(records.parse_tags("LR, Warmup lr,,x"), ["lr", "warmup", "x"])
        self.assertEqual(records.parse_tags(""), [])

    def test_unique_run_id_bumps_seconds(self):
        taken = {"20260101T000059Z-abcdef0", "20260101T000100Z-abcdef0"}
        run_id = records.unique_run_id("2026-01-01T00:00:59Z", "abcdef0", taken.__contains__)
        self.assertEqual(run_id, "20260101T000101Z-abcdef0")

    def test_now_is_injected(self):
        self.assertEqual(records.now_utc({"MEMORYLAB_NOW": "2026-03-05T01:02:03+00:00"}),
                         "2026-03-05T01:02:03Z")
        with self.assertRaises(InputError):
            records.now_utc({"MEMORYLAB_NOW": "soon"})
        self.assertRegex(records.now_utc({}), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(records.compact_stamp("2026-03-05T01:02:03Z", 60), "20260305T010303Z")

    def test_option_checks(self):
        for call, value in ((records.check_threshold, 1.5), (records.check_since_hours, 0),
                            (records.check_description, " ")):
            with self.assertRaises(InputError):
                call(value)


class HugeLogThroughCliTest(LabCase):
    def test_huge_non_utf8_log_is_parsed_from_its_tail(self):
        path = self.path("run.log")
        with open(path, "wb") as f:
            f.truncate(200 * 1024 * 1024)
            f.seek(0, os.SEEK_END)
            f.write(b"\x80\x81 junk\n" + console_summary(metrics(val_bpb=0.96)).encode())
        self.ok("log", "--description", "x", "--status", "keep", "--log", path, "--skip-archive")
        self.assertEqual(self.records()[0]["metrics"]["val_bpb"], 0.96)


if __name__ == "__main__":
    unittest.main()
