"""End to end on CPU: synthetic shards -> prepare.py -> train.py, as real processes.

Copies of prepare.py and the working train.py with shrunken constants (the
spec's tiny config, a few seconds of budget) run in a temporary HOME; the
product files themselves have no knob for any of this. Nothing here depends
on the values of train.py's other constants, so an experiment keeps it green.
"""

import ast
import math
import os
import shutil
import tempfile
import unittest

import training_harness as harness

TIME_BUDGET = 8
SEED = 7
SUMMARY_FORMATS = [  # (key, value pattern): key plus colon padded to 18 characters
    ("val_bpb", r"\d+\.\d{6}"), ("training_seconds", r"\d+\.\d"), ("total_seconds", r"\d+\.\d"),
    ("peak_vram_mb", r"\d+\.\d"), ("mfu_percent", r"\d+\.\d\d"), ("total_tokens_M", r"\d+\.\d"),
    ("num_steps", r"\d+"), ("num_params_M", r"\d+\.\d"), ("depth", r"\d+"),
]
PROVENANCE_KEYS = ("schema_version", "started_at_utc", "finished_at_utc", "device", "attention", "torch_version",
                   "mfu_peak_flops", "mfu_note", "time_budget_s", "max_seq_len", "eval_tokens", "seed",
                   "hyperparameters", "train_py_sha256", "prepare_py_sha256")


def literal_constants(path):
    """Upper-case module-level constants of a file whose value is a plain literal (tuples as lists)."""
    with open(path) as f:
        tree = ast.parse(f.read())
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            if name.isupper() and isinstance(value, (bool, int, float, str, tuple)):
                constants[name] = list(value) if isinstance(value, tuple) else value
    return constants


def setUpModule():
    harness.require_training_deps()


class EndToEndTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="ar-e2e-")
        cls.home = os.path.join(cls.root, "home")
        cls.workdir = os.path.join(cls.root, "run")
        os.makedirs(cls.workdir)
        harness.make_corpus(cls.home, num_train_shards=2, docs_per_shard=1500)
        prepare_overrides = dict(harness.TINY_PREPARE, TIME_BUDGET=str(TIME_BUDGET))
        harness.write_shrunk_copies(cls.workdir, prepare_overrides, harness.TINY_TRAIN)
        cls.prepared = harness.run_script(cls.workdir, cls.home, ["prepare.py", "--num-shards", "2"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.assertEqual(self.prepared.returncode, 0, self.prepared.stdout + self.prepared.stderr)

    def untrained_bpb(self):
        """What a uniform prediction scores: ln(V) nats per scored token, over the same batches."""
        prepare = harness.load_module_from(os.path.join(self.workdir, "prepare.py"), "prepare_e2e", self.home)
        tokenizer = prepare.Tokenizer.from_directory(prepare.TOKENIZER_DIR)
        token_bytes = prepare.get_token_bytes()
        loader = prepare.make_dataloader(tokenizer, 8, prepare.MAX_SEQ_LEN, "val")
        scored = total_bytes = 0
        for _ in range(prepare.EVAL_TOKENS // (8 * prepare.MAX_SEQ_LEN)):
            _, y, _ = next(loader)
            nbytes = token_bytes[y.reshape(-1)]
            scored += int((nbytes > 0).sum())
            total_bytes += int(nbytes.sum())
        return math.log(tokenizer.get_vocab_size()) * scored / (math.log(2) * total_bytes)

    def test_prepare_reports_ready(self):
        self.assertIn("Data: 3/3 shards ready", self.prepared.stdout)
        self.assertIn("Tokenizer: trained 1024 tokens", self.prepared.stdout)
        tokenizer_dir = os.path.join(self.home, ".cache", "autoresearch", "tokenizer")
        self.assertEqual(sorted(os.listdir(tokenizer_dir)), ["token_bytes.pt", "tokenizer.pkl"])

    def run_variant(self, name, train_overrides=None, budget=TIME_BUDGET, env=None):
        """train.py in its own directory with other shrunken constants; tokenizer and data are shared."""
        workdir = os.path.join(self.root, name)
        os.makedirs(workdir)
        prepare_overrides = dict(harness.TINY_PREPARE, TIME_BUDGET=str(budget))
        harness.write_shrunk_copies(workdir, prepare_overrides, dict(harness.TINY_TRAIN, **(train_overrides or {})))
        return harness.run_script(workdir, self.home, ["train.py"], env=env)

    def test_training_run_summary_and_sidecar(self):
        summary_path = os.path.join(self.root, "out", "nested", "summary.json")  # parents don't exist yet
        result = harness.run_script(self.workdir, self.home, ["train.py"], env={
            "AUTORESEARCH_SUMMARY_PATH": summary_path, "AUTORESEARCH_SEED": str(SEED)})
        self.assertEqual(result.returncode, 0, result.stdout[-3000:] + result.stderr[-3000:])
        self.assertIn("Model config: {'sequence_len': 256, 'vocab_size': 1024, 'n_layer': 2,", result.stdout)
        self.assertIn("\nParameter counts:\n  wte                     : 131,072\n", result.stdout)
        self.assertIn("Attention: PyTorch SDPA on cpu", result.stdout)

        lines = result.stdout.splitlines()
        tail = lines[len(lines) - 1 - lines[::-1].index("---") + 1:]
        self.assertEqual(len(tail), 9, tail)
        for line, (key, value) in zip(tail, SUMMARY_FORMATS):
            self.assertRegex(line, rf"^{key}:{' ' * (17 - len(key))}{value}$")
        console = harness.parse_summary(result.stdout)

        sidecar = harness.read_json(summary_path)
        self.assertEqual(set(sidecar), {k for k, _ in SUMMARY_FORMATS} | set(PROVENANCE_KEYS))
        self.assertEqual(f"{sidecar['val_bpb']:.6f}", console["val_bpb"])
        self.assertEqual(sidecar["num_steps"], int(console["num_steps"]))
        self.assertIsInstance(sidecar["num_steps"], int)
        self.assertEqual(sidecar["depth"], 2)
        self.assertEqual((sidecar["peak_vram_mb"], sidecar["mfu_percent"]), (0.0, 0.0))
        self.assertEqual(f"{sidecar['training_seconds']:.1f}", console["training_seconds"])
        self.assertGreaterEqual(sidecar["training_seconds"], TIME_BUDGET)
        self.assertGreater(sidecar["num_steps"], 10)
        self.assertAlmostEqual(sidecar["total_tokens_M"], sidecar["num_steps"] * 4096 / 1e6)
        self.assertAlmostEqual(sidecar["num_params_M"], 0.786468)

        self.assertEqual(sidecar["schema_version"], 1)
        for key in ("started_at_utc", "finished_at_utc"):
            self.assertRegex(sidecar[key], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertLessEqual(sidecar["started_at_utc"], sidecar["finished_at_utc"])
        self.assertEqual(sidecar["device"], "cpu")
        self.assertEqual(sidecar["attention"], "sdpa")
        self.assertIsNone(sidecar["mfu_peak_flops"])
        self.assertIn("MFU not measured", sidecar["mfu_note"])
        import torch
        self.assertEqual(sidecar["torch_version"], torch.__version__)
        self.assertEqual((sidecar["time_budget_s"], sidecar["max_seq_len"], sidecar["eval_tokens"]),
                         (TIME_BUDGET, 256, 16 * 8 * 256))
        self.assertEqual(sidecar["seed"], SEED)
        hp = sidecar["hyperparameters"]
        self.assertEqual({k: hp[k] for k in ("DEPTH", "DEVICE_BATCH_SIZE", "TOTAL_BATCH_SIZE")},
                         {"DEPTH": 2, "DEVICE_BATCH_SIZE": 8, "TOTAL_BATCH_SIZE": 4096})
        written = literal_constants(os.path.join(self.workdir, "train.py"))  # whatever the working copy says
        self.assertEqual({k: hp[k] for k in written}, written)
        for name in ("ASPECT_RATIO", "HEAD_DIM", "EMBEDDING_LR", "UNEMBEDDING_LR", "MATRIX_LR", "ADAM_BETAS",
                     "SCALAR_LR", "WEIGHT_DECAY", "WARMUP_RATIO", "WARMDOWN_RATIO", "FINAL_LR_FRAC", "WINDOW_PATTERN"):
            self.assertIn(name, hp)
        self.assertTrue(all(k.isupper() for k in hp))
        for name in ("train.py", "prepare.py"):
            key = name.replace(".", "_") + "_sha256"
            self.assertEqual(sidecar[key], harness.sha256_of(os.path.join(self.workdir, name)))

        untrained = self.untrained_bpb()
        print(f"\n[e2e] val_bpb {sidecar['val_bpb']:.4f} (untrained {untrained:.4f}), "
              f"{sidecar['num_steps']} steps, total {sidecar['total_seconds']:.1f}s")
        self.assertTrue(math.isfinite(sidecar["val_bpb"]))
        self.assertLess(sidecar["val_bpb"], 0.65 * untrained)

    def test_eleven_steps_are_excluded_from_the_clock(self):
        """Steps 0-10 are not timed; with a budget of 1e-9 s the first timed step (11) ends the run."""
        result = self.run_variant("timing", budget="1e-9")
        self.assertEqual(result.returncode, 0, result.stdout[-2000:] + result.stderr[-2000:])
        summary = harness.parse_summary(result.stdout)
        self.assertEqual(summary["num_steps"], "12")
        self.assertEqual(summary["total_tokens_M"], f"{12 * 4096 / 1e6:.1f}")
        self.assertIn("step 00011 (0.0%)", result.stdout)  # step 11 still ran at progress 0
        self.assertNotIn("step 00012", result.stdout)

    def test_exploding_run_fails_without_sidecar(self):
        summary_path = os.path.join(self.root, "stale", "summary.json")
        os.makedirs(os.path.dirname(summary_path))
        with open(summary_path, "w") as f:
            f.write('{"val_bpb": 0.5}')  # a previous run's figures
        result = self.run_variant("explode", {"SCALAR_LR": 'float("nan")'},  # poisons every weight
                                  env={"AUTORESEARCH_SUMMARY_PATH": summary_path})
        self.assertEqual(result.returncode, 1, result.stdout[-2000:] + result.stderr[-2000:])
        self.assertTrue(result.stdout.endswith("s    FAIL\n"), result.stdout[-300:])  # as upstream: no newline first
        self.assertNotIn("---", result.stdout.splitlines())
        self.assertFalse(os.path.exists(summary_path))


if __name__ == "__main__":
    unittest.main()
