"""Config fingerprints of train.py: constants via ast, normalised code hash, deltas."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memorylab_core import fingerprint  # noqa: E402

SOURCE = '''"""A small train.py."""
import os

ASPECT_RATIO = 64  # model_dim = depth * ASPECT_RATIO
HEAD_DIM = 128
WINDOW_PATTERN = "SSSL"
TOTAL_BATCH_SIZE = 2**19
ADAM_BETAS = (0.8, 0.95)
MATRIX_LR = 0.04
WARMUP_RATIO = 0.0
DEPTH = 8
MODEL_DIM = DEPTH * ASPECT_RATIO
USE_FLASH: bool = True
DEVICE = os.environ.get("DEVICE", "cuda")
lower_case = 3
_PRIVATE = 1


def train(steps):
    # the loop
    for step in range(steps):
        pass
    return steps
'''


class ConstantTests(unittest.TestCase):
    def test_upper_case_constants_are_evaluated(self):
        constants = fingerprint.fingerprint_source(SOURCE)["constants"]
        self.assertEqual(constants, {
            "ASPECT_RATIO": 64, "HEAD_DIM": 128, "WINDOW_PATTERN": "SSSL",
            "TOTAL_BATCH_SIZE": 524288, "ADAM_BETAS": [0.8, 0.95], "MATRIX_LR": 0.04,
            "WARMUP_RATIO": 0.0, "DEPTH": 8, "MODEL_DIM": 512, "USE_FLASH": True,
        })

    def test_calls_lower_case_and_private_names_are_left_out(self):
        constants = fingerprint.fingerprint_source(SOURCE)["constants"]
        for name in ("DEVICE", "lower_case", "_PRIVATE"):
            self.assertNotIn(name, constants)

    def test_fingerprint_survives_json(self):
        fp = fingerprint.fingerprint_source(SOURCE)
        self.assertEqual(json.loads(json.dumps(fp)), fp)

    def test_later_assignment_wins_and_tuple_unpacking(self):
        constants = fingerprint.module_constants("A = 1\nA = 2\nB, C = 3, 4 * 2\n")
        self.assertEqual(constants, {"A": 2, "B": 3, "C": 8})

    def test_unparsable_source_still_hashes(self):
        # its constants are unknown (None), not none ({}): a typo is no change of them
        for source in ("DEPTH = (\n", "DEPTH = 8\x00\n"):
            fp = fingerprint.fingerprint_source(source)
            self.assertIsNone(fp["constants"])
            self.assertEqual(len(fp["code_sha256"]), 64)


class HashTests(unittest.TestCase):
    def sha(self, source):
        return fingerprint.fingerprint_source(source)["code_sha256"]

    def test_comments_and_whitespace_do_not_matter(self):
        edited = (SOURCE.replace("# the loop", "# iterate over the steps, one by one")
                  .replace("MATRIX_LR = 0.04", "MATRIX_LR   =   0.04   # Muon")
                  .replace("def train(steps):", "\n\n# a new comment line\ndef train( steps ):"))
        self.assertEqual(self.sha(SOURCE), self.sha(edited))
        self.assertEqual(self.sha(SOURCE), self.sha(SOURCE + "\n\n# trailing\n"))

    def test_a_constant_change_alters_the_hash(self):
        self.assertNotEqual(self.sha(SOURCE), self.sha(SOURCE.replace("MATRIX_LR = 0.04", "MATRIX_LR = 0.05")))

    def test_a_code_change_alters_the_hash(self):
        self.assertNotEqual(self.sha(SOURCE), self.sha(SOURCE.replace("return steps", "return steps + 1")))

    def test_the_hash_is_pinned(self):
        # code_sha256 is stored in every ledger: a change to the normalisation or the
        # digest would make every earlier run look like other code
        import hashlib
        self.assertEqual(self.sha(SOURCE),
                         "81cdb4698acd4a63aa65cc188d8379d8eba815de6e0a14bdd27ce047e0452e2e")
        self.assertEqual(self.sha(SOURCE), hashlib.sha256(
            fingerprint.normalized_code(SOURCE).encode("utf-8")).hexdigest())

    def test_indentation_is_syntax(self):
        a = "def f():\n    x = 1\n    return x\n"
        b = "def f():\n    x = 1\nreturn_x = 1\n"
        self.assertNotEqual(self.sha(a), self.sha(b))


class DeltaTests(unittest.TestCase):
    def test_delta_lists_changed_added_and_removed_names(self):
        base = {"MATRIX_LR": 0.04, "DEPTH": 8, "OLD": 1, "ADAM_BETAS": [0.8, 0.95]}
        new = {"MATRIX_LR": 0.05, "DEPTH": 8, "NEW": 2, "ADAM_BETAS": (0.8, 0.95)}
        self.assertEqual(fingerprint.constant_delta(base, new), [
            {"name": "MATRIX_LR", "old": 0.04, "new": 0.05},
            {"name": "NEW", "old": None, "new": 2},
            {"name": "OLD", "old": 1, "new": None},
        ])

    def test_no_base_no_delta(self):
        self.assertEqual(fingerprint.constant_delta(None, {"DEPTH": 8}), [])
        self.assertEqual(fingerprint.constant_delta({"DEPTH": 8}, {"DEPTH": 8}), [])

    def test_bool_is_not_int(self):
        self.assertEqual(len(fingerprint.constant_delta({"A": 1}, {"A": True})), 1)

    def test_format_delta(self):
        delta = fingerprint.constant_delta({"MATRIX_LR": 0.04, "W": "SSSL"}, {"MATRIX_LR": 0.05, "W": "L"})
        self.assertEqual(fingerprint.format_delta(delta), "MATRIX_LR 0.04 → 0.05; W 'SSSL' → 'L'")


if __name__ == "__main__":
    unittest.main()
