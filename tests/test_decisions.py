"""Tests for memorylab_core.decisions: every action, the published floor, noise-aware rules."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memorylab_core import decisions, registry  # noqa: E402

H100 = {"device": "NVIDIA H100 80GB HBM3", "time_budget_s": 300, "max_seq_len": 2048}
CPU = {"device": "cpu", "time_budget_s": 60, "max_seq_len": 256}


def run(number, status="keep", val_bpb=1.0, *, commit=None, provenance=None, seed=None, **fields):
    commit = commit or f"{number:07x}"
    row = {"run_id": f"20260101T0000{number:02d}Z-{commit[:7]}",
           "timestamp_utc": f"2026-01-01T00:00:{number:02d}Z", "branch": "b", "commit": commit,
           "parent_commit": "", "family": "opt", "status": status,
           "description": f"idea {number}", "hypothesis": "", "tags": [],
           "metrics": {"val_bpb": val_bpb, "peak_vram_mb": 40960.0}, "error": None}
    if provenance is not None:
        row["provenance"] = dict(provenance, **({"seed": seed} if seed is not None else {}))
    row.update(fields)
    return row


def guard(classification="novel", mode="exploit"):
    return {"classification": classification, "mode": mode,
            "policy": {"mode": mode, "decision": "allow", "rationale": "because"},
            "top_matches": [{"category": classification, "score": 0.9, "run_id": "x",
                             "commit": "c", "status": "keep", "val_bpb": 1.0,
                             "description": "d", "extra": 1}]}


def decide(history, record, classification="novel", **options):
    """Decide as `log` does: the board of the history with the record as its last row."""
    packet = decisions.decide(record, registry.Board(history + [record]), guard(classification),
                              **options)
    json.dumps(packet, allow_nan=False)
    return packet


class PublishedFloor(unittest.TestCase):
    """The earlier fork's rules, with no noise information beyond the prior."""

    def test_first_champion_summary_is_exact(self):
        packet = decide([], run(1, "keep", 0.991234))
        self.assertEqual(packet["next_action"], "promote")
        self.assertEqual(packet["priority"], "high")
        self.assertEqual(packet["summary"],
                         f"Promote run {run(1)['run_id']}: first champion recorded at 0.991234 val_bpb.")
        self.assertTrue(packet["comparison"]["is_new_champion"])
        self.assertIsNone(packet["comparison"]["prior_champion_run_id"])
        self.assertEqual(packet["comparison"]["current_champion_val_bpb"], 0.991234)

    def test_clear_win_promotes_and_carries_both_champions(self):
        history = [run(1, "keep", 1.000)]
        packet = decide(history, run(2, "keep", 0.990))
        self.assertEqual((packet["next_action"], packet["priority"]), ("promote", "high"))
        comparison = packet["comparison"]
        self.assertTrue(comparison["is_new_champion"])
        self.assertEqual(comparison["prior_champion_run_id"], history[0]["run_id"])
        self.assertEqual(comparison["prior_champion_val_bpb"], 1.0)
        self.assertEqual(comparison["current_champion_val_bpb"], 0.99)
        self.assertEqual(comparison["delta_vs_prior_champion"], -0.01)
        self.assertEqual(comparison["delta_vs_current_champion"], 0.0)
        self.assertIn("Δ=0.010000 ≥ 2σ=0.002000 (σ=0.001000 prior, n=1)", packet["summary"])

    def test_kept_not_better_novel_or_duplicate_replicates(self):
        history = [run(1, "keep", 0.990)]
        for classification in ("novel", "duplicate_run"):
            packet = decide(history, run(2, "keep", 0.995), classification)
            self.assertEqual((packet["next_action"], packet["priority"]), ("replicate", "medium"))
            self.assertEqual(packet["comparison"]["current_champion_val_bpb"], 0.990)
            self.assertFalse(packet["comparison"]["is_new_champion"])

    def test_kept_followup_branches_high_within_band(self):
        history = [run(1, "keep", 0.990)]
        near = decide(history, run(2, "keep", 0.991), "known_success")
        self.assertEqual((near["next_action"], near["priority"]), ("branch_followup", "high"))
        far = decide(history, run(2, "keep", 0.995), "incremental_followup")
        self.assertEqual((far["next_action"], far["priority"]), ("branch_followup", "medium"))

    def test_discard_rules(self):
        history = [run(1, "keep", 0.990)]
        cases = [("repeat_failure", 0.9905, "abandon"), ("duplicate_run", 0.9905, "abandon"),
                 ("novel", 0.9914, "retry"), ("novel", 0.985, "retry"),
                 ("known_success", 0.995, "branch_followup"),
                 ("incremental_followup", 0.995, "branch_followup"), ("novel", 0.995, "abandon")]
        for classification, value, action in cases:
            packet = decide(history, run(2, "discard", value), classification)
            self.assertEqual(packet["next_action"], action, (classification, value))
            self.assertEqual(packet["comparison"]["current_champion_val_bpb"], 0.990)
        self.assertEqual(decide(history, run(2, "discard", 0.9914))["priority"], "medium")

    def test_retry_band_is_0_0015_under_the_prior(self):
        history = [run(1, "keep", 0.990)]
        self.assertEqual(decide(history, run(2, "discard", 0.9915))["next_action"], "retry")
        self.assertEqual(decide(history, run(2, "discard", 0.9916))["next_action"], "abandon")

    def test_crashes(self):
        oom = run(2, "crash", None, error={"summary": "torch.OutOfMemoryError: CUDA out of memory",
                                           "tail": ["line"], "source": "log"})
        packet = decide([run(1)], oom)
        self.assertEqual((packet["next_action"], packet["priority"]), ("fix_and_retry", "high"))
        self.assertEqual(packet["error"]["source"], "log")
        in_tail = run(2, "crash", None, error={"summary": "Traceback", "tail": ["x", "RuntimeError: CUDA error: out of memory"]})
        self.assertEqual(decide([], in_tail)["next_action"], "fix_and_retry")
        bug = run(2, "crash", None, error={"summary": "NameError: name 'x' is not defined"})
        packet = decide([run(1)], bug)
        self.assertEqual((packet["next_action"], packet["priority"]), ("investigate_crash", "high"))
        self.assertIn("NameError", packet["summary"])
        self.assertEqual(decide([], run(2, "crash", None))["next_action"], "investigate_crash")
        self.assertEqual(packet["comparison"]["current_champion_run_id"], run(1)["run_id"])

    def test_packet_fields(self):
        packet = decide([run(1, "keep", 0.99)], run(2, "keep", 0.98, hypothesis="lr too low"))
        for key in ("summary", "next_action", "priority", "rationale", "hypothesis_status",
                    "run", "novelty", "comparison", "error", "noise", "class"):
            self.assertIn(key, packet)
        self.assertEqual(set(packet["run"]), {"id", "commit", "status", "family", "description",
                                              "hypothesis", "val_bpb", "memory_gb"})
        self.assertEqual(packet["run"]["memory_gb"], 40.0)
        self.assertEqual(packet["hypothesis_status"], "supported")
        self.assertEqual(packet["novelty"]["decision"], "allow")
        self.assertNotIn("extra", packet["novelty"]["top_match"])
        self.assertIn(packet["next_action"], decisions.ACTIONS)

    def test_hypothesis_status(self):
        self.assertEqual(decide([], run(1))["hypothesis_status"], "not_stated")
        packet = decide([run(1, "keep", 0.99)], run(2, "discard", 1.2, hypothesis="h"))
        self.assertEqual(packet["hypothesis_status"], "unsupported")


