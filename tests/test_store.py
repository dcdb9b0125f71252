"""The store: tolerant ledger reading, torn tails, earlier-fork ledgers, the slim-row
index cache, and recovery of a killed log transaction."""

import json
import os
import shutil
import unittest
import unittest.mock

from mlhelpers import LEDGER, LabCase, commit_change

from memorylab_core import store as store_module
from memorylab_core.store import Store, slim_row, tsv_row


def old_fork_record(run_id, commit, status, val_bpb, description, parent=None, family="lr"):
    """A record with exactly the published fields, as the earlier fork wrote them."""
    crash = status == "crash"
    return {
        "run_id": run_id, "timestamp_utc": run_id[:4] + "-" + run_id[4:6] + "-" + run_id[6:8]
        + "T" + run_id[9:11] + ":" + run_id[11:13] + ":" + run_id[13:15] + "Z",
        "branch": "autoresearch/mar5", "commit": commit, "parent_commit": parent,
        "family": family, "status": status, "description": description, "hypothesis": "",
        "tags": ["lr"], "notes": "",
        "metrics": {"val_bpb": None if crash else val_bpb, "training_seconds": 300.0,
                    "total_seconds": 320.0, "peak_vram_mb": None if crash else 44000.0,
                    "mfu_percent": 39.0, "total_tokens_M": 499.0, "num_steps": 950,
                    "num_params_M": 50.3, "depth": 8},
        "error": {"summary": "CUDA out of memory", "tail": ["CUDA out of memory"],
                  "source": "log"} if crash else None,
        "artifacts": {"run_log": f"results/memorylab/runs/{run_id}/run.log"},
        "novelty_guard": {"classification": "novel", "probe_text": description,
                          "threshold": 0.62, "match_count": 0,
                          "counts": {"duplicate_run": 0, "repeat_failure": 0,
                                     "incremental_followup": 0, "known_success": 0},
                          "top_matches": [], "mode": "exploit", "effective_threshold": 0.62,
                          "policy": {"mode": "exploit", "decision": "caution",
                                     "rationale": "new idea"}},
        "decision_packet": {"summary": f"Promote run {run_id}: first champion recorded at "
                                       f"{val_bpb:.6f} val_bpb.", "next_action": "promote",
                            "priority": "high", "rationale": "", "hypothesis_status":
                            "not_stated", "run": {}, "novelty": {}, "comparison": {},
                            "error": None},
    }


OLD_LEDGER = [
    old_fork_record("20250305T010000Z-aaaaaaa", "aaaaaaa", "keep", 0.9979, "baseline"),
    old_fork_record("20250305T011000Z-bbbbbbb", "bbbbbbb", "discard", 1.0012,
                    "increase matrix lr to 0.08", parent="aaaaaaa"),
    old_fork_record("20250305T012000Z-ccccccc", "ccccccc", "crash", 0.0,
                    "double the model depth", parent="aaaaaaa", family="arch"),
    old_fork_record("20250305T013000Z-ddddddd", "ddddddd", "keep", 0.9951,
                    "warmdown ratio 0.5 -> 0.3", parent="aaaaaaa", family="schedule"),
]


class LedgerCase(LabCase):
    def setUp(self):
        super().setUp()
        self.ok("init")
        self.ledger_path = self.path(LEDGER)

    def write_ledger(self, data):
        with open(self.ledger_path, "wb") as f:
            f.write(data)

    def old_lines(self):
        return b"".join(json.dumps(r).encode() + b"\n" for r in OLD_LEDGER)


