"""train.py's model, optimizer, schedules and attention fallback.

Definitions are loaded by executing a train.py up to its `# Setup` banner
(training_harness.load_train_definitions), so the training loop never runs.
`baseline` is the released train.py pinned in tests/data (figures and rules
that an experiment is free to change); `train` is the working copy (mechanisms
that hold whatever its constants are).
"""

import contextlib
import dataclasses
import inspect
import io
import math
import os
import re
import subprocess
import sys
import tempfile
import unittest

import training_harness as harness

torch = None
train = None
baseline = None


def setUpModule():
    global torch, train, baseline
    harness.require_training_deps()
    import torch as torch_module
    torch = torch_module
    harness.set_torch_threads()
    with contextlib.redirect_stdout(io.StringIO()):
        train = harness.load_train_definitions()
        baseline = harness.load_baseline_definitions()


def meta_model(config, source=None):
    source = source or baseline
    with torch.device("meta"):
        return source.GPT(source.GPTConfig(**config))


def cpu_model(config, seed=0, source=None):
    torch.manual_seed(seed)
    model = meta_model(config, source)
    model.to_empty(device="cpu")
    model.init_weights()
    return model


def quiet_optimizer(model, **lrs):
    with contextlib.redirect_stdout(io.StringIO()):
        return model.setup_optimizer(**lrs)


DEFAULT = dict(sequence_len=2048, vocab_size=8192, n_layer=8, n_head=4, n_kv_head=4, n_embd=512,
               window_pattern="SSSL")
DEPTH4 = dict(sequence_len=2048, vocab_size=8192, n_layer=4, n_head=2, n_kv_head=2, n_embd=256,
              window_pattern="SSSL")
TINY = dict(sequence_len=256, vocab_size=1024, n_layer=2, n_head=1, n_kv_head=1, n_embd=128,
            window_pattern="SSSL")


