"""Several processes logging into one store at once lose nothing and share no run id."""

import json
import os
import subprocess
import sys
import unittest

from mlhelpers import REPO_ROOT, LabCase

PROCESSES = 8
LOGS_EACH = 25

# Each worker process calls the CLI's main() LOGS_EACH times (in-process, to keep
# the test fast); the processes run at the same time against one store.
WORKER = """
import sys
sys.path.insert(0, sys.argv[1])
import memorylab
worker, count, summary, log = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
for i in range(count):
    status = ("keep", "discard", "crash")[i % 3]
    args = ["log", "--description", f"worker {worker} run {i}\\twith a tab", "--status", status,
            "--tags", f"w{worker}", "--summary" if status != "crash" else "--log",
            summary if status != "crash" else log]
    code = memorylab.main(args)
    if code != 0:
        sys.exit(f"worker {worker} run {i}: exit {code}")
"""


class ConcurrentLogTest(LabCase):
    def test_parallel_logs_land_exactly_once(self):
        self.assertEqual(self.cli("init").code, 0)
        summary = self.summary(val_bpb=0.99)
        log = self.write("crash.log", "Traceback\nRuntimeError: boom\n")
        env = dict(self.env)
        workers = [subprocess.Popen([sys.executable, "-c", WORKER, REPO_ROOT, str(n),
                                     str(LOGS_EACH), summary, log],
                                    cwd=self.repo, env=env, stderr=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, text=True)
                   for n in range(PROCESSES)]
        for worker in workers:
            _, err = worker.communicate(timeout=300)
            self.assertEqual(worker.returncode, 0, err)
        total = PROCESSES * LOGS_EACH
        lines = self.ledger().splitlines()
        self.assertEqual(len(lines), total)
        records = [json.loads(line) for line in lines]
        ids = [r["run_id"] for r in records]
        self.assertEqual(len(set(ids)), total)
        self.assertEqual({r["description"] for r in records},
                         {f"worker {w} run {i}\twith a tab" for w in range(PROCESSES)
                          for i in range(LOGS_EACH)})
        tsv = self.tsv()
        self.assertEqual(len(tsv), total + 1)
        self.assertTrue(all(len(row.split("\t")) == 5 for row in tsv))
        runs = [n for n in os.listdir(self.path("results", "memorylab", "runs"))
                if not n.startswith(".")]
        self.assertEqual(sorted(runs), sorted(ids))
        # the registry, built outside the lock, ends up describing the whole ledger
        self.assertEqual(self.registry()["experiments"], total)
        self.assertEqual(self.cli("doctor", "--json").json()["problems"], 0)
        for run_id in ids:
            self.assertTrue(os.path.isfile(self.path("results", "memorylab", "runs", run_id,
                                                     "decision_packet.json")))
        registry = self.registry()
        self.assertEqual(registry["experiments"], total)
        self.assertEqual(sum(registry["status_counts"].values()), total)
        self.assertEqual(registry["status_counts"]["crash"], PROCESSES * (LOGS_EACH // 3))
        self.assertFalse(os.path.exists(self.path("results", "memorylab", ".pending.json")))
        self.assertEqual(os.listdir(self.path("results", "memorylab", "runs", ".staging")), [])
        # The index agrees with a fresh parse of the ledger.
        data = self.cli("check", "--description", "anything", "--json").json()
        self.assertEqual(data["runs"], total)


class KilledLogTest(LabCase):
    def test_sigkill_at_any_moment_leaves_a_consistent_store(self):
        """Kill `log` processes at staggered moments; after the next writer, ledger,
        results.tsv, registry and run folders agree."""
        import random
        import signal
        import time
        self.assertEqual(self.cli("init").code, 0)
        summary = self.summary(val_bpb=0.99)
        rng = random.Random(7)
        for attempt in range(12):
            worker = subprocess.Popen(
                [sys.executable, os.path.join(REPO_ROOT, "memorylab.py"), "log",
                 "--description", f"attempt {attempt}", "--status", "discard",
                 "--summary", summary], cwd=self.repo, env=self.env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.0, 0.4))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            self.assertEqual(self.cli("init").code, 0)  # completes or rolls back
            records = self.records()
            ids = [r["run_id"] for r in records]
            self.assertEqual(len(self.tsv()) - 1, len(records))
            self.assertEqual([row.split("\t")[4] for row in self.tsv()[1:]],
                             [r["description"] for r in records])
            self.assertEqual(self.registry()["experiments"], len(records))
            runs = sorted(n for n in os.listdir(self.path("results", "memorylab", "runs"))
                          if not n.startswith("."))
            self.assertEqual(runs, sorted(ids))
            self.assertEqual(os.listdir(self.path("results", "memorylab", "runs", ".staging"))
                             if os.path.isdir(self.path("results", "memorylab", "runs",
                                                        ".staging")) else [], [])


if __name__ == "__main__":
    unittest.main()