class EarlierForkLedgerTest(LedgerCase):
    def test_old_ledger_loads_reports_and_serves_as_history(self):
        self.write_ledger(self.old_lines())
        before = self.ledger()
        result = self.ok("check", "--description", "increase matrix lr to 0.08", "--json")
        self.assertEqual(result.err, "")
        data = result.json()
        self.assertEqual(data["runs"], 4)
        self.assertEqual(data["novelty_guard"]["classification"], "repeat_failure")
        self.assertEqual(data["novelty_guard"]["top_matches"][0]["run_id"],
                         "20250305T011000Z-bbbbbbb")
        report = self.ok("report", "--json", "--since-hours", "100000")
        self.assertEqual(report.json()["headline"]["champion"]["run_id"],
                         "20250305T013000Z-ddddddd")
        self.log_keep("try a new optimizer", 0.999, "discard")
        self.assertEqual(self.ledger()[:len(before)], before)
        registry = self.registry()
        self.assertEqual(registry["experiments"], 5)
        self.assertEqual(registry["champion"]["run_id"], "20250305T013000Z-ddddddd")
        packet = self.records()[-1]["decision_packet"]
        self.assertEqual(packet["comparison"]["prior_champion_val_bpb"], 0.9951)


class TolerantReadingTest(LedgerCase):
    def test_torn_last_line(self):
        fragment = b'{"run_id": "20250305T020000Z-eeeeeee", "status": "ke'
        self.write_ledger(self.old_lines() + fragment)
        for argv in (("check", "--description", "x"), ("report",)):
            result = self.ok(*argv)
            self.assertIn("warning: experiments.jsonl line 5: incomplete last line", result.err)
        result = self.log_keep("new run after a torn tail", 0.99)
        self.assertIn("warning: experiments.jsonl line 5", result.err)
        data = self.ledger()
        self.assertTrue(data.startswith(self.old_lines() + fragment + b"\n"))
        lines = data.splitlines()
        self.assertEqual(len(lines), 6)
        self.assertEqual(json.loads(lines[5])["description"], "new run after a torn tail")
        # The fragment is now a complete (bad) line 5: still reported, never rewritten.
        again = self.ok("check", "--description", "x")
        self.assertIn("warning: experiments.jsonl line 5: not valid JSON", again.err)
        self.assertEqual(self.registry()["experiments"], 5)
        self.assertEqual(len(self.tsv()), 2)

    def test_corrupt_middle_line(self):
        lines = self.old_lines().splitlines(keepends=True)
        self.write_ledger(b"".join(lines[:2] + [b"{garbage\n", b"[1, 2]\n"] + lines[2:]))
        before = self.ledger()
        for argv in (("check", "--description", "x", "--json"), ("report", "--json")):
            result = self.ok(*argv)
            self.assertIn("warning: experiments.jsonl line 3: not valid JSON", result.err)
            self.assertIn("warning: experiments.jsonl line 4: not a JSON object", result.err)
            self.assertEqual(result.json()["bad_lines"][0]["line"], 3)
        self.log_keep("another", 0.99)
        self.assertTrue(self.ledger().startswith(before))
        self.assertEqual(self.registry()["experiments"], 5)

    def test_odd_records_do_not_break_anything(self):
        odd = [
            {"run_id": "x1", "status": "KEEP??", "metrics": {"val_bpb": "0.90"}},
            {"run_id": "x2", "status": "keep", "metrics": {"val_bpb": True,
                                                           "peak_vram_mb": "lots"}},
            {"run_id": "x3", "status": None, "metrics": None, "tags": "a,b",
             "description": 42, "decision_packet": "promote", "error": "boom"},
            {"status": "discard", "metrics": [], "config": "nope", "provenance": 3},
            {"run_id": "x5", "status": "keep", "metrics": {"val_bpb": 0.995,
                                                           "peak_vram_mb": 1024.0}},
        ]
        self.write_ledger(b"".join(json.dumps(r).encode() + b"\n" for r in odd))
        self.ok("check", "--description", "x")
        report = self.ok("report", "--json")
        self.assertEqual(report.json()["headline"]["champion"]["run_id"], "x5")
        self.log_keep("real run", 0.999, "discard")
        self.assertEqual(self.registry()["champion"]["run_id"], "x5")

    def test_nan_in_ledger_is_not_a_number(self):
        self.write_ledger(b'{"run_id": "n1", "status": "keep", "metrics": {"val_bpb": NaN}}\n')
        rows, bad = Store(self.repo).read_rows()
        self.assertEqual(bad, [])
        self.assertIsNone(rows[0]["metrics"]["val_bpb"])


