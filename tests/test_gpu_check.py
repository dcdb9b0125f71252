"""tests/gpu_check.py: its CPU dry run end to end, and the checks that make a GPU run fail loudly."""

import math
import os
import subprocess
import sys
import unittest

import gpu_check
import training_harness as harness


def finished_sidecar():
    """A sidecar as a healthy GPU run writes it."""
    sidecar = {key: 1.0 for key in harness.SUMMARY_KEYS}
    sidecar.update(num_steps=400, depth=8, num_params_M=50.332176, device="NVIDIA H100 80GB HBM3",
                   attention="fa3", torch_version="2.9.1", mfu_peak_flops=989.5e12, mfu_note=None,
                   time_budget_s=60, seed=42, hyperparameters={"TOTAL_BATCH_SIZE": 524288},
                   train_py_sha256="0" * 64, prepare_py_sha256="0" * 64)
    return sidecar


class ProblemsTest(unittest.TestCase):
    def test_a_healthy_run_has_none(self):
        self.assertEqual(gpu_check.problems(finished_sidecar(), gpu_check.FULL, on_gpu=True), [])

    def test_nan_and_missing_fields_are_reported(self):
        sidecar = finished_sidecar()
        sidecar["val_bpb"] = math.nan
        self.assertEqual(gpu_check.problems(sidecar, gpu_check.FULL, on_gpu=True), ["val_bpb is nan"])
        del sidecar["attention"]
        self.assertIn("missing field 'attention'", gpu_check.problems(sidecar, gpu_check.FULL, on_gpu=True))

    def test_a_gpu_run_needs_mfu_vram_and_the_full_model(self):
        sidecar = dict(finished_sidecar(), mfu_percent=0.0, peak_vram_mb=0.0, num_params_M=0.786468, depth=2)
        found = gpu_check.problems(sidecar, gpu_check.FULL, on_gpu=True)
        self.assertEqual(len(found), 3, found)
        self.assertIn("expected depth 8 with 50.332176M", found[0])


class DryRunTest(unittest.TestCase):
    def test_dry_run_prints_every_figure(self):
        harness.require_training_deps()
        script = os.path.join(harness.REPO_ROOT, "tests", "gpu_check.py")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("AUTORESEARCH_SUMMARY_PATH", None)
        result = subprocess.run([sys.executable, script, "--dry-run", "--time-budget", "1"], env=env,
                                capture_output=True, text=True, timeout=600)
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 0, output[-3000:])
        report = output[output.index("GPU check (dry run, CPU)"):]
        for pattern in (r"attention: +sdpa", r"steps: +\d+ \(\d+ timed, \d+\.\ds\)", r"tokens/s \(timed\): +[\d,]+",
                        r"mfu_percent: +0\.00 \(peak n/a; no CUDA device", r"peak_vram_mb: +0\.0",
                        r"val_bpb: +\d\.\d{6}", r"passed in \d+s"):
            self.assertRegex(report, pattern)
        self.assertIn('"mfu_note": "no CUDA device (cpu): MFU not measured"', output)  # the sidecar, printed

    def test_without_a_gpu_the_real_check_refuses(self):
        harness.require_training_deps()
        import torch
        if torch.cuda.is_available():
            self.skipTest("a CUDA device is present")
        result = subprocess.run([sys.executable, os.path.join(harness.REPO_ROOT, "tests", "gpu_check.py")],
                                capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.strip(), "error: no CUDA device; run with --dry-run for the CPU version")


if __name__ == "__main__":
    unittest.main()
