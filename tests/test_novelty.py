"""The novelty guard at the function level: matching, categories, policy, config."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memorylab_core import fingerprint, novelty  # noqa: E402


def run(run_id, description, status="discard", family="", **extra):
    row = {"run_id": run_id, "commit": run_id[-7:], "status": status, "family": family,
           "description": description, "hypothesis": "", "tags": [],
           "metrics": {"val_bpb": 1.001 if status != "crash" else None}}
    row.update(extra)
    return row


def guard(description, history, **kw):
    return novelty.assess({"description": description, "family": kw.pop("family", "")}, history, **kw)


# Paraphrases and near-misses written for this test, distinct from the shared dev set.
# (label, prior idea, planned idea); "same" must be blocked as a repeat of the prior
# discarded run in exploit mode, "different" must not be.
PAIRS = [
    ("same", "raise MATRIX_LR from 0.04 to 0.05", "Muon lr 0.05"),
    ("same", "increase the matrix learning rate by 25%", "MATRIX_LR = 0.05"),
    ("same", "depth 10", "use 10 transformer layers"),
    ("same", "double the depth", "DEPTH = 16"),
    ("same", "halve the device batch size", "DEVICE_BATCH_SIZE 64"),
    ("same", "TOTAL_BATCH_SIZE = 262144", "halve the total batch to 2**18 tokens"),
    ("same", "warmdown ratio 0.5 -> 0.3", "shorten warmdown to 30% of the budget"),
    ("same", "add a 5% LR warmup", "WARMUP_RATIO = 0.05"),
    ("same", "use GELU in the MLP", "swap relu² for gelu"),
    ("same", "disable QK norm", "remove the query/key RMS norm"),
    ("same", "add z-loss with coefficient 1e-4", "z loss 0.0001"),
    ("same", "rope theta 50000", "raise the rotary base to 5e4"),
    ("same", "sequence length 4096", "double the context length"),
    ("same", "GQA with 2 kv heads", "n_kv_head = 2"),
    ("same", "final LR fraction 0.1", "decay the LR to 10% of its peak by the end"),
    ("same", "muon momentum 0.98", "increase Muon's momentum to 0.98"),
    ("same", "use 3 polar express iterations in muon", "newton-schulz steps 5 -> 3"),
    ("same", "weight tying between wte and lm_head", "tie the input and output embeddings"),
    ("same", "unembedding lr 0.008", "double the lm_head learning rate"),
    ("same", "scalar lr 0.25", "halve SCALAR_LR"),
    ("same", "adam beta1 0.9", "ADAM_BETAS = (0.9, 0.95)"),
    ("same", "turn off Muon weight decay", "weight decay 0"),
    ("same", "aspect ratio 48", "n_embd 384"),
    ("same", "MLP ratio 4 -> 6", "widen the MLP to 6x"),
    ("same", "remove logit softcapping", "no softcap on the logits"),
    ("same", "clip grad norm at 1.0", "gradient clipping with max norm 1"),
    ("same", "x0 lambda init 0.2", "initialize x0_lambdas to 0.2"),
    ("same", "window pattern L", "use full attention in every layer"),
    ("same", "SSSL -> SL", "WINDOW_PATTERN = 'SLSL'"),
    ("same", "MLP hidden 8x", "double the MLP expansion ratio"),
    ("same", "8 attention heads", "head_dim 64"),
    ("same", "retry: bump muon lr to 0.06 with seed 43", "MATRIX_LR = 0.06"),
    ("same", "lower warmdown to 0.3 since the lr decays too late", "WARMDOWN_RATIO 0.3"),
    ("same", "n_kv_head 1", "multi-query attention"),
    ("same", "HEAD_DIM 128 -> 256 (fewer heads)", "head dim 256"),
    ("same", "disable rotary embeddings", "NoPE: no rotary position embedding"),
    ("same", "value embeddings on every layer", "VE on all layers"),
    ("same", "init lm_head with std 0.01", "lm_head weights ~ N(0, 0.01)"),
    ("same", "zero init for the MLP output projection", "mlp c_proj init 0"),
    ("same", "no nesterov in muon", "disable Nesterov momentum"),
    ("same", "z-loss 1e-4 on logits", "add 0.0001 z loss"),
    ("same", "x0 lambda init 0.5", "x0_lambdas start at 0.5"),
    ("same", "short window 512", "half window size 1024 -> 512"),
    ("same", "momentum warmup 600 steps", "ramp Muon momentum over 600 steps instead of 300"),
    ("same", "muon beta2 0.99", "NorMuon beta2 0.95 -> 0.99"),
    ("same", "parallel attention and MLP blocks", "run attn and mlp in parallel"),
    ("same", "TOTAL_BATCH_SIZE 2**20", "double gradient accumulation steps"),
    ("same", "no warmdown, constant lr", "WARMDOWN_RATIO = 0.0"),
    ("same", "ASPECT_RATIO 64 -> 128", "double the model width"),
    ("same", "swiglu with mlp ratio 8/3", "replace relu² by SwiGLU"),
    ("same", "HEAD_DIM 64", "use 64-dim heads"),
    ("same", "ADAM_BETAS = (0.9, 0.99)", "adam beta1 0.9 and beta2 0.99"),
    ("same", "Try DEPTH=10 with ASPECT_RATIO=64", "depth 10"),
    ("same", "shrink head_dim to 64 => 8 heads", "HEAD_DIM 64"),
    ("same", "set window pattern to SSLL (more global attention)", "WINDOW_PATTERN='SSLL'"),
    ("same", "reduce warmdown from 50% to 40% of training", "WARMDOWN_RATIO 0.4"),
    ("same", "rotary base 10000 -> 20000", "double the RoPE base"),
    ("same", "2x lr for scalars", "SCALAR_LR 1.0"),
    ("different", "DEPTH=10", "DEPTH=10, MATRIX_LR=0.03"),
    ("different", "WINDOW_PATTERN SSLL", "WINDOW_PATTERN SLLL"),
    ("different", "no VE", "no VE gates"),
    ("different", "softcap 30", "softcap off"),
    ("different", "TOTAL_BATCH_SIZE 2**20", "halve gradient accumulation steps"),
    ("different", "EMBEDDING_LR 0.6 -> 0.9", "embedding lr -50%"),
    ("different", "ADAM_BETAS = (0.9, 0.99)", "adam betas (0.7, 0.9)"),
    ("different", "MAX_SEQ_LEN 1024, DEVICE_BATCH_SIZE 256", "MAX_SEQ_LEN 4096, DEVICE_BATCH_SIZE 64"),
    ("different", "lower warmdown to 0.3 since the lr decays too late", "lower the lr"),
    ("different", "zero init for the MLP output projection", "zero init for the attention output projection"),
    ("different", "muon beta2 0.99", "muon momentum 0.99"),
    ("different", "2 kv heads", "2 attention heads"),
    ("different", "momentum warmup 600 steps", "lr warmup 600 steps"),
    ("different", "double the warmup", "double the warmdown"),
    ("different", "10x larger lm_head init", "10x larger lm_head lr"),
    ("different", "learned positional embedding", "sinusoidal positional embedding"),
    ("different", "add attention sinks", "remove attention sinks"),
    ("different", "raise MATRIX_LR to 0.05", "raise EMBEDDING_LR to 0.8"),
    ("different", "double the depth", "double the aspect ratio"),
    ("different", "halve the device batch size", "halve the total batch size"),
    ("different", "warmdown ratio 0.3", "warmup ratio 0.3"),
    ("different", "use GELU in the MLP", "use SwiGLU in the MLP"),
    ("different", "disable QK norm", "disable the value embedding gates"),
    ("different", "add z-loss 1e-4", "label smoothing 0.1"),
    ("different", "rope theta 50000", "rope theta 5000"),
    ("different", "muon momentum 0.98", "muon momentum 0.9"),
    ("different", "adam beta1 0.9", "adam beta2 0.9"),
    ("different", "weight decay 0", "weight decay 0.4"),
    ("different", "x0 lambda init 0.2", "resid lambda init 0.2"),
    ("different", "tie wte and lm_head", "untie wte and lm_head"),
    ("different", "remove the ve gates", "zero-init the value embedding gates"),
    ("different", "MATRIX_LR 0.04 → 0.03", "MATRIX_LR 0.04 → 0.05"),
    ("different", "window pattern L", "window pattern S"),
    ("different", "sequence length 1024", "short window 1024"),
    ("different", "weight decay 0.3", "adam weight decay 0.3 on lm_head"),
    ("different", "qk norm off", "remove the final norm before lm_head"),
    ("different", "batch size 2**20 tokens", "batch size 32 sequences"),
    ("different", "final lr frac 0.05", "warmup 5%"),
    ("different", "z-loss 1e-4", "z-loss 1e-2"),
    ("different", "unembedding lr 0.008", "embedding lr 0.008"),
    # schedules, qualifiers and equivalent spellings (see docs/novelty.md, "Canonical changes")
    ("same", "keep the Muon weight decay flat for the whole run", "no weight-decay schedule: constant wd"),
    ("same", "constant weight decay, no ramp to zero", "stop decaying wd over training"),
    ("different", "constant weight decay, no ramp to zero", "lower weight decay to 0.1"),
    ("different", "keep Muon wd constant through training", "decay the Muon wd linearly to zero"),
    ("same", "disable cautious weight decay", "plain weight decay in Muon, no sign mask"),
    ("different", "disable cautious weight decay", "disable weight decay"),
    ("same", "lower the cautious weight decay to 0.1", "WEIGHT_DECAY = 0.1"),
    ("same", "WEIGHT_DECAY 0.4", "double the cautious weight decay"),
    ("same", "5 -> 4 Newton-Schulz iterations", "four polar express steps"),
    ("different", "orthogonalization with 4 iterations", "muon momentum warmup 400 steps"),
    ("same", "drop the logit soft-capping", "raw logits, no tanh cap"),
    ("same", "softcap 15 -> 20", "cap logits with 20*tanh(logits/20)"),
    ("different", "softcap 20*tanh(x/20)", "softcap 30"),
    ("same", "MLP hidden dim 2x n_embd", "mlp ratio 2"),
    ("same", "ffn expansion 6", "feed-forward hidden size = 6*model_dim"),
    ("different", "mlp hidden 3*n_embd", "n_embd 384"),
    ("same", "muon momentum 0.9", "lower Muon momentum from 0.95 to 0.9 (keep the 0.85 warmup start)"),
    ("same", "value embeddings in every layer", "VE in all 12 layers"),
    ("different", "VE on all 8 layers", "depth 16"),
    ("same", "NorMuon beta2 0.9", "second-moment decay 0.9 for Muon's variance reduction"),
    ("different", "NorMuon beta2 0.9", "disable NorMuon variance reduction"),
    ("different", "second-moment beta 0.99 in Adam", "muon beta2 0.99"),
    ("same", "disable QK norm", "no RMSNorm on queries and keys"),
    ("different", "RMS-normalize queries and keys", "remove QK norm"),
    ("different", "qk norm after rotary", "remove rotary"),
    ("same", "ASPECT_RATIO 128", "model_dim = 128 * depth"),
    ("different", "model_dim = depth*96", "model_dim = depth*48"),
    ("same", "WARMDOWN_RATIO 0.6", "start the warmdown at 40% of training"),
    ("different", "WARMDOWN_RATIO 0.6", "start the warmdown at 60% of training"),
    ("same", "warmdown 0.4", "decay LR over the final 40% of steps"),
    ("different", "end the warmdown at 20% of the peak LR", "warmdown 20%"),
    ("same", "init resid_lambdas to 0.5", "start the residual scalars at 0.5"),
    ("same", "zero-init the value embeddings", "initialize value embeddings with zeros"),
    ("same", "zero-init lm_head", "lm_head weights start at zero"),
    ("different", "zero-init lm_head", "zero-init wte"),
    ("same", "remove x0 lambdas", "drop the x0 skip path"),
    ("same", "window pattern L", "no sliding windows, full attention in every layer"),
    ("same", "WINDOW_PATTERN SL", "global attention every other layer"),
    ("different", "global attention every other layer", "global attention on every layer"),
    ("same", "short window 256", "quarter-length short windows (seq_len / 8)"),
    ("same", "short window 1536", "short windows cover 3/4 of the context"),
    ("same", "short window 512", "local attention window halved to 512"),
    ("different", "short window 512 tokens", "sequence length 512"),
    ("same", "adam beta2 0.99", "AdamW beta2 0.95 -> 0.99"),
    ("different", "AdamW beta2 0.99", "switch the matrix optimizer to AdamW"),
    ("same", "DEVICE_BATCH_SIZE 32", "micro-batch 32 sequences (8 grad accum steps)"),
    ("different", "DEVICE_BATCH_SIZE 32", "TOTAL_BATCH_SIZE 2**17"),
    ("different", "grad accum 2 -> 1", "device batch 128 -> 64"),
    ("same", "head dim 256", "2 attention heads (head_dim 256 at model_dim 512)"),
    ("same", "n_kv_head 2", "GQA: 2 KV heads shared by 4 query heads"),
    ("same", "FINAL_LR_FRAC 0.05", "anneal lr to 5% of peak instead of 0"),
    ("same", "remove rotary embeddings", "NoPE (no position encoding)"),
    ("same", "disable nesterov", "plain (non-nesterov) momentum in Muon"),
    ("same", "remove VE gates", "value embeddings without the sigmoid gates"),
    ("different", "value embeddings without the sigmoid gates", "value embeddings with sigmoid gates initialized at 1"),
    ("same", "WARMDOWN_RATIO 0", "flat learning rate until the end"),
    ("same", "remove the muon momentum warmup", "momentum constant at 0.95 from the first step"),
    ("same", "MATRIX_LR 0.03", "muon lr x0.75"),
    ("same", "SwiGLU MLP", "switch the MLP to SwiGLU with hidden 8/3*d"),
    ("different", "muon lr 0.05 (warmup 5%)", "muon lr 0.05 (warmup 10%)"),
    ("different", "disable QK norm and softcap", "disable QK norm"),
    ("same", "keep depth at 8, raise matrix lr to 0.05", "MATRIX_LR 0.05"),
    ("different", "double the batch (grad accum 4)", "halve the batch (grad accum 1)"),
    # inflections, formulas, ramps and shares of the run
    ("same", "SOFTCAP 15 -> 20", "softcapping 20 (was 15)"),
    ("same", "remove logit softcap", "stop soft-capping the logits"),
    ("different", "swap relu^2 for tanh in the MLP", "remove the logit softcap"),
    ("same", "muon momentum 0.95 -> 0.97", "momentum ramp target 0.97 instead of 0.95"),
    ("same", "muon momentum 0.95 -> 0.9", "Muon momentum warmup now goes 0.85 -> 0.9 (previously 0.85 -> 0.95)"),
    ("different", "muon momentum 0.9", "start Muon momentum at 0.9 instead of 0.85"),
    ("different", "muon momentum 0.95 -> 0.98", "Muon momentum warmup from 0.85 to 0.95 over 600 steps"),
    ("same", "momentum warmup 300 -> 600 steps", "Muon momentum warmup from 0.85 to 0.95 over 600 steps"),
    ("same", "constant WD", "weight decay schedule: linear-to-zero -> constant"),
    ("same", "WD_SCHEDULE off", "keep WEIGHT_DECAY at 0.2 for the whole run instead of (1 - progress) scaling"),
    ("different", "constant weight decay", "weight decay 0.2 -> 0.1, still ramped to zero"),
    ("same", "WARMUP_RATIO 0.1", "linear LR warmup for the first 10% of training"),
    ("same", "WARMDOWN_RATIO 0.5 -> 0.4", "linear decay to zero across the final 40% of the time budget"),
    ("different", "warm up the lr over the first 5% of training", "decay the lr over the last 5% of training"),
    ("different", "warmdown 0.5 -> 0.4", "warmup over the first 40% of training"),
    ("same", "WARMDOWN_RATIO 0.5 -> 0.75", "begin the cooldown a quarter of the way into training"),
    ("same", "VE_GATE off", "value embeddings added without their gates"),
    ("different", "embedding lr 0.6 -> 0.4", "value embeddings on all layers"),
    ("same", "z-loss 1e-4", "add 1e-4 * logsumexp(logits)^2 to the loss"),
    ("same", "WARMDOWN_RATIO 0.5 -> 0.25", "cool-down: anneal the lr over just the final quarter of the run"),
    ("different", "WARMDOWN_RATIO 0.5 -> 0.25", "end the lr at 25% of its peak"),
    ("same", "DEPTH 8 -> 10", "go to 10 layers (model_dim 512 -> 640)"),
    ("same", "ASPECT_RATIO 80", "model_dim 640 at depth 8"),
    ("different", "ASPECT_RATIO 80", "DEPTH 10 (model_dim 640)"),
    ("same", "CAUTIOUS_WD off", "decay every coordinate of the matrices, regardless of sign agreement"),
    ("different", "drop the cautious mask from weight decay", "decay only where update and weight have the same sign"),
    ("same", "N_KV_HEAD 1", "multi-query: n_kv_head = n_head // 4"),
    ("different", "n_kv_head = n_head // 2", "n_kv_head = n_head // 4"),
    ("same", "kv heads 4 -> 2", "pair the query heads: two query heads per key/value head"),
    # a part named by its whole is the part: the gates of the value embeddings are not the embeddings
    ("different", "drop the value embeddings entirely", "strip the gating from the value embeddings, keep the tables"),
    ("same", "VE gates off", "take the gate off each value embedding"),
    ("different", "remove the x0 lambdas", "zero the scalars on the residual stream"),
    # an aside that restates an unchanged setting, or follows from the change, adds nothing
    ("same", "MUON_MOMENTUM 0.97", "lift Muon's Nesterov momentum to 0.97 (the 300 warmup steps stay unchanged)"),
    ("same", "TOTAL_BATCH_SIZE 2**18", "one micro-batch per step: 262144 tokens per step (no gradient accumulation)"),
    ("same", "ASPECT_RATIO 96", "96 dims per layer of depth"),
    ("same", "WINDOW_PATTERN = SL", "alternate local and global attention layers"),
    ("different", "WINDOW_PATTERN = SL", "alternating value embeddings with a deeper model"),
]


class PairTests(unittest.TestCase):
    def test_paraphrases_match_and_near_misses_do_not(self):
        for label, prior, planned in PAIRS:
            with self.subTest(prior=prior, planned=planned):
                g = guard(planned, [run("20260101T000000Z-aaaaaaa", prior)])
                blocked = g["policy"]["decision"] == "block"
                self.assertEqual(blocked, label == "same", g["explanation"]["text"])


class MatcherTests(unittest.TestCase):
    def test_same_knob_same_value_is_the_same_idea(self):
        g = guard("MATRIX_LR = 0.06", [run("r1", "bump the Muon learning rate to 0.06")])
        self.assertEqual(g["classification"], "repeat_failure")
        self.assertEqual(g["top_matches"][0]["relation"], "same")
        self.assertEqual(g["top_matches"][0]["run_id"], "r1")

    def test_same_direction_other_value_is_a_related_followup(self):
        history = [run("r1", "MATRIX_LR = 0.06")]
        g = guard("MATRIX_LR = 0.08", history)
        self.assertEqual(g["classification"], "novel")
        self.assertEqual(g["explanation"]["nearby"][0]["relation"], "related")
        # in the same family the 0.08 allowance makes it count
        history = [run("r1", "MATRIX_LR = 0.06", status="keep", family="lr")]
        g = guard("MATRIX_LR = 0.08", history, family="lr")
        self.assertEqual(g["classification"], "incremental_followup")
        self.assertEqual(g["policy"]["decision"], "allow")

    def test_an_opposite_is_never_a_repeat_whatever_the_threshold(self):
        history = [run("r1", "increase the warmdown to 0.7")]
        for threshold in (0.62, 0.3, 0.0):
            g = guard("decrease the warmdown to 0.3", history, threshold=threshold)
            self.assertEqual(g["classification"], "novel", threshold)
        self.assertEqual(g["explanation"]["nearby"][0]["relation"], "opposite")

    def test_different_knobs_are_different_ideas(self):
        g = guard("adam beta2 0.99", [run("r1", "muon beta2 0.99")], threshold=0.1)
        self.assertEqual(g["classification"], "novel")

    def test_text_fallback_for_unparsed_ideas(self):
        history = [run("r1", "attention sinks with learned sink tokens")]
        self.assertEqual(guard("attention sinks with learned sink tokens", history)["classification"],
                         "repeat_failure")
        self.assertEqual(guard("attention sink tokens, learned", history)["classification"], "repeat_failure")
        self.assertEqual(guard("smear gate on the token stream", history)["classification"], "novel")
        self.assertEqual(guard("attention sink tokens, learned", history)["explanation"]["method"], "text")

    def test_text_with_other_numbers_is_a_followup_not_a_repeat(self):
        history = [run("r1", "attention sinks with 4 sink tokens")]
        self.assertEqual(guard("attention sinks with 8 sink tokens", history)["classification"], "novel")
        self.assertEqual(guard("attention sinks with 4 sink tokens", history)["classification"], "repeat_failure")

    def test_a_substitution_is_another_variant(self):
        history = [run("r1", "learned positional embedding")]
        self.assertEqual(guard("sinusoidal positional embedding", history)["classification"], "novel")
        self.assertEqual(guard("learned absolute position embeddings", history)["classification"],
                         "repeat_failure")

    def test_threshold_tunes_the_text_fallback(self):
        history = [run("r1", "attention sinks with learned sink tokens")]
        loose = guard("learned sink tokens in every block", history, threshold=0.3)
        strict = guard("learned sink tokens in every block", history, threshold=0.9)
        self.assertEqual(loose["classification"], "repeat_failure")
        self.assertEqual(strict["classification"], "novel")

    def test_precomputed_features_are_used(self):
        row = run("r1", "(description not used)")
        row["novelty_features"] = json.loads(json.dumps(novelty.features({"description": "MATRIX_LR 0.06"})))
        self.assertEqual(guard("muon lr 0.06", [row])["classification"], "repeat_failure")

    def test_stale_features_are_recomputed(self):
        row = run("r1", "MATRIX_LR 0.06", novelty_features={"version": -1})
        self.assertEqual(guard("muon lr 0.06", [row])["classification"], "repeat_failure")

    def test_base_constants_resolve_relative_changes(self):
        history = [run("r1", "DEPTH 24")]
        self.assertEqual(guard("double the depth", history)["classification"], "novel")
        self.assertEqual(guard("double the depth", history, base_constants={"DEPTH": 12})["classification"],
                         "repeat_failure")

    def test_features_are_json_and_compact(self):
        f = novelty.features({"description": "raise MATRIX_LR to 0.05", "hypothesis": "faster",
                              "family": "lr", "tags": ["lr", "muon"]})
        self.assertEqual(json.loads(json.dumps(f)), f)
        self.assertEqual(f["changes"], [{"knob": "MATRIX_LR", "direction": "up", "value": 0.05}])
        self.assertEqual(f["knobs"], ["MATRIX_LR"])
        self.assertIn("muon", f["tokens"])
        self.assertIn("faster", f["context"])


class CategoryTests(unittest.TestCase):
    def test_novel_on_empty_history(self):
        g = guard("MATRIX_LR 0.05", [])
        self.assertEqual((g["classification"], g["match_count"], g["top_matches"]), ("novel", 0, []))
        self.assertEqual(set(g["counts"]), set(novelty.CATEGORIES))

    def test_duplicate_of_a_kept_run(self):
        g = guard("MATRIX_LR 0.05", [run("r1", "muon lr 0.05", status="keep")])
        self.assertEqual(g["classification"], "duplicate_run")

    def test_repeat_of_a_discarded_or_crashed_run(self):
        for status in ("discard", "crash"):
            g = guard("MATRIX_LR 0.05", [run("r1", "muon lr 0.05", status=status)])
            self.assertEqual(g["classification"], "repeat_failure", status)

    def test_known_success(self):
        history = [run("r1", "attention sinks with learned sink tokens", status="keep")]
        g = guard("attention sinks with learned sink tokens in every block", history)
        self.assertEqual(g["classification"], "known_success")
        self.assertLess(g["top_matches"][0]["score"], novelty.DUPLICATE_LEVEL)

    def test_incremental_followup_needs_the_same_family(self):
        history = [run("r1", "attention sinks with learned sink tokens", status="keep", family="attn")]
        planned = "attention sinks with learned sink tokens in every block"
        self.assertEqual(guard(planned, history, family="attn")["classification"], "incremental_followup")
        self.assertEqual(guard(planned, history, family="other")["classification"], "known_success")

    def test_first_category_in_contract_order_wins(self):
        history = [run("r1", "muon lr 0.05", status="discard"), run("r2", "muon lr 0.05", status="keep")]
        g = guard("MATRIX_LR 0.05", history)
        self.assertEqual(g["classification"], "duplicate_run")
        self.assertEqual(g["counts"]["repeat_failure"], 1)
        self.assertEqual(g["match_count"], 2)

    def test_same_family_counts_from_008_below(self):
        history = [run("r1", "MATRIX_LR = 0.06", family="lr")]
        # a related follow-up scores 0.56-0.60: under 0.62, over 0.62 - 0.08
        self.assertEqual(guard("MATRIX_LR = 0.07", history)["classification"], "novel")
        self.assertEqual(guard("MATRIX_LR = 0.07", history, family="LR")["classification"], "repeat_failure")

    def test_top_matches_fields_and_limit(self):
        history = [run(f"r{i}", "muon lr 0.05", status="keep") for i in range(5)]
        g = guard("MATRIX_LR 0.05", history, limit=2)
        self.assertEqual(g["match_count"], 5)
        self.assertEqual([m["run_id"] for m in g["top_matches"]], ["r4", "r3"])  # newest first on ties
        for key in ("category", "score", "run_id", "commit", "status", "val_bpb", "description"):
            self.assertIn(key, g["top_matches"][0])

    def test_guard_dict_has_the_contract_fields(self):
        g = guard("MATRIX_LR 0.05", [], mode="explore", threshold=0.7)
        for key in ("classification", "probe_text", "threshold", "match_count", "counts", "top_matches",
                    "mode", "effective_threshold", "policy", "explanation", "config_delta"):
            self.assertIn(key, g)
        self.assertEqual(g["threshold"], 0.7)
        self.assertAlmostEqual(g["effective_threshold"], 0.65)
        self.assertEqual(g["policy"]["mode"], "explore")
        self.assertEqual(json.loads(json.dumps(g)), g)


class SameIdeaTests(unittest.TestCase):
    def test_same_idea_of_two_descriptions_and_of_code(self):
        self.assertTrue(novelty.same_idea({"description": "MATRIX_LR 0.04->0.05 (worse)"},
                                          {"description": "muon lr 0.05"})[0])
        same, score, relation, _ = novelty.same_idea({"description": "MATRIX_LR 0.04->0.05"},
                                                     {"description": "muon lr 0.06"})
        self.assertEqual((same, relation), (False, "related"))
        depth = {"description": "x", "change_set": {"constants": [{"name": "DEPTH", "old": 4, "new": 6}], "hunks": []}}
        self.assertTrue(novelty.same_idea(depth, {"description": "depth 6"})[0])
        self.assertEqual(novelty.same_idea(depth, {"description": "depth 8 -> 6"})[2], "same")   # same target

    def test_the_default_family_is_no_family(self):
        history = [run("r1", "MATRIX_LR = 0.06", family="general")]
        self.assertEqual(guard("MATRIX_LR = 0.07", history, family="general")["classification"], "novel")


class PolicyTests(unittest.TestCase):
    TABLE = {
        "novel": ("allow", "caution", "block"),
        "duplicate_run": ("block", "block", "allow"),
        "repeat_failure": ("block", "block", "block"),
        "incremental_followup": ("block", "allow", "allow"),
        "known_success": ("block", "allow", "allow"),
    }

    def test_policy_table(self):
        for classification, decisions in self.TABLE.items():
            for mode, decision in zip(novelty.MODES, decisions):
                p = novelty.policy(classification, mode)
                self.assertEqual((p["mode"], p["decision"]), (mode, decision), (classification, mode))
                self.assertTrue(p["rationale"])

    def test_each_classification_in_each_mode_through_assess(self):
        histories = {
            "novel": ("MATRIX_LR 0.05", [], ""),
            "duplicate_run": ("MATRIX_LR 0.05", [run("r1", "muon lr 0.05", status="keep")], ""),
            "repeat_failure": ("MATRIX_LR 0.05", [run("r1", "muon lr 0.05")], ""),
            "incremental_followup": ("MATRIX_LR 0.06", [run("r1", "muon lr 0.05", status="keep", family="lr")],
                                     "lr"),
            "known_success": ("attention sinks with learned sink tokens in every block",
                              [run("r1", "attention sinks with learned sink tokens", status="keep")], ""),
        }
        for classification, (description, history, family) in histories.items():
            for mode, decision in zip(novelty.MODES, self.TABLE[classification]):
                g = guard(description, history, mode=mode, family=family)
                self.assertEqual(g["classification"], classification, (classification, mode))
                self.assertEqual(g["policy"]["decision"], decision, (classification, mode))

    def test_effective_threshold(self):
        self.assertAlmostEqual(novelty.effective_threshold(0.62, "explore"), 0.57)
        self.assertAlmostEqual(novelty.effective_threshold(0.62, "exploit"), 0.62)
        self.assertAlmostEqual(novelty.effective_threshold(0.62, "replicate"), 0.54)
        self.assertEqual(novelty.effective_threshold(1.5, "exploit"), 0.99)
        self.assertEqual(novelty.effective_threshold(0.02, "replicate"), 0.0)
        with self.assertRaises(ValueError):
            novelty.effective_threshold(0.62, "yolo")


TRAIN = "DEPTH = 8\nMATRIX_LR = 0.04\n\n\ndef main():\n    return DEPTH\n"


class WordsModeTests(unittest.TestCase):
    """assess(words=True), how a fix is matched to its crash, derives words-only
    features only for runs that can be candidates: its verdict must be the one
    over words-only copies of every run."""

    def test_words_mode_judges_as_words_only_copies_of_every_run(self):
        import random
        rng = random.Random(7)
        with open(os.path.join(os.path.dirname(__file__), "data", "novelty_real_pairs.tsv"),
                  encoding="utf-8") as f:
            pairs = [line.rstrip("\n").split("\t") for line in f][1:]
        runs = []
        for i, (_, prior, _) in enumerate(pairs):
            # the code said a constant changed, or code only, or nothing (words only)
            knob, old, new = rng.choice((("DEPTH", 8, 12), ("MATRIX_LR", 0.04, 0.06),
                                         ("WEIGHT_DECAY", 0.2, 0.0)))
            change_set = rng.choice((
                {"constants": [{"name": knob, "old": old, "new": new}], "hunks": []},
                {"constants": [], "hunks": [[["x = relu(x)"], ["x = gelu(x)"]]]}, None))
            described = rng.choice((prior, prior, "the idea from the paper, tried again",
                                    "the bigger model from the scaling paper"))
            row = run(f"2026010{i % 9}T0000{i:02d}Z-{i:07d}", described, status="crash",
                      change_set=change_set)
            row["novelty_features"] = novelty.features(row, None, change_set)
            runs.append(row)
        said = [dict(row, change_set=None, config=None,
                     novelty_features=novelty.words_only(row["novelty_features"]))
                for row in runs]
        differ = []
        planned_too = ["the idea from the paper with depth 10", "the scaling paper's model, "
                       "matrix lr 0.05", "the bigger model again with weight decay 0.1"]
        for planned in [p for _, _, p in pairs] + planned_too:
            idea = {"description": planned, "family": ""}
            for threshold in (novelty.DEFAULT_THRESHOLD, 0.3):   # 0.3: more near misses shown
                if novelty.assess(idea, runs, words=True, threshold=threshold) != \
                        novelty.assess(idea, said, threshold=threshold):
                    differ.append((planned, threshold))
        self.assertEqual(differ, [])


class ConfigTests(unittest.TestCase):
    def setUp(self):
        self.base = fingerprint.fingerprint_source(TRAIN)
        self.lr05 = fingerprint.fingerprint_source(TRAIN.replace("0.04", "0.05"))

    def test_identical_code_is_a_duplicate_whatever_the_wording(self):
        history = [run("r1", "baseline", status="keep", config=self.base),
                   run("r2", "something else", config=self.lr05)]
        same_code = fingerprint.fingerprint_source("# a comment\n" + TRAIN.replace("DEPTH = 8", "DEPTH=8"))
        g = guard("a totally different wording", history, config=same_code, champion_config=self.base)
        self.assertEqual(g["classification"], "duplicate_run")
        self.assertEqual([m["run_id"] for m in g["top_matches"]], ["r1"])
        self.assertEqual(g["top_matches"][0]["relation"], "code")
        self.assertEqual(g["explanation"]["method"], "code")

    def test_the_delta_from_the_champion_matches_runs_with_the_same_delta(self):
        edited = fingerprint.fingerprint_source(TRAIN.replace("0.04", "0.05").replace("return DEPTH", "return 1"))
        history = [run("r1", "baseline", status="keep", config=self.base),
                   run("r2", "an idea", config=self.lr05)]
        g = guard("unrelated words", history, config=edited, champion_config=self.base)
        self.assertEqual(g["config_delta"], [{"name": "MATRIX_LR", "old": 0.04, "new": 0.05}])
        self.assertEqual(g["classification"], "repeat_failure")
        self.assertEqual(g["top_matches"][0]["run_id"], "r2")
        self.assertEqual(g["top_matches"][0]["relation"], "same_delta")
        sources = {c["source"] for c in g["explanation"]["changes"]}
        self.assertEqual(sources, {"config"})

    def test_the_delta_also_meets_described_runs_without_config(self):
        edited = fingerprint.fingerprint_source(TRAIN.replace("0.04", "0.05").replace("return DEPTH", "return 1"))
        history = [run("r1", "baseline", status="keep", config=self.base),
                   run("r2", "muon lr 0.05")]   # an earlier fork's record: no config
        g = guard("unrelated words", history, config=edited, champion_config=self.base)
        self.assertEqual(g["classification"], "repeat_failure")
        self.assertEqual(g["top_matches"][0]["run_id"], "r2")

    def test_no_config_no_code_matching(self):
        history = [run("r1", "baseline", status="keep", config=self.base)]
        g = guard("a totally different wording", history)
        self.assertEqual(g["classification"], "novel")
        self.assertEqual(g["config_delta"], [])


if __name__ == "__main__":
    unittest.main()
