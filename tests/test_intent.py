"""Intent parsing: descriptions -> canonical changes (knob, direction, value)."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memorylab_core import intent, lexical  # noqa: E402


# the constants of the train.py these descriptions are read against: directions come
# from them (or from the text), never from defaults a fork's train.py may not have
TRAIN_PY = {"ASPECT_RATIO": 64, "HEAD_DIM": 128, "WINDOW_PATTERN": "SSSL", "TOTAL_BATCH_SIZE": 524288,
            "EMBEDDING_LR": 0.6, "UNEMBEDDING_LR": 0.004, "MATRIX_LR": 0.04, "SCALAR_LR": 0.5,
            "WEIGHT_DECAY": 0.2, "ADAM_BETAS": [0.8, 0.95], "WARMUP_RATIO": 0.0, "WARMDOWN_RATIO": 0.5,
            "FINAL_LR_FRAC": 0.0, "DEPTH": 8, "DEVICE_BATCH_SIZE": 128}


def parsed(text, base=TRAIN_PY):
    """The changes the text makes, less those named only in an aside."""
    return [(c["knob"], c["direction"], c["value"]) for c in intent.parse_changes(text, base) if not c.get("aside")]


class ChangePartTests(unittest.TestCase):
    """The change apart from what agents append: verdicts, evidence, purpose, context."""

    def test_verdicts_and_evidence_are_not_the_change(self):
        for text, change in (
                ("MATRIX_LR 0.04->0.08 (22 steps) - worse than baseline best 2.067", "MATRIX_LR 0.04->0.08"),
                ("log: muon warmup 300->150 keep (0.529781 vs 0.530646)", "muon warmup 300->150"),
                ("warmdown_ratio 0.5->0.2: 80% training at full LR vs 48%", "warmdown_ratio 0.5->0.2"),
                ("Reduce warmup_steps from 20 to 2; still killed with exit 137", "Reduce warmup_steps from 20 to 2"),
                ("SwiGLU activation (replaces ReLU^2)", "SwiGLU activation (replaces ReLU^2)"),
                ("WEIGHT_DECAY used as-is instead of WEIGHT_DECAY * (1 - progress)",
                 "WEIGHT_DECAY used as-is instead of WEIGHT_DECAY * (1 - progress)")):
            self.assertEqual(intent.change_part(text)[0], change, text)
        self.assertEqual(parsed("unembedding LR 0.012 (0.008 better)"), [("UNEMBEDDING_LR", "up", 0.012)])
        self.assertEqual(parsed("Lower Adam beta2 to 0.98 for faster second-moment adaptation"),
                         [("ADAM_BETA2", "up", 0.98)])   # against TRAIN_PY's 0.95; no train.py: the word
        self.assertEqual(parsed("Lower Adam beta2 to 0.98 for faster adaptation", None), [("ADAM_BETA2", "down", 0.98)])

    def test_context_names_another_knob(self):
        self.assertEqual(parsed("lower matrix lr to 0.03 at batch 2^13"), [("MATRIX_LR", "down", 0.03)])
        self.assertEqual(parsed("MATRIX_LR 0.13 at narrow", None), [("MATRIX_LR", None, 0.13)])
        self.assertEqual(parsed("clip gradients at norm 0.5", None), [("GRAD_CLIP", "on", 0.5)])

    def test_an_aside_tells_apart_but_is_not_required(self):
        changes = intent.parse_changes("muon lr 0.05 (warmup 5%)")
        self.assertEqual([(c["knob"], c.get("aside", False)) for c in changes],
                         [("MATRIX_LR", False), ("WARMUP_RATIO", True)])
        self.assertEqual(parsed("slower momentum warmup for muon (600 steps)"),
                         [("MUON_MOMENTUM_WARMUP", None, 600)])

    def test_settings_written_as_code_are_knobs_of_their_own(self):
        changes = intent.parse_changes("Halve train_batch_tokens to 262144")
        self.assertEqual((changes[0]["knob"], changes[0]["reads_as"]), ("TRAIN_BATCH_TOKENS", "TOTAL_BATCH_SIZE"))
        self.assertEqual(parsed("Reduce EMA_DECAY from 0.997 to 0.995"), [("EMA_DECAY", "down", 0.995)])
        self.assertEqual(parsed("non-zero init for the attention c_proj"), [("ATTN_PROJ_INIT", "up", None)])


class ValueTests(unittest.TestCase):
    def assertChange(self, text, knob, direction, value, base=TRAIN_PY):
        changes = parsed(text, base)
        self.assertEqual(len(changes), 1, (text, changes))
        got_knob, got_direction, got_value = changes[0]
        self.assertEqual((got_knob, got_direction), (knob, direction), (text, changes))
        if isinstance(value, float):
            self.assertAlmostEqual(got_value, value, places=9, msg=text)
        else:
            self.assertEqual(got_value, value, text)

    def test_plain_scientific_and_power_notation(self):
        self.assertChange("MATRIX_LR 0.05", "MATRIX_LR", "up", 0.05)
        self.assertChange("MATRIX_LR = 5e-2", "MATRIX_LR", "up", 0.05)
        self.assertChange("TOTAL_BATCH_SIZE 2**18", "TOTAL_BATCH_SIZE", "down", 262144)
        self.assertChange("total batch size 2^20", "TOTAL_BATCH_SIZE", "up", 1048576)
        self.assertChange("TOTAL_BATCH_SIZE = 262144", "TOTAL_BATCH_SIZE", "down", 262144)
        self.assertChange("262,144 tokens per step", "TOTAL_BATCH_SIZE", "down", 262144)
        self.assertChange("rope theta 1e5", "ROTARY_BASE", None, 100000.0)

    def test_percentages_of_the_budget(self):
        self.assertChange("warmup 5%", "WARMUP_RATIO", "up", 0.05)
        self.assertChange("shorten warmdown to 30% of the budget", "WARMDOWN_RATIO", "down", 0.3)
        self.assertChange("cut the warmdown phase to 20 percent", "WARMDOWN_RATIO", "down", 0.2)
        # on a knob that is not a fraction, a percentage is relative
        self.assertChange("increase the matrix lr by 25%", "MATRIX_LR", "up", 0.05)
        self.assertChange("reduce the muon lr by 25%", "MATRIX_LR", "down", 0.03)

    def test_multipliers_against_the_base(self):
        self.assertChange("double the depth", "DEPTH", "up", 16)
        self.assertChange("halve the device batch size", "DEVICE_BATCH_SIZE", "down", 64)
        self.assertChange("1.5x the embedding LR", "EMBEDDING_LR", "up", 0.9)
        self.assertChange("lm_head lr x2", "UNEMBEDDING_LR", "up", 0.008)
        self.assertChange("2x smaller matrix lr", "MATRIX_LR", "down", 0.02)

    def test_base_constants_come_from_train_py(self):
        base = {"DEPTH": 12, "MATRIX_LR": 0.02}
        self.assertChange("double depth", "DEPTH", "up", 24, base)
        self.assertChange("DEPTH 10", "DEPTH", "down", 10, base)
        self.assertChange("matrix lr 0.03", "MATRIX_LR", "up", 0.03, base)

    def test_ranges_and_instead_of(self):
        self.assertChange("WARMDOWN_RATIO 0.5 -> 0.3", "WARMDOWN_RATIO", "down", 0.3)
        self.assertChange("raise the logit soft cap from 15 to 30", "SOFTCAP", "up", 30.0)
        self.assertChange("12 layers instead of 8", "DEPTH", "up", 12)
        self.assertChange("embedding lr 0.6 → 0.8", "EMBEDDING_LR", "up", 0.8)
        # the old value decides the direction when the base is something else
        self.assertChange("MATRIX_LR 0.06 -> 0.05", "MATRIX_LR", "down", 0.05, {"MATRIX_LR": 0.04})

    def test_fractions_and_equivalent_knobs(self):
        self.assertChange("MLP ratio 8/3", "MLP_RATIO", None, 2.66667)
        self.assertChange("grad accum 4", "TOTAL_BATCH_SIZE", "up", 2 ** 20)
        self.assertChange("batch 2**20", "TOTAL_BATCH_SIZE", "up", 2 ** 20)   # exact, not 1048580
        self.assertChange("batch 1048576", "TOTAL_BATCH_SIZE", "up", 1048576)
        self.assertChange("batch 64", "DEVICE_BATCH_SIZE", "down", 64)
        # the text's own old value gives the direction when the new one is train.py's
        self.assertChange("batch 64 -> 128", "DEVICE_BATCH_SIZE", "up", 128)
        self.assertChange("double the model width", "ASPECT_RATIO", "up", 128)
        self.assertChange("use 64-dim heads", "HEAD_DIM", "down", 64)
        self.assertChange("lm_head weights ~ N(0, 0.01)", "LM_HEAD_INIT", None, 0.01)

    def test_rationale_is_not_parsed(self):
        self.assertEqual(parsed("lower warmdown to 0.3 since the lr decays too late"),
                         [("WARMDOWN_RATIO", "down", 0.3)])
        self.assertEqual(parsed("lower matrix lr to 0.03 now that the batch is bigger"),
                         [("MATRIX_LR", "down", 0.03)])

    def test_counts_and_deltas(self):
        self.assertChange("use 10 transformer layers", "DEPTH", "up", 10)
        self.assertChange("add 4 layers", "DEPTH", "up", 12)
        self.assertChange("increase depth by 4", "DEPTH", "up", 12)
        self.assertChange("2 fewer layers", "DEPTH", "down", 6)
        self.assertChange("smaller micro-batch of 32 sequences", "DEVICE_BATCH_SIZE", "down", 32)
        self.assertChange("one more layer", "DEPTH", "up", 9)
        self.assertChange("depth -2", "DEPTH", "down", 6)
        self.assertChange("muon wd +0.1", "WEIGHT_DECAY", "up", 0.3)
        self.assertChange("MATRIX_LR = -0.01", "MATRIX_LR", "down", -0.01)   # after '=', a sign is the value's
        self.assertChange("embedding lr cut to two thirds", "EMBEDDING_LR", "down", 0.4)
        self.assertChange("context 3072", "MAX_SEQ_LEN", None, 3072)

    def test_approximate_values_are_marked(self):
        change = intent.parse_changes("double the tokens per optimizer step to ~1M")[0]
        self.assertEqual(change["knob"], "TOTAL_BATCH_SIZE")
        self.assertTrue(change.get("approx"))
        self.assertEqual(intent.value_tolerance(change, {"value": 2 ** 20}), 0.1)


class DirectionTests(unittest.TestCase):
    def test_words_give_direction_without_value(self):
        self.assertEqual(parsed("longer warmdown"), [("WARMDOWN_RATIO", "up", None)])
        self.assertEqual(parsed("deeper model"), [("DEPTH", "up", None)])
        self.assertEqual(parsed("fewer layers"), [("DEPTH", "down", None)])
        self.assertEqual(parsed("more heads"), [("HEAD_DIM", "down", None)])

    def test_components_switch_on_and_off(self):
        self.assertEqual(parsed("no value embeddings"), [("VALUE_EMBEDS", "off", "off")])
        self.assertEqual(parsed("disable QK norm"), [("QK_NORM", "off", None)])
        self.assertEqual(parsed("qk norm off"), [("QK_NORM", "off", None)])
        self.assertEqual(parsed("remove the rotary embeddings"), [("ROTARY", "off", None)])
        self.assertEqual(parsed("tied embeddings"), [("WEIGHT_TYING", "on", None)])
        self.assertEqual(parsed("untie embeddings"), [("WEIGHT_TYING", "off", None)])
        self.assertEqual(parsed("remove softcap"), [("SOFTCAP", "off", None)])

    def test_off_on_a_number_means_zero(self):
        self.assertEqual(parsed("turn off Muon weight decay"), [("WEIGHT_DECAY", "down", 0)])

    def test_an_ellipsis_inherits_the_verb(self):
        # "delete A and B": B is deleted too; the gates go with the value embeddings
        self.assertEqual(parsed("delete value_embeds and the ve gates"), [("VALUE_EMBEDS", "off", "off")])
        self.assertEqual(parsed("disable QK norm and softcap"), [("QK_NORM", "off", None), ("SOFTCAP", "off", None)])

    def test_negated_and_kept_clauses_say_nothing(self):
        self.assertEqual(parsed("untie nothing, share wte with lm_head"), [("WEIGHT_TYING", "on", None)])
        self.assertEqual(parsed("keep depth"), [])

    def test_nothing_recognised(self):
        self.assertEqual(parsed("baseline"), [])
        self.assertEqual(parsed(""), [])
        self.assertEqual(parsed("attention sinks"), [])


class ChoiceTests(unittest.TestCase):
    def test_activation_replacements_pick_the_new_one(self):
        for text in ("replace relu^2 with swiglu", "SwiGLU MLP instead of squared ReLU",
                     "swap relu² for swiglu", "use SwiGLU"):
            self.assertEqual(parsed(text), [("MLP_ACTIVATION", "set", "swiglu")], text)
        self.assertEqual(parsed("replace relu^2 with plain relu"), [("MLP_ACTIVATION", "set", "relu")])

    def test_window_patterns_are_reduced(self):
        self.assertEqual(parsed('window pattern "LLLL"'), [("WINDOW_PATTERN", "set", "L")])
        self.assertEqual(parsed("all layers full context window"), [("WINDOW_PATTERN", "set", "L")])
        self.assertEqual(parsed("every layer uses the short window"), [("WINDOW_PATTERN", "set", "S")])
        self.assertEqual(parsed("WINDOW_PATTERN = 'SLSL'"), [("WINDOW_PATTERN", "set", "SL")])
        self.assertEqual(intent.reduce_pattern("SSSLSSSL"), "SSSL")

    def test_value_embedding_layouts(self):
        self.assertEqual(parsed("value embeddings on all layers instead of alternating"),
                         [("VALUE_EMBEDS", "set", "all")])
        self.assertEqual(parsed("value embeddings only on the last layer"), [("VALUE_EMBEDS", "set", "last")])

    def test_other_choices(self):
        self.assertEqual(parsed("use layernorm instead of rmsnorm"), [("NORM", "set", "layernorm")])
        self.assertEqual(parsed("swap Muon for AdamW"), [("OPTIMIZER", "set", "adamw")])


class AliasTests(unittest.TestCase):
    """Neighbouring knobs must not be confused."""

    def knob(self, text):
        changes = parsed(text)
        self.assertEqual(len(changes), 1, (text, changes))
        return changes[0][0]

    def test_learning_rates(self):
        self.assertEqual(self.knob("bump the Muon learning rate to 0.06"), "MATRIX_LR")
        self.assertEqual(self.knob("matrix lr 0.05"), "MATRIX_LR")
        self.assertEqual(self.knob("embedding learning rate 0.4"), "EMBEDDING_LR")
        self.assertEqual(self.knob("unembedding learning rate 0.002"), "UNEMBEDDING_LR")
        self.assertEqual(self.knob("lm_head lr 0.002"), "UNEMBEDDING_LR")
        self.assertEqual(self.knob("scalar lr 0.25"), "SCALAR_LR")
        self.assertEqual(self.knob("final lr fraction 10%"), "FINAL_LR_FRAC")
        self.assertEqual(self.knob("lower all learning rates by 20%"), "LR")
        # an unqualified lr is all of them: which one a value belongs to is not guessed
        self.assertEqual(self.knob("lr 0.05"), "LR")

    def test_momenta_and_betas(self):
        self.assertEqual(self.knob("momentum 0.9 for muon"), "MUON_MOMENTUM")
        self.assertEqual(self.knob("adam beta1 0.9"), "ADAM_BETA1")
        self.assertEqual(self.knob("adam beta2 0.99"), "ADAM_BETA2")
        self.assertEqual(self.knob("muon beta2 0.99"), "MUON_BETA2")
        self.assertEqual(self.knob("Adam β2 = 0.99"), "ADAM_BETA2")
        self.assertEqual(parsed("ADAM_BETAS=(0.8, 0.99)"), [("ADAM_BETA2", "up", 0.99)])
        self.assertEqual(self.knob("muon momentum warmup 600 steps"), "MUON_MOMENTUM_WARMUP")

    def test_weight_decays(self):
        self.assertEqual(self.knob("weight decay 0.1 for Muon"), "WEIGHT_DECAY")
        self.assertEqual(self.knob("adam weight decay 0.1 on embeddings"), "ADAM_WEIGHT_DECAY")

    def test_shapes(self):
        self.assertEqual(self.knob("head dim 96"), "HEAD_DIM")
        self.assertEqual(self.knob("aspect ratio 96"), "ASPECT_RATIO")
        self.assertEqual(parsed("n_embd 768"), [("ASPECT_RATIO", "up", 96)])
        self.assertEqual(parsed("8 attention heads"), [("HEAD_DIM", "down", 64)])
        self.assertEqual(parsed("GQA with 2 kv heads"), [("N_KV_HEAD", "down", 2)])
        self.assertEqual(parsed("MQA"), [("N_KV_HEAD", "down", 1)])
        self.assertEqual(parsed("MLP 3x expansion"), [("MLP_RATIO", None, 3.0)])
        self.assertEqual(parsed("shrink the MLP hidden width to 3*n_embd"), [("MLP_RATIO", "down", 3.0)])
        self.assertEqual(parsed("double the MLP expansion ratio"), [("MLP_RATIO", None, 8.0)])

    def test_batch_sizes_and_sequence_length(self):
        self.assertEqual(self.knob("DEVICE_BATCH_SIZE 32"), "DEVICE_BATCH_SIZE")
        self.assertEqual(self.knob("TOTAL_BATCH_SIZE 2**20"), "TOTAL_BATCH_SIZE")
        self.assertEqual(self.knob("sequence length 1024"), "MAX_SEQ_LEN")
        self.assertEqual(self.knob("batch size 2**20 tokens"), "TOTAL_BATCH_SIZE")
        self.assertEqual(self.knob("batch size 32 sequences"), "DEVICE_BATCH_SIZE")
        self.assertEqual(self.knob("batch size 64"), "DEVICE_BATCH_SIZE")

    def test_losses_clipping_and_inits(self):
        self.assertEqual(parsed("z-loss 1e-3"), [("Z_LOSS", "on", 0.001)])
        self.assertEqual(parsed("clip gradients at norm 0.5"), [("GRAD_CLIP", "on", 0.5)])
        self.assertEqual(parsed("scale the loss by 0.5"), [("LOSS_SCALE", None, 0.5)])
        self.assertEqual(parsed("zero-init the lm_head"), [("LM_HEAD_INIT", None, 0.0)])
        self.assertEqual(self.knob("zero-init the value embedding gates"), "VE_GATE_INIT")
        self.assertEqual(self.knob("attention output projection init scale 0.5"), "ATTN_PROJ_INIT")
        self.assertEqual(parsed("initialize x0_lambdas to 0.2"), [("X0_LAMBDA_INIT", None, 0.2)])
        self.assertEqual(parsed("remove the x0 residual lambdas"), [("X0_LAMBDAS", "off", None)])

    def test_several_changes_in_one_description(self):
        self.assertEqual(parsed("increase depth to 12 and lower matrix lr to 0.03"),
                         [("DEPTH", "up", 12), ("MATRIX_LR", "down", 0.03)])
        self.assertEqual(parsed("DEPTH 8 -> 12, ASPECT_RATIO 64 -> 48"),
                         [("DEPTH", "up", 12), ("ASPECT_RATIO", "down", 48)])


class PhrasingTests(unittest.TestCase):
    """Ways of writing a change that name no constant: formulas, asides, schedules."""

    def test_values_written_in_terms_of_other_settings(self):
        self.assertEqual(parsed("short window = seq_len // 4"), [("SHORT_WINDOW", None, 512)])
        self.assertEqual(parsed("model_dim = depth*96"), [("ASPECT_RATIO", "up", 96)])
        self.assertEqual(parsed("model_dim = depth*96", {"DEPTH": 12}), [("ASPECT_RATIO", None, 96)])
        self.assertEqual(parsed("short windows of 3/4 of the context"), [("SHORT_WINDOW", None, 1536)])
        self.assertEqual(parsed("hidden size 3*n_embd in the feed-forward (was 4*n_embd)"),
                         [("MLP_RATIO", None, 3.0)])
        self.assertEqual(parsed("cap the logits at 30*tanh(logits/30)"), [("SOFTCAP", None, 30.0)])

    def test_an_aside_is_its_own_clause(self):
        self.assertEqual(parsed("muon momentum 0.95 -> 0.98 (warmup still starts from 0.85)"),
                         [("MUON_MOMENTUM", "up", 0.98)])
        # a value with its unit stays with its clause
        self.assertEqual(parsed("longer momentum warmup (600 steps)"), [("MUON_MOMENTUM_WARMUP", "up", 600)])

    def test_a_warmdown_start_point_is_the_rest_of_the_run(self):
        self.assertEqual(parsed("begin the LR decay at 30% progress"), [("WARMDOWN_RATIO", "up", 0.7)])
        self.assertEqual(parsed("start the warmdown at 60% of training instead of 50%"),
                         [("WARMDOWN_RATIO", "down", 0.4)])
        self.assertEqual(parsed("decay the lr over the last 40% of steps"), [("WARMDOWN_RATIO", "down", 0.4)])

    def test_weight_decay_schedule_and_mask(self):
        self.assertEqual(parsed("keep Muon's weight decay constant instead of decaying it to zero"),
                         [("WD_SCHEDULE", "off", None)])
        self.assertEqual(parsed("decay wd linearly to zero over training"), [("WD_SCHEDULE", "on", None)])
        self.assertEqual(parsed("turn off the cautious mask in Muon's weight decay"), [("CAUTIOUS_WD", "off", None)])
        self.assertEqual(parsed("standard decoupled weight decay"), [("CAUTIOUS_WD", "off", None)])
        # a number makes "cautious weight decay" the decay itself
        self.assertEqual(parsed("halve the cautious weight decay"), [("WEIGHT_DECAY", "down", 0.1)])

    def test_places_and_contexts_are_not_changes(self):
        self.assertEqual(parsed("stop RMS-normalizing queries and keys after rotary"), [("QK_NORM", "off", None)])
        self.assertEqual(parsed("value embeddings without their gates"), [("VE_GATE", "off", None)])
        self.assertEqual(parsed("AdamW beta2 0.99"), [("ADAM_BETA2", "up", 0.99)])
        self.assertEqual(parsed("2 kv heads shared by 4 query heads"), [("N_KV_HEAD", "down", 2)])

    def test_consequences_restate_the_setting(self):
        # a smaller micro-batch with more accumulation keeps the tokens per step
        self.assertEqual(parsed("micro-batch 64, grad accum 2 -> 4"), [("DEVICE_BATCH_SIZE", "down", 64)])
        self.assertEqual(parsed("64-dim heads (8 heads at width 512)"), [("HEAD_DIM", "down", 64)])
        self.assertEqual(parsed("drop the 15*tanh(logits/15) cap"), [("SOFTCAP", "off", None)])

    def test_the_value_decides_between_neighbouring_knobs(self):
        self.assertEqual(parsed("width 1024"), [("ASPECT_RATIO", "up", 128)])
        self.assertEqual(parsed("sliding windows of 256 tokens"), [("SHORT_WINDOW", None, 256)])
        self.assertEqual(parsed("no momentum warmup, fixed at 0.95"), [("MUON_MOMENTUM_WARMUP", "down", 0)])

    def test_windows_by_layer(self):
        self.assertEqual(parsed("global attention every other layer"), [("WINDOW_PATTERN", "set", "SL")])
        self.assertEqual(parsed("drop sliding-window attention"), [("WINDOW_PATTERN", "set", "L")])
        self.assertEqual(parsed("value embeddings on all 12 layers"), [("VALUE_EMBEDS", "set", "all")])


    def test_inflected_and_hyphenated_component_names(self):
        self.assertEqual(parsed("soft-capped logits at 20 instead of 15"), [("SOFTCAP", "up", 20.0)])
        self.assertEqual(parsed("tighter tanh logit capping (10 rather than 15)"), [("SOFTCAP", "down", 10.0)])
        # tanh is how the cap is made, not the MLP's activation
        self.assertEqual(parsed("lm head logits capped at 30 (tanh)"), [("SOFTCAP", None, 30.0)])
        self.assertEqual(parsed("un-capped logits"), [("SOFTCAP", "off", None)])
        self.assertEqual(parsed("remove QK-normalized attention"), [("QK_NORM", "off", None)])
        self.assertEqual(parsed("ungated value embeddings"), [("VE_GATE", "off", None)])
        self.assertEqual(parsed("no residual scaling lambdas"), [("RESID_LAMBDAS", "off", None)])
        self.assertEqual(parsed("clip the global grad-norm at 1"), [("GRAD_CLIP", "on", 1.0)])
        self.assertEqual(parsed("gradient-clipped training (max norm 0.5)"), [("GRAD_CLIP", "on", 0.5)])
        self.assertEqual(parsed("RoPE-free attention"), [("ROTARY", "off", None)])
        self.assertEqual(parsed("Nesterov-free Muon"), [("NESTEROV", "off", None)])
        self.assertEqual(parsed("un-tied wte and lm_head"), [("WEIGHT_TYING", "off", None)])

    def test_old_values_written_after_or_in_pairs(self):
        self.assertEqual(parsed("Muon lr raised to 0.05 (0.04 before)"), [("MATRIX_LR", "up", 0.05)])
        self.assertEqual(parsed("matrix lr 0.05 (0.04 in the baseline)"), [("MATRIX_LR", "up", 0.05)])
        self.assertEqual(parsed("10 layers (up from 8)"), [("DEPTH", "up", 10)])
        # the end of an old pair is old too
        self.assertEqual(parsed("muon momentum ramps 0.85 -> 0.9 instead of 0.85 -> 0.95"),
                         [("MUON_MOMENTUM", "down", 0.9)])

    def test_a_momentum_ramp_sets_the_momentum_it_ends_at(self):
        self.assertEqual(parsed("momentum warmup reaches 0.97"), [("MUON_MOMENTUM", None, 0.97)])
        self.assertEqual(parsed("Muon momentum warmup ends at 0.9 instead of 0.95"), [("MUON_MOMENTUM", "down", 0.9)])
        # steps restated at their current count are no change; new steps are
        self.assertEqual(parsed("momentum ramps up to 0.98 over 300 steps"), [("MUON_MOMENTUM", None, 0.98)])
        self.assertEqual(parsed("muon momentum warmup 0.85 -> 0.97 over 500 steps"),
                         [("MUON_MOMENTUM", None, 0.97), ("MUON_MOMENTUM_WARMUP", None, 500)])
        # the start of the ramp is no knob
        self.assertEqual(parsed("start the Muon momentum warmup at 0.88 instead of 0.85"),
                         [("MUON_MOMENTUM_START", "up", 0.88)])
        self.assertEqual(parsed("shorten the 0.85 -> 0.95 momentum ramp from 300 to 200 steps"),
                         [("MUON_MOMENTUM_WARMUP", "down", 200)])

    def test_schedules_over_a_share_of_the_run(self):
        # the lr is what a warmup or cooldown moves, not a knob of its own
        self.assertEqual(parsed("ramp the learning rate up during the first 3% of the run"),
                         [("WARMUP_RATIO", "up", 0.03)])
        self.assertEqual(parsed("warm-up the LR linearly for the first 2% of the time budget"),
                         [("WARMUP_RATIO", "up", 0.02)])
        self.assertEqual(parsed("decay the lr during the final 35% of training"), [("WARMDOWN_RATIO", "down", 0.35)])
        self.assertEqual(parsed("cooldown in the last quarter of training"), [("WARMDOWN_RATIO", "down", 0.25)])
        self.assertEqual(parsed("LR decay begins after 40% of the time budget"), [("WARMDOWN_RATIO", "up", 0.6)])
        self.assertEqual(parsed("begin the cooldown a quarter of the way into training"),
                         [("WARMDOWN_RATIO", "up", 0.75)])
        self.assertEqual(parsed("lr multiplier ends at 0.2 instead of 0"), [("FINAL_LR_FRAC", "up", 0.2)])
        self.assertEqual(parsed("LR floor of 0.1x peak"), [("FINAL_LR_FRAC", "up", 0.1)])

    def test_schedules_and_losses_written_as_formulas(self):
        self.assertEqual(parsed("drop the wd * (1 - progress) factor"), [("WD_SCHEDULE", "off", None)])
        self.assertEqual(parsed("Muon weight decay no longer decays linearly to zero"), [("WD_SCHEDULE", "off", None)])
        self.assertEqual(parsed("don't anneal the weight decay"), [("WD_SCHEDULE", "off", None)])
        self.assertEqual(parsed("WEIGHT_DECAY used as-is instead of WEIGHT_DECAY * (1 - progress)"),
                         [("WD_SCHEDULE", "off", None)])
        self.assertEqual(parsed("logits = 25 * tanh(logits / 25) instead of 15 * tanh(logits / 15)"),
                         [("SOFTCAP", "up", 25.0)])
        self.assertEqual(parsed("add 1e-4 * logsumexp(logits)**2 to the loss"), [("Z_LOSS", "on", 0.0001)])

    def test_a_clause_that_is_only_a_value_belongs_to_the_one_before(self):
        self.assertEqual(parsed("much larger AdamW eps, 1e-7"), [("ADAM_EPS", "up", 1e-7)])
        self.assertEqual(parsed("label-smoothed cross entropy, 0.05"), [("LABEL_SMOOTHING", None, 0.05)])
        self.assertEqual(parsed("GPT-2 style token-embedding init, std 0.05"), [("WTE_INIT", None, 0.05)])

    def test_a_group_named_by_its_parameters(self):
        self.assertEqual(parsed("halve the init scale of the q/k/v projections"), [("QKV_INIT", None, 0.5)])
        self.assertEqual(parsed("share one K/V head across all query heads"), [("N_KV_HEAD", "down", 1)])
        self.assertEqual(parsed("non-zero init for the attention c_proj"), [("ATTN_PROJ_INIT", "up", None)])
        self.assertEqual(parsed("multiply the training loss by 3"), [("LOSS_SCALE", None, 3.0)])
        self.assertEqual(parsed("lower the wte/value-embedding learning rate to 0.4"), [("EMBEDDING_LR", "down", 0.4)])
        self.assertEqual(parsed("replace Muon with AdamW for the matrices"), [("OPTIMIZER", "set", "adamw")])
        self.assertEqual(parsed("ADAM_BETAS second entry 0.95 -> 0.98"), [("ADAM_BETA2", "up", 0.98)])
        self.assertEqual(parsed("use separate input and output embeddings"), [("WEIGHT_TYING", "off", None)])
        self.assertEqual(parsed("drop the sign mask from Muon weight decay"), [("CAUTIOUS_WD", "off", None)])
        self.assertEqual(parsed("train on 1024-token sequences"), [("MAX_SEQ_LEN", None, 1024)])
        self.assertEqual(parsed("4k context"), [("MAX_SEQ_LEN", None, 4000.0)])
        self.assertEqual(parsed("train with 8192-token contexts"), [("MAX_SEQ_LEN", None, 8192)])
        self.assertEqual(parsed("accumulate 4 micro-batches per step instead of 2"),
                         [("TOTAL_BATCH_SIZE", "up", 2 ** 20)])
        self.assertEqual(parsed("wider heads: 2 heads of 256 dims"), [("HEAD_DIM", "up", 256)])
        self.assertEqual(parsed("init the value-embedding gate biases at 3"), [("VE_GATE_INIT", None, 3.0)])
        self.assertEqual(parsed("VALUE_EMBEDS alternating -> all"), [("VALUE_EMBEDS", "set", "all")])
        self.assertEqual(parsed("GQA: each kv head shared between 2 query heads (n_kv_head 2)"),
                         [("N_KV_HEAD", "down", 2)])


class WordedSettingTests(unittest.TestCase):
    """Settings written in words, with their consequences, or with hyphenated names."""

    def test_a_schedule_span_with_an_adverb(self):
        self.assertEqual(parsed("anneal the LR over just the last 25% of steps"), [("WARMDOWN_RATIO", "down", 0.25)])
        self.assertEqual(parsed("cool-down: lower the lr during only the final fifth of the run"),
                         [("WARMDOWN_RATIO", "down", 0.2)])
        self.assertEqual(parsed("ramp the lr up over only the first 2% of training"), [("WARMUP_RATIO", "up", 0.02)])

    def test_a_consequence_restates_the_setting(self):
        self.assertEqual(parsed("model_dim 512 -> 640 at depth 8"), [("ASPECT_RATIO", "up", 80)])
        self.assertEqual(parsed("DEPTH 8 -> 10 (model_dim 512 -> 640)"), [("DEPTH", "up", 10)])
        self.assertEqual(parsed("ASPECT_RATIO 64 -> 80 with 5 heads"), [("ASPECT_RATIO", "up", 80)])
        self.assertEqual(parsed("make the model 640 dims wide by setting ASPECT_RATIO = 80"),
                         [("ASPECT_RATIO", "up", 80)])
        self.assertEqual(parsed("a 1024-dim model"), [("ASPECT_RATIO", "up", 128)])
        self.assertEqual(parsed("wider MLP: 4x -> 6x"), [("MLP_RATIO", "up", 6.0)])

    def test_the_cautious_mask_in_words(self):
        off = [("CAUTIOUS_WD", "off", None)]
        self.assertEqual(parsed("decay each weight irrespective of sign"), off)
        self.assertEqual(parsed("Muon weight decay on all elements, not just where gradient and weight agree in sign"),
                         off)
        self.assertEqual(parsed("decoupled weight decay on every coordinate"), off)
        self.assertEqual(parsed("restrict the decay to entries whose update and weight share the same sign"),
                         [("CAUTIOUS_WD", "on", None)])
        self.assertEqual(parsed("decoupled weight decay 0.3"), [("WEIGHT_DECAY", "up", 0.3)])
        self.assertEqual(parsed("decay the weights at 0.1 only when the signs match"), [("WEIGHT_DECAY", "down", 0.1)])

    def test_kv_heads_from_the_query_heads(self):
        self.assertEqual(parsed("n_kv_head = n_head // 4"), [("N_KV_HEAD", "down", 1)])
        self.assertEqual(parsed("kv heads = query heads / 2"), [("N_KV_HEAD", "down", 2)])
        self.assertEqual(parsed("each key/value head serves four query heads"), [("N_KV_HEAD", "down", 1)])
        self.assertEqual(parsed("GQA, 2 query heads per kv head"), [("N_KV_HEAD", "down", 2)])
        self.assertEqual(parsed("n_kv_head = n_head // 2", {"DEPTH": 8, "ASPECT_RATIO": 128, "HEAD_DIM": 128}),
                         [("N_KV_HEAD", "down", 4)])

    def test_a_window_as_a_share_of_the_context(self):
        self.assertEqual(parsed("local windows of a quarter of the sequence length"), [("SHORT_WINDOW", None, 512)])
        self.assertEqual(parsed("SHORT_WINDOW 1024 -> 256 (eighth of the context)"), [("SHORT_WINDOW", "down", 256)])
        self.assertEqual(parsed("train on half the context length"), [("MAX_SEQ_LEN", None, 1024)])

    def test_a_per_layer_embedding_named_is_added(self):
        self.assertEqual(parsed("per-layer embedding tables"), [("PER_LAYER_EMBED", "on", None)])


class PartAndAsideTests(unittest.TestCase):
    def test_a_part_of_a_component_is_not_the_component(self):
        self.assertEqual(parsed("take the sigmoid gates off the value embeddings"), [("VE_GATE", "off", None)])
        self.assertEqual(parsed("drop the gates of the value embeddings"), [("VE_GATE", "off", None)])
        self.assertEqual(parsed("remove the gate biases on value embeddings"), [("VE_GATE", "off", None)])
        self.assertEqual(parsed("value embeddings ungated"), [("VE_GATE", "off", None)])
        self.assertEqual(parsed("ungate the value embeddings"), [("VE_GATE", "off", None)])
        self.assertEqual(parsed("remove the lambdas of the x0 skip"), [("X0_LAMBDAS", "off", None)])
        self.assertEqual(parsed("drop the scalars on the residual stream"), [("RESID_LAMBDAS", "off", None)])
        self.assertEqual(parsed("remove value embeddings"), [("VALUE_EMBEDS", "off", "off")])

    def test_possessives_name_the_owner(self):
        self.assertEqual(parsed("raise Muon's momentum to 0.97"), [("MUON_MOMENTUM", "up", 0.97)])
        self.assertEqual(parsed("remove the value embeddings' gates"), [("VE_GATE", "off", None)])

    def test_nesterov_momentum_with_a_value_is_the_momentum(self):
        self.assertEqual(parsed("nesterov momentum 0.9"), [("MUON_MOMENTUM", None, 0.9)])
        self.assertEqual(parsed("disable Nesterov momentum"), [("NESTEROV", "off", None)])

    def test_an_aside_that_restates_an_unchanged_setting_is_no_change(self):
        self.assertEqual(parsed("MUON_MOMENTUM 0.97 (warmup still from 0.85 over 300 steps)"),
                         [("MUON_MOMENTUM", None, 0.97)])
        self.assertEqual(parsed("depth 10 (aspect ratio unchanged at 64)"), [("DEPTH", "up", 10)])

    def test_no_gradient_accumulation_is_one_micro_batch_per_step(self):
        self.assertEqual(parsed("no gradient accumulation"), [("TOTAL_BATCH_SIZE", "down", 262144)])
        self.assertEqual(parsed("2**18 tokens per step (no grad accumulation)"),
                         [("TOTAL_BATCH_SIZE", "down", 262144)])

    def test_width_per_layer_of_depth_is_the_aspect_ratio(self):
        self.assertEqual(parsed("96 channels per layer"), [("ASPECT_RATIO", "up", 96)])
        self.assertEqual(parsed("48 dims per block of depth"), [("ASPECT_RATIO", "down", 48)])

    def test_alternating_windows_in_words(self):
        self.assertEqual(parsed("alternate sliding-window and full attention"), [("WINDOW_PATTERN", "set", "SL")])
        self.assertEqual(parsed("alternate half-context windows with global attention every other layer"),
                         [("WINDOW_PATTERN", "set", "SL")])
        self.assertEqual(parsed("train on half the context length"), [("MAX_SEQ_LEN", None, 1024)])


class ConstantChangeTests(unittest.TestCase):
    def test_changes_from_constants(self):
        self.assertEqual(intent.changes_from_constant("MATRIX_LR", 0.04, 0.05),
                         [{"knob": "MATRIX_LR", "direction": "up", "value": 0.05}])
        self.assertEqual(intent.changes_from_constant("ADAM_BETAS", [0.8, 0.95], [0.8, 0.99]),
                         [{"knob": "ADAM_BETA2", "direction": "up", "value": 0.99}])
        self.assertEqual(intent.changes_from_constant("WINDOW_PATTERN", "SSSL", "LLLL"),
                         [{"knob": "WINDOW_PATTERN", "direction": "set", "value": "L"}])


class CrashWordsTests(unittest.TestCase):
    """A fix planned in words is matched to a crash by the crash's words, read from its
    stored features (novelty.words_only), never from the constants its code changed."""

    def test_words_keep_their_flags(self):
        from memorylab_core import evidence, novelty
        change_set = {"constants": [{"name": "DEPTH", "old": 8, "new": 10}],
                      "hunks": [[["DEPTH = 8"], ["DEPTH = 10"]]]}
        for crashed, planned in (
                ("Muon ns_steps 5 -> 3",
                 "only three polar-express orthogonalisation iterations per Muon step"),
                ("halve total batch size to 2^14 (device batch 8)",
                 "total_batch_size 2^15->2^14: more optimizer steps in the budget")):
            idea = {"description": crashed, "tags": [], "family": "", "hypothesis": None}
            crash = {"run_id": "r1", "status": "crash", "description": crashed,
                     "error": {"summary": "RuntimeError: boom"}, "change_set": change_set,
                     "novelty_features": novelty.features(idea, None, change_set)}
            guard = evidence.assess({"description": planned, "tags": [], "family": "",
                                     "hypothesis": None}, [crash])
            self.assertEqual((guard["fix_of"] or {}).get("run_id"), "r1", planned)


class LexicalTests(unittest.TestCase):
    def test_tokens_are_canonical(self):
        self.assertEqual(lexical.lexical_tokens("squared ReLU"), lexical.lexical_tokens("relu^2"))
        self.assertIn("0.05", lexical.lexical_tokens("lr 5e-2"))
        self.assertNotIn("the", lexical.lexical_tokens("the lr"))

    def test_overall_direction(self):
        self.assertEqual(lexical.overall_direction("increase it"), "up")
        self.assertEqual(lexical.overall_direction("reduce it"), "down")
        self.assertIsNone(lexical.overall_direction("increase this, reduce that"))


class ImportCostTests(unittest.TestCase):
    def test_importing_the_parser_compiles_no_regular_expression(self):
        # patterns compile on first use: `check` pays for the ones it needs, other commands for none
        code = ("import re\ncalls = []\nreal = re._compile\n"
                "re._compile = lambda *a: calls.append(a) or real(*a)\n"
                "import memorylab_core.intent\nprint(len(calls))")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
        self.assertEqual(out.stdout.strip(), "0")


if __name__ == "__main__":
    unittest.main()


class LazyPatternTests(unittest.TestCase):
    """vocabulary.compiled skips compiling a pattern for a text that cannot match it;
    the literal prefilter must never hide a real match."""

    def test_required_literals(self):
        from memorylab_core import vocabulary
        self.assertEqual(vocabulary.required_literals(r"\bmatrix\s+lr\b|\bmuon\s+lr"), {"matrix", "muon"})
        self.assertEqual(vocabulary.required_literals(r"\b(?:muon|matrix)\s+lr"), {"muon", "matrix"})
        self.assertEqual(vocabulary.required_literals(r"ramps?\b"), {"ramp"})
        # a mandatory part anywhere in an alternative, not only at its start
        for source, literals in ((r"(?:ab)?cd", {"cd"}), (r"[ab]cd", {"cd"}), (r"(?<=x)ab", {"ab"}),
                                 (r"\bz\s*loss\b", {"loss"}), (r"a+bc", {"bc"}), (r"abc{2}d", {"abc"}),
                                 (r"(?P<n>foo|bar)baz?", {"foo", "bar"}),
                                 (r"→|=>", {"→", "=>"}),
                                 (r"\.\d+ab", {"ab"})):
            self.assertEqual(vocabulary.required_literals(source), literals, source)
        # \d matches any Unicode digit and \x41 is "A": escapes other than a symbol's
        # stand for no literal
        for opaque in (r"a|bc", r"\bcd?e", r"(?i)abc", r"\bx\s*0?\b", r"(?:ab|c)d", r"\w+l?y",
                       r"(\d),(\d{3})", r"\x41b", r"\u00e9t", r"\101b", r"\N{GREEK SMALL LETTER BETA}1"):
            self.assertIsNone(vocabulary.required_literals(opaque), opaque)

    def test_numbers_in_any_script_still_parse(self):
        from memorylab_core import novelty
        for text in ("raise matrix_lr to ０.０５", "raise matrix_lr to 0.05"):
            changes = novelty.features({"description": text})["changes"]
            self.assertEqual([(c["knob"], c["value"]) for c in changes], [("MATRIX_LR", 0.05)], text)

    def test_the_generated_literals_are_current(self):
        # _literals.py spares every process the derivation; a stale file is only slower
        # (a pattern missing from it is derived at run time), so the suite says so
        from memorylab_core import vocabulary
        path = os.path.join(os.path.dirname(vocabulary.__file__), "_literals.py")
        with open(path, encoding="utf-8") as f:
            self.assertEqual(f.read(), vocabulary.literals_module(),
                             "patterns changed: run `python3 -m memorylab_core.vocabulary`")

    def test_prefilter_never_hides_a_match(self):
        import csv
        import glob
        import re
        from memorylab_core import knob_changes, mentions, quantities, vocabulary  # noqa: F401
        texts = []
        for path in glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "*.tsv")):
            with open(path, encoding="utf-8", newline="") as f:
                for row in csv.DictReader(f, delimiter="\t"):
                    texts += [row[k] for k in ("prior", "planned", "description") if k in row]
        texts = [vocabulary.canonical_text(t) for t in texts] + [t.lower() for t in texts]
        checked = 0
        for table in vocabulary.pattern_tables():
            for source, _ in table:
                literals = vocabulary.required_literals(source)
                if literals is None:
                    continue
                regex = re.compile(source)
                for text in texts:
                    if regex.search(text):
                        checked += 1
                        self.assertTrue(any(lit in text for lit in literals), (source, text))
        self.assertGreater(checked, 100)
