"""The README's no-GPU command, run as a user runs it: tests/cpu_smoke.py as a process.

A 1-second budget keeps it short; everything it writes goes to a temporary --dir.
This is also where a real train.py sidecar goes through `memorylab.py log`.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import training_harness as harness

SMOKE = os.path.join(harness.REPO_ROOT, "tests", "cpu_smoke.py")


def setUpModule():
    harness.require_training_deps()


class CpuSmokeTest(unittest.TestCase):
    def test_pipeline_logs_the_run_and_writes_the_report(self):
        root = tempfile.mkdtemp(prefix="ar-smoke-")
        self.addCleanup(shutil.rmtree, root, ignore_errors=True)
        env = {k: v for k, v in os.environ.items()
               if k not in ("MEMORYLAB_ROOT", "AUTORESEARCH_SUMMARY_PATH")}
        done = subprocess.run([sys.executable, SMOKE, "--time-budget", "1", "--dir", root],
                              capture_output=True, text=True, env=env, timeout=600)
        self.assertEqual(done.returncode, 0, done.stdout[-3000:] + done.stderr[-3000:])

        store = os.path.join(root, "run")
        reports = os.path.join(store, "results", "memorylab", "reports")
        tail = done.stdout.splitlines()[-3:]
        self.assertEqual(tail, [f"MemoryLab store: {store} (every smoke run is kept there)",
                                f"Morning report: {reports}/latest.md and {reports}/latest.html",
                                f"Next: python3 memorylab.py --root {store} brief"])
        for name in ("latest.md", "latest.html", "latest.json"):
            self.assertTrue(os.path.isfile(os.path.join(reports, name)), name)
        with open(os.path.join(store, "results", "memorylab", "experiments.jsonl")) as f:
            records = [json.loads(line) for line in f]
        self.assertEqual(len(records), 1)
        record = records[0]
        self.assertEqual(record["status"], "keep")  # the first run of a store is its champion
        self.assertEqual(record["provenance"]["device"], "cpu")
        self.assertEqual(record["provenance"]["time_budget_s"], 1)
        # the run folder's own commit of the shrunken copies, not the enclosing checkout's
        self.assertEqual(record["config"]["constants"]["DEPTH"], 2)
        self.assertEqual(record["hyperparameters"]["DEPTH"], 2)
        with open(os.path.join(store, "summary.json")) as f:
            self.assertEqual(record["metrics"]["val_bpb"], json.load(f)["val_bpb"])
        self.assertTrue(os.path.isfile(os.path.join(store, record["artifacts"]["run_log"])))
        self.assertEqual(sorted(os.listdir(root)), ["home", "run"])


if __name__ == "__main__":
    unittest.main()