class SlimRowTest(unittest.TestCase):
    def test_projection_keeps_light_fields_only(self):
        record = OLD_LEDGER[2]
        row = slim_row(record, 7)
        self.assertEqual(row["_line"], 7)
        self.assertEqual(row["error"], {"summary": "CUDA out of memory"})
        self.assertEqual(set(row["decision_packet"]), {"next_action", "priority", "summary"})
        self.assertNotIn("novelty_guard", row)
        self.assertNotIn("artifacts", row)
        self.assertEqual(row["provenance"], {})
        self.assertIsNone(row["config"])

    def test_tsv_row(self):
        self.assertEqual(tsv_row(OLD_LEDGER[0]), "aaaaaaa\t0.997900\t43.0\tkeep\tbaseline")
        self.assertEqual(tsv_row(OLD_LEDGER[2]),
                         "ccccccc\t0.000000\t0.0\tcrash\tdouble the model depth")


class IndexTest(LedgerCase):
    def rows(self):
        rows, bad = Store(self.repo).read_rows()
        return rows, bad

    def test_index_is_built_extended_and_rebuilt(self):
        self.write_ledger(self.old_lines())
        rows, _ = self.rows()
        meta_path = self.path("results", "memorylab", "index", "meta.json")
        with open(meta_path) as f:
            meta = json.load(f)
        self.assertEqual(meta["offset"], len(self.old_lines()))
        self.assertEqual(meta["lines"], 4)
        # Extended from the tail by an append.
        with open(self.ledger_path, "ab") as f:
            f.write(json.dumps(old_fork_record("20250305T030000Z-fffffff", "fffffff", "keep",
                                               0.99, "later")).encode() + b"\n")
        extended, _ = self.rows()
        self.assertEqual(extended[:4], rows)
        self.assertEqual(extended[4]["_line"], 5)
        # Deleting the index is always safe.
        shutil.rmtree(self.path("results", "memorylab", "index"))
        self.assertEqual(self.rows()[0], extended)
        # A ledger rewritten in place (same size or larger) is detected and re-read.
        data = self.ledger().replace(b"baseline", b"BASELINE")
        with open(self.ledger_path, "r+b") as f:
            f.write(data)
        rebuilt, _ = self.rows()
        self.assertEqual(rebuilt[0]["description"], "BASELINE")
        # A shorter ledger (replaced) too.
        self.write_ledger(self.old_lines().splitlines(keepends=True)[0])
        self.assertEqual(len(self.rows()[0]), 1)

    def test_numbers_shared_by_rows_keep_their_type_and_sign(self):
        # the index writes a number repeated across rows once: 1 and 1.0, 0.0 and -0.0
        # are still told apart, and the features' code/said lists shared with their
        # changes read as they were written
        from memorylab_core import novelty
        records = []
        for i, (zero, one) in enumerate(((0.0, 1), (-0.0, 1.0), (0.0, 1))):
            record = old_fork_record(f"20250305T01{i}000Z-aaaaaa{i}", f"aaaaaa{i}", "discard",
                                     0.99, f"matrix lr 0.0{i + 4}")
            change = [{"knob": "MATRIX_LR", "direction": "up", "value": 0.04 + i / 100}]
            record["config"] = {"constants": {"ZERO": zero, "ONE": one, "LR": 0.04},
                                "code_sha256": f"{i:064x}"}
            record["novelty_features"] = dict(novelty.features(
                {"description": record["description"]}), code=change, said=list(change))
            records.append(record)
        self.write_ledger(b"".join(json.dumps(r).encode() + b"\n" for r in records))
        built, _ = self.rows()
        store_module._LOADED.clear()
        loaded, _ = self.rows()   # from the persisted index
        for rows in (built, loaded):
            shown = [(repr(r["config"]["constants"]["ZERO"]), repr(r["config"]["constants"]["ONE"]))
                     for r in rows]
            self.assertEqual(shown, [("0.0", "1"), ("-0.0", "1.0"), ("0.0", "1")])
            for row, record in zip(rows, records):
                self.assertEqual(row["novelty_features"]["said"], record["novelty_features"]["said"])
                self.assertEqual(row["metrics"]["val_bpb"], 0.99)

    def test_odd_bytes_in_a_line(self):
        # a BOM before a record still reads (as json.loads reads UTF-8 bytes); bytes
        # that are not UTF-8 make the line bad, with its number, never a crash
        lines = self.old_lines().splitlines(keepends=True)
        self.write_ledger(b"\xef\xbb\xbf" + lines[0] + b'{"run_id": "x\xff"}\n' + b"".join(lines[1:]))
        rows, bad = self.rows()
        self.assertEqual([r["_line"] for r in rows], [1, 3, 4, 5])
        self.assertEqual(bad[0][0], 2)
        self.assertIn("not valid JSON", bad[0][1])
        for store in (Store(self.repo), Store(self.repo)):   # the persisted index, then lean
            store_module._LOADED.clear()
            self.assertEqual(len(store.read_rows_lean()[0]), 4)

    def test_index_rows_carry_row_facts_and_the_light_metrics(self):
        from memorylab_core import facts, lab
        self.write_ledger(self.old_lines())
        rows, _ = lab.open_store(self.repo).read_rows()
        self.assertEqual(len(rows), 4)
        for row in rows:
            self.assertEqual(row["_facts"], facts.row_facts(row))
            self.assertLessEqual(set(row["metrics"]), set(store_module.ROW_METRICS))
        # A second store on the same root (same process) reads the same rows.
        self.assertEqual(lab.open_store(self.repo).read_rows()[0], rows)

    def test_index_spans_several_segments(self):
        saved = store_module.SEGMENT_ROWS
        store_module.SEGMENT_ROWS = 3
        self.addCleanup(setattr, store_module, "SEGMENT_ROWS", saved)
        lines = [json.dumps(old_fork_record(f"20250305T01{i:02d}00Z-aaaaaaa", "aaaaaaa", "keep",
                                            0.99 + i / 1000, f"run {i}")).encode() + b"\n"
                 for i in range(8)]
        self.write_ledger(b"".join(lines[:4]))
        self.rows()
        with open(self.ledger_path, "ab") as f:
            f.write(b"".join(lines[4:]))
        self.rows()
        fresh, bad = Store(self.repo).read_rows()
        self.assertEqual([r["description"] for r in fresh], [f"run {i}" for i in range(8)])
        segments = [n for n in os.listdir(self.path("results", "memorylab", "index"))
                    if n.endswith(".marshal")]
        self.assertEqual(sorted(segments), [f"{kind}-0000{n}.marshal" for kind in
                                            ("details", "novelty_features", "rows")
                                            for n in range(3)])
        lean, _ = Store(self.repo).read_rows_lean()   # without the features' segments
        self.assertEqual(lean, [{k: v for k, v in row.items() if k != "novelty_features"}
                                for row in fresh])
        from memorylab_core import lab
        self.assertEqual(Store(self.repo).read_guard_rows()[0], fresh)   # no postings: all
        # the guard's parts (written by the first check) hold the rows but DETAILS,
        # packed behind a head each, and postings that find them
        fresh = lab.open_store(self.repo).read_rows()[0]   # its index: rebuilt, no guard parts
        for _ in range(2):   # the guard parts built, then read
            store_module._LOADED.clear()
            guard, _ = lab.open_store(self.repo).read_guard_rows()
            self.assertEqual([store_module.unpacked(row) for row in guard],
                             [{k: v for k, v in row.items() if k not in store_module.DETAILS}
                              for row in fresh])
            self.assertEqual(set(guard[7]), {"run_id", "status", "_line", store_module.PACKED})
            self.assertEqual(guard.lookup([("key", "@MATRIX_LR")]), set())
            self.assertEqual(guard.lookup(["7"]), {8})   # "run 7" is on line 8
        self.assertEqual(sorted(n for n in os.listdir(self.path("results", "memorylab", "index"))
                                if n.startswith("guard")), [f"guard-0000{n}.marshal" for n in range(3)])
        self.assertIn("timestamp_utc", fresh[0])
        self.assertNotIn("timestamp_utc", store_module.unpacked(guard[0]))

    def test_reading_in_small_batches_gives_the_same_rows(self):
        # the ledger is read a few bytes at a time: lines cut across two reads, bad,
        # blank and odd lines read the same whatever the size of the reads
        lines = self.old_lines().splitlines(keepends=True)
        nested = dict(OLD_LEDGER[1], notes={"novelty_guard": 1, "decision_packet": 2})
        data = b"".join([b"\xef\xbb\xbf" + lines[0], b"{bad\n", b"\n", lines[1],
                         b'{"run_id": "x\xff"}\n', json.dumps(nested).encode() + b"\n",
                         b"[1]\n", lines[2], b"   \n", lines[3],
                         b'{"run_id": "a"},{"run_id": "b"}\n{"run_id": "c}\n{d"}\n',
                         b'{"run_id": "torn'])
        self.write_ledger(data)
        expected, first = ([1, 4, 6, 8, 10], [2, 5, 7, 11, 12, 13, 14]), None
        for size in (1 << 20, 700, 64):
            store_module._LOADED.clear()
            shutil.rmtree(self.path("results", "memorylab", "index"), ignore_errors=True)
            with unittest.mock.patch.object(store_module, "READ_BATCH", size):
                rows, bad = self.rows()
            self.assertEqual(([r["_line"] for r in rows], [b[0] for b in bad]), expected)
            self.assertEqual(bad[-1], (14, "incomplete last line (no newline at end of file); "
                                          "left as is"))
            self.assertEqual([r["commit"] for r in rows],
                             ["aaaaaaa", "bbbbbbb", "bbbbbbb", "ccccccc", "ddddddd"])
            self.assertEqual(rows[2]["description"], "increase matrix lr to 0.08")
            first = first or rows
            self.assertEqual(rows, first)

    def test_bad_lines_survive_the_index(self):
        self.write_ledger(b"{bad\n" + self.old_lines())
        self.assertEqual(self.rows()[1][0][0], 1)
        rows, bad = self.rows()  # from the persisted index
        self.assertEqual(len(rows), 4)
        self.assertEqual(bad[0][0], 1)

    def test_corrupt_index_is_rebuilt(self):
        self.write_ledger(self.old_lines())
        expected = self.rows()[0]
        for kind in ("rows", "details", "novelty_features"):
            with open(self.path("results", "memorylab", "index", f"{kind}-00000.marshal"), "wb") as f:
                f.write(b"\x00garbage")
            store_module._LOADED.clear()
            self.assertEqual(Store(self.repo).read_rows()[0], expected)
            store_module._LOADED.clear()
            self.assertEqual(len(Store(self.repo).read_rows_lean()[0]), 4)
            store_module._LOADED.clear()
            self.assertEqual(len(Store(self.repo).read_guard_rows()[0]), 4)


