"""MemoryLab: the research-memory layer around autoresearch's training loop.

Modules, one idea each (see docs/memorylab_api.md):
- store: every file read and write under one root (lock, atomic writes, ledger,
  slim-row index, archives, results.tsv);
- records: building and validating one run record, and the log transaction;
- gitinfo: git provenance of a run;
- fingerprint, intent, novelty: what an idea is and whether it was tried before;
- registry, decisions, stats, noise: champion board, next actions, noise floor;
- render: the morning report and decision packets as text.

Nothing is imported here so that `python memorylab.py check` stays fast.
"""

SCHEMA_VERSION = 2
