"""importer.py and `import-tsv`: upstream results.tsv files into the ledger, idempotently."""

import os
import unittest

import subprocess
import sys

from mlhelpers import REPO_ROOT, LabCase, git

from memorylab import EXIT_OK
from memorylab_core import importer, records
from memorylab_core.store import Store

HEADER = "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"
UPSTREAM = HEADER + (
    "a1b2c3d\t0.997900\t44.0\tkeep\tbaseline\n"
    "b2c3d4e\t0.993200\t44.2\tkeep\tincrease LR to 0.04\n"
    "c3d4e5f\t1.005000\t44.0\tdiscard\tswitch to GeLU activation\n"
    "d4e5f6a\t0.000000\t0.0\tcrash\tdouble the model width (OOM)\n"
    "e5f6a7b\t0.991000\t44.1\tkeep\tlonger   warmdown, with\ta tab\n"
)


def parse(text, **kwargs):
    rows, problems = importer.parse_tsv(text, **kwargs)
    return rows


class ParseTest(unittest.TestCase):
    def test_rows_header_crash_and_spaces(self):
        rows = parse(UPSTREAM)
        self.assertEqual(len(rows), 5)
        self.assertEqual(rows[0]["row"], 1)
        self.assertEqual(rows[0]["line"], 2)
        self.assertEqual(rows[1]["description"], "increase LR to 0.04")
        self.assertEqual((rows[3]["status"], rows[3]["val_bpb"], rows[3]["memory_gb"]),
                         ("crash", None, None))
        self.assertEqual(rows[4]["description"], "longer warmdown, with a tab")
        self.assertEqual(len(parse(UPSTREAM[len(HEADER):] + "\n\n")), 5)

    def test_bad_rows_are_reported_by_line_and_skipped(self):
        cases = {"a1\t0.99\t44.0\tkeep\n": "expected 5 tab-separated columns",
                 "a1\tfast\t44.0\tkeep\tx\n": "val_bpb must be a number",
                 "a1\tnan\t44.0\tkeep\tx\n": "must be finite",
                 "a1\t0.99\t44.0\twon\tx\n": "unknown status 'won'",
                 "a1\t0.000000\t0.0\tkeep\tx\n": "needs a val_bpb > 0",
                 "a1\t1e300\t1.0\tkeep\tx\n": "needs a val_bpb > 0 and <= 1e\\+06",
                 "a1\t0.99\t1e300\tkeep\tx\n": "memory_gb must be within",
                 "\t0.99\t44.0\tkeep\tx\n": "empty commit",
                 "a1\t0.99\t44.0\tkeep\t \n": "empty description"}
        for text, message in cases.items():
            rows, problems = importer.parse_tsv(HEADER + text + UPSTREAM[len(HEADER):])
            self.assertEqual(len(rows), 5, text)
            self.assertEqual(problems[0][0], 2, text)
            self.assertRegex(problems[0][1], message)
            with self.assertRaisesRegex(records.InputError, f"f.tsv line 2: .*{message}"):
                importer.parse_tsv(HEADER + text, source="f.tsv", strict=True)

    def test_headerless_file_and_header_without_upstream_columns(self):
        self.assertEqual(len(parse(UPSTREAM[len(HEADER):])), 5)
        with self.assertRaisesRegex(records.InputError, "lacks the column.*memory_gb"):
            importer.parse_tsv("commit\tval_bpb\tstatus\tdescription\na1\t1\tkeep\tx\n")

    def test_columns_by_header_name_extra_numbers_kept_as_metrics(self):
        text = ("status\tdescription\tmfu\tcommit\tmemory_gb\tval_bpb\tnote\thypothesis\n"
                "KEEP\tbigger batch\t41.5\tabc1234\t40.1\t0.98\tfast\tmore tokens help\n")
        row, = parse(text)
        self.assertEqual((row["commit"], row["status"], row["status_given"], row["val_bpb"]),
                         ("abc1234", "keep", "KEEP", 0.98))
        self.assertEqual(row["metrics"], {"mfu": 41.5})
        self.assertEqual(row["columns"], {"note": "fast"})
        self.assertEqual(row["hypothesis"], "more tokens help")

    def test_status_aliases(self):
        for given, status in (("baseline", "keep"), ("best", "keep"), ("Kept", "keep"),
                              ("reverted", "discard"), ("tentative", "discard"),
                              ("OOM", "crash"), ("failed", "crash")):
            row, = parse(HEADER + f"a1\t0.99\t1.0\t{given}\tx\n")
            self.assertEqual(row["status"], status, given)
        for unknown in ("repair", "blocked", "run"):
            rows, problems = importer.parse_tsv(HEADER + f"a1\t0.99\t1.0\t{unknown}\tx\n")
            self.assertEqual((rows, problems[0][0]), ([], 2))

    def test_new_rows_counts_occurrences(self):
        rows = parse(HEADER + "a1\t0.99\t1.0\tkeep\tsame\n" * 3)
        existing = [{"commit": "a1", "status": "keep", "description": "same",
                     "metrics": {"val_bpb": 0.99}}]
        self.assertEqual([r["row"] for r in importer.new_rows(rows, existing)], [2, 3])

    def test_parents_follow_upstream_resets(self):
        parents = importer.infer_parents(parse(UPSTREAM))
        self.assertEqual(parents, {1: None, 2: "a1b2c3d", 3: "b2c3d4e", 4: "b2c3d4e",
                                   5: "b2c3d4e"})