class RecoveryTest(LedgerCase):
    """A log killed between its steps leaves the store consistent."""

    def killed_log(self, stop_after):
        """Run a log whose commit_run stops after `stop_after` step."""
        steps = {"journal": "write_atomic", "archive": "rename", "ledger": "_append_line"}
        original_commit = Store.commit_run

        class Killed(BaseException):  # like a kill: no `except Exception` stops it
            pass

        def commit_run(store, record, staged=None):
            real_rename, real_append = os.rename, store_module._append_line

            def rename(src, dst):
                real_rename(src, dst)
                if stop_after == "archive":
                    raise Killed

            def append(path, text):
                real_append(path, text)
                if stop_after == "ledger" and path == store.ledger_path:
                    raise Killed

            os.rename, store_module._append_line = rename, append
            try:
                if stop_after == "journal":
                    store_module.write_atomic(store.journal_path, json.dumps(
                        {"run_id": record["run_id"], "archive": True,
                         "ledger_size": os.path.getsize(store.ledger_path),
                         "tsv_size": os.path.getsize(store.tsv_path)}))
                    raise Killed
                original_commit(store, record, staged)
            finally:
                os.rename, store_module._append_line = real_rename, real_append

        Store.commit_run = commit_run
        try:
            with self.assertRaises(Killed):
                self.log_keep("killed run", 0.98)
        finally:
            Store.commit_run = original_commit
        self.assertTrue(os.path.exists(self.path("results", "memorylab", ".pending.json")))
        return steps

    def runs(self):
        return sorted(n for n in os.listdir(self.path("results", "memorylab", "runs"))
                      if not n.startswith("."))

    def test_killed_before_the_ledger_append_rolls_back(self):
        self.log_keep("first", 0.99)
        self.killed_log("archive")
        self.assertEqual(len(self.runs()), 2)  # archived but not committed
        self.log_keep("next", 0.995, "discard")
        self.assertEqual([r["description"] for r in self.records()], ["first", "next"])
        self.assertEqual(len(self.tsv()), 3)
        self.assertEqual(self.runs(), sorted(r["run_id"] for r in self.records()))
        self.assertFalse(os.path.exists(self.path("results", "memorylab", ".pending.json")))

    def test_killed_after_the_ledger_append_is_completed(self):
        self.log_keep("first", 0.99)
        registry_before = self.registry()
        self.killed_log("ledger")
        self.assertEqual(len(self.records()), 2)
        self.assertEqual(len(self.tsv()), 2)  # results.tsv row missing
        self.assertEqual(self.registry(), registry_before)  # stale
        with open(self.path("results.tsv"), "a") as f:
            f.write("half a ro")  # as if killed mid-append
        self.ok("init")  # any writer completes the transaction
        self.assertEqual([row.split("\t")[4] for row in self.tsv()[1:]], ["first", "killed run"])
        self.assertEqual(self.registry()["experiments"], 2)
        self.assertLess(self.registry()["champion"]["val_bpb"], 0.99)
        self.assertEqual(len(self.runs()), 2)

    def test_killed_after_the_journal_leaves_nothing(self):
        self.killed_log("journal")
        self.ok("report")
        self.assertEqual(self.records(), [])
        self.assertEqual(len(self.tsv()), 1)
        self.assertEqual(self.runs(), [])

    def test_dead_staging_folders_are_removed(self):
        staging = self.path("results", "memorylab", "runs", ".staging", "999999999-abcd")
        os.makedirs(staging)
        self.log_keep("x", 0.99)
        self.assertFalse(os.path.exists(staging))


