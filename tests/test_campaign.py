"""A night of research as program.md prescribes it, through the CLI, in a temp git repo.

A fake trainer writes what train.py writes (run.log with the console summary or a
traceback, and the summary sidecar); git commits every idea and resets discards and
crashes, as the loop says. The same script runs for a GPU class and a CPU class.
Each step checks what the agent would read: the packet line of `log`, `check`, `brief`,
`show champion` and the report. ``transcript`` keeps the lines the closing note quotes.
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mlhelpers import LabCase, console_summary, git, metrics  # noqa: E402

TRAIN_PY = """\
DEPTH = 8
DEVICE_BATCH_SIZE = 128
TOTAL_BATCH_SIZE = 2**19
ACTIVATION = "relu2"


def main():
    return DEPTH
"""
H100 = {"device": "NVIDIA H100 80GB HBM3", "time_budget_s": 300, "max_seq_len": 2048}
CPU = {"device": "cpu", "time_budget_s": 60, "max_seq_len": 256}


class Campaign(LabCase):
    """The scripted night; subclasses pick the device class."""

    PROVENANCE = H100
    STEPS = 953

    def setUp(self):
        super().setUp()
        self.write("train.py", TRAIN_PY)
        git(self.repo, "commit", "-q", "-am", "the train.py of this campaign")
        self.clock = 1_700_000_000
        self.transcript, self.champion_lines = [], []
        self.ok("init")

    # ---- the agent's hands
    def edit(self, old, new, message):
        """Edit train.py and commit, as step 4 of the loop."""
        self.edit_only(old, new)
        git(self.repo, "commit", "-q", "-am", message)

    def edit_only(self, old, new):
        """Edit train.py without committing (step 3, before `check --code`)."""
        path = self.path("train.py")
        with open(path) as f:
            text = f.read()
        self.assertIn(old, text)
        with open(path, "w") as f:
            f.write(text.replace(old, new))

    def reset(self):
        git(self.repo, "reset", "-q", "--hard", "HEAD~1")

    def train(self, val_bpb=None, *, seed=42, steps=None, error=None):
        """What `AUTORESEARCH_SUMMARY_PATH=results/summary.json uv run train.py > run.log`
        leaves behind: run.log, and the sidecar when the run finished."""
        self.clock += 400
        os.makedirs(self.path("results"), exist_ok=True)
        if error:
            self.write("run.log", f"step 00001\nTraceback (most recent call last):\n{error}\n",
                       mtime=self.clock)
            return
        values = metrics(val_bpb=val_bpb, num_steps=steps or self.STEPS,
                         total_tokens_M=round((steps or self.STEPS) * 0.524288, 1))
        self.write("run.log", "step 00001\n" + console_summary(values), mtime=self.clock)
        sidecar = dict(values, **self.PROVENANCE, seed=seed)
        self.write(os.path.join("results", "summary.json"), json.dumps(sidecar),
                   mtime=self.clock + 1)

    def log(self, description, status, *flags, crash=None):
        """Step 8: log the run; returns (packet dict, the `Decision packet:` line)."""
        args = ["log", "--description", description, "--status", status, "--log", "run.log"]
        if crash:
            args += ["--error", crash]
        else:
            args += ["--summary", os.path.join("results", "summary.json")]
        text = self.ok(*args, *flags).out
        line = next(x for x in text.splitlines() if x.startswith("Decision packet: "))
        packet = self.records()[-1]["decision_packet"]
        self.assertIn(f"action={packet['next_action']} ", line)
        self.champion_lines.append(next(line for line in text.splitlines()
                                        if line.startswith("Champion: ")))
        return packet, line

    def check(self, description, *flags):
        result = self.cli("check", "--description", description, "--fail-on-similar", *flags)
        self.assertIn(result.code, (0, 2), result)
        self.assertIn("Classification: ", result.out, result)
        return result

    def brief(self):
        return self.ok("brief").out

    def champion_everywhere(self):
        """The champion's run id as log, brief, report (md, json, html) and show see it."""
        brief = self.brief()
        line = next(x for x in brief.splitlines() if x.startswith("Champion: "))
        self.ok("report")
        reports = self.path("results", "memorylab", "reports")
        with open(os.path.join(reports, "latest.md")) as f:
            markdown = f.read()
        with open(os.path.join(reports, "latest.json")) as f:
            data = json.load(f)
        with open(os.path.join(reports, "latest.html")) as f:
            page = f.read()
        shown = self.ok("show", "champion", "--json").json()["run"]["run_id"]
        run_id = data["headline"]["champion"]["run_id"]
        self.assertIn(f"Champion: run {run_id} on commit", line)
        self.assertIn(f"- Current champion: run `{run_id}` on commit", markdown)
        self.assertIn(f"Current champion: run {run_id} on commit", page)
        self.assertEqual(shown, run_id)
        self.assertTrue(self.champion_lines[-1].startswith(f"Champion: run {run_id} on commit"))
        return run_id, brief, markdown, data

    def note(self, moment, *lines):
        self.transcript.append(f"## {moment}")
        self.transcript.extend(lines)

    def test_retry_advice_is_a_variant_check_allows(self):
        self.train(1.0000)
        self.log("baseline", "keep")
        self.edit("DEPTH = 8", "DEPTH = 9", "depth 9")
        self.train(1.0010)
        packet, line = self.log("DEPTH 8 -> 9", "discard")
        self.reset()
        self.assertEqual(packet["next_action"], "retry")
        self.assertIn("(DEPTH further up than 9) as a new experiment, not a rerun", line)
        self.assertEqual(self.check("DEPTH 8 -> 9").code, 2)  # the rerun of a discard: no
        variant = self.check("DEPTH 8 -> 10")
        self.assertEqual(variant.code, 0, variant)

    def test_a_crash_again_is_no_fix_and_its_fix_counts_as_no_match(self):
        self.train(1.0000)
        self.log("baseline", "keep")
        self.edit('ACTIVATION = "relu2"', 'ACTIVATION = "swiglu"', "swiglu")
        for _ in range(2):  # the same idea crashes twice (the agent retried it unchanged)
            self.train(error="NameError: name 'swiglu' is not defined")
            self.log("SwiGLU instead of relu^2", "crash",
                     crash="NameError: name 'swiglu' is not defined")
        first, again = self.records()[-2:]
        self.assertEqual((first["role"], again["role"]), ("experiment", "experiment"))
        self.reset()
        result = self.check("SwiGLU instead of relu^2")
        self.assertEqual(result.code, 0, result)
        self.assertIn(f"Fix of crashed run {again['run_id']} ({again['commit']}): NameError",
                      result.out)
        self.assertNotIn("Nothing close matched", result.out)
        guard = self.ok("check", "--description", "SwiGLU instead of relu^2", "--json") \
            .json()["novelty_guard"]
        self.assertEqual(guard["counts"]["repeat_failure"], 0)
        self.assertEqual([m["category"] for m in guard["top_matches"]][:1], ["fix_of_crash"])

    def test_the_fix_of_a_constant_that_did_not_fold_is_a_fix(self):
        self.train(1.0000)
        self.log("baseline", "keep")
        self.edit("DEPTH = 8", "DEPTH = 12 * depth_mult", "depth 12")  # a typo: no value
        self.train(error="NameError: name 'depth_mult' is not defined")
        self.log("DEPTH 8 -> 12", "crash", crash="NameError: name 'depth_mult' is not defined")
        crashed = self.records()[-1]["run_id"]
        self.reset()
        self.edit("DEPTH = 8", "DEPTH = 12", "depth 12, fixed")
        result = self.check("DEPTH 8 -> 12", "--code")
        self.assertEqual(result.code, 0, result)
        self.assertIn(f"Fix of crashed run {crashed}", result.out)

    def test_the_fix_of_a_crashed_constant_change_is_recognised_in_words(self):
        # the crash's identity is its code (DEPTH 8 -> 12); a fix planned in words only
        # is matched by what the crash's description said
        self.train(1.0000)
        self.log("baseline", "keep")
        self.edit("DEPTH = 8", "DEPTH = 12", "depth 12")
        self.train(error="torch.OutOfMemoryError: CUDA out of memory")
        self.log("deeper model: depth 12", "crash", crash="torch.OutOfMemoryError: CUDA out of memory")
        crashed = self.records()[-1]
        self.assertEqual(crashed["change_set"]["constants"][0]["name"], "DEPTH")
        self.reset()
        result = self.check("depth 12 with half the device batch")
        self.assertEqual(result.code, 0, result)
        self.assertIn(f"Fix of crashed run {crashed['run_id']}", result.out)

    def test_a_train_py_that_does_not_parse_is_named_not_read_as_every_constant_gone(self):
        self.train(1.0000)
        self.log("baseline", "keep")
        with open(self.path("train.py")) as f:
            good = f.read()
        self.write("train.py", good.replace("DEPTH = 8", "DEPTH = 12 +"))   # a typo
        line = good.splitlines().index("DEPTH = 8") + 1
        result = self.check("depth 8 -> 12", "--code")
        self.assertEqual(result.code, 0, result)
        self.assertIn(f"warning: train.py does not parse: invalid syntax (line {line}); a run of "
                      "it would crash at once", result.err)
        self.assertNotIn("-> None", result.out)
        data = self.ok("check", "--description", "depth 8 -> 12", "--code", "--json").json()
        self.assertEqual(data["train_py_problem"], f"invalid syntax (line {line})")
        self.assertEqual(data["novelty_guard"]["config_delta"], [])
        # run as it is, it crashes; the crash's change is unknown in constants, not
        # every constant of train.py turned off
        git(self.repo, "commit", "-q", "-am", "depth 12")
        self.train(error="SyntaxError: invalid syntax")
        self.log("depth 8 -> 12", "crash", crash="SyntaxError: invalid syntax")
        crashed = self.records()[-1]
        self.assertEqual(crashed["change_set"]["constants"], [])
        self.assertIsNone(crashed["config"]["constants"])
        self.assertNotIn("code", crashed["novelty_features"])
        compared = self.ok("compare", self.records()[0]["run_id"], crashed["run_id"]).out
        self.assertIn("Config delta: unknown", compared)
        self.reset()
        self.write("train.py", good.replace("DEPTH = 8", "DEPTH = 12"))   # the fix
        fixed = self.check("depth 8 -> 12", "--code")
        self.assertEqual((fixed.code, fixed.err), (0, ""), fixed)
        self.assertIn(f"Fix of crashed run {crashed['run_id']}", fixed.out)
        self.assertIn("Config delta vs champion: DEPTH 8 -> 12", fixed.out)

    def test_a_train_py_with_a_nul_byte_is_named_too(self):
        self.train(1.0000)
        self.log("baseline", "keep")
        with open(self.path("train.py")) as f:
            good = f.read()
        self.write("train.py", good.replace("DEPTH = 8", "DEPTH = 8\x00"))
        result = self.check("depth 8 -> 12", "--code")
        self.assertEqual(result.code, 0, result)
        self.assertIn("warning: train.py does not parse: ", result.err)
        self.assertIn("null bytes", result.err)

    def test_a_failed_change_on_a_new_champion_is_judged_alike_in_words_and_in_code(self):
        # step 2 (check in words, before the edit) and step 3 (check --code, after it)
        # must agree: the same change on another base is a follow-up, on the same base
        # a repeat of the failure
        self.train(1.0000)
        self.log("baseline", "keep")
        self.edit("DEPTH = 8", "DEPTH = 12", "depth 12")
        self.train(1.0040)
        self.log("DEPTH 8 -> 12", "discard")
        failed = self.records()[-1]["run_id"]
        self.reset()

        def both_steps():
            """The check in words, then the same with the idea edited in (restored)."""
            results = [self.check("DEPTH 8 -> 12")]
            self.edit_only("DEPTH = 8", "DEPTH = 12")
            results.append(self.check("DEPTH 8 -> 12", "--code"))
            git(self.repo, "checkout", "-q", "train.py")
            return results

        for result in both_steps():   # (with --code: the failed run's very code)
            self.assertEqual(result.code, 2, result)
            self.assertRegex(result.out, f"(repeat_failure|duplicate_run) +score [0-9.]+ +{failed}")
        self.edit("DEVICE_BATCH_SIZE = 128", "DEVICE_BATCH_SIZE = 64", "smaller device batch")
        self.train(0.9950)
        self.log("DEVICE_BATCH_SIZE 128 -> 64", "keep")
        for result in both_steps():
            self.assertEqual(result.code, 0, result)
            self.assertIn("Classification: novel", result.out)
            self.assertIn(f"not a repeat of {failed} (related follow-up: same values of "
                          "DEPTH; also differs in DEVICE_BATCH_SIZE)", result.out)

    # ---- the night
    def test_a_night(self):
        self.assertIn("Next: baseline", self.brief())

        # setup: the unmodified baseline three times measures the noise
        self.train(1.0000, seed=42)
        packet, _ = self.log("baseline", "keep")
        self.assertEqual(packet["next_action"], "promote")
        self.assertIn("not measured yet", packet["rationale"])
        self.assertIn("AUTORESEARCH_SEED=43", self.brief())
        self.train(1.0004, seed=43)
        packet, _ = self.log("baseline", "discard", "--mode", "replicate")
        self.assertEqual(packet["role"], "replicate")
        self.train(0.9996, seed=44)
        packet, _ = self.log("baseline", "keep", "--mode", "replicate")
        self.assertEqual(packet["noise"]["source"], "measured")
        baseline, brief, _, _ = self.champion_everywhere()
        self.assertIn("Noise floor: σ = 0.000762 (measured sd 0.000400 over 2 dof", brief)
        self.assertNotIn("Avoid", brief)

        # a clear win: promote
        self.assertEqual(self.check("DEPTH 8 -> 10").code, 0)
        self.edit("DEPTH = 8", "DEPTH = 10", "depth 10")
        self.train(0.9950)
        packet, _ = self.log("DEPTH 8 -> 10", "keep")
        self.assertEqual(packet["next_action"], "promote")
        self.assertIn("Δ=0.005000 ≥ 2σ=0.001523", packet["summary"])
        champion, _, _, _ = self.champion_everywhere()
        self.assertNotEqual(champion, baseline)

        # a discard with 30% fewer steps: the throughput line
        self.edit("TOTAL_BATCH_SIZE = 2**19", "TOTAL_BATCH_SIZE = 2**20", "batch 2**20")
        self.train(0.9990, steps=667)
        packet, line = self.log("TOTAL_BATCH_SIZE 2**19 -> 2**20", "discard")
        self.reset()
        self.assertIn("Throughput: 30% fewer steps than champion", line)
        self.assertIn("(667 vs 953)", line)
        self.assertEqual(packet["throughput"]["gap"], -0.3001)

        # a silly crash: the champion is unchanged everywhere
        self.edit('ACTIVATION = "relu2"', 'ACTIVATION = "swiglu"', "swiglu")
        self.train(error="NameError: name 'swiglu' is not defined")
        packet, line = self.log("SwiGLU instead of relu^2", "crash",
                                crash="NameError: name 'swiglu' is not defined")
        crashed = self.records()[-1]["run_id"]
        self.reset()
        self.assertEqual(packet["next_action"], "investigate_crash")
        after_crash, brief, markdown, data = self.champion_everywhere()
        self.assertEqual(after_crash, champion)
        self.assertNotIn("legacy", brief)
        self.assertEqual(data["headline"]["current_class"],
                         self.records()[-2]["decision_packet"]["class"]["key"])
        self.note("at the crash", line, *brief.splitlines())

        # its fix: allowed, said to be a fix, judged on its own result
        result = self.check("SwiGLU instead of relu^2")
        self.assertEqual(result.code, 0, result)
        self.assertIn(f"fix of crashed run {crashed}", result.out)
        self.edit('ACTIVATION = "relu2"', 'ACTIVATION = "swiglu2"', "swiglu, fixed")
        self.assertEqual(self.check("SwiGLU instead of relu^2", "--code").code, 0)
        self.train(0.9947)
        packet, line = self.log("SwiGLU instead of relu^2", "keep")
        self.assertEqual(packet["role"], "fix")
        self.assertNotIn("repeats an earlier failure", packet["summary"])
        # a within-noise win: replicate, two reruns, then a verdict
        self.assertEqual(packet["next_action"], "replicate")
        self.assertEqual(packet["replicate"]["seeds"], [43, 44])
        self.note("at the fix", result.out.splitlines()[1], line)
        rerun = self.check("SwiGLU instead of relu^2", "--mode", "replicate")
        self.assertEqual(rerun.code, 0, rerun)  # the advice is something check allows
        self.train(0.9949, seed=43)
        packet, line = self.log("SwiGLU instead of relu^2", "keep", "--mode", "replicate")
        self.assertEqual((packet["next_action"], packet["replicate"]["seeds"]),
                         ("replicate", [44]))
        self.train(0.9950, seed=44)
        packet, line = self.log("SwiGLU instead of relu^2", "discard", "--mode", "replicate")
        self.assertEqual(packet["next_action"], "abandon")
        self.assertIn("after 2 extra seeds its group averages 0.994867 (n=3)", packet["summary"])
        self.assertIn("one-sided pooled t p=", packet["summary"])
        self.assertIn("reset its commit", packet["summary"])
        self.reset()
        self.note("at the verdict", line, *self.brief().splitlines())

        # worse reruns of the champion: no Avoid entry, its follow-up allowed
        self.train(0.9962, seed=43)
        self.log("DEPTH 8 -> 10, rerun", "discard", "--mode", "replicate")
        self.train(0.9958, seed=44)
        self.log("DEPTH 8 -> 10, rerun", "discard", "--mode", "replicate")
        rerun_of_champion, brief, _, _ = self.champion_everywhere()
        self.assertEqual(rerun_of_champion, champion)
        avoid = brief.split("Avoid", 1)[1].split("Crashes", 1)[0]
        self.assertEqual(avoid.count("\n  "), 1, avoid)  # the batch discard only
        self.assertIn("TOTAL_BATCH_SIZE up (size 1, best 0.999000)", avoid)
        self.assertNotIn("DEPTH", avoid)
        self.assertNotIn("SEED", avoid)
        follow_up = self.check("DEPTH 10 -> 12")
        self.assertEqual(follow_up.code, 0, follow_up)
        self.assertNotIn("repeat_failure", follow_up.out.splitlines()[0])

        # an out-of-memory crash blocks only its identical config
        self.edit("DEVICE_BATCH_SIZE = 128", "DEVICE_BATCH_SIZE = 256", "batch 256")
        self.train(error="torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB")
        packet, _ = self.log("DEVICE_BATCH_SIZE 128 -> 256", "crash",
                             crash="torch.OutOfMemoryError: CUDA out of memory")
        self.assertEqual(packet["next_action"], "fix_and_retry")
        blocked = self.check("DEVICE_BATCH_SIZE 128 -> 256", "--code")
        self.assertEqual(blocked.code, 2, blocked)
        self.assertIn("ran out of memory", blocked.out)
        self.reset()
        self.edit("DEVICE_BATCH_SIZE = 128", "DEVICE_BATCH_SIZE = 192", "batch 192")
        smaller = self.check("DEVICE_BATCH_SIZE 128 -> 192", "--code")
        self.assertEqual(smaller.code, 0, smaller)

        # the end: the report's queue holds only open items, the headline agrees
        final, brief, markdown, data = self.champion_everywhere()
        self.assertEqual(final, champion)
        queue = markdown[markdown.index("## Decision Queue"):markdown.index("## Champion Board")]
        self.assertEqual(queue.count("\n| "), 2, queue)  # the header and the one open item
        self.assertIn("closed decisions in the window", queue)
        self.assertIn("(refuted)", markdown)  # the abandoned candidate never leads the board
        self.assertEqual([item["state"] for item in data["decision_queue"]].count("open"), 1)
        self.assertIn("- Experiments recorded overnight: 12\n", markdown)
        self.assertIn("- Keep / discard / crash: 5 / 5 / 2\n", markdown)
        self.note("at the end", *brief.splitlines())

class UpgradedStore(Campaign):
    """A registry file written under older rules is rebuilt, not served."""

    def test_a_night(self):
        self.train(1.0)
        self.log("baseline", "keep")
        path = self.path("results", "memorylab", "champion_challenger.json")
        with open(path) as f:
            old = json.load(f)
        old.pop("rules_version")
        old["champion"] = None  # what the earlier rules said after a crash
        with open(path, "w") as f:
            json.dump(old, f)
        ledger = os.path.getmtime(self.path("results", "memorylab", "experiments.jsonl"))
        os.utime(path, (ledger + 10, ledger + 10))  # newer than the ledger: looks fresh
        self.assertIn("Champion: run ", self.brief())



class CpuCampaign(Campaign):
    """The same night on a CPU class (shrunken constants, as tests/cpu_smoke.py runs)."""

    PROVENANCE = CPU


if __name__ == "__main__":
    unittest.main()
