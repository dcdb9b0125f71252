"""Tests for memorylab_core.noise: classes, replicate groups, noise floor, plateau."""

import math
import os
import statistics
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memorylab_core import noise  # noqa: E402

H100 = {"device": "NVIDIA H100 80GB HBM3", "time_budget_s": 300, "max_seq_len": 2048,
        "eval_tokens": 20971520, "prepare_py_sha256": "AB" * 32, "seed": 42}
CPU = {"device": "cpu", "time_budget_s": 60, "max_seq_len": 256, "eval_tokens": 65536,
       "prepare_py_sha256": "cd" * 32, "seed": 42}

_counter = [0]


def run(val_bpb, *, commit=None, status="keep", provenance=None, code=None, seed=None,
        **extra):
    """A minimal ledger row; every argument maps onto the record field names."""
    _counter[0] += 1
    n = _counter[0]
    row = {"run_id": f"20260101T{n:06d}Z-{(commit or 'c%06d' % n)[:7]}",
           "commit": commit or f"c{n:06d}", "status": status,
           "metrics": {"val_bpb": val_bpb, "peak_vram_mb": 1000.0}}
    if provenance is not None:
        row["provenance"] = dict(provenance)
        if seed is not None:
            row["provenance"]["seed"] = seed
    elif seed is not None:
        row["provenance"] = {"seed": seed}
    if code is not None:
        row["config"] = {"constants": {"DEPTH": 8}, "code_sha256": code}
    row.update(extra)
    return row


JUNK_ROWS = [
    None, "not a record", 42, [],
    {},
    {"status": "keep"},
    {"status": "keep", "metrics": None},
    {"status": "keep", "metrics": "val_bpb: 0.99"},
    {"status": "keep", "metrics": {"val_bpb": None}, "commit": "j1"},
    {"status": "keep", "metrics": {"val_bpb": "0.99"}, "commit": "j1"},
    {"status": "keep", "metrics": {"val_bpb": True}, "commit": "j1"},
    {"status": "keep", "metrics": {"val_bpb": float("nan")}, "commit": "j1"},
    {"status": "keep", "metrics": {"val_bpb": float("inf")}, "commit": "j1"},
    {"status": "keep", "metrics": {"val_bpb": 0.0}, "commit": "j1"},
    {"status": "crash", "metrics": {"val_bpb": 0.5}, "commit": "j1"},
    {"status": "crash", "metrics": {"val_bpb": None}, "commit": "j1", "error": {}},
    {"status": " Crash ", "metrics": {"val_bpb": 0.97}, "commit": "j1"},
]


class ComparableValueTests(unittest.TestCase):
    def test_usable_values(self):
        self.assertEqual(noise.comparable_val_bpb(run(0.99)), 0.99)
        self.assertEqual(noise.comparable_val_bpb(run(1, status="discard")), 1.0)
        self.assertEqual(noise.comparable_val_bpb({"metrics": {"val_bpb": 0.98}}), 0.98)
        self.assertEqual(noise.comparable_val_bpb({"status": 3, "metrics": {"val_bpb": 1}}), 1)

    def test_junk_and_crashes_are_not_comparable(self):
        for row in JUNK_ROWS:
            with self.subTest(row=row):
                self.assertIsNone(noise.comparable_val_bpb(row))

    def test_run_seed(self):
        self.assertEqual(noise.run_seed(run(0.99)), 42)
        self.assertEqual(noise.run_seed(run(0.99, seed=137)), 137)
        self.assertEqual(noise.run_seed(run(0.99, seed=7.0)), 7)
        self.assertEqual(noise.run_seed(run(0.99, seed="1337")), 1337)
        self.assertEqual(noise.run_seed(run(0.99, seed=" -3 ")), -3)
        for junk in (True, "abc", "--5", "", 1.5, None, [1], float("nan")):
            with self.subTest(seed=junk):
                self.assertEqual(noise.run_seed(run(0.99, seed=junk)), 42)
        self.assertEqual(noise.run_seed({"provenance": "seed=3"}), 42)
        self.assertEqual(noise.run_seed(None), 42)


