"""Tests for memorylab_core.fields: tolerant access to ledger row fields."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memorylab_core import fields  # noqa: E402


class Numbers(unittest.TestCase):
    def test_number_accepts_only_finite_non_bool_numbers(self):
        self.assertEqual(fields.number(3), 3.0)
        for junk in ("1", True, None, float("nan"), float("inf"), [1]):
            self.assertIsNone(fields.number(junk))
            self.assertFalse(fields.is_finite_number(junk))

    def test_metric_helpers(self):
        self.assertIsNone(fields.memory_gb_of({"metrics": {"peak_vram_mb": "1"}}))
        self.assertEqual(fields.memory_gb_of({"metrics": {"peak_vram_mb": 45000}}), 43.9)
        self.assertEqual(fields.metric({"metrics": {"depth": 8}}, "depth"), 8.0)
        self.assertIsNone(fields.metric({"metrics": "junk"}, "depth"))

    def test_val_bpb_must_be_positive_and_finite(self):
        self.assertEqual(fields.val_bpb_of({"metrics": {"val_bpb": 0.99}}), 0.99)
        self.assertEqual(fields.val_bpb_of({"metrics": {"val_bpb": 1}}), 1.0)
        for junk in (0.0, -1.0, "0.9", True, None, float("nan")):
            self.assertIsNone(fields.val_bpb_of({"metrics": {"val_bpb": junk}}))
        self.assertIsNone(fields.val_bpb_of({"metrics": None}))


class Text(unittest.TestCase):
    def test_status_and_text(self):
        self.assertEqual(fields.status_of({"status": " Keep "}), "keep")
        self.assertEqual(fields.status_of({"status": 3}), "")
        self.assertEqual(fields.text_of({"a": None}, "a"), "")
        self.assertEqual(fields.text_of({"a": 5}, "a"), "5")
        self.assertEqual(fields.mapping_of({"a": {"b": 1}}, "a"), {"b": 1})
        self.assertEqual(fields.mapping_of({"a": [1]}, "a"), {})
        self.assertEqual(fields.mapping_of(None, "a"), {})

    def test_short_commit_and_run_entry(self):
        self.assertEqual(fields.short_commit(" ABCDEF0123 "), "abcdef0")
        self.assertEqual(fields.short_commit(None), "")
        entry = fields.run_entry({"run_id": "r", "status": "keep",
                                  "metrics": {"val_bpb": 0.99, "peak_vram_mb": 1024}})
        self.assertEqual((entry["run_id"], entry["val_bpb"], entry["memory_gb"]), ("r", 0.99, 1.0))
        self.assertEqual(entry["commit"], "")


if __name__ == "__main__":
    unittest.main()