class RegistryFreshnessTest(LedgerCase):
    def test_registry_file_is_reused_only_while_it_matches_the_ledger(self):
        self.log_keep("first", 0.99)
        store = Store(self.repo)
        on_disk = self.registry()
        self.assertEqual(on_disk.pop("ledger_size"), os.path.getsize(self.ledger_path))
        self.assertEqual(store.fresh_registry(1), on_disk)
        self.assertIsNone(store.fresh_registry(2))
        with open(self.ledger_path, "ab") as f:  # a hand edit
            f.write(b"{}\n")
        self.assertIsNone(store.fresh_registry(1))
        self.ok("report")  # rebuilds and rewrites it
        self.assertEqual(self.registry()["experiments"], 2)
        self.assertIsNotNone(store.fresh_registry(2))

    def test_registries_written_out_of_order_keep_the_newest(self):
        # two logs commit, then write their registries (built after the lock) in the
        # order A, B: each is stamped with the ledger it was built for, so B's lands
        self.log_keep("first", 0.99)
        deferred = []
        real = Store.write_registry_if_newer
        Store.write_registry_if_newer = lambda store, registry, size: deferred.append(
            (registry, size))
        try:
            self.log_keep("second", 0.98)
            self.log_keep("third", 0.97)
        finally:
            Store.write_registry_if_newer = real
        store = Store(self.repo)
        self.assertEqual([store.write_registry_if_newer(registry, size)
                          for registry, size in deferred], [True, True])
        self.assertEqual(self.registry()["experiments"], 3)
        rows, _ = store.read_rows()
        self.assertIsNotNone(store.fresh_registry(3, rows))