class ComparabilityClassTests(unittest.TestCase):
    def test_legacy_rows(self):
        for row in (run(0.99), run(0.99, provenance={}), {"provenance": None},
                    {"provenance": "h100"}, run(0.99, provenance={"seed": 5}),
                    {"provenance": {"device": "", "time_budget_s": True}}, None, "x"):
            with self.subTest(row=row):
                self.assertEqual(noise.comparability_class(row), noise.LEGACY_CLASS)

    def test_full_provenance_key(self):
        key = noise.comparability_class(run(0.99, provenance=H100))
        self.assertEqual(key, "device=NVIDIA H100 80GB HBM3;budget_s=300;seq=2048;"
                              "eval_tokens=20971520;prepare=abababababab")

    def test_gpu_cpu_and_legacy_are_three_classes(self):
        keys = {noise.comparability_class(run(0.99, provenance=H100)),
                noise.comparability_class(run(1.5, provenance=CPU)),
                noise.comparability_class(run(0.99))}
        self.assertEqual(len(keys), 3)

    def test_each_field_separates_classes(self):
        base = noise.comparability_class(run(0.99, provenance=H100))
        for field, value in (("device", "NVIDIA A100"), ("time_budget_s", 600),
                             ("max_seq_len", 1024), ("eval_tokens", 1),
                             ("prepare_py_sha256", "ef" * 32), ("attention", "sdpa")):
            with self.subTest(field=field):
                changed = dict(H100, **{field: value})
                self.assertNotEqual(
                    noise.comparability_class(run(0.99, provenance=changed)), base)

    def test_seed_and_other_fields_do_not_separate(self):
        base = noise.comparability_class(run(0.99, provenance=H100))
        other = dict(H100, seed=7, torch_version="2.9.1", train_py_sha256="00" * 32,
                     started_at_utc="2026-01-01T00:00:00Z")
        self.assertEqual(noise.comparability_class(run(0.98, provenance=other)), base)

    def test_number_spelling_and_hash_case_do_not_matter(self):
        spelled = dict(H100, time_budget_s=300.0, device="  NVIDIA H100 80GB HBM3 ",
                       prepare_py_sha256="ab" * 32)
        self.assertEqual(noise.comparability_class(run(0.99, provenance=spelled)),
                         noise.comparability_class(run(0.99, provenance=H100)))

    def test_missing_or_bad_fields_are_left_out(self):
        partial = {"device": "cpu", "time_budget_s": "300", "max_seq_len": None,
                   "eval_tokens": float("nan"), "prepare_py_sha256": 12}
        self.assertEqual(noise.comparability_class({"provenance": partial}), "device=cpu")
        fractional = {"time_budget_s": 12.5}
        self.assertEqual(noise.comparability_class({"provenance": fractional}),
                         "budget_s=12.5")

    def test_labels(self):
        self.assertEqual(noise.class_label("legacy"), "legacy (no run provenance)")
        self.assertEqual(noise.class_label(None), "legacy (no run provenance)")
        label = noise.class_label(noise.comparability_class(run(0.99, provenance=H100)))
        self.assertEqual(label, "NVIDIA H100 80GB HBM3, 300 s budget, seq 2048, "
                                "20971520 eval tokens, prepare.py abababababab")

    def test_split_by_class_keeps_ledger_order(self):
        rows = [run(0.99), run(1.5, provenance=CPU), run(0.98, provenance=H100),
                run(None, status="crash", provenance=H100), run(0.97), None]
        classes = noise.split_by_class(rows)
        self.assertEqual(list(classes), ["legacy", noise.comparability_class(rows[1]),
                                         noise.comparability_class(rows[2])])
        self.assertEqual(classes["legacy"], [rows[0], rows[4]])
        self.assertEqual(classes[noise.comparability_class(rows[2])], [rows[2], rows[3]])


