"""Regression guard for the novelty guard on labelled idea pairs kept in tests/data.

The files hold pairs written by people who never saw the guard's code (the format of
shared/evals: label, prior, planned). They were measured on fresh code first (figures
in docs/novelty.md) and used for tuning afterwards, so they now guard against
regressions; they say nothing more about unseen phrasings. The protocol is the shared
evaluation's, in-process: one discarded prior run, exploit mode, default threshold;
"same" must be blocked, "different" must not.
"""

import csv
import glob
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from memorylab_core import novelty  # noqa: E402

MIN_RECALL = 0.95           # share of "same" pairs blocked
MAX_FALSE_MATCH = 0.02      # share of "different" pairs blocked


def blocked(prior, planned):
    history = [{"run_id": "20260101T000000Z-aaaaaaa", "commit": "aaaaaaa", "status": "discard",
                "family": "", "description": prior, "hypothesis": "", "tags": [],
                "metrics": {"val_bpb": 1.001, "peak_vram_mb": 40000.0}}]
    guard = novelty.assess({"description": planned, "hypothesis": "", "family": "", "tags": []},
                           history, mode="exploit")
    return guard["policy"]["decision"] == "block"


class EvalSetTests(unittest.TestCase):
    def test_labelled_pairs(self):
        paths = sorted(glob.glob(os.path.join(HERE, "data", "novelty_pairs_*.tsv")))
        self.assertTrue(paths, "no tests/data/novelty_pairs_*.tsv")
        for path in paths:
            with open(path, encoding="utf-8", newline="") as f:
                rows = list(csv.DictReader(f, delimiter="\t"))
            with self.subTest(file=os.path.basename(path)):
                misses = {"same": [], "different": []}
                totals = {"same": 0, "different": 0}
                for row in rows:
                    totals[row["label"]] += 1
                    if blocked(row["prior"], row["planned"]) != (row["label"] == "same"):
                        misses[row["label"]].append((row["prior"], row["planned"]))
                recall = 1 - len(misses["same"]) / totals["same"]
                false_match = len(misses["different"]) / totals["different"]
                self.assertGreaterEqual(recall, MIN_RECALL, misses["same"])
                self.assertLessEqual(false_match, MAX_FALSE_MATCH, misses["different"])


if __name__ == "__main__":
    unittest.main()
