"""CLI scenarios for noise-aware decisions (issue 5): summaries written by the test, time
injected with MEMORYLAB_NOW, a temporary git repo per test (see mlhelpers.LabCase)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mlhelpers import LabCase, commit_change  # noqa: E402

GPU = {"device": "NVIDIA H100 80GB HBM3", "time_budget_s": 300, "max_seq_len": 2048}
CPU = {"device": "cpu", "time_budget_s": 60, "max_seq_len": 256}


class NoiseAwareDecisions(LabCase):
    def setUp(self):
        super().setUp()
        self.ok("init")

    def log_run(self, description, val_bpb, status="keep", *flags, **provenance):
        """`log --json` one run whose sidecar carries ``provenance``; returns the packet."""
        summary = self.summary(val_bpb=val_bpb, **dict(GPU, **provenance))
        result = self.ok("log", "--description", description, "--status", status,
                         "--summary", summary, "--json", *flags)
        return result.json()["decision_packet"]

    def report(self):
        self.ok("report")
        with open(self.path("results", "memorylab", "reports", "latest.md")) as f:
            return f.read()

    def test_within_noise_win_replicates_then_replicates_confirm(self):
        self.log_run("baseline", 1.000000)
        commit = commit_change(self.repo, "MATRIX_LR = 0.04", "MATRIX_LR = 0.045")
        packet = self.log_run("raise matrix lr to 0.045", 0.999500)
        self.assertEqual((packet["next_action"], packet["priority"]), ("replicate", "high"))
        self.assertIn("by Δ=0.000500 < 2σ=0.002000 (σ=0.001000 prior, n=1); rerun commit "
                      f"{commit} with AUTORESEARCH_SEED=43, 44 (--mode replicate).", packet["summary"])
        self.assertEqual(packet["replicate"]["seeds"], [43, 44])
        self.assertIn("(provisional: a single run)", self.report())

        # one pair is not trusted alone: σ is shrunk toward the prior, one seed is owed
        packet = self.log_run("replicate matrix lr 0.045", 0.999300, "keep",
                              "--mode", "replicate", seed=43)
        self.assertEqual(packet["next_action"], "replicate")
        self.assertEqual(packet["replicate"]["seeds"], [44])
        self.assertEqual(packet["noise"]["source"], "measured")
        # against a single-run champion, two extra seeds do not show 0.0007: the verdict
        packet = self.log_run("replicate matrix lr 0.045", 0.998900, "keep",
                              "--mode", "replicate", seed=44)
        self.assertEqual(packet["next_action"], "abandon")
        self.assertIn("after 2 extra seeds", packet["summary"])

    def test_measured_baseline_lets_replicates_confirm(self):
        self.log_run("baseline", 1.000000)
        self.log_run("baseline", 1.000400, "keep", "--mode", "replicate", seed=43)
        self.log_run("baseline", 0.999600, "keep", "--mode", "replicate", seed=44)
        commit = commit_change(self.repo, "MATRIX_LR = 0.04", "MATRIX_LR = 0.045")
        packet = self.log_run("raise matrix lr to 0.045", 0.998500)
        self.assertEqual(packet["next_action"], "replicate")
        packet = self.log_run("replicate matrix lr 0.045", 0.998700, "keep",
                              "--mode", "replicate", seed=43)
        self.assertEqual(packet["next_action"], "promote")
        self.assertIn("replicates confirm a new champion at mean 0.998600 val_bpb (n=2)",
                      packet["summary"])
        champion = self.registry()["champion"]
        self.assertEqual((champion["n"], champion["commit"]), (2, commit))
        self.assertIn("(mean of 2 runs ± 0.000141)", self.report())

    def test_clear_win_promotes(self):
        self.log_run("baseline", 1.000000)
        commit_change(self.repo, "DEPTH = 8", "DEPTH = 10")
        packet = self.log_run("deeper model: depth 10", 0.990000)
        self.assertEqual((packet["next_action"], packet["priority"]), ("promote", "high"))
        self.assertIn("Δ=0.010000 ≥ 2σ=0.002000", packet["summary"])
        self.assertTrue(packet["comparison"]["is_new_champion"])

    def test_noise_factor_flag(self):
        self.log_run("baseline", 1.000000)
        commit_change(self.repo, "DEPTH = 8", "DEPTH = 9")
        packet = self.log_run("depth 9", 0.998500, "keep", "--noise-factor", "1")
        self.assertEqual(packet["next_action"], "promote")
        self.assertEqual(packet["noise"]["factor"], 1.0)

    def test_cpu_smoke_run_never_displaces_the_gpu_champion(self):
        self.log_run("baseline", 1.000000)
        commit_change(self.repo, "DEPTH = 8", "DEPTH = 2")
        packet = self.log_run("cpu smoke test", 2.500000, "keep", **CPU)
        self.assertIn("first champion recorded at 2.500000", packet["summary"])
        commit_change(self.repo, "DEPTH = 2", "DEPTH = 1")
        packet = self.log_run("tiny cpu smoke test", 0.100000, "keep", **CPU)
        self.assertEqual(packet["class"]["key"].split(";")[0], "device=cpu")
        registry = self.registry()
        self.assertEqual(registry["champion"]["val_bpb"], 1.0)
        self.assertEqual(registry["champion"]["class"], registry["current_class"])
        report = self.report()
        self.assertIn("at 1.000000 val_bpb", report)
        self.assertIn("(CPU smoke runs)", report)

    def test_noise_floor_moves_from_prior_to_measured(self):
        self.log_run("baseline", 1.000000)
        floor = self.registry()["noise_floor"]
        self.assertEqual((floor["source"], floor["sigma"]), ("prior", 0.001))
        self.assertIn("σ = 0.001000 (prior; no replicates yet)", self.report())
        self.log_run("baseline rerun", 1.000600, "keep", "--mode", "replicate", seed=43)
        self.log_run("baseline rerun", 0.999400, "keep", "--mode", "replicate", seed=44)
        floor = self.registry()["noise_floor"]
        self.assertEqual((floor["source"], floor["dof"]), ("measured", 2))
        self.assertAlmostEqual(floor["measured_sigma"], 0.0006, places=9)
        self.assertAlmostEqual(floor["sigma"], ((2 * 0.0006 ** 2 + 2 * 0.001 ** 2) / 4) ** 0.5)
        self.assertIn("σ = 0.000825 (measured sd 0.000600 over 2 dof, shrunk toward the prior",
                      self.report())

    def test_plateau_after_n_flat_runs(self):
        self.log_run("baseline", 0.990000)
        for number in range(1, 11):
            commit_change(self.repo, f"EMBEDDING_LR = {0.6 + (number - 1) / 100:g}",
                          f"EMBEDDING_LR = {0.6 + number / 100:g}")
            packet = self.log_run(f"embedding lr {0.6 + number / 100:g}", 0.995000, "discard")
        self.assertIn("Plateau: no gain > σ in the last 10 runs; switch to explore mode",
                      packet["summary"])
        self.assertEqual(packet["recommendation"]["mode"], "explore")
        self.assertIn("- Plateau: the last 10 runs improved", self.report())


if __name__ == "__main__":
    unittest.main()
