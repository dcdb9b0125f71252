"""Tests for memorylab_core.stats: descriptive helpers, Student's t, Welch, pooled sd."""

import math
import os
import statistics
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memorylab_core import stats  # noqa: E402

# R's `sleep` data (Cushny & Peebles, 1905): extra hours of sleep under two drugs.
# t.test(extra ~ group, data = sleep) prints the classic Welch result
#   t = -1.8608, df = 17.776, p-value = 0.07939 (two-sided).
SLEEP_DRUG_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_DRUG_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]

# The first worked example of Wikipedia's "Welch's t-test" article:
#   t = -2.46, df = 24.99 (about 25.0), p = 0.021 (two-sided).
WIKI_A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6,
           19.0, 21.7, 21.4]
WIKI_A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1,
           22.9, 20.5, 24.4]


def t_pdf(x, df):
    log_c = (math.lgamma((df + 1) / 2) - math.lgamma(df / 2)
             - 0.5 * math.log(df * math.pi))
    return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))


def simpson_mass(t, upper, df, steps=20000):
    """P(t < T < upper) by Simpson's rule on the density."""
    h = (upper - t) / steps
    total = t_pdf(t, df) + t_pdf(upper, df)
    for i in range(1, steps):
        total += (4 if i % 2 else 2) * t_pdf(t + i * h, df)
    return total * h / 3


class DescriptiveTests(unittest.TestCase):
    def test_mean_and_sd_match_statistics_module(self):
        data = [1.02, 0.998, 1.001, 0.9975, 1.0003]
        self.assertAlmostEqual(stats.mean(data), statistics.mean(data), places=15)
        self.assertAlmostEqual(stats.sample_sd(data), statistics.stdev(data), places=15)

    def test_mean_accepts_iterators(self):
        self.assertEqual(stats.mean(iter([1, 2, 3])), 2.0)

    def test_empty_or_short_inputs_raise(self):
        with self.assertRaises(ValueError):
            stats.mean([])
        with self.assertRaises(ValueError):
            stats.sample_sd([1.0])

    def test_identical_values_have_exactly_zero_spread(self):
        self.assertEqual(stats.sample_sd([0.99, 0.99, 0.99]), 0.0)
        self.assertEqual(stats.mean([0.99, 0.99, 0.99]), 0.99)

    def test_tiny_spread_around_a_large_mean_keeps_precision(self):
        data = [1e9 + 0.1, 1e9 + 0.2, 1e9 + 0.3]
        self.assertAlmostEqual(stats.sample_sd(data), 0.1, places=6)


