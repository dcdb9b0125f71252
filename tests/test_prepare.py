"""prepare.py: tokenizer training, token byte lengths, the packing dataloader and evaluate_bpb.

prepare.py is loaded under a private name with HOME pointing at a temporary
directory that holds synthetic parquet shards, so its cache paths land there.
Constants are shrunk on that private module object, never in the product file.
"""

import contextlib
import io
import math
import os
import shutil
import tempfile
import unittest

import training_harness as harness

torch = None


def setUpModule():
    global torch
    harness.require_training_deps()
    import torch as torch_module
    torch = torch_module
    harness.set_torch_threads()


class CharTokenizer:
    """A stand-in tokenizer: one id per character (mod 250), BOS = 0."""

    def get_bos_token_id(self):
        return 0

    def encode(self, text, prepend=None, num_threads=8):
        rows = [[1 + ord(c) % 250 for c in t] for t in text]
        return [[prepend] + r for r in rows] if prepend is not None else rows


class PreparedHomeTest(unittest.TestCase):
    """Shared temporary HOME with two train shards and the validation shard."""

    @classmethod
    def setUpClass(cls):
        cls.home = tempfile.mkdtemp(prefix="ar-prepare-")
        harness.make_corpus(cls.home, num_train_shards=2, docs_per_shard=300, seed=3)
        cls.prepare = harness.load_module_from(harness.PREPARE_PY, "prepare_under_test", home=cls.home)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.home, ignore_errors=True)


class TokenizerTest(PreparedHomeTest):
    def test_paths_follow_home(self):
        self.assertEqual(self.prepare.CACHE_DIR, os.path.join(self.home, ".cache", "autoresearch"))
        self.assertEqual(len(self.prepare.split_files("train")), 2)
        self.assertEqual([os.path.basename(p) for p in self.prepare.split_files("val")],
                         ["shard_06542.parquet"])

    def test_train_tokenizer_and_wrapper(self):
        prepare = self.prepare
        prepare.VOCAB_SIZE = 400  # shrunk on this private copy only
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            prepare.train_tokenizer()
            prepare.train_tokenizer()  # second call finds the files and does nothing
        self.assertIn("already trained", out.getvalue())
        tok = prepare.Tokenizer.from_directory(prepare.TOKENIZER_DIR)
        self.assertEqual(tok.get_vocab_size(), 400)
        self.assertEqual(tok.get_bos_token_id(), 396)  # specials follow the 396 mergeable ranks
        self.assertEqual(tok.enc.decode([397, 398, 399]), "<|reserved_1|><|reserved_2|><|reserved_3|>")
        text = "Kalo mine 42 café!"
        ids = tok.encode(text)
        self.assertEqual(tok.decode(ids), text)
        self.assertEqual(tok.encode(text, prepend=396), [396] + ids)
        self.assertEqual(tok.encode(text, prepend="<|reserved_0|>"), [396] + ids)
        self.assertEqual(tok.encode([text, "x"], prepend=396), [[396] + ids, [396] + tok.encode("x")])
        self.assertEqual(tok.encode("<|reserved_0|>"), tok.enc.encode_ordinary("<|reserved_0|>"))
        table = prepare.get_token_bytes()
        self.assertEqual(table.dtype, torch.int32)
        self.assertEqual(table.tolist(), prepare.token_byte_lengths(tok.enc))
        self.assertEqual([i for i, n in enumerate(table.tolist()) if n == 0], [396, 397, 398, 399])

    def test_needs_a_train_and_the_val_shard(self):
        empty_home = tempfile.mkdtemp(prefix="ar-empty-")
        try:
            prepare = harness.load_module_from(harness.PREPARE_PY, "prepare_empty", home=empty_home)
            out = io.StringIO()
            with contextlib.redirect_stdout(out), self.assertRaises(SystemExit) as raised:
                prepare.train_tokenizer()
            self.assertEqual(raised.exception.code, 1)
            self.assertIn("at least one training shard", out.getvalue())
        finally:
            shutil.rmtree(empty_home, ignore_errors=True)


