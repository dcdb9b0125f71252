"""CLI scenarios for the novelty guard: `check` on descriptions and `check --code`."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mlhelpers import LabCase, commit_change  # noqa: E402


class CheckDescriptionTests(LabCase):
    def setUp(self):
        super().setUp()
        self.ok("init")
        self.log_keep("baseline", 0.998)
        self.log_keep("bump the Muon learning rate to 0.06", 1.001, "discard")

    def test_a_paraphrase_of_a_failure_is_blocked(self):
        result = self.cli("check", "--description", "MATRIX_LR = 0.06", "--fail-on-similar")
        self.assertEqual(result.code, 2, result)
        self.assertIn("repeat_failure", result.out)
        self.assertIn("MATRIX_LR", result.out)

    def test_the_opposite_is_not_blocked(self):
        result = self.cli("check", "--description", "lower the Muon learning rate to 0.02", "--fail-on-similar")
        self.assertEqual(result.code, 0, result)
        self.assertIn("novel", result.out)

    def test_json_explains_itself(self):
        guard = self.ok("check", "--description", "MATRIX_LR = 0.06", "--json").json()["novelty_guard"]
        self.assertEqual(guard["classification"], "repeat_failure")
        explanation = guard["explanation"]
        self.assertEqual(explanation["changes"][0]["knob"], "MATRIX_LR")
        self.assertEqual(explanation["matches"][0]["relation"], "same")
        self.assertIn("MATRIX_LR", explanation["text"])

    def test_logged_records_carry_novelty_features(self):
        record = self.records()[-1]
        self.assertEqual(record["novelty_features"]["changes"],
                         [{"knob": "MATRIX_LR", "direction": "up", "value": 0.06}])


class CheckCodeTests(LabCase):
    def setUp(self):
        super().setUp()
        self.ok("init")
        self.log_keep("baseline", 0.998)

    def test_unchanged_train_py_is_a_duplicate_of_the_baseline(self):
        result = self.cli("check", "--code", "--description", "some brand new wording", "--fail-on-similar")
        self.assertEqual(result.code, 2, result)
        guard = self.ok("check", "--code", "--description", "some brand new wording", "--json").json()["novelty_guard"]
        self.assertEqual(guard["classification"], "duplicate_run")
        self.assertEqual(guard["top_matches"][0]["run_id"], self.records()[0]["run_id"])
        self.assertEqual(guard["top_matches"][0]["relation"], "code")

    def test_comment_and_whitespace_edits_keep_the_fingerprint(self):
        with open(self.path("train.py")) as f:
            text = f.read()
        self.write("train.py", "# a new comment\n" + text.replace("DEPTH = 8", "DEPTH   =   8   # layers") + "\n\n")
        guard = self.ok("check", "--code", "--description", "reformatted", "--json").json()["novelty_guard"]
        self.assertEqual(guard["classification"], "duplicate_run")

    def test_a_constant_change_shows_the_delta_and_is_novel(self):
        with open(self.path("train.py")) as f:
            text = f.read()
        self.write("train.py", text.replace("MATRIX_LR = 0.04", "MATRIX_LR = 0.05"))
        result = self.ok("check", "--code", "--description", "raise the matrix lr")
        self.assertIn("MATRIX_LR", result.out)
        guard = self.ok("check", "--code", "--description", "raise the matrix lr", "--json").json()["novelty_guard"]
        self.assertEqual(guard["config_delta"], [{"name": "MATRIX_LR", "old": 0.04, "new": 0.05}])
        self.assertEqual(guard["classification"], "novel")

    def test_the_same_delta_as_a_failed_run_is_a_repeat_failure(self):
        commit_change(self.repo, "MATRIX_LR = 0.04", "MATRIX_LR = 0.05", "lr 0.05")
        self.log_keep("try a higher lr", 1.002, "discard")
        commit_change(self.repo, "MATRIX_LR = 0.05", "MATRIX_LR = 0.04", "revert")
        # same constant delta, other code and other words
        with open(self.path("train.py")) as f:
            text = f.read()
        self.write("train.py", text.replace("MATRIX_LR = 0.04", "MATRIX_LR = 0.05")
                   .replace("return DEPTH * MATRIX_LR", "return MATRIX_LR * DEPTH"))
        result = self.cli("check", "--code", "--description", "new idea in new words", "--fail-on-similar",
                          "--json")
        self.assertEqual(result.code, 2, result)
        guard = result.json()["novelty_guard"]
        self.assertEqual(guard["classification"], "repeat_failure")
        self.assertEqual(guard["top_matches"][0]["description"], "try a higher lr")

    def test_without_code_the_wording_decides(self):
        guard = self.ok("check", "--description", "some brand new wording", "--json").json()["novelty_guard"]
        self.assertEqual(guard["classification"], "novel")


if __name__ == "__main__":
    unittest.main()