class ImportCliTest(LabCase):
    def setUp(self):
        super().setUp()
        self.tsv_path = self.write("upstream.tsv", UPSTREAM)

    def test_import_records_then_nothing_new(self):
        self.ok("init")
        result = self.ok("import-tsv", "upstream.tsv")
        self.assertIn("Imported 5 of 5 rows from upstream.tsv (0 already in the ledger)",
                      result.out)
        ledger = self.records()
        self.assertEqual([r["status"] for r in ledger],
                         ["keep", "keep", "discard", "crash", "keep"])
        crash = ledger[3]
        self.assertIsNone(crash["metrics"]["val_bpb"])
        self.assertIsNone(crash["metrics"]["peak_vram_mb"])
        self.assertEqual(crash["error"]["source"], "import")
        self.assertEqual(ledger[0]["metrics"]["val_bpb"], 0.9979)
        self.assertEqual(ledger[0]["metrics"]["peak_vram_mb"], 44.0 * 1024)
        self.assertEqual(ledger[4]["description"], "longer warmdown, with a tab")
        self.assertEqual(ledger[2]["parent_commit"], "b2c3d4e")
        for number, record in enumerate(ledger, 1):
            self.assertEqual(record["imported"]["source"], "upstream.tsv")
            self.assertEqual(record["imported"]["row"], number)
            self.assertIn("imported", record["tags"])
            self.assertRegex(record["run_id"], r"^\d{8}T\d{6}Z-[0-9a-f]{7}$")
            self.assertIsNone(record["decision_packet"])
        self.assertEqual(len({r["run_id"] for r in ledger}), 5)
        # no such commits in the repository: the time is unknown, never made up
        self.assertEqual({r["timestamp_utc"] for r in ledger}, {None})
        self.assertEqual({r["imported"]["timestamp"] for r in ledger}, {"unknown"})
        # results.tsv mirrors the rows; the registry knows the champion
        self.assertEqual(self.tsv()[1:], UPSTREAM.replace("longer   warmdown, with\ta tab",
                                                          "longer warmdown, with a tab")
                         .splitlines()[1:])
        self.assertEqual(self.registry()["champion"]["commit"], "e5f6a7b")
        before = self.snapshot()
        again = self.ok("import-tsv", "upstream.tsv", "--json").json()
        self.assertEqual((again["imported"], again["skipped"], again["rows"]), ([], 5, 5))
        self.assertEqual(self.snapshot(), before)
        # the store's own results.tsv imports nothing either
        self.assertEqual(self.ok("import-tsv", "results.tsv", "--json").json()["imported"], [])

    def test_import_then_report_list_show_and_check(self):
        self.ok("import-tsv", "upstream.tsv")  # creates the store when missing
        self.assertIn("e5f6a7b", self.ok("report").out)
        self.assertEqual(len(self.ok("list", "--tag", "imported", "--json").json()["runs"]), 5)
        self.assertIn("imported from upstream.tsv row 5", self.ok("show", "champion").out)
        guard = self.ok("check", "--description", "switch to GeLU activation",
                        "--json").json()["novelty_guard"]
        self.assertEqual(guard["classification"], "repeat_failure")

    def test_appended_rows_import_alone(self):
        self.ok("import-tsv", "upstream.tsv")
        self.write("upstream.tsv", UPSTREAM + "f6a7b8c\t0.990500\t44.3\tkeep\tnew row\n")
        data = self.ok("import-tsv", self.tsv_path, "--json").json()
        self.assertEqual(len(data["imported"]), 1)
        self.assertEqual(self.records()[-1]["description"], "new row")
        self.assertEqual(self.records()[-1]["imported"]["row"], 6)

    def test_dry_run_writes_nothing(self):
        self.ok("init")
        before = self.snapshot()
        data = self.ok("import-tsv", "upstream.tsv", "--dry-run", "--json").json()
        self.assertTrue(data["dry_run"])
        self.assertEqual(len(data["imported"]), 5)
        self.assertIn("Would import 5 of 5", self.ok("import-tsv", "upstream.tsv",
                                                     "--dry-run").out)
        self.assertEqual(self.snapshot(), before)

    def test_dry_run_on_a_missing_store_creates_nothing(self):
        before = self.snapshot()
        self.assertEqual(len(self.ok("import-tsv", "upstream.tsv", "--dry-run", "--json")
                             .json()["imported"]), 5)
        self.assertEqual(self.snapshot(), before)

    def test_empty_file_on_a_new_store_leaves_a_valid_store(self):
        self.write("empty.tsv", HEADER)
        data = self.ok("import-tsv", "empty.tsv", "--json").json()
        self.assertEqual((data["rows"], data["imported"]), (0, []))
        self.assertEqual(self.registry()["experiments"], 0)
        self.assertEqual(self.ok("doctor", "--json").json()["problems"], 0)

    def test_errors_write_nothing(self):
        self.ok("init")
        self.write("bad.tsv", UPSTREAM + "zzz\t0.99\n")
        self.write("short.tsv", "commit\tval_bpb\tdescription\n")
        before = self.snapshot()
        self.assertIn("file not found", self.fails("import-tsv", "missing.tsv"))
        self.assertIn("bad.tsv line 7: expected 5", self.fails("import-tsv", "bad.tsv",
                                                                "--strict"))
        self.assertIn("lacks the column(s) memory_gb, status", self.fails("import-tsv",
                                                                          "short.tsv"))
        self.assertEqual(self.snapshot(), before)

    def test_source_outside_the_root_is_absolute(self):
        outside = os.path.join(self.tmp, "night1.tsv")
        with open(outside, "w") as f:
            f.write(UPSTREAM)
        result = self.cli("import-tsv", outside, "--json")
        self.assertEqual(result.code, EXIT_OK, result)
        self.assertEqual(self.records()[0]["imported"]["source"], outside)


DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "real_logs")
ELEVEN = ("commit\tval_bpb\tmemory_gb\tstatus\tmfu\ttok_per_sec\tnum_steps\tnum_params_M\t"
          "batch_size\tfinal_loss\tdescription\n"
          "a1b2c3d\t0.997900\t44.0\tbaseline\t39.5\t512000\t953\t50.3\t524288\t2.91\tbaseline\n"
          "PENDING\t0.993200\t44.2\tKEEP\t40.1\t515000\t960\t50.3\t524288\t2.90\tmore lr\n"
          "exp6\tN/A\t44.0\tkeep\t\t\t\t\t\t\tno number: bad row in the middle\n"
          "b2c3d4e-dirty\t1.005000\t44.0\treverted\t38.0\t500000\t900\t50.3\t524288\t2.95\tgelu\n"
          "__baseline__\t0.000000\t0.0\tOOM\t\t\t\t\t\t\twider model\n"
          "c3d4e5f\t0.990000\t44.0\trepair\t\t\t\t\t\t\tunknown status\n")
SIX = ("commit\tval_bpb\tmemory_gb\tstatus\tdescription\tartifact_mb\n"
       "a1b2c3d\t1.2000\t10.0\tkeep\tbaseline 16 MB budget\t15.2\n"
       "b2c3d4e\t1.1900\t10.5\tbest\tint6 quantisation\t12.9\n"
       "c3d4e5f\t1.2100\t10.1\ttentative\tlonger warmup\t15.3\n")