class FiguresTest(unittest.TestCase):
    """The reference table on the baseline: parameter counts and FLOPs per token for three configs."""

    def check(self, config, params, flops):
        model = meta_model(config)
        self.assertEqual(model.num_scaling_params(), params)
        self.assertEqual(model.estimate_flops(), flops)
        return model

    def test_default_run(self):
        model = self.check(DEFAULT, dict(wte=4_194_304, value_embeds=16_777_216, lm_head=4_194_304,
                                         transformer_matrices=25_166_336, scalars=16, total=50_332_176),
                           239_078_400)
        attention = sum(12 * 4 * 128 * min(w, 2048) for w, _ in model.window_sizes)
        self.assertEqual(attention, 62_914_560)
        self.assertEqual(model.window_sizes, [(1024, 0)] * 3 + [(2048, 0)] + [(1024, 0)] * 3 + [(2048, 0)])
        self.assertEqual(sorted(int(i) for i in model.value_embeds), [1, 3, 5, 7])
        for i, block in enumerate(model.transformer.h):
            gate = block.attn.ve_gate
            self.assertEqual(gate is not None, i in (1, 3, 5, 7))
            if gate is not None:
                self.assertEqual(tuple(gate.weight.shape), (4, 32))

    def test_depth_4(self):
        model = self.check(DEPTH4, dict(wte=2_097_152, value_embeds=4_194_304, lm_head=2_097_152,
                                        transformer_matrices=3_145_856, scalars=8, total=11_534_472),
                           47_186_688)
        self.assertEqual(model.window_sizes, [(1024, 0)] * 3 + [(2048, 0)])
        self.assertEqual(sorted(int(i) for i in model.value_embeds), [1, 3])

    def test_tiny(self):
        model = self.check(TINY, dict(wte=131_072, value_embeds=131_072, lm_head=131_072,
                                      transformer_matrices=393_248, scalars=4, total=786_468),
                           3_735_744)
        self.assertEqual(model.window_sizes, [(128, 0), (256, 0)])
        self.assertEqual(sorted(int(i) for i in model.value_embeds), [1])

    def test_last_layer_always_long(self):
        model = meta_model(dict(TINY, n_layer=3, window_pattern="S"))
        self.assertEqual(model.window_sizes, [(128, 0), (128, 0), (256, 0)])

    def test_default_hyperparameters_build_the_default_model(self):
        baseline.vocab_size = 8192  # set by setup (the tokenizer's) in a real run
        self.assertEqual(baseline.build_model_config(baseline.DEPTH), baseline.GPTConfig(**DEFAULT))
        self.assertEqual(baseline.build_model_config(4), baseline.GPTConfig(**DEPTH4))
        micro_batch = baseline.DEVICE_BATCH_SIZE * baseline.MAX_SEQ_LEN
        self.assertEqual(baseline.TOTAL_BATCH_SIZE // micro_batch, 2)
        self.assertEqual(baseline.TOTAL_BATCH_SIZE % micro_batch, 0)
        import prepare
        self.assertEqual(prepare.EVAL_TOKENS // micro_batch, 80)


class OptimizerGroupsTest(unittest.TestCase):
    def default_optimizer(self):
        model = meta_model(DEFAULT)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            optimizer = model.setup_optimizer(
                unembedding_lr=baseline.UNEMBEDDING_LR, embedding_lr=baseline.EMBEDDING_LR,
                matrix_lr=baseline.MATRIX_LR, weight_decay=baseline.WEIGHT_DECAY,
                adam_betas=baseline.ADAM_BETAS, scalar_lr=baseline.SCALAR_LR)
        return model, optimizer, out.getvalue()

    def test_default_groups(self):
        model, optimizer, printed = self.default_optimizer()
        self.assertIn("Scaling AdamW LRs by 1/sqrt(512/768) = 1.224745", printed)
        groups = optimizer.param_groups
        adam = [g for g in groups if g["kind"] == "adamw"]
        muon = [g for g in groups if g["kind"] == "muon"]
        self.assertEqual([g["kind"] for g in groups], ["adamw"] * 5 + ["muon"] * 4)
        self.assertIs(adam[0]["params"][0], model.lm_head.weight)
        self.assertIs(adam[1]["params"][0], model.transformer.wte.weight)
        self.assertEqual(len(adam[2]["params"]), 4)
        self.assertIs(adam[3]["params"][0], model.resid_lambdas)
        self.assertIs(adam[4]["params"][0], model.x0_lambdas)
        expected_lrs = [0.0048990, 0.73485, 0.73485, 0.005, 0.5]
        for group, lr in zip(adam, expected_lrs):
            self.assertAlmostEqual(group["lr"], lr, places=5)
            self.assertEqual(group["eps"], 1e-10)
            self.assertEqual(group["weight_decay"], 0.0)
        self.assertEqual([tuple(g["betas"]) for g in adam], [(0.8, 0.95)] * 4 + [(0.96, 0.95)])
        shapes = [(tuple(g["params"][0].shape), len(g["params"])) for g in muon]
        self.assertEqual(shapes, [((4, 32), 4), ((512, 512), 32), ((512, 2048), 8), ((2048, 512), 8)])
        for group in muon:
            self.assertEqual((group["lr"], group["momentum"], group["ns_steps"], group["beta2"]),
                             (0.04, 0.95, 5, 0.95))
            self.assertEqual(group["weight_decay"], 0.2)
            self.assertEqual(group["initial_lr"], group["lr"])
        counted = sum(p.numel() for g in groups for p in g["params"])
        self.assertEqual(counted, sum(p.numel() for p in model.parameters()))

    def test_tall_group_steps_at_scaled_lr(self):
        model = cpu_model(TINY)
        optimizer = quiet_optimizer(model, matrix_lr=0.04)
        tokens = torch.randint(0, 1024, (2, 33))
        with torch.amp.autocast("cpu", dtype=torch.bfloat16):
            model(tokens[:, :-1], tokens[:, 1:]).backward()
        optimizer.step()
        last = optimizer.param_groups[-1]
        self.assertEqual(tuple(last["params"][0].shape), (512, 128))
        self.assertAlmostEqual(optimizer._muon_lr_t.item(), 0.08, places=6)

    def test_training_steps_lower_the_loss(self):
        """On the working copy, with its own learning rates: any sane edit still learns."""
        model = cpu_model(TINY, source=train)
        optimizer = quiet_optimizer(model, unembedding_lr=train.UNEMBEDDING_LR, embedding_lr=train.EMBEDDING_LR,
                                    matrix_lr=train.MATRIX_LR, weight_decay=train.WEIGHT_DECAY,
                                    adam_betas=train.ADAM_BETAS, scalar_lr=train.SCALAR_LR)
        tokens = torch.randint(0, 1024, (4, 65), generator=torch.Generator().manual_seed(1))
        losses = []
        for _ in range(6):
            with torch.amp.autocast("cpu", dtype=torch.bfloat16):
                loss = model(tokens[:, :-1], tokens[:, 1:])
            loss.backward()
            optimizer.step()
            model.zero_grad(set_to_none=True)
            losses.append(loss.item())
        self.assertAlmostEqual(losses[0], math.log(1024), delta=0.01)  # lm_head starts near zero
        self.assertLess(losses[-1], losses[0] - 1.0)


class ScheduleTest(unittest.TestCase):
    def test_lr_multiplier(self):
        points = {0.0: 1.0, 0.25: 1.0, 0.5: 1.0, 0.6: 0.8, 0.75: 0.5, 0.9: 0.2, 1.0: 0.0}
        for progress, expected in points.items():
            self.assertAlmostEqual(baseline.get_lr_multiplier(progress), expected, places=9, msg=progress)

    def test_warmup_starts_at_exactly_zero(self):
        saved = baseline.WARMUP_RATIO
        try:
            baseline.WARMUP_RATIO = 0.1
            self.assertEqual(baseline.get_lr_multiplier(0.0), 0.0)  # upstream: progress / WARMUP_RATIO
            self.assertAlmostEqual(baseline.get_lr_multiplier(0.05), 0.5, places=12)
            self.assertEqual(baseline.get_lr_multiplier(0.1), 1.0)
        finally:
            baseline.WARMUP_RATIO = saved

    def test_muon_momentum(self):
        for step, expected in {0: 0.85, 150: 0.90, 300: 0.95, 600: 0.95}.items():
            self.assertAlmostEqual(baseline.get_muon_momentum(step), expected, places=9, msg=step)

    def test_weight_decay(self):
        for progress in (0.0, 0.3, 1.0):
            self.assertAlmostEqual(baseline.get_weight_decay(progress), 0.2 * (1 - progress), places=12)

    def test_working_copy_schedules_stay_in_range(self):
        """Whatever its constants, the working copy's multipliers are finite and non-negative."""
        for progress in (0.0, 0.1, 0.5, 0.9, 1.0):
            lrm = train.get_lr_multiplier(progress)
            self.assertTrue(math.isfinite(lrm) and lrm >= 0, (progress, lrm))
        for step in (0, 100, 1000):
            self.assertTrue(math.isfinite(train.get_muon_momentum(step)))


class PolarExpressTest(unittest.TestCase):
    @staticmethod
    def orthogonalised_singular_values(shape, seed=0):
        G = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
        X = G.bfloat16()
        X = X / (X.norm(dim=(-2, -1), keepdim=True) * 1.02 + 1e-6)  # as muon_step_fused does
        return torch.linalg.svdvals(baseline.polar_express(X, 5).float())

    def test_rectangular_matrices(self):
        for shape in [(128, 32), (32, 128), (3, 256, 64), (4, 32)]:
            S = self.orthogonalised_singular_values(shape)
            self.assertGreater(S.min().item(), 0.8, shape)  # inputs spanned 0.35..1 of the largest
            self.assertLess(S.max().item(), 1.2, shape)
            self.assertLess((S.mean() - 1).abs().item(), 0.1, shape)

    def test_square_matrix(self):
        # a square Gaussian matrix has singular values near 0 that 5 steps cannot lift fully
        S = self.orthogonalised_singular_values((64, 64))
        self.assertLess(S.max().item(), 1.2)
        self.assertGreater(S.quantile(0.05).item(), 0.8)
        self.assertLess((S.median() - 1).abs().item(), 0.05)


class UpstreamRulesTest(unittest.TestCase):
    """Rules of the baseline that a run shows and no figure above would catch."""

    def test_adamw_step_in_upstream_order(self):
        """denom = sqrt(v / bias2) + eps; p += -(lr / bias1) * (m / denom), on a bf16 table like wte."""
        gen = torch.Generator().manual_seed(0)
        p0 = torch.randn(64, 16, generator=gen).bfloat16()
        grad = (torch.randn(64, 16, generator=gen) * 1e-2).bfloat16()
        m0, v0 = (grad * 0.5).clone(), (grad.square() * 0.3).clone()
        scalars = [torch.tensor(x) for x in (3.0, 0.7, 0.8, 0.95, 1e-10, 0.0)]
        step, lr, beta1, beta2, eps, wd = scalars
        p, m, v = p0.clone(), m0.clone(), v0.clone()
        baseline.adamw_step_fused(p, grad, m, v, *scalars)

        expected, m_ref, v_ref = p0.clone(), m0.clone().lerp_(grad, 1 - beta1), v0.clone().lerp_(grad.square(), 1 - beta2)
        expected.mul_(1 - lr * wd)
        denom = (v_ref / (1 - beta2 ** step)).sqrt() + eps
        expected.add_(m_ref / denom, alpha=-(lr / (1 - beta1 ** step)))
        self.assertTrue(torch.equal(p, expected))
        multiplied_first = p0 - (lr / (1 - beta1 ** step)) * m_ref / denom  # the order this fork used to have
        self.assertFalse(torch.equal(p, multiplied_first.bfloat16()), "the test cannot tell the orders apart")

    def test_cautious_weight_decay_only_where_update_and_weight_agree(self):
        gen = torch.Generator().manual_seed(2)
        params = torch.randn(1, 16, 8, generator=gen)
        grads = torch.randn(1, 16, 8, generator=gen)
        lr, wd = 0.1, 0.5

        def step(weight_decay):
            p = params.clone()
            baseline.muon_step_fused(grads.clone(), p, torch.zeros_like(p), torch.zeros(1, 16, 1),
                                     torch.tensor(0.9), torch.tensor(lr), torch.tensor(weight_decay),
                                     torch.tensor(0.95), 5)
            return p

        update = (params - step(0.0)) / lr  # what the parameter moves against, decay aside
        decay = step(0.0) - step(wd)
        decayed = decay.abs() > 0.5 * lr * wd * params.abs()
        same_sign = (update * params) > 0
        self.assertTrue(decayed.any() and (~decayed).any())
        self.assertTrue(torch.equal(decayed, same_sign))
        torch.testing.assert_close(decay[decayed], (lr * wd * params)[decayed], rtol=1e-2, atol=1e-6)

    def test_muon_buffers_take_the_parameter_dtype(self):
        params = [torch.nn.Parameter(torch.randn(8, 4).bfloat16()) for _ in range(2)]
        for p in params:
            p.grad = torch.randn_like(p)
        optimizer = baseline.MuonAdamW([dict(kind="muon", params=params, lr=0.02, momentum=0.95, ns_steps=5,
                                             beta2=0.95, weight_decay=0.0)])
        optimizer.step()
        state = optimizer.state[params[0]]
        self.assertEqual(sorted(state), ["momentum_buffer", "second_momentum_buffer"])
        self.assertEqual((state["momentum_buffer"].dtype, tuple(state["momentum_buffer"].shape)),
                         (torch.bfloat16, (2, 8, 4)))
        self.assertEqual((state["second_momentum_buffer"].dtype, tuple(state["second_momentum_buffer"].shape)),
                         (torch.bfloat16, (2, 8, 1)))


class UpstreamNamesTest(unittest.TestCase):
    """Names and defaults an agent or a patch written against upstream expects."""

    def test_names(self):
        for name in ("has_ve", "build_model_config", "GPTConfig", "GPT", "MuonAdamW", "adamw_step_fused",
                     "muon_step_fused", "get_lr_multiplier", "get_muon_momentum", "get_weight_decay", "norm"):
            self.assertTrue(hasattr(baseline, name), name)
        for name in ("_precompute_rotary_embeddings", "_compute_window_sizes", "setup_optimizer",
                     "num_scaling_params", "estimate_flops", "init_weights"):
            self.assertTrue(callable(getattr(baseline.GPT, name, None)), name)
        for name in ("_step_adamw", "_step_muon"):
            self.assertTrue(callable(getattr(baseline.MuonAdamW, name, None)), name)
        self.assertEqual(list(inspect.signature(baseline.build_model_config).parameters), ["depth"])

    def test_defaults(self):
        defaults = {name: param.default for name, param in
                    inspect.signature(baseline.GPT.setup_optimizer).parameters.items() if name != "self"}
        self.assertEqual(defaults, dict(unembedding_lr=0.004, embedding_lr=0.2, matrix_lr=0.02, weight_decay=0.0,
                                        adam_betas=(0.8, 0.95), scalar_lr=0.5))
        self.assertEqual(dataclasses.asdict(baseline.GPTConfig()),
                         dict(sequence_len=2048, vocab_size=32768, n_layer=12, n_head=6, n_kv_head=6,
                              n_embd=768, window_pattern="SSSL"))
        self.assertEqual([baseline.has_ve(i, 8) for i in range(8)], [False, True] * 4)


class PeakFlopsTest(unittest.TestCase):
    """MFU's denominator by device name (fork addition); the H100 keeps upstream's 989.5e12."""

    def test_known_and_unknown_devices(self):
        h100 = 989.5e12
        cases = {"NVIDIA H100 80GB HBM3": 989.5e12, "NVIDIA H100 PCIe": 756e12, "NVIDIA H100 NVL": 835.5e12,
                 "NVIDIA H200": 989.5e12, "NVIDIA A100-SXM4-80GB": 312e12, "NVIDIA A100 80GB PCIe": 312e12,
                 "NVIDIA L4": 121e12, "NVIDIA L40S": 362e12, "NVIDIA L40": 181e12, "NVIDIA A10": 125e12,
                 "NVIDIA GeForce RTX 4090": 165.2e12}
        for name, peak in cases.items():
            self.assertEqual(baseline.peak_bf16_flops(name, h100), (peak, None), name)
        for name in ("NVIDIA A10G", "Tesla T4", "Some Future GPU"):
            peak, note = baseline.peak_bf16_flops(name, h100)
            self.assertEqual(peak, h100, name)
            self.assertIn(name, note)
            self.assertIn("H100 peak", note)


class AttentionFallbackTest(unittest.TestCase):
    """SDPA with the boolean window mask equals a naive loop over allowed keys."""

    @staticmethod
    def naive(q, k, v, w):
        B, T, H, D = q.shape
        out = torch.zeros_like(q)
        for i in range(T):
            lo = 0 if w < 0 else max(0, i - w)
            scores = torch.einsum("bhd,bjhd->bhj", q[:, i], k[:, lo:i + 1]) / math.sqrt(D)
            out[:, i] = torch.einsum("bhj,bjhd->bhd", scores.softmax(-1), v[:, lo:i + 1])
        return out

    def test_matches_naive(self):
        gen = torch.Generator().manual_seed(0)
        for T, w in [(16, 16), (16, 8), (16, 3), (16, 0), (9, 64), (33, 32), (33, 16), (20, -1)]:
            q, k, v = (torch.randn(2, T, 3, 8, generator=gen) for _ in range(3))
            got = train.sdpa_attn_func(q, k, v, causal=True, window_size=(w, 0))
            self.assertEqual(got.shape, q.shape)
            torch.testing.assert_close(got, self.naive(q, k, v, w), atol=1e-5, rtol=1e-5,
                                       msg=f"T={T} w={w}")

    def test_grouped_kv_heads(self):
        gen = torch.Generator().manual_seed(1)
        q = torch.randn(1, 12, 4, 8, generator=gen)
        k, v = torch.randn(1, 12, 2, 8, generator=gen), torch.randn(1, 12, 2, 8, generator=gen)
        got = train.sdpa_attn_func(q, k, v, causal=True, window_size=(5, 0))
        expected = self.naive(q, k.repeat_interleave(2, dim=2), v.repeat_interleave(2, dim=2), 5)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)

    def test_cpu_uses_the_fallback(self):
        self.assertIs(train.flash_attn_func, train.sdpa_attn_func)

    def test_kernel_failure_on_cuda_is_one_warning_line(self):
        """When Flash-Attention 3 cannot load on CUDA, the run says so in one line and goes on with SDPA."""
        if torch.cuda.is_available():
            self.skipTest("a real GPU could load the kernel from its cache")
        import prepare
        saved_device, saved_offline = prepare.get_device_type, os.environ.get("HF_HUB_OFFLINE")
        prepare.get_device_type = lambda: "cuda"  # without a GPU the capability query fails, as a load would
        os.environ["HF_HUB_OFFLINE"] = "1"
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                module = harness.load_train_definitions()
        finally:
            prepare.get_device_type = saved_device
            if saved_offline is None:
                os.environ.pop("HF_HUB_OFFLINE")
            else:
                os.environ["HF_HUB_OFFLINE"] = saved_offline
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("WARNING: Flash-Attention 3 could not be loaded, attention runs on "
                                            "PyTorch SDPA"), lines[0])
        self.assertEqual(module.attention_backend, "sdpa")
        self.assertIs(module.flash_attn_func, module.sdpa_attn_func)