class TokenBytesTest(unittest.TestCase):
    """Byte length of each token decoded alone, with upstream's replacement-character quirk."""

    def test_quirk(self):
        import tiktoken
        prepare = harness.load_module_from(harness.PREPARE_PY, "prepare_bytes")
        ranks = {bytes([b]): b for b in range(256)}
        extra = [b"ab", "é".encode(), "東".encode()[:2], "東".encode()]
        for piece in extra:
            ranks[piece] = len(ranks)
        specials = {name: len(ranks) + i for i, name in enumerate(prepare.SPECIAL_TOKENS)}
        enc = tiktoken.Encoding(name="toy", pat_str=prepare.SPLIT_PATTERN, mergeable_ranks=ranks,
                                special_tokens=specials)
        lengths = prepare.token_byte_lengths(enc)
        self.assertEqual(lengths[:128], [1] * 128)
        self.assertEqual(lengths[128:256], [3] * 128)  # a lone continuation/lead byte decodes to U+FFFD
        self.assertEqual(lengths[256:260], [2, 2, 3, 3])  # "ab", "é", half of "東" (U+FFFD), "東"
        self.assertEqual(lengths[260:], [0, 0, 0, 0])


class PackingTest(unittest.TestCase):
    """fill_row on a crafted buffer: first longest that fits, else crop the first shortest."""

    def setUp(self):
        self.prepare = harness.load_module_from(harness.PREPARE_PY, "prepare_packing")

    def test_best_fit_then_crop(self):
        buffer = [[0, 1, 1, 1], [0, 2, 2, 2, 2, 2, 2], [0, 3], [0, 4, 4, 4, 4, 4, 4],
                  [0] + [5] * 11, [0, 6, 6, 6]]
        row = self.prepare.fill_row(buffer, 10, lambda: None)
        # 7 fits best (first of the two 7-long docs), then 3 left: the 2-long doc, then
        # 1 left: nothing fits, so the first shortest (4 long) is cropped to 1 token
        self.assertEqual(row, [0, 2, 2, 2, 2, 2, 2, 0, 3, 0])
        self.assertEqual(buffer, [[0, 4, 4, 4, 4, 4, 4], [0] + [5] * 11, [0, 6, 6, 6]])

    def test_exact_fit_and_refill_before_each_placement(self):
        buffer, pending, calls = [], [[0, 7, 7], [0, 8], [0, 9, 9, 9, 9]], []

        def refill():
            calls.append(len(buffer))
            while len(buffer) < 2 and pending:
                buffer.append(pending.pop(0))

        row = self.prepare.fill_row(buffer, 6, refill)
        self.assertEqual(row, [0, 7, 7, 0, 8, 0])
        self.assertEqual(calls, [0, 1, 1])  # topped up before each of the three placements
        self.assertEqual(buffer, [])  # the cropped document's remainder is dropped


class DataloaderTest(PreparedHomeTest):
    def test_rows_are_bos_aligned_documents(self):
        import pyarrow.parquet as pq
        prepare, tok = self.prepare, CharTokenizer()
        texts = pq.read_table(prepare.split_files("val")[0]).column("text").to_pylist()
        complete = {tuple(d) for d in tok.encode(texts, prepend=0)}
        B, T = 4, 64
        loader = prepare.make_dataloader(tok, B, T, "val", buffer_size=50)
        for _ in range(20):
            x, y, epoch = next(loader)
            self.assertEqual(tuple(x.shape), (B, T))
            self.assertEqual(x.dtype, torch.long)
            self.assertTrue(x.is_contiguous() and y.is_contiguous())  # upstream yields contiguous halves
            self.assertGreaterEqual(epoch, 1)
            rows = torch.cat([x, y[:, -1:]], dim=1)
            torch.testing.assert_close(rows[:, 1:], y)
            for row in rows.tolist():
                self.assertEqual(row[0], 0)
                starts = [i for i, t in enumerate(row) if t == 0] + [len(row)]
                pieces = [tuple(row[a:b]) for a, b in zip(starts, starts[1:])]
                for piece in pieces[:-1]:
                    self.assertIn(piece, complete)  # whole documents, no padding
                last = pieces[-1]
                self.assertTrue(last in complete or any(d[:len(last)] == last for d in complete))

    def test_epoch_counts_full_passes(self):
        batches = self.prepare.document_batches("val")
        epochs = [next(batches)[1] for _ in range(6)]  # 300 docs = 3 batches of <=128 per pass
        self.assertEqual(epochs, [1, 1, 1, 2, 2, 2])