class ParentChainTest(LabCase):
    def test_lineage_uses_parent_commits(self):
        self.log_keep("baseline", 0.99)
        commit_change(self.repo, "DEPTH = 8", "DEPTH = 10")
        self.log_keep("depth 10", 0.985)
        lineages = self.registry()["lineages"]
        self.assertEqual(lineages[0]["runs"], 2)


if __name__ == "__main__":
    unittest.main()


class GuardRowsTest(LabCase):
    """`check` reads packed rows (Store.read_guard_rows) and unpacks only those the
    index's postings say an idea may match: its verdicts must be those over every
    full row."""

    def test_the_guard_on_packed_rows_judges_as_on_full_rows(self):
        import random
        from memorylab_core import evidence, fingerprint, lab, novelty
        saved = store_module.SEGMENT_ROWS
        store_module.SEGMENT_ROWS = 64   # several segments, the last one partial
        self.addCleanup(setattr, store_module, "SEGMENT_ROWS", saved)
        rng = random.Random(11)
        with open(os.path.join(os.path.dirname(__file__), "data", "novelty_real_pairs.tsv"),
                  encoding="utf-8") as f:
            pairs = [line.rstrip("\n").split("\t") for line in f][1:]
        base = {"DEPTH": 8, "MATRIX_LR": 0.04, "ADAM_BETAS": [0.8, 0.95],
                "WINDOW_PATTERN": "SSSL", "WEIGHT_DECAY": 0.2}
        choices = {"DEPTH": (6, 8, 10, 12), "MATRIX_LR": (0.03, 0.04, 0.05, 0.06),
                   "ADAM_BETAS": ([0.8, 0.95], [0.9, 0.95]), "WINDOW_PATTERN": ("SSSL", "L"),
                   "WEIGHT_DECAY": (0.0, 0.1, 0.2)}
        configs = []   # a few code hashes, each with its constants: runs share them
        for i in range(12):
            constants = {name: rng.choice(values) for name, values in choices.items()}
            configs.append({"constants": constants, "code_sha256": f"{i:064x}"})
        lines = []
        for i, (_, prior, planned) in enumerate(pairs * 2):
            config = rng.choice(configs + [None])
            change = rng.choice(sorted(choices))
            change_set = {"constants": [{"name": change, "old": base[change],
                                         "new": config["constants"][change]}], "hunks": []} \
                if config and config["constants"][change] != base[change] else None
            record = {"run_id": f"20260101T{i:06d}Z-{i:07x}", "commit": f"{i:07x}",
                      "status": rng.choice(("keep", "discard", "discard", "crash")),
                      "description": rng.choice((prior, planned)), "family": "",
                      "metrics": {"val_bpb": 0.99}, "config": config, "change_set": change_set}
            if rng.random() < 0.1:
                record["role"] = "replicate"
            if record["status"] == "crash":
                record["error"] = rng.choice(("CUDA out of memory", "NameError: x"))
            if rng.random() < 0.8:   # else an earlier fork's record: features made by the index
                idea = records_idea(record)
                record["novelty_features"] = novelty.features(idea, base, change_set)
            lines.append(json.dumps(record) + "\n")
        for i, vague in enumerate(VAGUE):   # crashes whose words name no knob, their code one
            change_set = {"constants": [{"name": "DEPTH", "old": 8, "new": 12}], "hunks": []}
            lines.append(json.dumps({"run_id": f"20260102T00000{i}Z-{i:07x}", "status": "crash",
                                     "description": vague, "error": "NameError: x",
                                     "change_set": change_set}) + "\n")
        os.makedirs(self.path("results", "memorylab"), exist_ok=True)
        with open(self.path("results", "memorylab", "experiments.jsonl"), "w") as f:
            f.write("".join(lines))
        store = lab.open_store(self.repo)
        full, _ = store.read_rows()
        for _ in range(2):   # the guard parts built by the first read, then read from disk
            store_module._LOADED.clear()
            packed, _ = lab.open_store(self.repo).read_guard_rows()
        self.assertTrue(all(store_module.PACKED in row for row in packed))
        self.assertEqual(len(packed), len(full))
        differ, unpacked_rows, ideas = [], [], 0
        real_unpacked = store_module.unpacked

        def counted(row):
            unpacked_rows.append(row)
            return real_unpacked(row)

        for planned in [p for _, _, p in pairs] + [f"{vague}, warmup ratio 0.07" for vague in VAGUE]:
            idea = {"description": planned, "family": "", "hypothesis": "", "tags": []}
            config = rng.choice(configs + [dict(configs[0], code_sha256="f" * 64)])
            champion = rng.choice(configs)
            for options in ({"base_constants": base, "plan": True},
                            {"config": config, "champion_config": champion,
                             "base_constants": config["constants"]},
                            {"config": config, "champion_config": champion, "threshold": 0.3}):
                ideas += 1
                with unittest.mock.patch.object(store_module, "unpacked", counted):
                    on_packed = evidence.assess(idea, packed, **options)
                if on_packed != evidence.assess(idea, full, **options):
                    differ.append((planned, sorted(options)))
        self.assertEqual(differ, [])
        # and it unpacks fewer rows than it judges
        self.assertLess(len(unpacked_rows), ideas * len(full) / 3)


