"""Store hardening: nothing written over the store's own files or outside its root,
failed appends cut back, sane ranges at the door, non-UTF-8 git output, the folding
budget, stray temp files, archive copies, staging liveness by lock."""

import errno
import fcntl
import json
import os
import stat
import subprocess
import sys
import unittest

from mlhelpers import LEDGER, REPO_ROOT, LabCase, git

from memorylab_core import store as store_module


class ReportOverStoreFilesTest(LabCase):
    def test_report_output_never_replaces_the_ledger_or_results_tsv(self):
        self.log_keep("first", 0.99)
        os.symlink(self.path(LEDGER), self.path("link.md"))
        for target in (LEDGER, "results.tsv", "link.md",
                       os.path.join("results", "memorylab", "champion_challenger.json")):
            message = self.fails("report", "--output", target)
            self.assertIn("one of the store's own files", message)
        self.assertEqual(len(self.records()), 1)
        self.ok("report", "--output", "elsewhere.md")


class OutsideTheRootTest(LabCase):
    def setUp(self):
        super().setUp()
        self.outside = os.path.join(self.tmp, "outside")
        os.makedirs(os.path.join(self.outside, "keepme"))
        with open(os.path.join(self.outside, "keepme", "file"), "w") as f:
            f.write("precious")
        self.ok("init")

    def test_a_staging_link_is_never_followed(self):
        staging = self.path("results", "memorylab", "runs", ".staging")
        os.symlink(self.outside, staging)
        result = self.cli("log", "--description", "x", "--status", "keep",
                          "--summary", self.summary())
        self.assertEqual(result.code, 1, result)
        self.assertIn("does not follow it", result.err)
        self.ok("init")  # recovery runs, cleaning nothing through the link
        self.assertTrue(os.path.exists(os.path.join(self.outside, "keepme", "file")))

    def test_a_journal_run_id_never_becomes_a_path_outside(self):
        victim = os.path.join(self.tmp, "x")
        os.makedirs(victim)
        with open(self.path("results", "memorylab", ".pending.json"), "w") as f:
            json.dump({"run_id": "../../../../x", "archive": True, "ledger_size": 0,
                       "tsv_size": 0}, f)
        self.ok("init")
        self.assertTrue(os.path.isdir(victim))
        self.assertFalse(os.path.exists(self.path("results", "memorylab", ".pending.json")))

    def test_a_journal_that_does_not_describe_the_ledger_cuts_nothing(self):
        self.log_keep("first", 0.99)
        before = self.ledger()
        with open(self.path("results", "memorylab", ".pending.json"), "w") as f:
            json.dump({"run_id": "20260101T000000Z-abcdef0", "archive": False,
                       "ledger_size": 0, "tsv_size": 0}, f)
        self.ok("init")
        self.assertEqual(self.ledger(), before)

    def test_a_killed_append_is_cut_back_by_the_next_writer(self):
        self.log_keep("first", 0.99)
        before = self.ledger()
        with open(self.path("results", "memorylab", ".pending.json"), "w") as f:
            json.dump({"run_id": "20260101T000000Z-abcdef0", "archive": False,
                       "ledger_size": len(before), "tsv_size": 0}, f)
        with open(self.path(LEDGER), "ab") as f:
            f.write(b'{"run_id": "20260101T000000Z-abcdef0", "desc')  # killed mid-write
        self.ok("init")
        self.assertEqual(self.ledger(), before)

    def test_run_ids_are_checked_as_folder_names(self):
        for bad in ("../x", "a/b", ".hidden", "", None, "x" * 200):
            with self.assertRaises(ValueError):
                store_module.check_run_id(bad)
        self.assertEqual(store_module.check_run_id("20260101T000000Z-PENDING"),
                         "20260101T000000Z-PENDING")