class KernelsPinTest(unittest.TestCase):
    """The pinned `kernels` range accepts get_kernel(repo) with a bare repo name, as train.py calls it."""

    RANGE = ((0, 11, 7), (0, 12, 2))  # >=0.11.7,<0.12.2

    @staticmethod
    def version_tuple(text):
        return tuple(int(part) for part in re.match(r"(\d+)\.(\d+)\.(\d+)", text).groups())

    def read(self, name):
        with open(os.path.join(harness.REPO_ROOT, name)) as f:
            return f.read()

    def test_pyproject_pins_the_range(self):
        self.assertIn('"kernels>=0.11.7,<0.12.2"', self.read("pyproject.toml"))
        self.assertIn('"torch==2.9.1"', self.read("pyproject.toml"))

    def test_lock_holds_a_version_in_range(self):
        lock = self.read("uv.lock")
        found = re.search(r'\[\[package\]\]\nname = "kernels"\nversion = "([^"]+)"', lock)
        self.assertIsNotNone(found, "uv.lock has no kernels package")
        low, high = self.RANGE
        self.assertTrue(low <= self.version_tuple(found.group(1)) < high, found.group(1))
        torch_lock = re.search(r'\[\[package\]\]\nname = "torch"\nversion = "([^"]+)"', lock)
        self.assertEqual(torch_lock.group(1), "2.9.1")

    def test_train_calls_get_kernel_with_the_repo_alone(self):
        source = self.read("train.py")
        self.assertIn("get_kernel(repo)", source)
        self.assertIn('"varunneal/flash-attention-3"', source)
        self.assertIn('"kernels-community/flash-attn3"', source)

    def test_get_kernel_offline_fails_only_for_the_missing_download(self):
        try:
            harness.require_training_deps(("kernels",))
        except unittest.SkipTest as skip:
            self.skipTest(str(skip))
        from importlib.metadata import version
        low, high = self.RANGE
        self.assertTrue(low <= self.version_tuple(version("kernels")) < high, version("kernels"))
        probe = (
            "import sys\n"
            "from kernels import get_kernel\n"
            "for repo in sys.argv[1:]:\n"
            "    try:\n"
            "        get_kernel(repo)\n"
            "        print('LOADED', repo)\n"
            "    except Exception as e:\n"
            "        print('ERROR', repo, type(e).__name__, str(e).replace(chr(10), ' '))\n"
        )
        with tempfile.TemporaryDirectory() as home:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "KERNELS_"))}
            env.update(HOME=home, HF_HOME=os.path.join(home, "hf"), HF_HUB_OFFLINE="1")
            result = subprocess.run(
                [sys.executable, "-c", probe, "varunneal/flash-attention-3", "kernels-community/flash-attn3"],
                env=env, capture_output=True, text=True, timeout=120)
        lines = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
        self.assertEqual(len(lines), 2, result.stdout + result.stderr)
        for line in lines:
            self.assertNotIn("version or revision", line)
            self.assertNotIn("trust_remote_code", line)
            self.assertRegex(line, r"NotFound|offline|OFFLINE|cached", line)


if __name__ == "__main__":
    unittest.main()