class ReplicateGroupTests(unittest.TestCase):
    def test_replicate_key(self):
        self.assertEqual(noise.replicate_key(run(0.99, commit="abc1234", code="f" * 64)),
                         "f" * 64)
        self.assertEqual(noise.replicate_key(run(0.99, commit="abc1234")), "commit:abc1234")
        self.assertEqual(noise.replicate_key({"run_id": "r1", "config": None}), "run:r1")
        self.assertEqual(noise.replicate_key({"config": {"code_sha256": ""},
                                              "commit": "abc"}), "commit:abc")
        self.assertEqual(noise.replicate_key({"config": "junk", "commit": 5,
                                              "run_id": "r2"}), "run:r2")
        self.assertIsNone(noise.replicate_key({}))
        self.assertIsNone(noise.replicate_key(None))

    def test_groups_by_config_then_commit(self):
        rows = [run(0.9960, commit="aaaaaaa", code="x" * 64),
                run(0.9970, commit="bbbbbbb", code="x" * 64, seed=43,
                    provenance={}, status="Discard"),
                run(0.9990, commit="ccccccc"),
                run(0.9950, commit="aaaaaaa", code="x" * 64, seed=44, provenance={}),
                run(1.0010, commit="ccccccc"),
                run(None, commit="ccccccc", status="crash")]
        groups = noise.replicate_groups(rows)
        self.assertEqual(list(groups), ["x" * 64, "commit:ccccccc"])
        g = groups["x" * 64]
        self.assertEqual(g["n"], 3)
        self.assertAlmostEqual(g["mean"], 0.996, places=12)
        self.assertAlmostEqual(g["sd"], statistics.stdev([0.996, 0.997, 0.995]), places=12)
        self.assertEqual((g["min"], g["max"]), (0.995, 0.997))
        self.assertEqual(g["values"], [0.996, 0.997, 0.995])
        self.assertEqual(g["run_ids"], [rows[0]["run_id"], rows[1]["run_id"],
                                        rows[3]["run_id"]])
        self.assertEqual(g["commit"], "aaaaaaa")
        self.assertEqual(g["seeds"], [42, 43, 44])
        self.assertEqual(g["statuses"], {"keep": 2, "discard": 1})
        c = groups["commit:ccccccc"]
        self.assertEqual(c["n"], 2)
        self.assertEqual(c["seeds"], [42])
        self.assertAlmostEqual(c["mean"], 1.0, places=12)

    def test_singleton_group_has_no_sd(self):
        groups = noise.replicate_groups([run(0.99, commit="aaaaaaa")])
        self.assertEqual(groups["commit:aaaaaaa"]["n"], 1)
        self.assertIsNone(groups["commit:aaaaaaa"]["sd"])

    def test_junk_rows_are_ignored(self):
        self.assertEqual(noise.replicate_groups(JUNK_ROWS), {})
        rows = JUNK_ROWS + [run(0.99, commit="j1")]
        self.assertEqual(noise.replicate_groups(rows)["commit:j1"]["n"], 1)

    def test_next_seeds(self):
        self.assertEqual(noise.next_seeds({"seeds": [42]}), [43, 44])
        self.assertEqual(noise.next_seeds({"seeds": [42, 43, 45]}, count=3), [44, 46, 47])
        self.assertEqual(noise.next_seeds({"seeds": [7]}, count=1), [42])
        self.assertEqual(noise.next_seeds([42, 44]), [43, 45])
        self.assertEqual(noise.next_seeds({}), [42, 43])
        self.assertEqual(noise.next_seeds({"seeds": None}), [42, 43])
        self.assertEqual(noise.next_seeds({"seeds": [42]}, count=0), [])
        group = noise.replicate_groups([run(0.99, commit="aaaaaaa"),
                                        run(0.98, commit="aaaaaaa", seed=43)])
        self.assertEqual(noise.next_seeds(group["commit:aaaaaaa"]), [44, 45])


class NoiseFloorTests(unittest.TestCase):
    def test_prior_before_any_replicate(self):
        floor = noise.noise_floor([run(0.99), run(0.98), run(0.97)])
        self.assertEqual(floor["sigma"], noise.PRIOR_SIGMA)
        self.assertEqual(floor["sigma"], 0.001)
        self.assertEqual(floor["source"], "prior")
        self.assertEqual((floor["dof"], floor["groups"]), (0, 0))
        self.assertIsNone(floor["measured_sigma"])
        self.assertTrue(floor["note"])
        self.assertEqual(noise.noise_floor([])["source"], "prior")

    def test_prior_becomes_measured_as_replicates_arrive(self):
        rows = [run(0.9900, commit="aaaaaaa"), run(0.9850, commit="bbbbbbb")]
        self.assertEqual(noise.noise_floor(rows)["source"], "prior")
        rows.append(run(0.9906, commit="aaaaaaa", seed=43))
        floor = noise.noise_floor(rows)
        self.assertEqual(floor["source"], "measured")
        self.assertEqual((floor["dof"], floor["groups"]), (1, 1))
        measured = statistics.stdev([0.99, 0.9906])
        self.assertAlmostEqual(floor["measured_sigma"], measured, places=12)
        # one pair is shrunk toward the prior, worth PRIOR_DOF degrees of freedom
        self.assertAlmostEqual(floor["sigma"], ((measured ** 2 + 2 * 0.001 ** 2) / 3) ** 0.5,
                               places=12)
        self.assertIn("shrunk toward the prior", floor["note"])
        rows += [run(0.9842, commit="bbbbbbb", seed=43), run(0.9861, commit="bbbbbbb", seed=44)]
        floor = noise.noise_floor(rows)
        ss = 2 * 0.0003 ** 2 + sum((x - 0.9851) ** 2 for x in (0.985, 0.9842, 0.9861))
        self.assertEqual((floor["dof"], floor["groups"]), (3, 2))
        self.assertAlmostEqual(floor["measured_sigma"], math.sqrt(ss / 3), places=12)
        self.assertAlmostEqual(floor["sigma"], math.sqrt((ss + 2 * 0.001 ** 2) / 5), places=12)
        self.assertEqual(floor["prior"], noise.PRIOR_SIGMA)

    def test_identical_replicates_keep_the_prior(self):
        rows = [run(0.99, commit="aaaaaaa"), run(0.99, commit="aaaaaaa")]
        floor = noise.noise_floor(rows)
        self.assertEqual(floor["source"], "prior")
        self.assertEqual(floor["sigma"], noise.PRIOR_SIGMA)
        self.assertEqual(floor["measured_sigma"], 0.0)
        self.assertIn("exactly", floor["note"])

    def test_a_group_spanning_classes_is_not_a_replicate(self):
        rows = [run(0.99, commit="aaaaaaa", provenance=H100),
                run(1.60, commit="aaaaaaa", provenance=CPU)]
        self.assertEqual(noise.noise_floor(rows)["source"], "prior")

    def test_crashes_and_junk_do_not_count(self):
        rows = JUNK_ROWS + [run(0.99, commit="j1"), run(None, commit="j1", status="crash")]
        self.assertEqual(noise.noise_floor(rows)["source"], "prior")


