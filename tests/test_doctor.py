"""doctor.py: ledger, registry and archive checks; `doctor --repair` loses nothing."""

import json
import os
import unittest

from mlhelpers import LEDGER, REGISTRY, LabCase

from memorylab_core import doctor

QUARANTINE = os.path.join("results", "memorylab", "experiments.quarantine.jsonl")


def lines_of(raw_lines, torn=False):
    """The (number, raw, record, problem) tuples store.ledger_lines would give."""
    out = []
    for number, raw in enumerate(raw_lines, 1):
        try:
            record = json.loads(raw)
            problem = None if isinstance(record, dict) else "not a JSON object"
            record = record if isinstance(record, dict) else None
        except ValueError:
            record, problem = None, "not valid JSON"
        if torn and number == len(raw_lines):
            problem = "incomplete last line (no newline at end of file)"
        out.append((number, raw, record, problem))
    return out


def rec(run_id, **extra):
    base = {"run_id": run_id, "timestamp_utc": "2026-01-01T00:00:00Z", "commit": "abcdef0",
            "status": "keep", "description": "x", "metrics": {"val_bpb": 0.99}}
    base.update(extra)
    return json.dumps(base).encode()


class ScanAndPlanTest(unittest.TestCase):
    def test_scan_finds_bad_duplicate_missing_and_unknown(self):
        a = rec("20260101T000000Z-abcdef0")
        lines = lines_of([a, b"{torn", a, rec("20260101T000000Z-abcdef0", description="y"),
                          b"[1]", rec("r2", status="won"), json.dumps({"run_id": "r3"}).encode()])
        found = doctor.scan_ledger(lines)
        self.assertEqual([b["line"] for b in found["bad_lines"]], [2, 5])
        self.assertEqual(found["duplicates"], [{"run_id": "20260101T000000Z-abcdef0",
                                                "lines": [1, 3, 4], "identical": False}])
        self.assertEqual(found["missing_fields"][0]["line"], 7)
        self.assertIn("metrics", found["missing_fields"][0]["fields"])
        self.assertEqual([u["line"] for u in found["unknown_status"]], [6, 7])
        self.assertEqual(found["records"], 5)
        torn = doctor.scan_ledger(lines_of([rec("r1"), rec("r2")], torn=True))
        self.assertEqual((torn["records"], [b["line"] for b in torn["bad_lines"]]), (2, [2]))

    def test_plan_keeps_every_line_somewhere(self):
        a = rec("20260101T000000Z-abcdef0")
        b = rec("20260101T000000Z-abcdef0", description="another run, same id")
        raw = [a, b"{torn", a, b, b"[1]", rec("r2"), rec("r3")[:-1] + b',"x": 1}']
        kept, quarantined, renamed = doctor.plan_repair(lines_of(raw, torn=True))
        self.assertEqual(quarantined, [b"{torn", a, b, b"[1]"])
        self.assertEqual(renamed, [{"line": 4, "old": "20260101T000000Z-abcdef0",
                                    "new": "20260101T000001Z-abcdef0"}])
        self.assertEqual(kept[0], a)
        fixed = json.loads(kept[1])
        self.assertEqual(fixed["run_id"], "20260101T000001Z-abcdef0")
        self.assertEqual(fixed["original_run_id"], "20260101T000000Z-abcdef0")
        self.assertEqual(fixed["description"], "another run, same id")
        # a torn last line that is a complete object (only the newline lost) is kept
        self.assertEqual(json.loads(kept[-1])["run_id"], "r3")
        self.assertEqual(len(kept), 4)

    def test_clean_ledger_needs_nothing(self):
        raw = [rec("r1"), rec("r2")]
        self.assertEqual(doctor.plan_repair(lines_of(raw)), (raw, [], []))