class RealShapedImportTest(LabCase):
    def test_eleven_columns_aliases_placeholders_and_a_bad_row(self):
        self.write("eleven.tsv", ELEVEN)
        result = self.ok("import-tsv", "eleven.tsv")
        self.assertIn("Imported 4 of 6 rows", result.out)
        self.assertIn("2 bad rows skipped", result.out)
        self.assertIn("warning: line 4 skipped: val_bpb must be a number", result.err)
        self.assertIn("warning: line 7 skipped: unknown status 'repair'", result.err)
        ledger = self.records()
        self.assertEqual([r["commit"] for r in ledger],
                         ["a1b2c3d", "PENDING", "b2c3d4e-dirty", "__baseline__"])
        self.assertEqual([r["status"] for r in ledger], ["keep", "keep", "discard", "crash"])
        self.assertEqual([r["imported"]["status"] for r in ledger],
                         ["baseline", "KEEP", "reverted", "OOM"])
        self.assertEqual(ledger[0]["metrics"]["mfu"], 39.5)
        self.assertEqual(ledger[0]["metrics"]["tok_per_sec"], 512000)
        self.assertEqual(ledger[0]["metrics"]["num_steps"], 953)
        self.assertTrue(all(r["run_id"].endswith(r["commit"]) for r in ledger))
        doctor = self.cli("doctor", "--json").json()  # unknown times are no finding
        self.assertEqual((doctor["problems"], doctor["missing_fields"]), (0, []))
        # the same file again adds nothing; --strict refuses it at its first bad row
        self.assertEqual(self.ok("import-tsv", "eleven.tsv", "--json").json()["imported"], [])
        self.assertIn("line 4", self.fails("import-tsv", "eleven.tsv", "--strict"))

    def test_six_columns_with_artifact_mb_in_a_class_of_their_own(self):
        self.log_keep("native baseline", 0.99)
        self.write("six.tsv", SIX)
        self.assertIn("error: --class must be at most",
                      self.fails("import-tsv", "six.tsv", "--class", "a\nb"))
        self.ok("import-tsv", "six.tsv", "--class", "parameter-golf 16MB")
        imported = self.records()[1:]
        self.assertEqual([r["metrics"]["artifact_mb"] for r in imported], [15.2, 12.9, 15.3])
        self.assertEqual({r["provenance"]["device"] for r in imported}, {"parameter-golf 16MB"})
        self.assertEqual([r["status"] for r in imported], ["keep", "keep", "discard"])
        classes = {c["label"]: c for c in self.registry()["classes"]}
        golf = [c for label, c in classes.items() if "parameter-golf" in label]
        self.assertEqual(len(golf), 1)
        self.assertEqual(golf[0]["champion"]["commit"], "b2c3d4e")

    def test_timestamps_come_from_git_commits_or_the_file_else_unknown(self):
        full = git(self.repo, "rev-parse", "HEAD")
        when = git(self.repo, "show", "-s", "--format=%cI", "HEAD")
        self.write("mixed.tsv", HEADER + f"{full[:7]}\t0.99\t1.0\tkeep\tfrom git\n"
                   "fedcba9\t0.98\t1.0\tkeep\tno such commit\n")
        self.ok("import-tsv", "mixed.tsv")
        first, second = self.records()
        self.assertEqual(first["timestamp_utc"], records.format_utc(records.parse_utc(when)))
        self.assertEqual(first["imported"]["timestamp"], "git commit")
        self.assertIsNone(second["timestamp_utc"])
        self.assertEqual(second["imported"]["timestamp"], "unknown")
        self.write("stamped.tsv", "timestamp\t" + HEADER.replace("\n", "\t\n").rstrip("\t\n")
                   + "\n2026-05-21T17:38:57-07:00\tabc1234\t0.97\t2.0\tkeep\tstamped\n")
        self.ok("import-tsv", "stamped.tsv")
        self.assertEqual(self.records()[-1]["timestamp_utc"], "2026-05-22T00:38:57Z")
        self.assertEqual(self.records()[-1]["imported"]["timestamp"], "file")

    def test_real_logs_import(self):
        expected = {"real_robinojw_results.tsv": 30, "aroughidea__autoresearch-win-rtx__results.tsv": 27,
                    "isque03__autoresearch-mlx__results.tsv": 41}
        for name, at_least in expected.items():
            with open(os.path.join(DATA, name), "rb") as f:
                self.write(name, f.read())
            data = self.ok("import-tsv", name, "--json").json()
            self.assertGreaterEqual(len(data["imported"]), at_least, (name, data["bad_rows"]))
            self.assertEqual(len(data["imported"]) + len(data["bad_rows"]), data["rows"])
        self.assertEqual(self.cli("doctor").code, 0)

    def test_a_tiny_kept_val_bpb_round_trips_through_results_tsv(self):
        self.log_keep("tiny", 4e-7)
        self.assertEqual(self.tsv()[1].split("\t")[1], "4e-07")
        fresh = os.path.join(self.tmp, "other")
        os.makedirs(fresh)
        result = self.cli("import-tsv", self.path("results.tsv"), "--root", fresh, "--json")
        self.assertEqual(len(result.json()["imported"]), 1, result)