class PlateauTests(unittest.TestCase):
    def history(self, *values):
        return [run(v) for v in values]

    def test_flat_window_is_a_plateau(self):
        rows = self.history(1.00, 0.99, 0.98) + self.history(*[0.9805 - i * 0.0001
                                                               for i in range(10)])
        result = noise.plateau(rows, sigma=0.001)
        self.assertTrue(result["plateau"])
        self.assertEqual(result["window"], 10)
        self.assertEqual(result["runs"], 13)
        self.assertEqual(result["best_before"], 0.98)
        self.assertAlmostEqual(result["best_in_window"], 0.9796, places=12)
        self.assertAlmostEqual(result["improvement"], 0.0004, places=12)
        self.assertEqual(result["first_run_id"], rows[3]["run_id"])
        self.assertEqual(result["best_run_id"], rows[-1]["run_id"])
        self.assertIn("not more than", result["reason"])

    def test_one_real_improvement_breaks_the_plateau(self):
        flat = [0.985] * 9
        rows = self.history(0.98, *flat[:4], 0.9785, *flat[4:])
        result = noise.plateau(rows, sigma=0.001)
        self.assertFalse(result["plateau"])
        self.assertAlmostEqual(result["improvement"], 0.0015, places=12)
        self.assertEqual(result["best_run_id"], rows[5]["run_id"])

    def test_improvement_equal_to_sigma_is_still_a_plateau(self):
        rows = self.history(1.0, *[1.5] * 9, 0.999)
        self.assertTrue(noise.plateau(rows, sigma=1.0 - 0.999)["plateau"])

    def test_too_few_runs(self):
        result = noise.plateau(self.history(*[0.99] * 10), sigma=0.001)
        self.assertFalse(result["plateau"])
        self.assertIsNone(result["best_before"])
        self.assertIn("only 10", result["reason"])
        self.assertFalse(noise.plateau([], sigma=0.001)["plateau"])

    def test_window_and_sigma_arguments(self):
        rows = self.history(0.99, 0.995, 0.995, 0.995)
        self.assertTrue(noise.plateau(rows, sigma=0.001, window=3)["plateau"])
        self.assertFalse(noise.plateau(self.history(0.99, 0.985), sigma=0.001,
                                       window=1)["plateau"])
        for sigma in (None, "0.5", float("nan"), -1.0, True):
            with self.subTest(sigma=sigma):
                result = noise.plateau(rows, sigma=sigma, window=3)
                self.assertEqual(result["sigma"], noise.PRIOR_SIGMA)
        self.assertEqual(noise.plateau(rows, sigma=0.001, window=0)["window"], 1)

    def test_crashes_and_junk_are_not_runs(self):
        rows = self.history(0.98, *[0.981] * 10)
        noisy = rows[:3] + JUNK_ROWS + rows[3:] + [run(None, status="crash")] * 5
        result = noise.plateau(noisy, sigma=0.001)
        self.assertTrue(result["plateau"])
        self.assertEqual(result["runs"], 11)
        self.assertEqual(result["best_before"], 0.98)


class ScaleTests(unittest.TestCase):
    def test_one_hundred_thousand_rows(self):
        """Speed is measured by tests/bench_memorylab.py, not asserted here."""
        providers = (H100, CPU, None)
        rows = [run(0.99 + (i % 97) * 1e-5, commit=f"k{i % 5000:06d}",
                    provenance=providers[i % 3], seed=i % 7) for i in range(100_000)]
        noise.split_by_class(rows)
        groups = noise.replicate_groups(rows)
        floor = noise.noise_floor(rows)
        noise.plateau(rows, floor["sigma"])
        self.assertEqual(len(groups), 5000)
        self.assertEqual(floor["source"], "measured")


if __name__ == "__main__":
    unittest.main()
