"""The novelty guard on what agents really write, through the CLI, with floors.

Data (tests/data, sources in tests/data/real_logs/SOURCES.md):
- novelty_real_pairs.tsv: 119 pairs of verbatim descriptions from public agent logs;
- novelty_dev.tsv: 40 pairs written by people who never saw the guard's code;
- replay_labels.tsv + real_logs/: five public logs replayed in order, each labelled
  row checked against the rows above it, as the agent's `check` would have been.

Pairs: a fresh store holds the prior idea as one discarded run; `check --mode exploit
--fail-on-similar` is asked about the planned one (exit 2 = blocked = "same").
Replay: the rows above a labelled row are projected to upstream's five columns and
loaded with `import-tsv`, then its own description is checked the same way.
The floors are the targets the guard was built to; the figures it reaches are printed
by `python3 -m unittest tests.test_novelty_real_data -v` (see docs/novelty.md).
"""

import csv
import hashlib
import json
import os
import re
import sys
import unittest
from datetime import datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mlhelpers import LabCase  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
LOGS = os.path.join(DATA, "real_logs")


def read_tsv(name):
    with open(os.path.join(DATA, name), encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


# ---------------------------------------------------------------- projecting a log

_COLUMNS = {
    "commit": ("commit", "git_commit", "commit_hash", "sha"),
    "metric": ("val_bpb", "exact_final_val_bpb", "final_val_bpb", "val_loss", "loss", "bpb",
               "score", "primary_metric"),
    "gb": ("memory_gb", "peak_memory_gb", "peak_vram_gb", "vram_gb"),
    "mb": ("memory_mb", "peak_memory_mb", "peak_vram_mb", "peak_memory_mib"),
    "status": ("status", "final_status", "outcome"),
    "description": ("description", "desc", "experiment_desc", "title", "idea"),
}
_STATUS = {"keep": "keep", "kept": "keep", "baseline": "keep", "discard": "discard",
           "discarded": "discard", "reverted": "discard", "crash": "crash", "crashed": "crash",
           "failed": "crash", "fail": "crash", "error": "crash", "oom": "crash", "timeout": "crash"}


def _number(text):
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if value == value and abs(value) != float("inf") else 0.0


def projected_rows(name):
    """{row number: upstream results.tsv line} of a log's rows that have a description
    (rows counted from 1 over the non-blank lines after the header)."""
    with open(os.path.join(LOGS, name), "rb") as f:
        text = f.read().decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = [line for line in text.splitlines() if line.strip()]
    header = [h.strip().lower() for h in lines[0].split("\t")]
    index = {key: next((header.index(n) for n in names if n in header), None)
             for key, names in _COLUMNS.items()}
    out = {}
    for row, line in enumerate(lines[1:], 1):
        parts = line.split("\t")

        def field(key):
            i = index[key]
            return parts[i].strip() if i is not None and i < len(parts) else ""
        description = " ".join(field("description").split())
        if not description:
            continue
        commit = field("commit")
        if not re.fullmatch(r"[0-9a-fA-F]+", commit):
            commit = hashlib.sha1(f"{name}#{row}".encode()).hexdigest()[:7]
        status = _STATUS.get(field("status").lower(), "discard")
        metric = _number(field("metric"))
        memory = _number(field("gb")) if index["gb"] is not None else _number(field("mb")) / 1024
        if status != "crash" and round(metric, 6) <= 0:
            status = "crash"
        if status == "crash":
            metric = memory = 0.0
        out[row] = f"{commit}\t{metric:.6f}\t{min(max(memory, 0.0), 1e9):.1f}\t{status}\t{description}"
    return out


# ---------------------------------------------------------------- the tests

def prior_record(description):
    return {"run_id": "20260101T000000Z-aaaaaaa", "timestamp_utc": "2026-01-01T00:00:00Z",
            "branch": "autoresearch/test", "commit": "aaaaaaa", "parent_commit": "bbbbbbb",
            "family": "", "status": "discard", "description": description, "hypothesis": "",
            "tags": [], "notes": "", "metrics": {"val_bpb": 1.001, "peak_vram_mb": 40000.0},
            "error": None, "artifacts": {},
            "novelty_guard": {"classification": "novel", "counts": {}, "match_count": 0, "top_matches": []}}


class RealWritingTests(LabCase):
    def blocked(self, root, description, now):
        # run from the store, outside any git work tree: no train.py to read values from,
        # as for an agent whose fork's train.py is unknown
        result = self.cli("--root", root, "check", f"--description={description}", "--mode", "exploit",
                          "--fail-on-similar", cwd=root, MEMORYLAB_NOW=now)
        self.assertIn(result.code, (0, 2), result)   # anything else is an error, not a verdict
        return result.code == 2

    def score_pairs(self, name):
        """(same recall, different false-match rate, misses) of a pair file."""
        hits = {"same": [0, 0], "different": [0, 0]}
        misses = []
        for i, pair in enumerate(read_tsv(name)):
            root = os.path.join(self.tmp, f"pairs{i}")
            self.ok("--root", root, "init", cwd=self.tmp)
            with open(os.path.join(root, "results", "memorylab", "experiments.jsonl"), "w",
                      encoding="utf-8") as f:
                f.write(json.dumps(prior_record(pair["prior"])) + "\n")
            blocked = self.blocked(root, pair["planned"], "2026-01-01T01:00:00Z")
            hits[pair["label"]][0] += blocked
            hits[pair["label"]][1] += 1
            if blocked != (pair["label"] == "same"):
                misses.append((pair["label"], pair["prior"], pair["planned"]))
        recall = hits["same"][0] / hits["same"][1]
        false_match = hits["different"][0] / hits["different"][1]
        print(f"\n{name}: same_recall={recall:.2f} different_false_match={false_match:.2f} "
              f"balanced_acc={(recall + 1 - false_match) / 2:.2f}", file=sys.stderr)
        return recall, false_match, misses

    def test_real_description_pairs(self):
        recall, false_match, misses = self.score_pairs("novelty_real_pairs.tsv")
        self.assertGreaterEqual((recall + 1 - false_match) / 2, 0.92, misses)
        self.assertLessEqual(false_match, 0.04, misses)

    def test_written_pairs(self):
        recall, false_match, misses = self.score_pairs("novelty_dev.tsv")
        self.assertGreaterEqual(recall, 0.95, misses)
        self.assertLessEqual(false_match, 0.05, misses)

    def test_replaying_real_logs(self):
        labels = [r for r in read_tsv("replay_labels.tsv") if r["label"] in ("same", "different")]
        self.assertEqual(len(labels), 78)
        true_blocks = false_blocks = same = different = 0
        misses = []
        for n, name in enumerate(sorted({r["log"] for r in labels})):
            projected = projected_rows(name)
            root = os.path.join(self.tmp, f"replay{n}")
            self.ok("--root", root, "init", cwd=self.tmp)
            for item in sorted((r for r in labels if r["log"] == name), key=lambda r: int(r["row"])):
                row = int(item["row"])
                above = [projected[r] for r in sorted(projected) if r < row]
                if above:
                    path = os.path.join(self.tmp, f"prefix{n}.tsv")
                    with open(path, "w", encoding="utf-8") as f:
                        f.write("commit\tval_bpb\tmemory_gb\tstatus\tdescription\n" + "\n".join(above) + "\n")
                    # import-tsv only adds rows it has not seen: the store grows row by row
                    now = datetime(2020, 1, 1) + timedelta(seconds=len(above))
                    self.ok("--root", root, "import-tsv", path, cwd=root,
                            MEMORYLAB_NOW=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
                description = projected[row].split("\t", 4)[4] if row in projected else item["description"]
                blocked = self.blocked(root, description, "2020-01-02T00:00:00Z")
                if item["label"] == "same":
                    same += 1
                    true_blocks += blocked
                else:
                    different += 1
                    false_blocks += blocked
                if blocked != (item["label"] == "same"):
                    misses.append((item["label"], name, row, description))
        precision = true_blocks / max(1, true_blocks + false_blocks)
        recall, false_block = true_blocks / same, false_blocks / different
        print(f"\nreplay: precision={precision:.2f} recall={recall:.2f} false_block={false_block:.2f}",
              file=sys.stderr)
        self.assertGreaterEqual(precision, 0.8, misses)
        self.assertGreaterEqual(recall, 0.75, misses)
        self.assertLessEqual(false_block, 0.03, misses)


if __name__ == "__main__":
    unittest.main()