class NoiseAwareRules(unittest.TestCase):
    def test_within_noise_win_replicates_with_numbers_and_seeds(self):
        history = [run(1, "keep", 1.000, provenance=H100)]
        packet = decide(history, run(2, "keep", 0.9995, commit="bbbbbbb", provenance=H100))
        self.assertEqual((packet["next_action"], packet["priority"]), ("replicate", "high"))
        self.assertIn("Δ=0.000500 < 2σ=0.002000 (σ=0.001000 prior, n=1)", packet["summary"])
        self.assertIn("rerun commit bbbbbbb with AUTORESEARCH_SEED=43, 44", packet["summary"])
        self.assertEqual(packet["replicate"]["seeds"], [43, 44])
        self.assertEqual(packet["replicate"]["commit"], "bbbbbbb")
        self.assertEqual(packet["noise"]["source"], "prior")
        self.assertEqual(packet["hypothesis_status"], "not_stated")
        # it leads the board, provisionally, but is not promoted
        self.assertTrue(packet["comparison"]["is_new_champion"])

    def test_noise_factor_is_a_keyword(self):
        history = [run(1, "keep", 1.000)]
        self.assertEqual(decide(history, run(2, "keep", 0.9985))["next_action"], "replicate")
        packet = decide(history, run(2, "keep", 0.9985), noise_factor=1.0)
        self.assertEqual(packet["next_action"], "promote")
        self.assertIn("1σ=0.001000", packet["summary"])
        with self.assertRaises(ValueError):
            decide(history, run(2), noise_factor=0)

    def test_seeds_skip_those_already_used(self):
        history = [run(1, "keep", 1.000, provenance=H100),
                   run(2, "keep", 0.9990, commit="bbbbbbb", provenance=H100, seed=43)]
        packet = decide(history, run(3, "keep", 1.0000, commit="bbbbbbb", provenance=H100, seed=45),
                        "duplicate_run")
        # mean 0.9995 beats 1.000 by 0.0005 < 2σ (σ = 0.000913: 0.000707 measured over 1 dof,
        # shrunk toward the prior); the pooled t test against the single-run champion is far
        # from significant. Two seeds were used: one extra seed is still owed.
        self.assertEqual((packet["next_action"], packet["priority"]), ("replicate", "high"))
        self.assertEqual(packet["test"]["method"], "pooled_t")
        self.assertGreater(packet["test"]["p"], 0.05)
        self.assertIn("one-sided pooled t p=", packet["summary"])
        self.assertEqual(packet["replicate"]["seeds"], [42])
        self.assertEqual(packet["group"]["n"], 2)

    def test_replicate_group_confirms_with_welch(self):
        champion = [run(n, "keep", v, commit="aaaaaaa", provenance=H100, seed=41 + n)
                    for n, v in ((1, 1.0000), (2, 1.0010), (3, 0.9990))]
        challenger = [run(4, "keep", 0.9981, commit="bbbbbbb", provenance=H100, seed=42),
                      run(5, "keep", 0.9991, commit="bbbbbbb", provenance=H100, seed=43)]
        history = champion + challenger
        packet = decide(history, run(6, "keep", 0.9971, commit="bbbbbbb", provenance=H100, seed=44),
                        "duplicate_run")
        # Δ = 1.000 - 0.9981 = 0.0019 < 2σ (σ = 0.001 measured), but Welch t = 2.33, df = 4:
        # one-sided p = 0.040
        self.assertEqual(packet["noise"]["source"], "measured")
        self.assertEqual(packet["next_action"], "promote")
        self.assertEqual(packet["test"]["method"], "welch")
        self.assertLess(packet["test"]["p"], 0.05)
        self.assertAlmostEqual(packet["test"]["p"], 0.0403, places=3)
        self.assertIn("replicates confirm a new champion at mean 0.998100 val_bpb (n=3)",
                      packet["summary"])
        self.assertEqual(packet["group"]["n"], 3)

    def test_replicates_that_refute_the_win(self):
        history = [run(1, "keep", 1.000), run(2, "keep", 0.9995, commit="bbbbbbb")]
        packet = decide(history, run(3, "keep", 1.0045, commit="bbbbbbb"), "duplicate_run")
        # the group mean (1.002) now trails the runner-up, the old champion, which leads again
        # on a single run and within the noise: that run is replicated before anyone builds on it
        self.assertEqual((packet["next_action"], packet["priority"]), ("replicate", "high"))
        self.assertIn(f"Replicate run {history[0]['run_id']}: reruns of champion", packet["summary"])
        self.assertIn("a single run) by Δ=0.002000 <", packet["summary"])
        self.assertEqual(packet["replicate"]["commit"], history[0]["commit"])
        self.assertEqual(packet["replicate"]["seeds"], [43, 44])
        self.assertEqual(packet["comparison"]["current_champion_run_id"], history[0]["run_id"])
        history = [run(1, "keep", 1.000), run(2, "keep", 0.990),
                   run(3, "keep", 0.9995, commit="bbbbbbb")]
        packet = decide(history, run(4, "discard", 1.0065, commit="bbbbbbb"), "duplicate_run")
        self.assertEqual((packet["next_action"], packet["priority"]), ("abandon", "low"))
        self.assertIn("replicates average 1.003000 (n=2)", packet["summary"])

    def test_rerun_of_the_only_champion_builds_on_it(self):
        history = [run(1, "keep", 1.000)]
        # the second baseline run: the setup asks for the third seed before any idea
        second = run(2, "keep", 1.0004, commit=history[0]["commit"])
        packet = decide(history, second, "duplicate_run")
        self.assertEqual(packet["next_action"], "replicate")
        self.assertIn("Replicate the baseline", packet["summary"])
        self.assertEqual(len(packet["replicate"]["seeds"]), 1)  # the one seed still owed
        self.assertEqual(packet["noise"]["source"], "measured")
        self.assertFalse(packet["comparison"]["is_new_champion"])
        # the third: measured, build on it
        packet = decide(history + [second], run(3, "keep", 0.9996, commit=history[0]["commit"],
                                                 seed=44), "duplicate_run")
        self.assertEqual(packet["next_action"], "branch_followup")

    def test_measured_sigma_never_narrows_the_published_band(self):
        history = [run(1, "keep", 1.0000, commit="aaaaaaa"), run(2, "keep", 1.0002, commit="aaaaaaa")]
        # σ: 0.000141 measured over 1 dof, shrunk toward the prior to 0.00082; the band is
        # max(0.0015, 2σ), never below the published 0.0015
        packet = decide(history, run(3, "discard", 1.0011))
        self.assertEqual(packet["next_action"], "retry")
        self.assertAlmostEqual(packet["noise"]["band"], max(0.0015, 2 * packet["noise"]["sigma"]))
        self.assertGreaterEqual(packet["noise"]["band"], 0.0015)
        self.assertEqual(decide(history, run(3, "discard", 1.0020))["next_action"], "abandon")

    def test_measured_sigma_widens_the_band(self):
        history = [run(1, "keep", 1.000, commit="aaaaaaa"), run(2, "keep", 1.002, commit="aaaaaaa")]
        # σ: 0.001414 over 1 dof shrunk to 0.001155, 2σ = 0.00231 > 0.0015: 0.0022 behind
        # the champion's mean is within the noise band
        packet = decide(history, run(3, "discard", 1.0032))
        self.assertEqual(packet["next_action"], "retry")
        self.assertAlmostEqual(packet["noise"]["band"], 2 * packet["noise"]["sigma"])


