"""CLI scenarios for the novelty guard: `check` on descriptions and `check --code`."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mlhelpers import LabCase, commit_change, git  # noqa: E402


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


ACTIVATION = """
def mlp(x):
    h = x * 2
    return h
"""


class ChangeSetTests(LabCase):
    """Each logged run stores what it changed against its parent commit; the guard
    takes an idea's identity from there when the code is at hand."""

    def setUp(self):
        super().setUp()
        self.ok("init")
        commit_change(self.repo, "def main():", ACTIVATION + "\ndef main():", "a small mlp")
        self.log_keep("baseline", 0.998)

    def edit(self, old, new):
        with open(self.path("train.py")) as f:
            text = f.read()
        self.assertIn(old, text)
        self.write("train.py", text.replace(old, new))

    def test_a_logged_run_stores_its_constant_deltas_and_code_hunks(self):
        commit_change(self.repo, "MATRIX_LR = 0.04", "MATRIX_LR = 0.05", "lr")
        commit_change(self.repo, "    h = x * 2\n", "    h = x * 2  # doubled\n    h = h * h\n", "square")
        self.log_keep("square the mlp hidden state", 1.002, "discard")
        change = self.records()[-1]["change_set"]
        self.assertEqual(change["constants"], [])   # the lr moved in the commit before the parent
        self.assertEqual(change["hunks"], [[[], ["h = h * h"]]])   # comments gone, normalised spacing
        commit_change(self.repo, "DEPTH = 8", "DEPTH = 4", "shallower")
        self.log_keep("depth 4", 1.003, "discard")
        self.assertEqual(self.records()[-1]["change_set"], {
            "constants": [{"name": "DEPTH", "old": 8, "new": 4}], "hunks": []})
        self.assertEqual(self.records()[-1]["novelty_features"]["code"],
                         [{"knob": "DEPTH", "direction": "down", "value": 4}])

    def test_a_run_outside_git_has_no_change_set(self):
        import shutil
        shutil.rmtree(self.path(".git"))
        self.log_keep("no git here", 0.999, "discard", "--skip-archive")
        self.assertIsNone(self.records()[-1]["change_set"])

    def test_check_code_matches_the_same_code_change_written_differently(self):
        commit_change(self.repo, "    h = x * 2\n", "    h = x * 2\n    h = h * torch.sigmoid(h)\n", "silu")
        self.log_keep("gate the mlp with its own sigmoid", 1.004, "discard")
        commit_change(self.repo, "    h = h * torch.sigmoid(h)\n", "", "revert")
        # the same change in other words and with other spacing: the code decides
        self.edit("    h = x * 2\n", "    h = x * 2\n    h = h * h.sigmoid()  # swish\n")
        result = self.cli("check", "--code", "--description", "try swish", "--fail-on-similar", "--json")
        self.assertEqual(result.code, 2, result)
        match = result.json()["novelty_guard"]["top_matches"][0]
        self.assertEqual((match["description"], match["relation"]), ("gate the mlp with its own sigmoid", "same"))
        self.assertIn("code", match["reason"])

    def test_check_code_reads_head_from_packed_objects_too(self):
        commit_change(self.repo, "    h = x * 2\n", "    h = x * 2\n    h = h * torch.sigmoid(h)\n", "silu")
        self.log_keep("gate the mlp with its own sigmoid", 1.004, "discard")
        commit_change(self.repo, "    h = h * torch.sigmoid(h)\n", "", "revert")
        git(self.repo, "gc", "-q")   # HEAD's train.py now lives in a pack: git is asked
        self.edit("    h = x * 2\n", "    h = x * 2\n    h = h * h.sigmoid()\n")
        guard = self.ok("check", "--code", "--description", "try swish", "--json").json()["novelty_guard"]
        self.assertEqual(guard["classification"], "repeat_failure")
        self.assertIn("code", [c["source"] for c in guard["explanation"]["changes"]])

    def test_check_code_tells_another_code_change_apart_from_the_same_words(self):
        commit_change(self.repo, "    h = x * 2\n", "    h = x * 2\n    h = h * torch.sigmoid(h)\n", "silu")
        self.log_keep("change the mlp activation", 1.004, "discard")
        commit_change(self.repo, "    h = h * torch.sigmoid(h)\n", "", "revert")
        self.edit("    h = x * 2\n", "    h = x * 2\n    h = torch.tanh(h) + h.abs().sqrt()\n")
        result = self.cli("check", "--code", "--description", "change the mlp activation", "--fail-on-similar")
        self.assertEqual(result.code, 0, result)

    def test_the_fix_of_a_crashed_run_is_recognised_as_the_same_idea(self):
        commit_change(self.repo, "    h = x * 2\n", "    h = x * 2\n    h = h * torch.sigmoid(h)\n", "silu")
        self.ok("log", "--description", "sigmoid gate in the mlp", "--status", "crash",
                "--error", "NameError: name 'torch' is not defined")
        commit_change(self.repo, "    h = h * torch.sigmoid(h)\n", "", "revert")
        self.edit("def mlp(x):\n    h = x * 2\n", "import torch\ndef mlp(x):\n    h = x * 2\n    h = h * torch.sigmoid(h)\n")
        guard = self.ok("check", "--code", "--description", "fix the missing import", "--json").json()["novelty_guard"]
        match = guard["top_matches"][0]
        self.assertEqual((match["status"], match["relation"]), ("crash", "same"))

    def test_direction_comes_from_the_parent_not_upstream_defaults(self):
        # a fork whose train.py has DEPTH 4: 4 -> 6 is up, though upstream's 8 is deeper
        commit_change(self.repo, "DEPTH = 8", "DEPTH = 4", "fork baseline")
        self.log_keep("fork baseline", 0.997)
        commit_change(self.repo, "DEPTH = 4", "DEPTH = 6", "depth 6")
        self.log_keep("depth 6", 1.001, "discard")
        record = self.records()[-1]
        self.assertEqual(record["novelty_features"]["changes"], [{"knob": "DEPTH", "direction": "up", "value": 6}])
        self.assertEqual(record["novelty_features"]["code"], [{"knob": "DEPTH", "direction": "up", "value": 6}])
        # the Avoid list reads the direction from the code: raises from the fork's 4
        commit_change(self.repo, "DEPTH = 6", "DEPTH = 4", "revert")
        commit_change(self.repo, "DEPTH = 4", "DEPTH = 5", "depth 5")
        self.log_keep("try depth 5, shallower than upstream", 1.002, "discard")
        brief = self.ok("brief").out
        self.assertIn("DEPTH up", brief)
        self.assertNotIn("DEPTH down", brief)
        commit_change(self.repo, "DEPTH = 5", "DEPTH = 6", "depth 6 again")
        # so "depth 6" written as a raise from the fork's 4 is the same idea, not its opposite
        commit_change(self.repo, "DEPTH = 6", "DEPTH = 4", "revert")
        result = self.cli("check", "--description", "deeper: depth 4 -> 6", "--fail-on-similar")
        self.assertEqual(result.code, 2, result)
        self.assertIn("repeat_failure", result.out)