# descriptions that name no knob: a fix of such a crash is found by its words
VAGUE = ("the idea from the paper, tried again", "the bigger model from the scaling paper",
         "rewrite attention as one fused flash kernel with causal block skipping for long sequences")


class GuardPartsTest(LabCase):
    """A guard part is used only for the rows it was built from."""

    def ledger(self, descriptions):
        os.makedirs(self.path("results", "memorylab"), exist_ok=True)
        temp = self.path("results", "memorylab", "new.jsonl")
        with open(temp, "w") as f:   # replaced, as doctor --repair replaces it
            for i, description in enumerate(descriptions):
                f.write(json.dumps({"run_id": f"r{i}", "status": "discard",
                                    "description": description}) + "\n")
        os.replace(temp, self.path("results", "memorylab", "experiments.jsonl"))

    def guard_rows(self):
        from memorylab_core import lab
        store_module._LOADED.clear()
        rows, _ = lab.open_store(self.repo).read_guard_rows()
        return [store_module.unpacked(row)["description"] for row in rows], rows

    def test_a_stale_or_broken_guard_part_is_rebuilt(self):
        from memorylab_core import lab
        guard_file = self.path("results", "memorylab", "index", "guard-00000.marshal")
        self.ledger(["increase depth to 10", "lower matrix lr to 0.03"])
        lab.open_store(self.repo).read_rows()
        self.assertFalse(os.path.exists(guard_file))   # a full rebuild leaves it to check
        self.assertEqual(self.guard_rows()[0], ["increase depth to 10", "lower matrix lr to 0.03"])
        with open(guard_file, "rb") as f:
            stale = f.read()
        # the same run ids on the same lines, in a ledger written anew
        self.ledger(["use swiglu", "warmup ratio 0.1"])
        store_module._LOADED.clear()
        lab.open_store(self.repo).read_rows()
        with open(guard_file, "rb") as f:   # the last index's part is still there...
            self.assertEqual(f.read(), stale)
        descriptions, rows = self.guard_rows()   # ...and is not used
        self.assertEqual(descriptions, ["use swiglu", "warmup ratio 0.1"])
        self.assertEqual(rows.lookup(["swiglu"]) & {1, 2}, {1})
        for broken in (b"", b"\x00garbage", stale[:len(stale) // 2]):
            with open(guard_file, "wb") as f:
                f.write(broken)
            self.assertEqual(self.guard_rows()[0], ["use swiglu", "warmup ratio 0.1"])


class MalformedFeaturesTest(LabCase):
    def test_features_that_claim_this_version_but_lack_fields_are_derived_again(self):
        # a hand-written record: the index derives its features from its words, and
        # every command goes on reading the store
        from memorylab_core import novelty
        self.ok("log", "--description", "increase depth to 10", "--status", "discard",
                "--summary", self.summary(), "--skip-archive")
        with open(self.path("results", "memorylab", "experiments.jsonl"), "a") as f:
            f.write(json.dumps({"run_id": "hand", "status": "discard",
                                "description": "increase depth to 12",
                                "novelty_features": {"version": novelty.FEATURES_VERSION}})
                    + "\n")
        self.ok("report")
        out = self.ok("check", "--description", "depth 12", "--json").out
        self.assertEqual(json.loads(out)["novelty_guard"]["top_matches"][0]["run_id"], "hand")


def records_idea(record):
    from memorylab_core import records
    return records.idea_of(record["description"], None, record["family"], ())