class StudentTTests(unittest.TestCase):
    def test_critical_values_from_t_table(self):
        # (upper-tail probability, df, tabled critical value)
        table = [(0.05, 10, 1.812), (0.025, 5, 2.571), (0.01, 30, 2.457),
                 (0.05, 1, 6.314), (0.005, 1, 63.657), (0.025, 2, 4.303),
                 (0.05, 20, 1.725), (0.005, 120, 2.617)]
        for p, df, critical in table:
            with self.subTest(p=p, df=df):
                self.assertAlmostEqual(stats.t_isf(p, df), critical, places=3)
                self.assertAlmostEqual(stats.t_sf(critical, df), p, places=3)

    def test_df1_is_the_cauchy_distribution(self):
        for t in (-50.0, -3.0, -1.0, -0.2, 0.0, 0.3, 1.0, 2.5, 10.0, 1e4):
            with self.subTest(t=t):
                expected = 0.5 - math.atan(t) / math.pi
                self.assertAlmostEqual(stats.t_sf(t, 1), expected, places=12)

    def test_df2_closed_form(self):
        for t in (-4.0, -0.5, 0.1, 1.0, 3.0, 30.0):
            with self.subTest(t=t):
                expected = 0.5 - t / (2 * math.sqrt(2 + t * t))
                self.assertAlmostEqual(stats.t_sf(t, 2), expected, places=12)

    def test_df3_closed_form(self):
        for t in (-2.0, 0.4, 1.0, 2.0, 7.0):
            with self.subTest(t=t):
                u = t / math.sqrt(3)
                expected = 0.5 - (math.atan(u) + u / (1 + u * u)) / math.pi
                self.assertAlmostEqual(stats.t_sf(t, 3), expected, places=12)

    def test_fractional_df_matches_numerical_integration(self):
        for t, upper, df in ((0.5, 6.0, 2.5), (-1.7, 4.0, 7.3), (2.9, 9.0, 17.776),
                             (0.05, 3.0, 0.8), (-3.0, 3.0, 123.4)):
            with self.subTest(t=t, df=df):
                mass = stats.t_sf(t, df) - stats.t_sf(upper, df)
                self.assertAlmostEqual(mass, simpson_mass(t, upper, df), places=10)

    def test_large_df_tends_to_the_normal(self):
        for t in (-1.0, 0.5, 1.959964, 3.0):
            normal = 0.5 * math.erfc(t / math.sqrt(2))
            with self.subTest(t=t):
                self.assertAlmostEqual(stats.t_sf(t, math.inf), normal, places=15)
                self.assertAlmostEqual(stats.t_sf(t, 1e6), normal, places=6)
                self.assertAlmostEqual(stats.t_sf(t, 1e12), normal, places=10)
        self.assertAlmostEqual(stats.t_sf(1.959964, math.inf), 0.025, places=6)

    def test_symmetry_and_cdf(self):
        for t, df in ((0.7, 3.3), (2.2, 11.0), (5.0, 1.5)):
            with self.subTest(t=t, df=df):
                self.assertAlmostEqual(stats.t_sf(-t, df), 1 - stats.t_sf(t, df), places=14)
                self.assertAlmostEqual(stats.t_cdf(t, df), 1 - stats.t_sf(t, df), places=14)
                self.assertAlmostEqual(stats.t_isf(stats.t_sf(t, df), df), t, places=8)

    def test_tiny_tail_keeps_relative_precision(self):
        # df = 1: P(T > 1e6) = atan(1e-6) / pi to leading order.
        self.assertAlmostEqual(stats.t_sf(1e6, 1) / (1e-6 / math.pi), 1.0, places=9)

    def test_edges(self):
        self.assertEqual(stats.t_sf(0.0, 4.2), 0.5)
        self.assertEqual(stats.t_sf(math.inf, 3), 0.0)
        self.assertEqual(stats.t_sf(-math.inf, 3), 1.0)
        self.assertEqual(stats.t_isf(0.5, 9), 0.0)
        self.assertLess(stats.t_isf(0.95, 10), 0)
        for bad in ((1.0, 0), (1.0, -2.0), (math.nan, 3), (1.0, math.nan)):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                stats.t_sf(*bad)
        for p in (0.0, 1.0, -0.1):
            with self.subTest(p=p), self.assertRaises(ValueError):
                stats.t_isf(p, 5)