if __name__ == "__main__":
    unittest.main()


class CodeMemoTests(LabCase):
    """`check --code` and `log` keep what they read of each train.py in the index
    (code_memo.marshal), so the next command does not tokenize it again. Separate
    processes: the memo also lives in the memory of the process that read it."""

    def setUp(self):
        super().setUp()
        self.ok("init")
        self.log_keep("baseline", 0.998)
        with open(self.path("train.py")) as f:
            text = f.read()
        with open(self.path("train.py"), "w") as f:
            f.write(text.replace("MATRIX_LR = 0.04", "MATRIX_LR = 0.05"))
        self.memo = self.path("results", "memorylab", "index", "code_memo.marshal")

    def check(self):
        result = self.cli_process("check", "--description", "bump it", "--code", "--json")
        self.assertEqual(result.code, 0, result)
        self.assertEqual(result.err, "")
        return result.json()

    def poison(self, version=None):
        """Read the memo file and make the edited train.py's constants say 0.07."""
        import hashlib
        import marshal
        with open(self.path("train.py"), "rb") as f:
            key = hashlib.sha256(f.read()).hexdigest()
        with open(self.memo, "rb") as f:
            state = marshal.loads(f.read())
        state["entries"] = [(k, code, dict(constants, MATRIX_LR=0.07) if k == key else constants)
                            for k, code, constants in state["entries"]]
        self.assertIn(key, [k for k, _, _ in state["entries"]])
        if version is not None:
            state["version"] = version
        with open(self.memo, "wb") as f:
            f.write(marshal.dumps(state))

    def test_the_memo_changes_nothing_but_is_read(self):
        expected = self.check()
        self.assertTrue(os.path.exists(self.memo))
        self.assertEqual(expected["novelty_guard"]["config_delta"],
                         [{"name": "MATRIX_LR", "old": 0.04, "new": 0.05}])
        os.remove(self.memo)
        self.assertEqual(self.check(), expected)
        self.assertEqual(self.check(), expected)   # from the memo written just now
        self.poison()   # proof that it is read: a memo that lies is believed
        self.assertEqual(self.check()["novelty_guard"]["config_delta"],
                         [{"name": "MATRIX_LR", "old": 0.04, "new": 0.07}])

    def test_a_memo_of_another_version_or_damaged_is_ignored(self):
        expected = self.check()
        self.poison(version="another version")
        self.assertEqual(self.check(), expected)
        with open(self.memo, "wb") as f:
            f.write(b"\x00 not marshal")
        self.assertEqual(self.check(), expected)
        self.assertEqual(self.ok("doctor").code, 0)
