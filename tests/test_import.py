"""importer.py and `import-tsv`: upstream results.tsv files into the ledger, idempotently."""

import os
import unittest

from mlhelpers import LabCase

from memorylab import EXIT_OK
from memorylab_core import importer, records

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


if __name__ == "__main__":
    unittest.main()
