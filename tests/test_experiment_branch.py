"""An agent's experiment branch keeps the training tests green.

The agent edits train.py's constants (and more) on its own branch. This test
makes that edit on a copy of the repository's training files and tests, then
runs the training test modules there as a separate process: the baseline's
figures come from the pinned copy in tests/data, the mechanisms from the
edited train.py, and all of them must pass.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import training_harness as harness

EXPERIMENT = {"MATRIX_LR": "0.05", "DEPTH": "6", "WINDOW_PATTERN": '"L"'}
COPIED = ["train.py", "prepare.py", "pyproject.toml", "uv.lock", "tests/training_harness.py",
          "tests/test_model.py", "tests/test_train_e2e.py", "tests/data/train_baseline.py"]


class ExperimentBranchTest(unittest.TestCase):
    def test_training_tests_pass_on_an_edited_train_py(self):
        harness.require_training_deps()
        with tempfile.TemporaryDirectory(prefix="ar-experiment-") as copy:
            for name in COPIED:
                os.makedirs(os.path.dirname(os.path.join(copy, name)), exist_ok=True)
                shutil.copyfile(os.path.join(harness.REPO_ROOT, name), os.path.join(copy, name))
            train_py = os.path.join(copy, "train.py")
            with open(train_py) as f:
                edited = harness.shrink_constants(f.read(), EXPERIMENT)
            with open(train_py, "w") as f:
                f.write(edited)
            env = dict(os.environ)
            env.pop("AUTORESEARCH_SUMMARY_PATH", None)
            result = subprocess.run([sys.executable, "-m", "unittest", "test_model", "test_train_e2e"],
                                    cwd=os.path.join(copy, "tests"), env=env, capture_output=True, text=True,
                                    timeout=1200)
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 0, output[-4000:])
        ran = re.search(r"^Ran (\d+) tests? in ", output, re.MULTILINE)
        self.assertIsNotNone(ran, output[-2000:])
        self.assertGreater(int(ran.group(1)), 30)
        self.assertRegex(output, r"\nOK( \(skipped=1\))?\n")  # at most the kernels probe skips


if __name__ == "__main__":
    unittest.main()