class ClassesInDecisions(unittest.TestCase):
    def test_cpu_run_is_judged_only_against_cpu_runs(self):
        history = [run(1, "keep", 1.000, provenance=H100)]
        packet = decide(history, run(2, "keep", 0.500, provenance=CPU))
        self.assertTrue(packet["summary"].endswith("first champion recorded at 0.500000 val_bpb."))
        self.assertEqual(packet["class"]["key"][:10], "device=cpu")
        after = registry.build_registry(history + [run(2, "keep", 0.500, provenance=CPU)])
        self.assertEqual(after["champion"]["run_id"], history[0]["run_id"])

    def test_gpu_run_ignores_a_better_cpu_run(self):
        history = [run(1, "keep", 1.000, provenance=H100), run(2, "keep", 0.500, provenance=CPU)]
        packet = decide(history, run(3, "keep", 0.990, provenance=H100))
        self.assertEqual(packet["next_action"], "promote")
        self.assertEqual(packet["comparison"]["prior_champion_run_id"], history[0]["run_id"])


class PlateauInPackets(unittest.TestCase):
    def test_packets_say_plateau_after_n_flat_runs(self):
        features = {"changes": [{"knob": "MATRIX_LR", "direction": "up", "value": 0.05}]}
        config = {"code_sha256": None, "constants": {"MATRIX_LR": 0.04, "DEPTH": 8}}
        history = [run(1, "keep", 0.990, config=config)]
        history += [run(n, "discard", 0.9950, novelty_features=features) for n in range(2, 10)]
        packet = decide(history, run(10, "discard", 0.9960))
        self.assertIsNone(packet["recommendation"])
        history.append(run(10, "discard", 0.9960))
        packet = decide(history, run(11, "discard", 0.9970))
        self.assertEqual(packet["next_action"], "abandon")
        self.assertIn("Plateau: no gain > σ in the last 10 runs; switch to explore mode "
                      "(least-tried knobs: DEPTH, MATRIX_LR).", packet["summary"])
        self.assertEqual(packet["recommendation"]["mode"], "explore")
        self.assertEqual(packet["recommendation"]["least_tried_knobs"], ["DEPTH", "MATRIX_LR"])