class EvaluateBpbTest(PreparedHomeTest):
    """evaluate_bpb against a hand computation with a bigram toy model."""

    def test_matches_hand_computation(self):
        prepare, tok = self.prepare, CharTokenizer()
        prepare.MAX_SEQ_LEN, prepare.EVAL_TOKENS = 1024, 3 * 2 * 1024  # 3 batches of 2 rows
        os.makedirs(prepare.TOKENIZER_DIR, exist_ok=True)
        byte_table = torch.tensor([0] + [1 + (i % 3) for i in range(1, 251)], dtype=torch.int32)
        torch.save(byte_table, os.path.join(prepare.TOKENIZER_DIR, "token_bytes.pt"))
        logits = torch.randn(251, 251, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

        def toy_model(x, y, reduction="mean"):
            per_token = torch.nn.functional.cross_entropy(logits[x].view(-1, 251), y.reshape(-1),
                                                          reduction="none")
            return per_token if reduction == "none" else per_token.mean()

        got = prepare.evaluate_bpb(toy_model, tok, batch_size=2)
        table = logits.tolist()
        log_sum_exp = [math.log(sum(math.exp(v) for v in row)) for row in table]
        nats = nbytes = specials = 0
        loader = prepare.make_dataloader(tok, 2, 1024, "val")
        for _ in range(3):
            x, y, _ = next(loader)
            for xi, yi in zip(x.reshape(-1).tolist(), y.reshape(-1).tolist()):
                n = int(byte_table[yi])
                nbytes += n
                if n == 0:
                    specials += 1
                    continue
                nats += log_sum_exp[xi] - table[xi][yi]
        self.assertGreater(specials, 0)  # BOS targets exist and are skipped
        self.assertAlmostEqual(got, nats / (math.log(2) * nbytes), places=5)


class SidecarHelpersTest(unittest.TestCase):
    def setUp(self):
        self.prepare = harness.load_module_from(harness.PREPARE_PY, "prepare_sidecar")

    def test_module_constants_are_assigned_upper_case_names(self):
        source = ("import os\nA = 1\nB: int = 2\nfor C in range(3):\n    pass\n"
                  "A += 1\nlow = 3\nT = (1, 2)\nL = [1]\n")
        namespace = {"A": 2, "B": 2, "C": 2, "low": 3, "T": (1, 2), "L": [1], "MAX_SEQ_LEN": 256}
        self.assertEqual(self.prepare.module_constants(source, namespace), {"A": 2, "B": 2, "T": (1, 2)})

    def test_write_summary_creates_parents_and_replaces(self):
        with tempfile.TemporaryDirectory() as root:
            path = os.path.join(root, "a", "b", "summary.json")
            self.prepare.write_summary(path, {"val_bpb": 1.0})
            self.prepare.write_summary(path, {"val_bpb": 0.5, "hyperparameters": {"ADAM_BETAS": (0.8, 0.95)}})
            self.assertEqual(harness.read_json(path),
                             {"val_bpb": 0.5, "hyperparameters": {"ADAM_BETAS": [0.8, 0.95]}})
            self.assertEqual(os.listdir(os.path.dirname(path)), ["summary.json"])  # no temp file left


if __name__ == "__main__":
    unittest.main()
