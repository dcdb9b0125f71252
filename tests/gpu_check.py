"""GPU check for maintainers: the real pipeline on one NVIDIA GPU in about two minutes, offline.

    python tests/gpu_check.py [--time-budget SECONDS] [--keep]
    python tests/gpu_check.py --dry-run      # the same, tiny, on CPU (the test suite runs this)

Writes a synthetic corpus into a temporary HOME (no network), runs the real
prepare.py (tokenizer at the full 8192 tokens) and the real train.py with
the full default model, shrinking only the time budget (60 s of counted
training) and the evaluation tokens. Then it prints steps, tokens per second,
MFU, peak VRAM, the attention backend and the whole sidecar, and exits 1 with
`GPU CHECK FAILED: ...` if the run failed, a metric is NaN or a field is
missing. Flash-Attention 3 loads only from the local Hugging Face cache
(HF_HUB_OFFLINE=1); without it the run uses SDPA and the check says so.
"""

import argparse
import math
import os
import sys
import time

import training_harness as harness

REQUIRED_FIELDS = harness.SUMMARY_KEYS + (
    "device", "attention", "torch_version", "mfu_peak_flops", "mfu_note", "time_budget_s", "seed",
    "hyperparameters", "train_py_sha256", "prepare_py_sha256")
EXCLUDED_STEPS = 11  # steps 0-10 are compilation and warm-up, never timed
FULL = dict(prepare={"EVAL_TOKENS": "8 * 524288"}, train={}, num_shards=4, docs_per_shard=1200,
            corpus=dict(num_words=30000, sentences_per_doc=(30, 90)), depth=8, num_params_M=50.332176)
TINY = dict(prepare=dict(harness.TINY_PREPARE, EVAL_TOKENS="16 * 8 * 256"), train=harness.TINY_TRAIN,
            num_shards=2, docs_per_shard=600, corpus={}, depth=2, num_params_M=0.786468)


def problems(sidecar, plan, on_gpu):
    """Everything wrong with a finished run's sidecar, as one-line messages."""
    found = [f"missing field {key!r}" for key in REQUIRED_FIELDS if key not in sidecar]
    for key in harness.SUMMARY_KEYS:
        value = sidecar.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            found.append(f"{key} is {value}")
    if found:
        return found
    if sidecar["num_steps"] <= EXCLUDED_STEPS:
        found.append(f"only {sidecar['num_steps']} steps: none was timed")
    if (sidecar["depth"], round(sidecar["num_params_M"], 6)) != (plan["depth"], plan["num_params_M"]):
        found.append(f"model is depth {sidecar['depth']} with {sidecar['num_params_M']}M parameters, "
                     f"expected depth {plan['depth']} with {plan['num_params_M']}M")
    if on_gpu:
        for key in ("mfu_percent", "peak_vram_mb", "mfu_peak_flops"):
            if not sidecar[key] or sidecar[key] <= 0:
                found.append(f"{key} is {sidecar[key]} on a GPU")
    return found


def report(sidecar):
    """The figures a maintainer wants, from the sidecar."""
    timed_steps = sidecar["num_steps"] - EXCLUDED_STEPS
    batch = sidecar["hyperparameters"]["TOTAL_BATCH_SIZE"]
    tok_per_sec = timed_steps * batch / sidecar["training_seconds"] if sidecar["training_seconds"] > 0 else 0.0
    peak = sidecar["mfu_peak_flops"]
    return "\n".join([
        f"device:            {sidecar['device']} (torch {sidecar['torch_version']})",
        f"attention:         {sidecar['attention']}",
        f"steps:             {sidecar['num_steps']} ({timed_steps} timed, {sidecar['training_seconds']:.1f}s)",
        f"tokens/s (timed):  {tok_per_sec:,.0f}",
        f"mfu_percent:       {sidecar['mfu_percent']:.2f} "
        f"(peak {'n/a' if peak is None else f'{peak / 1e12:.1f} TFLOP/s'}; {sidecar['mfu_note'] or 'from the table'})",
        f"peak_vram_mb:      {sidecar['peak_vram_mb']:.1f}",
        f"val_bpb:           {sidecar['val_bpb']:.6f}",
        f"total_seconds:     {sidecar['total_seconds']:.1f}",
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny model on CPU instead of the full one on a GPU")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="counted training seconds (default 60, or 3 with --dry-run)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    missing = harness.missing_modules()
    if missing:
        sys.exit(f"error: missing training dependencies: {', '.join(missing)} (see docs/training.md)")
    import torch
    on_gpu = not args.dry_run
    if on_gpu and not torch.cuda.is_available():
        sys.exit("error: no CUDA device; run with --dry-run for the CPU version")

    plan = TINY if args.dry_run else FULL
    budget = args.time_budget if args.time_budget is not None else (3 if args.dry_run else 60)
    env = {"CUDA_VISIBLE_DEVICES": "" if args.dry_run else os.environ.get("CUDA_VISIBLE_DEVICES", "0")}
    if on_gpu:  # the kernel cache stays where it is although HOME moves; threads for the dataloader
        env["HF_HOME"] = os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface"))
        env["OMP_NUM_THREADS"] = "8"
    t0 = time.time()
    with harness.scratch_dir("autoresearch-gpu-check-", keep=args.keep) as root:
        try:
            summary_path = harness.run_pipeline(root, dict(plan["prepare"], TIME_BUDGET=repr(budget)), plan["train"],
                                                plan["num_shards"], plan["docs_per_shard"], env=env, **plan["corpus"])
        except SystemExit as failed:  # a step exited non-zero: say so in the check's own words
            sys.exit(f"GPU CHECK FAILED: {failed.code}")
        if not os.path.exists(summary_path):
            sys.exit(f"GPU CHECK FAILED: train.py wrote no sidecar at {summary_path}")
        sidecar = harness.print_sidecar(summary_path)
        found = problems(sidecar, plan, on_gpu)
        if found:
            sys.exit("GPU CHECK FAILED: " + "; ".join(found))
        print(f"\n{'GPU check' if on_gpu else 'GPU check (dry run, CPU)'}")
        print(report(sidecar))
        if on_gpu and sidecar["attention"] != "fa3":
            print("note: Flash-Attention 3 was not loaded (not in the local kernel cache?); SDPA timings")
        print(f"passed in {time.time() - t0:.0f}s")

if __name__ == "__main__":
    main()