class DoctorCliTest(LabCase):
    def setUp(self):
        super().setUp()
        self.ok("init")
        self.log_keep("baseline", 0.998)
        self.log_keep("raise lr", 0.990)
        self.ok("log", "--description", "deeper", "--status", "crash", "--skip-archive")

    def corrupt(self):
        """Torn last line, corrupt middle line, an exact duplicate and a same-id record."""
        with open(self.path(LEDGER), "rb") as f:
            good = f.read().split(b"\n")[:-1]
        clash = json.loads(good[1])
        clash["description"] = "a different run with the same id"
        clash = json.dumps(clash).encode()
        lines = [good[0], b'{"run_id": "broken", "sta\x00tus":', good[1], good[1], clash,
                 good[2]]
        with open(self.path(LEDGER), "wb") as f:
            f.write(b"\n".join(lines) + b'\n{"run_id": "torn-tail", "metr')
        return good, clash

    def test_healthy_store(self):
        result = self.ok("doctor")
        self.assertIn("0 problems, 0 warnings", result.out)
        data = self.ok("doctor", "--json").json()
        self.assertEqual((data["problems"], data["warnings"], data["records"]), (0, 0, 3))
        self.assertEqual(data["registry"], "ok")

    def test_finds_problems_with_line_numbers(self):
        self.corrupt()
        result = self.cli("doctor")
        self.assertEqual(result.code, 3, result)
        self.assertIn("line 2: not valid JSON", result.out)
        self.assertIn("line 7: incomplete last line", result.out)
        self.assertIn("on lines 3, 4, 5 (different records)", result.out)
        self.assertIn("registry is stale", result.out)
        data = self.cli("doctor", "--json").json()
        self.assertEqual([b["line"] for b in data["bad_lines"]], [2, 7])

    def test_repair_loses_nothing(self):
        with open(self.path(LEDGER), "rb") as f:
            before_bytes = f.read()
        good, clash = self.corrupt()
        with open(self.path(LEDGER), "rb") as f:
            corrupted = f.read()
        result = self.ok("doctor", "--repair")
        self.assertIn("Repaired: 4 lines moved", result.out)
        self.assertIn("1 run ids renewed", result.out)
        self.assertIn("After repair: 0 problems", result.out)
        with open(self.path(QUARANTINE), "rb") as f:
            quarantine = f.read().split(b"\n")[:-1]
        self.assertEqual(quarantine, [b'{"run_id": "broken", "sta\x00tus":', good[1], clash,
                                      b'{"run_id": "torn-tail", "metr'])
        ledger = self.records()
        self.assertEqual(len(ledger), 4)
        self.assertEqual([r["run_id"] for r in ledger[:2]] + [ledger[3]["run_id"]],
                         [json.loads(g)["run_id"] for g in good])
        self.assertEqual(ledger[2]["original_run_id"], json.loads(good[1])["run_id"])
        self.assertEqual(ledger[2]["description"], "a different run with the same id")
        self.assertTrue(self.ledger().startswith(before_bytes.split(b"\n")[0]))
        # every corrupted input line is in the ledger or the quarantine, verbatim
        kept = set(self.ledger().split(b"\n"))
        for line in corrupted.split(b"\n"):
            self.assertTrue(line in kept or line in quarantine, line)
        self.assertEqual(self.registry()["experiments"], 4)
        self.assertEqual(self.ok("doctor", "--json").json()["problems"], 0)
        # the repaired store works: list, log and a second repair that changes nothing
        self.assertEqual(len(self.ok("list", "--json").json()["runs"]), 4)
        self.log_keep("after repair", 0.995)
        again = self.ok("doctor", "--repair", "--json").json()
        self.assertEqual(again["quarantined"], 0)
        self.assertFalse(again["registry_rewritten"])

    def test_whole_record_without_newline_is_kept(self):
        data = self.ledger()
        with open(self.path(LEDGER), "wb") as f:
            f.write(data.rstrip(b"\n"))  # the readers skip a last line without newline
        self.assertEqual(len(self.ok("list", "--json").json()["runs"]), 2)
        self.assertIn("a whole record: doctor --repair keeps it", self.cli("doctor").out)
        result = self.ok("doctor", "--repair", "--json").json()
        self.assertEqual(result["quarantined"], 0)
        self.assertEqual(self.ledger(), data)
        self.assertEqual(len(self.ok("list", "--json").json()["runs"]), 3)

    def test_stale_registry_is_rewritten(self):
        with open(self.path(REGISTRY), "w") as f:
            f.write('{"experiments": 1}')
        self.assertEqual(self.cli("doctor").code, 3)
        data = self.ok("doctor", "--repair", "--json").json()
        self.assertEqual(data["registry"], "stale")
        self.assertTrue(data["registry_rewritten"])
        self.assertEqual(data["quarantined"], 0)
        self.assertEqual(self.registry()["experiments"], 3)
        os.unlink(self.path(REGISTRY))
        self.assertIn("registry is missing", self.cli("doctor").out)

    def test_archive_and_tsv_warnings(self):
        run_id = self.records()[0]["run_id"]
        os.unlink(self.path("results", "memorylab", "runs", run_id, "summary.json"))
        os.makedirs(self.path("results", "memorylab", "runs", "20990101T000000Z-0000000"))
        with open(self.path("results.tsv"), "a") as f:
            f.write("abc1234\t0.9\t1.0\tkeep\textra row\n")
        result = self.ok("doctor")  # warnings only: exit 0
        self.assertIn(f"{run_id}: archived file missing", result.out)
        self.assertIn("no ledger record names this run folder", result.out)
        self.assertIn("results.tsv has 4 rows for 3 records", result.out)
        self.assertEqual(self.ok("doctor", "--json").json()["warnings"], 3)

    def test_uninitialised_store_is_an_error(self):
        empty = os.path.join(self.tmp, "empty")
        os.makedirs(empty)
        self.assertIn("run init", self.fails("doctor", "--root", empty))


if __name__ == "__main__":
    unittest.main()