class JunkInput(unittest.TestCase):
    def test_junk_records_never_crash(self):
        junk_history = [{}, {"status": 5}, run(1, "keep", "0.9"), run(2, "keep", float("nan")),
                        "x", run(3, "keep", 0.9, config="junk", role=7)]
        for record in ({}, {"status": "keep"}, run(3, "keep", "0.5"), run(3, "weird", 0.9),
                       run(3, "crash", None, error="text"), run(3, "keep", True)):
            for history in ([], junk_history):
                packet = decisions.decide(record, registry.Board(history + [record]), "junk")
                self.assertIn(packet["next_action"], decisions.ACTIONS)
                json.dumps(packet, allow_nan=False)

    def test_keep_without_val_bpb_retries(self):
        packet = decide([run(1)], run(2, "keep", None))
        self.assertEqual(packet["next_action"], "retry")


class ExactBoundaries(unittest.TestCase):
    """Each boundary on both sides (σ = the prior 0.001, k = 2, band 0.0015)."""

    def test_a_gain_of_exactly_k_sigma_promotes(self):
        history = [run(1, "keep", 1.000)]
        self.assertEqual(decide(history, run(2, "keep", 0.998))["next_action"], "promote")
        packet = decide(history, run(2, "keep", 0.998001))
        self.assertEqual(packet["next_action"], "replicate")
        self.assertIn("Δ=0.001999 < 2σ=0.002000", packet["summary"])

    def test_a_tie_is_no_win_and_the_earlier_run_stays_champion(self):
        history = [run(1, "keep", 1.000)]
        packet = decide(history, run(2, "keep", 1.000))
        self.assertNotIn(packet["next_action"], ("promote",))
        self.assertFalse(packet["comparison"]["is_new_champion"])
        self.assertEqual(packet["comparison"]["current_champion_run_id"], history[0]["run_id"])
        board = registry.build_registry(history + [run(2, "keep", 1.000)])
        self.assertEqual(board["champion"]["run_id"], history[0]["run_id"])

    def test_a_discard_is_never_promoted_even_when_better(self):
        history = [run(1, "keep", 1.000)]
        packet = decide(history, run(2, "discard", 0.990))
        self.assertIn(packet["next_action"], ("abandon", "retry", "branch_followup"))

    def test_a_discard_within_the_band_gets_retry_with_a_variant_not_a_rerun(self):
        history = [run(1, "keep", 1.000)]
        packet = decide(history, run(2, "discard", 1.0015))
        self.assertEqual((packet["next_action"], packet["priority"]), ("retry", "medium"))
        self.assertIn("try a stronger variant of the idea as a new experiment, not a rerun",
                      packet["summary"])
        features = {"changes": [{"knob": "MATRIX_LR", "direction": "up", "value": 0.06}]}
        packet = decide(history, run(2, "discard", 1.0015, novelty_features=features))
        self.assertIn("(MATRIX_LR further up than 0.06) as a new experiment", packet["summary"])
        self.assertIsNone(packet["replicate"])  # nothing to rerun: check would block it
        self.assertEqual(decide(history, run(2, "discard", 1.0016))["next_action"], "abandon")

    def test_replication_is_bounded_to_two_extra_seeds(self):
        champion = run(1, "keep", 1.000, commit="aaaaaaa", provenance=H100)
        history = [champion, run(2, "keep", 1.0004, commit="aaaaaaa", provenance=H100, seed=43)]
        candidate = [run(3, "keep", 0.9995, commit="bbbbbbb", provenance=H100)]
        packet = decide(history + candidate, run(4, "keep", 0.9996, commit="bbbbbbb",
                                                  provenance=H100, seed=43), "duplicate_run")
        self.assertEqual((packet["next_action"], packet["replicate"]["seeds"]), ("replicate", [44]))
        candidate.append(run(4, "keep", 0.9996, commit="bbbbbbb", provenance=H100, seed=43))
        packet = decide(history + candidate, run(5, "keep", 0.9994, commit="bbbbbbb",
                                                  provenance=H100, seed=44), "duplicate_run")
        self.assertEqual(packet["next_action"], "abandon")
        self.assertIn("after 2 extra seeds", packet["summary"])
        self.assertEqual(packet["test"]["method"], "welch")

    def test_a_discarded_rerun_that_clears_the_noise_promotes_its_candidate(self):
        # the candidate leads the board provisionally, so its reruns are often logged as
        # discards (not below "best so far"); the verdict is about the group
        baseline = [run(n, "keep", v, commit="aaaaaaa", provenance=H100, seed=41 + n,
                        decision_packet={"next_action": "promote" if n == 1 else "branch_followup"})
                    for n, v in ((1, 1.0000), (2, 1.0004), (3, 0.9996))]
        candidate = [run(4, "keep", 0.9985, commit="bbbbbbb", provenance=H100,
                         decision_packet={"next_action": "replicate"})]
        packet = decide(baseline + candidate, run(5, "discard", 0.9987, commit="bbbbbbb",
                                                   provenance=H100, seed=43), "duplicate_run")
        self.assertEqual(packet["next_action"], "promote")
        self.assertIn("replicates confirm a new champion at mean 0.998600 val_bpb (n=2)",
                      packet["summary"])

    def test_noise_larger_than_the_effects_is_said_plainly(self):
        history = [run(1, "keep", 1.00, commit="aaaaaaa", provenance=H100),
                   run(2, "keep", 1.10, commit="aaaaaaa", provenance=H100, seed=43),
                   run(3, "keep", 0.90, commit="aaaaaaa", provenance=H100, seed=44),
                   run(4, "discard", 1.01, provenance=H100),
                   run(5, "discard", 1.02, provenance=H100)]
        packet = decide(history, run(6, "discard", 0.99, provenance=H100))
        self.assertIn("is larger than the effects being tested", packet["noise"]["advice"])
        self.assertEqual(packet["summary"].count("larger than the effects"), 1)
        floor = registry.build_registry(history)["noise_floor"]
        self.assertIn("one run cannot rank them", floor["warning"])

    def test_throughput_gap_beyond_five_percent_is_named(self):
        history = [run(1, "keep", 1.000, metrics={"val_bpb": 1.0, "num_steps": 1000})]
        near = decide(history, run(2, "discard", 1.01, metrics={"val_bpb": 1.01, "num_steps": 950}))
        self.assertIsNone(near["throughput"]["note"])
        far = decide(history, run(2, "discard", 1.01, metrics={"val_bpb": 1.01, "num_steps": 949}))
        self.assertIn("5% fewer steps than champion", far["summary"])
        self.assertIn("may be throughput rather than the idea", far["summary"])


if __name__ == "__main__":
    unittest.main()