READER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from memorylab_core.store import Store
store, reads = Store(sys.argv[2]), 0
print("ready", flush=True)
while sys.stdin.readline():
    with store.lock(exclusive=False):
        rows, _ = store.read_rows()
    print(len(rows), flush=True)
"""


class LargeImportTest(LabCase):
    def test_ten_thousand_rows_land_in_batches_while_a_reader_reads(self):
        lines = [f"{i:07x}\t{0.9 + (i % 997) / 1e4:.6f}\t44.0\t{('keep', 'discard')[i % 2]}\t"
                 f"idea number {i}\n" for i in range(10_000)]
        self.write("big.tsv", HEADER + "".join(lines))
        self.ok("init")
        reader = subprocess.Popen([sys.executable, "-c", READER, REPO_ROOT, self.repo],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(reader.stdout.close)
        self.assertEqual(reader.stdout.readline().strip(), "ready")
        seen = []
        real_commit = Store.commit_run

        def commit_run(store, batch, staged=None):  # a reader gets in between batches
            seen.append(len(batch))
            reader.stdin.write("read\n")
            reader.stdin.flush()
            return real_commit(store, batch, staged)

        Store.commit_run = commit_run
        try:
            result = self.ok("import-tsv", "big.tsv", "--json")
        finally:
            Store.commit_run = real_commit
        reader.stdin.close()
        counts = [int(line) for line in reader.stdout.read().split()]
        reader.wait()
        self.assertEqual(len(result.json()["imported"]), 10_000)
        self.assertEqual(seen, [importer.BATCH_ROWS] * (10_000 // importer.BATCH_ROWS))
        self.assertEqual(len(counts), len(seen))
        self.assertTrue(all(c % importer.BATCH_ROWS == 0 for c in counts), counts)
        self.assertEqual(len(self.tsv()), 10_001)
        self.assertEqual(self.registry()["experiments"], 10_000)


if __name__ == "__main__":
    unittest.main()
