"""Tests for memorylab_core.registry: champion rules, classes, groups, lineages, clusters."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import random  # noqa: E402

from memorylab_core import facts, failures, noise, registry  # noqa: E402

H100 = {"device": "NVIDIA H100 80GB HBM3", "time_budget_s": 300, "max_seq_len": 2048,
        "eval_tokens": 20971520, "prepare_py_sha256": "ab" * 32}
CPU = {"device": "cpu", "time_budget_s": 60, "max_seq_len": 256}


def run(number, status="keep", val_bpb=1.0, *, commit=None, parent=None, provenance=None,
        seed=None, **fields):
    """A ledger record with the fields the registry reads (timestamps one minute apart)."""
    commit = commit or f"{number:07x}"
    row = {"run_id": f"20260101T00{number // 60 % 60:02d}{number % 60:02d}Z-{commit[:7]}",
           "timestamp_utc": f"2026-01-01T00:{number // 60 % 60:02d}:{number % 60:02d}Z",
           "branch": "autoresearch/test", "commit": commit, "parent_commit": parent or "",
           "family": "", "status": status, "description": f"idea {number}",
           "hypothesis": "", "tags": [],
           "metrics": {"val_bpb": val_bpb, "peak_vram_mb": 40960.0}, "error": None}
    if provenance is not None:
        row["provenance"] = dict(provenance, **({"seed": seed} if seed is not None else {}))
    row.update(fields)
    return row


class ChampionRules(unittest.TestCase):
    def test_empty_ledger(self):
        reg = registry.build_registry([], now="2026-01-01T00:00:00Z")
        self.assertIsNone(reg["champion"])
        self.assertEqual(reg["challengers"], [])
        self.assertEqual(reg["experiments"], 0)
        self.assertEqual(reg["status_counts"], {"keep": 0, "discard": 0, "crash": 0})
        self.assertEqual(reg["noise_floor"]["source"], "prior")
        json.dumps(reg)

    def test_lowest_kept_run_wins_and_challengers_carry_deltas(self):
        rows = [run(1, "keep", 1.0), run(2, "discard", 0.90), run(3, "keep", 0.98),
                run(4, "keep", 0.99), run(5, "keep", 0.995), run(6, "keep", 0.997),
                run(7, "crash", None)]
        reg = registry.build_registry(rows)
        self.assertEqual(reg["champion"]["run_id"], rows[2]["run_id"])
        self.assertEqual(reg["champion"]["val_bpb"], 0.98)
        self.assertEqual(reg["champion"]["memory_gb"], 40.0)
        self.assertEqual([c["run_id"] for c in reg["challengers"]],
                         [rows[3]["run_id"], rows[4]["run_id"], rows[5]["run_id"]])
        self.assertEqual([c["delta"] for c in reg["challengers"]], [0.01, 0.015, 0.017])

    def test_without_kept_runs_the_best_discard_wins_never_a_crash(self):
        rows = [run(1, "crash", None), run(2, "discard", 1.02), run(3, "discard", 1.01)]
        self.assertEqual(registry.build_registry(rows)["champion"]["run_id"], rows[2]["run_id"])
        self.assertIsNone(registry.build_registry([run(1, "crash", 0.5)])["champion"])

    def test_ties_go_to_the_earlier_run(self):
        rows = [run(1, "keep", 0.99), run(2, "keep", 0.99)]
        self.assertEqual(registry.build_registry(rows)["champion"]["run_id"], rows[0]["run_id"])

    def test_single_run_champion_is_provisional(self):
        champion = registry.build_registry([run(1, "keep", 0.99)])["champion"]
        self.assertTrue(champion["provisional"])
        self.assertEqual(champion["n"], 1)
        self.assertIsNone(champion["sd"])


class JunkRecords(unittest.TestCase):
    def test_junk_never_crashes_and_never_ranks(self):
        rows = [
            run(1, "keep", 0.99),
            run(2, "keep", "0.90"),                # a string is not a number
            run(3, "keep", True),                  # nor is a bool
            run(4, "keep", float("nan")),
            run(5, "keep", float("-inf")),
            run(6, "keep", -1.0),
            run(7, "weird", 0.5),                  # unknown status
            run(8, "keep", 0.5, metrics="broken"),
            {"status": 7, "metrics": {"val_bpb": None}, "commit": ["x"], "parent_commit": 5,
             "provenance": {"device": ["unhashable"]}, "novelty_features": "junk"},
            {},
            "not a dict",
            None,
            run(9, None, 0.4),
            run(10, "KEEP", 0.98),                 # statuses are compared lower-cased
        ]
        reg = registry.build_registry(rows)
        json.dumps(reg, allow_nan=False)
        self.assertEqual(reg["champion"]["run_id"], rows[13]["run_id"])
        self.assertEqual(reg["status_counts"]["weird"], 1)
        self.assertEqual(reg["status_counts"]["keep"], 8)
        self.assertEqual(reg["experiments"], 12)


class ComparabilityClasses(unittest.TestCase):
    def test_reruns_with_different_steps_say_the_noise_is_throughput(self):
        rows = [run(1, "keep", 0.52, commit="aaaaaaa", metrics={"val_bpb": 0.52, "num_steps": 46}),
                run(2, "keep", 0.50, commit="aaaaaaa", metrics={"val_bpb": 0.50, "num_steps": 76})]
        floor = registry.build_registry(rows)["noise_floor"]
        self.assertIn("ran 46 to 76 steps (65% apart)", floor["steps_note"])
        rows[1]["metrics"]["num_steps"] = 48  # 4% apart: nothing to say
        self.assertIsNone(registry.build_registry(rows)["noise_floor"]["steps_note"])

    def test_crashes_and_imports_never_switch_the_current_class(self):
        for provenance in (H100, CPU):
            rows = [run(1, "keep", 1.00, provenance=provenance),
                    run(2, "keep", 0.99, provenance=provenance),
                    run(3, "crash", None, error={"summary": "NameError: x"}),
                    run(4, "keep", 0.95, imported={"source": "results.tsv", "row": 1})]
            reg = registry.build_registry(rows)
            self.assertEqual(reg["current_class"][:10], "device=" + provenance["device"][:3])
            self.assertEqual(reg["champion"]["run_id"], rows[1]["run_id"])
            # the crash (no sidecar, so no provenance) counts in the campaign's class
            self.assertEqual(reg["classes"][0]["status_counts"]["crash"], 1)

    def test_cpu_smoke_run_never_displaces_the_gpu_champion(self):
        rows = [run(1, "keep", 1.00, provenance=H100), run(2, "keep", 0.99, provenance=H100),
                run(3, "keep", 0.50, provenance=CPU)]
        reg = registry.build_registry(rows)
        self.assertEqual(reg["champion"]["run_id"], rows[1]["run_id"])
        self.assertTrue(reg["current_class"].startswith("device=NVIDIA H100"))
        self.assertEqual(len(reg["classes"]), 2)
        cpu = [section for section in reg["classes"] if section["smoke"]][0]
        self.assertEqual(cpu["champion"]["run_id"], rows[2]["run_id"])
        self.assertEqual(reg["classes"][0]["class"], reg["current_class"])

    def test_current_class_is_that_of_the_most_recent_run(self):
        other = dict(H100, time_budget_s=600)
        rows = [run(1, "keep", 0.95, provenance=H100), run(2, "keep", 0.99, provenance=other)]
        reg = registry.build_registry(rows)
        self.assertEqual(reg["champion"]["run_id"], rows[1]["run_id"])
        self.assertEqual([s["champion"]["run_id"] for s in reg["classes"]],
                         [rows[1]["run_id"], rows[0]["run_id"]])

    def test_only_cpu_runs_make_a_cpu_champion(self):
        reg = registry.build_registry([run(1, "keep", 1.5, provenance=CPU)])
        self.assertEqual(reg["champion"]["val_bpb"], 1.5)

    def test_records_without_provenance_form_the_legacy_class(self):
        rows = [run(1, "keep", 0.99), run(2, "keep", 0.98, provenance={})]
        reg = registry.build_registry(rows)
        self.assertEqual(reg["current_class"], "legacy")
        self.assertEqual(reg["classes"][0]["experiments"], 2)


class ReplicateGroupsAndNoise(unittest.TestCase):
    def test_noise_floor_moves_from_prior_to_measured(self):
        rows = [run(1, "keep", 1.000, commit="aaaaaaa", provenance=H100)]
        floor = registry.build_registry(rows)["noise_floor"]
        self.assertEqual((floor["source"], floor["sigma"]), ("prior", 0.001))
        rows.append(run(2, "keep", 1.002, commit="aaaaaaa", provenance=H100, seed=43))
        floor = registry.build_registry(rows)["noise_floor"]
        self.assertEqual(floor["source"], "measured")
        self.assertAlmostEqual(floor["measured_sigma"], 0.002 / 2 ** 0.5, places=9)
        self.assertAlmostEqual(floor["sigma"], ((2e-6 + 2e-6) / 3) ** 0.5, places=9)  # shrunk
        self.assertEqual(floor["dof"], 1)

    def test_champion_is_the_best_group_mean(self):
        rows = [run(1, "keep", 0.990, commit="aaaaaaa"),   # one lucky run
                run(2, "keep", 0.991, commit="bbbbbbb"),
                run(3, "keep", 0.9912, commit="bbbbbbb"),
                run(4, "keep", 0.9908, commit="bbbbbbb"),
                run(5, "discard", 0.9975, commit="aaaaaaa")]  # its rerun was poor
        champion = registry.build_registry(rows)["champion"]
        self.assertEqual(champion["group"], "commit:bbbbbbb")
        self.assertEqual(champion["n"], 3)
        self.assertAlmostEqual(champion["val_bpb"], 0.991, places=9)
        self.assertAlmostEqual(champion["sd"], 0.0002, places=9)
        self.assertEqual((champion["min"], champion["max"]), (0.9908, 0.9912))
        self.assertFalse(champion["provisional"])
        self.assertEqual(champion["run_id"], rows[1]["run_id"])  # its first kept run
        self.assertEqual(champion["run_val_bpb"], 0.991)

    def test_floor_of_groups_equals_noise_floor(self):
        rng = random.Random(5)
        for trial in range(20):
            rows = [run(n, rng.choice(["keep", "discard", "crash"]),
                        round(rng.uniform(0.98, 1.0), 6), commit=f"{rng.randrange(8):07d}",
                        provenance=H100, seed=rng.randrange(40, 50))
                    for n in range(rng.randrange(0, 40))]
            if trial % 5 == 0:  # deterministic reruns: zero spread keeps the prior
                rows = [run(n, "keep", 0.99, commit="aaaaaaa") for n in range(3)]
            floor = dict(registry.build_registry(rows)["noise_floor"])
            floor.pop("warning")
            floor.pop("steps_note", None)
            self.assertEqual(floor, noise.noise_floor(rows))

    def test_stored_row_facts_give_the_same_registry(self):
        # The index keeps facts.row_facts beside each row; the registry must not depend
        # on whether they were stored or computed, and a malformed `_facts` is ignored.
        rng = random.Random(7)
        rows = [run(n, rng.choice(["keep", "discard", "crash", "Keep", None]),
                    rng.choice([round(rng.uniform(0.98, 1.0), 6), None, "0.9"]),
                    commit=f"{rng.randrange(6):07d}", parent=f"{rng.randrange(6):07d}",
                    provenance=rng.choice([H100, CPU, None]), seed=rng.randrange(40, 44),
                    error={"summary": rng.choice(["CUDA out of memory", "ValueError: x"])})
                for n in range(60)]
        stored = [dict(row, _facts=facts.row_facts(row)) for row in rows]
        junk = [dict(row, _facts=("too", "short")) for row in rows]
        now = "2026-01-02T00:00:00Z"
        expected = registry.build_registry(rows, now=now)
        self.assertEqual(registry.build_registry(stored, now=now), expected)
        self.assertEqual(registry.build_registry(junk, now=now), expected)

    def test_config_fingerprint_groups_across_commits(self):
        config = {"code_sha256": "f" * 64, "constants": {}}
        rows = [run(1, "keep", 0.99, commit="aaaaaaa", config=config),
                run(2, "keep", 0.98, commit="bbbbbbb", config=config)]
        champion = registry.build_registry(rows)["champion"]
        self.assertEqual(champion["n"], 2)


class PlateauInRegistry(unittest.TestCase):
    def test_plateau_after_n_flat_runs_names_least_tried_knobs(self):
        features = {"changes": [{"knob": "MATRIX_LR", "direction": "up", "value": 0.05}]}
        config = {"code_sha256": None, "constants": {"MATRIX_LR": 0.04, "DEPTH": 8, "WARMDOWN_RATIO": 0.5,
                                                     "H100_BF16_PEAK_FLOPS": 989.5e12}}
        rows = [run(1, "keep", 0.990, config=config)]  # the MFU peak is no research knob
        for number in range(2, 11):
            rows.append(run(number, "discard", 0.9905, novelty_features=features))
        self.assertFalse(registry.build_registry(rows)["plateau"]["plateau"])
        rows.append(run(11, "discard", 0.9901, novelty_features=features))
        plateau = registry.build_registry(rows)["plateau"]
        self.assertTrue(plateau["plateau"])
        self.assertEqual(plateau["least_tried_knobs"], ["DEPTH", "WARMDOWN_RATIO", "MATRIX_LR"])
        self.assertIn("explore mode", plateau["recommendation"])

    def test_an_improvement_beyond_sigma_is_no_plateau(self):
        rows = [run(1, "keep", 0.990)] + [run(n, "discard", 0.995) for n in range(2, 11)]
        rows.append(run(11, "keep", 0.985))
        self.assertFalse(registry.build_registry(rows)["plateau"]["plateau"])


class Lineages(unittest.TestCase):
    def test_parent_commits_are_walked_through_the_ledger(self):
        rows = [run(1, "keep", 1.00, commit="aaaaaaa", parent="0000000"),
                run(2, "keep", 0.99, commit="bbbbbbb", parent="aaaaaaa"),
                run(3, "discard", 0.995, commit="ccccccc", parent="bbbbbbb"),
                run(4, "keep", 0.98, commit="ddddddd", parent="bbbbbbb" + "1" * 33),
                run(5, "keep", 0.97, commit="eeeeeee", parent="fffffff"),   # another root
                run(6, "discard", 0.999, commit="bbbbbbb", parent="aaaaaaa")]
        found = registry.build_registry(rows)["lineages"]
        self.assertEqual([item["root_commit"] for item in found], ["eeeeeee", "aaaaaaa"])
        main = found[1]
        self.assertEqual((main["runs"], main["unique_commits"], main["kept_runs"]), (5, 4, 3))
        self.assertEqual(main["best_run"]["run_id"], rows[3]["run_id"])

    def test_cycles_terminate(self):
        rows = [run(1, "keep", 1.0, commit="aaaaaaa", parent="bbbbbbb"),
                run(2, "keep", 0.9, commit="bbbbbbb", parent="aaaaaaa")]
        found = registry.build_registry(rows)["lineages"]
        self.assertEqual(len(found), 1)
        self.assertEqual(found[0]["runs"], 2)

    def test_top_five_only(self):
        rows = [run(n, "keep", 1.0 - n / 1000, commit=f"{n:07d}") for n in range(1, 9)]
        self.assertEqual(len(registry.build_registry(rows)["lineages"]), 5)


class FailureClusters(unittest.TestCase):
    def test_crashes_cluster_by_error_kind(self):
        oom = {"summary": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"}
        oom2 = {"summary": "RuntimeError: CUDA error: out of memory", "tail": ["x"]}
        shape = {"summary": "RuntimeError: mat1 and mat2 shapes cannot be multiplied (4x8 and 9x8)"}
        shape2 = {"summary": "RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x3 and 5x3)"}
        rows = [run(1, "keep", 1.0), run(2, "crash", None, error=oom),
                run(3, "crash", None, error=oom2), run(4, "crash", None, error=shape),
                run(5, "crash", None, error=shape2), run(6, "crash", None, error=None)]
        clusters = registry.build_registry(rows)["failure_clusters"]
        # equal sizes: the most recently active cluster first
        self.assertEqual([c["label"] for c in clusters],
                         ["crash: RuntimeError: mat and mat shapes cannot", "crash: out of memory",
                          "crash: unknown error"])
        self.assertEqual([(c["size"], c["crashes"]) for c in clusters], [(2, 2), (2, 2), (1, 1)])
        self.assertEqual([e["run_id"] for e in clusters[1]["examples"]],
                         [rows[2]["run_id"], rows[1]["run_id"]])

    def test_discards_cluster_by_parsed_knob_else_salient_words(self):
        up = {"changes": [{"knob": "MATRIX_LR", "direction": "up", "value": 0.05}]}
        up2 = {"changes": [{"knob": "MATRIX_LR", "direction": "up", "value": 0.08}]}
        down = {"changes": [{"knob": "MATRIX_LR", "direction": "down", "value": 0.02}]}
        rows = [run(1, "discard", 1.01, novelty_features=up, description="raise matrix lr"),
                run(2, "discard", 1.02, novelty_features=up2, description="MATRIX_LR 0.04 -> 0.08"),
                run(3, "discard", 1.03, novelty_features=down, description="lower matrix lr"),
                run(4, "discard", 1.04, description="Try the new warmup schedule 5%"),
                run(5, "discard", 1.00, description="try new warmup schedule 10%")]
        clusters = registry.build_registry(rows)["failure_clusters"]
        by_label = {c["label"]: c for c in clusters}
        self.assertEqual(by_label["MATRIX_LR up"]["size"], 2)
        self.assertEqual(by_label["MATRIX_LR down"]["size"], 1)
        words = [c for c in clusters if c["signature"].startswith("words:")][0]
        self.assertEqual(words["size"], 2)
        self.assertEqual(words["best_val_bpb"], 1.0)

    def test_top_five_largest(self):
        words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa"]
        rows = [run(n, "discard", 1.0, description=f"try {words[n % 7]} {n}") for n in range(70)]
        clusters = registry.build_registry(rows)["failure_clusters"]
        self.assertEqual(len(clusters), 5)
        self.assertTrue(all(c["size"] == 10 for c in clusters))

    def test_oom_detection(self):
        for text in ("torch.OutOfMemoryError: CUDA out of memory.",
                     "RuntimeError: CUDA error: out of memory", "HIP out of memory",
                     "MPS backend out of memory", "std::bad_alloc", "MemoryError",
                     "CUBLAS_STATUS_ALLOC_FAILED", "Killed by the OOM killer"):
            self.assertTrue(failures.looks_like_oom(text), text)
        for text in ("", "ValueError: bad value", "AssertionError", "memory_gb is 40"):
            self.assertFalse(failures.looks_like_oom(text), text)


class Linear(unittest.TestCase):
    def test_ten_thousand_runs(self):
        """Speed is measured by tests/bench_memorylab.py, not asserted here."""
        rows = []
        for n in range(10000):
            status = ("keep", "discard", "discard", "crash")[n % 4]
            rows.append(run(n, status, None if status == "crash" else 1.0 - (n % 97) / 1e4,
                            commit=f"{n // 2:07x}", parent=f"{max(0, n // 2 - 1):07x}",
                            provenance=H100, error={"summary": f"ValueError: bad {n}"}))
        reg = registry.build_registry(rows)
        self.assertEqual(reg["experiments"], 10000)


if __name__ == "__main__":
    unittest.main()