class WelchTests(unittest.TestCase):
    def test_sleep_data_textbook_values(self):
        result = stats.welch_one_sided(SLEEP_DRUG_1, SLEEP_DRUG_2)
        self.assertAlmostEqual(result["t"], -1.8608, places=4)
        self.assertAlmostEqual(result["df"], 17.776, places=3)
        self.assertAlmostEqual(2 * result["p"], 0.07939, places=5)
        self.assertAlmostEqual(result["p"], 0.040, places=3)
        self.assertEqual((result["n_a"], result["n_b"]), (10, 10))
        self.assertAlmostEqual(result["mean_a"], 0.75, places=12)
        self.assertAlmostEqual(result["mean_b"], 2.33, places=12)
        self.assertAlmostEqual(result["diff"], -1.58, places=12)
        self.assertIsNone(result["reason"])

    def test_wikipedia_worked_example(self):
        result = stats.welch_one_sided(WIKI_A1, WIKI_A2)
        self.assertAlmostEqual(result["t"], -2.46, places=2)
        self.assertAlmostEqual(result["df"], 24.99, places=2)
        self.assertAlmostEqual(2 * result["p"], 0.021, places=3)

    def test_direction_is_h1_mean_a_below_mean_b(self):
        better = stats.welch_one_sided(SLEEP_DRUG_1, SLEEP_DRUG_2)
        worse = stats.welch_one_sided(SLEEP_DRUG_2, SLEEP_DRUG_1)
        self.assertLess(better["p"], 0.5)
        self.assertGreater(worse["p"], 0.5)
        self.assertAlmostEqual(better["p"] + worse["p"], 1.0, places=12)

    def test_val_bpb_sized_numbers(self):
        challenger = [0.9950, 0.9953, 0.9947]
        champion = [0.9979, 0.9982, 0.9976]
        result = stats.welch_one_sided(challenger, champion)
        self.assertAlmostEqual(result["df"], 4.0, places=6)  # equal n and sd
        self.assertAlmostEqual(result["t"], -0.0029 / math.sqrt(2 * 0.0003 ** 2 / 3), places=6)
        self.assertLess(result["p"], 0.001)

    def test_tiny_spreads_do_not_underflow(self):
        # sd^2 / n is about 1e-200 here; its square would underflow to zero.
        result = stats.welch_one_sided([1e-100, 2e-100, 3e-100], [5e-100, 6e-100, 7e-100])
        self.assertAlmostEqual(result["df"], 4.0, places=9)
        self.assertLess(result["p"], 0.01)

    def test_one_sample_with_zero_variance_still_tests(self):
        result = stats.welch_one_sided([1.0, 1.0, 1.0], [1.5, 2.0, 2.5, 3.0])
        self.assertAlmostEqual(result["df"], 3.0, places=12)  # all from b: n_b - 1
        self.assertLess(result["p"], 0.05)

    def test_guards_return_none_with_reason(self):
        short = stats.welch_one_sided([0.99], [1.0, 1.01])
        self.assertIsNone(short["t"])
        self.assertIsNone(short["df"])
        self.assertIsNone(short["p"])
        self.assertIn("at least 2", short["reason"])
        self.assertAlmostEqual(short["diff"], -0.015, places=12)
        self.assertIsNone(short["sd_a"])

        empty = stats.welch_one_sided([], [1.0, 1.01])
        self.assertIsNone(empty["p"])
        self.assertIsNone(empty["mean_a"])
        self.assertIsNone(empty["diff"])

        with self.assertRaises(ValueError):
            stats.welch_one_sided([0.99, math.nan], [1.0, 1.01])
        with self.assertRaises(ValueError):
            stats.pooled_one_sided([0.99], [math.inf], 0.001, 3)

        flat = stats.welch_one_sided([0.99, 0.99], [1.0, 1.0])
        self.assertIsNone(flat["p"])
        self.assertEqual(flat["se"], 0.0)
        self.assertIn("zero variance", flat["reason"])


class PooledTests(unittest.TestCase):
    def test_pooled_sd_by_hand(self):
        # squared deviations: [1, 3] -> 2; [10, 10, 13] -> 6; dof = 1 + 2
        sigma, dof = stats.pooled_sd([[1.0, 3.0], [10.0, 10.0, 13.0], [7.0]])
        self.assertEqual(dof, 3)
        self.assertAlmostEqual(sigma, math.sqrt(8 / 3), places=12)

    def test_single_group_is_its_sample_sd(self):
        data = [0.9971, 0.9984, 0.9979, 0.9990]
        sigma, dof = stats.pooled_sd([data])
        self.assertEqual(dof, 3)
        self.assertAlmostEqual(sigma, statistics.stdev(data), places=14)

    def test_equal_sized_groups_pool_their_variances(self):
        a, b = [1.0, 2.0, 4.0], [10.0, 10.5, 12.0]
        sigma, dof = stats.pooled_sd([a, b])
        expected = math.sqrt((statistics.variance(a) + statistics.variance(b)) / 2)
        self.assertEqual(dof, 4)
        self.assertAlmostEqual(sigma, expected, places=12)

    def test_no_replicates(self):
        self.assertEqual(stats.pooled_sd([]), (None, 0))
        self.assertEqual(stats.pooled_sd([[1.0], [2.0], []]), (None, 0))

    def test_pooled_one_sided(self):
        result = stats.pooled_one_sided([0.995, 0.996], [0.998], sigma=0.001, dof=8)
        se = 0.001 * math.sqrt(1 / 2 + 1 / 1)
        self.assertAlmostEqual(result["se"], se, places=15)
        self.assertAlmostEqual(result["t"], -0.0025 / se, places=9)
        self.assertEqual(result["df"], 8)
        self.assertAlmostEqual(result["p"], stats.t_cdf(-0.0025 / se, 8), places=12)

    def test_pooled_one_sided_guards(self):
        for args in (([], [1.0], 0.001, 3), ([1.0], [1.0], 0.0, 3),
                     ([1.0], [1.0], None, 3), ([1.0], [1.0], 0.001, 0)):
            with self.subTest(args=args):
                result = stats.pooled_one_sided(*args)
                self.assertIsNone(result["p"])
                self.assertTrue(result["reason"])


if __name__ == "__main__":
    unittest.main()