class DiskFullTest(LabCase):
    def test_a_failed_append_is_cut_back_and_says_disk_full(self):
        self.log_keep("first", 0.99)
        before = self.ledger()
        real_write = os.write

        def write(fd, data):  # half the line lands, then the disk is full
            if len(data) > 100:
                real_write(fd, bytes(data[:len(data) // 2]))
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        store_module.os.write = write
        try:
            result = self.cli("log", "--description", "second", "--status", "keep",
                              "--summary", self.summary(val_bpb=0.98))
        finally:
            store_module.os.write = real_write
        self.assertEqual(result.code, 1, result)
        self.assertEqual(result.err.count("\n"), 1)
        self.assertIn("disk full", result.err)
        self.assertEqual(self.ledger(), before)
        self.assertEqual(len([n for n in os.listdir(self.path("results", "memorylab", "runs"))
                              if not n.startswith(".")]), 1)
        self.assertFalse(os.path.exists(self.path("results", "memorylab", ".pending.json")))
        doctor = self.cli("doctor", "--json").json()
        self.assertEqual(doctor["problems"], 0, doctor)

    def test_a_failed_staging_copy_says_disk_full_and_leaves_nothing(self):
        self.ok("init")
        log = self.write("run.log", "val_bpb: 0.99\npeak_vram_mb: 1000\n")
        real = store_module.copy_file

        def copy_file(source, target):
            with open(target, "wb") as f:
                f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", source)

        store_module.copy_file = copy_file
        try:
            result = self.cli("log", "--description", "x", "--status", "keep", "--log", log)
        finally:
            store_module.copy_file = real
        self.assertEqual(result.code, 1, result)
        self.assertIn("disk full", result.err)
        self.assertNotIn("run.log", result.err)
        self.assertEqual(os.listdir(self.path("results", "memorylab", "runs", ".staging")), [])


class AppendEventTest(LabCase):
    def test_side_files_get_the_ledgers_append_and_stay_in_the_store(self):
        store = store_module.Store(self.repo)
        self.ok("init")
        path = store_module.side_path(store, "claims.jsonl")
        self.assertEqual(os.path.dirname(path), store.lab_dir)
        with store.lock():
            store_module.append_event(store, "claims.jsonl", {"claim": 1})
        with open(path, "ab") as f:
            f.write(b'{"claim": "torn')  # a writer killed mid-line
        with store.lock():
            store_module.append_event(store, "claims.jsonl", {"claim": 2})
            with self.assertRaises(ValueError):
                store_module.append_event(store, "claims.jsonl", {"claim": float("nan")})
        self.assertEqual(store_module.read_events(store, "claims.jsonl"),
                         [{"claim": 1}, {"claim": 2}])


class SaneRangeTest(LabCase):
    def test_huge_metrics_are_refused_at_the_door(self):
        self.ok("init")
        for values, message in (({"val_bpb": 1e308}, "val_bpb must be at most 1e+06"),
                                ({"peak_vram_mb": 1e12}, "peak_vram_mb must be at most 1e+09")):
            summary = self.summary(**values)
            error = self.fails("log", "--description", "x", "--status", "keep",
                               "--summary", summary)
            self.assertIn(message, error)

    def test_a_hand_edited_huge_val_bpb_does_not_break_later_decisions(self):
        self.log_keep("first", 0.99)
        record = self.records()[0]
        record["metrics"]["val_bpb"] = 1e308
        record["run_id"] += "b"
        with open(self.path(LEDGER), "a") as f:
            f.write(json.dumps(record) + "\n")
        self.log_keep("again", 0.98, "discard")


class NonUtf8Test(LabCase):
    def test_log_copes_with_a_non_utf8_train_py(self):
        with open(self.path("train.py"), "ab") as f:
            f.write(b"# caf\xe9 \xff\nEXTRA = 3\n")
        git(self.repo, "commit", "-qam", "latin-1 byte")
        self.log_keep("non-utf8 train.py", 0.99)
        self.assertEqual(self.records()[0]["config"]["constants"]["EXTRA"], 3)


    def test_text_that_is_not_utf8_is_refused_at_the_door(self):
        # a byte that is not UTF-8 in the command line reaches Python as a lone
        # surrogate (os.fsdecode); once it was an internal error after staging
        self.ok("init")
        self.summary()
        stray = os.fsdecode(b"raise lr \xff")
        self.fails("log", "--description", stray, "--status", "keep", "--summary",
                   self.path("summary.json"), expect="--description is not valid UTF-8")
        self.fails("log", "--description", "fine", "--status", "keep", "--notes", stray,
                   "--summary", self.path("summary.json"), expect="--notes is not valid UTF-8")
        self.fails("check", "--description", stray, expect="--description is not valid UTF-8")
        self.fails("show", stray, expect="RUN is not valid UTF-8")
        # a path may hold any bytes: that is an ordinary missing file
        self.fails("log", "--description", "fine", "--status", "keep", "--summary",
                   self.path(os.fsdecode(b"s\xff.json")), expect="s")


class FoldingBudgetTest(LabCase):
    def test_huge_constants_are_recorded_as_too_large(self):
        lines = ["BIG = 10**64"] + ["BIG = BIG * BIG"] * 8 + ['PAD = "ab" * 10**7',
                                                              "ROWS = [0] * 10**9"]
        with open(self.path("train.py"), "a") as f:
            f.write("\n".join(lines) + "\n")
        git(self.repo, "commit", "-qam", "huge constants")
        self.log_keep("huge constants", 0.99)
        constants = self.records()[0]["config"]["constants"]
        self.assertEqual([constants[k] for k in ("BIG", "PAD", "ROWS")], ["<too large>"] * 3)
        self.assertEqual(constants["DEPTH"], 8)
        self.assertLess(len(self.ledger()), 100_000)


class StrayTempFileTest(LabCase):
    def test_doctor_lists_and_repair_removes_temp_files_of_killed_writers(self):
        self.log_keep("first", 0.99)
        lab = self.path("results", "memorylab")
        strays = [os.path.join(lab, ".champion_challenger.json.tmp-999999-abc"),
                  os.path.join(lab, "reports", ".latest.html.tmp-999999-abc"),
                  os.path.join(lab, ".experiments.jsonl.tmp-999999-abc")]
        for path in strays:
            with open(path, "w") as f:
                f.write("x" * 1000)
        result = self.cli("doctor")
        self.assertEqual(result.code, 3, result)
        self.assertEqual(result.out.count("temp file of a killed writer"), 3)
        repaired = self.cli("doctor", "--repair", "--json").json()
        self.assertEqual(len(repaired["removed_temp_files"]), 3)
        self.assertFalse(any(os.path.exists(p) for p in strays))
        self.assertEqual(self.cli("doctor").code, 0)


class ArchiveCopyTest(LabCase):
    def test_sparse_logs_stay_sparse_and_private_logs_stay_private(self):
        self.ok("init")
        log = self.path("big.log")
        with open(log, "wb") as f:
            f.truncate(256 * 1024 * 1024)
            f.seek(0, os.SEEK_END)
            f.write(b"\nval_bpb: 0.99\npeak_vram_mb: 1000\n")
        os.chmod(log, 0o600)
        link = self.path("link.log")
        os.symlink(log, link)
        self.ok("log", "--description", "sparse", "--status", "keep", "--log", link)
        run_id = self.records()[0]["run_id"]
        copy = self.path("results", "memorylab", "runs", run_id, "run.log")
        st = os.stat(copy)
        self.assertEqual(st.st_size, os.path.getsize(log))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertFalse(os.path.islink(copy))
        if os.stat(log).st_blocks * 512 < 1024 * 1024:  # the file system keeps holes
            self.assertLess(st.st_blocks * 512, 1024 * 1024)


HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from memorylab_core.store import Store
store = Store(sys.argv[2])
folder = store.stage_archive({})
print(folder, flush=True)
sys.stdin.read()
"""


class StagingLivenessTest(LabCase):
    def test_a_staging_folder_is_kept_while_its_lock_is_held_whatever_its_pid(self):
        self.ok("init")
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, REPO_ROOT, self.repo],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        folder = holder.stdout.readline().strip()
        # as seen from another PID namespace: the folder's PID names no live process here
        foreign = os.path.join(os.path.dirname(folder), "999999999-" + folder[-8:])
        os.rename(folder, foreign)
        os.rename(folder + ".lock", foreign + ".lock")
        self.log_keep("a writer cleans staging", 0.99)
        self.assertTrue(os.path.isdir(foreign))
        holder.stdin.close()
        holder.wait()
        holder.stdout.close()
        self.log_keep("after the holder is gone", 0.98)
        self.assertFalse(os.path.exists(foreign))
        self.assertFalse(os.path.exists(foreign + ".lock"))


if __name__ == "__main__":
    unittest.main()
