"""MemoryLab: the research-memory layer around autoresearch's training loop.

Modules, one idea each (see docs/memorylab_api.md):
- lab: the commands init, check, log and report as library functions (memorylab.py
  only parses arguments and prints);
- store: every file read and write under one root (lock, atomic writes, the log
  transaction's commit, ledger, slim-row index, archives, results.tsv);
- records: validating inputs and building one run record (sidecar, log tail, crash);
- gitinfo: git provenance of a run;
- fields: tolerant accessors of record fields (the one home for "a finite metric");
- facts: per-row facts computed once at index time (class, replicate key, ...);
- fingerprint: train.py's constants and normalised-code hash;
- vocabulary, quantities, mentions, knob_changes, intent, lexical: what an idea
  changes (knob, direction, value), parsed from its description;
- novelty: whether an idea was tried before (the guard's categories and policy);
- stats, noise: Welch's test, noise floor, comparability classes, replicates, plateau;
- registry, lineages, failures: champion board, lineages, failure clusters;
- decisions: the decision packet's next action;
- render, html: the morning report (markdown, JSON data, HTML) and packets;
- views, queries, doctor, importer: show/list/compare/brief, doctor, import-tsv.

Nothing is imported here so that `python memorylab.py check` stays fast.
"""

SCHEMA_VERSION = 2

_HASHES = {}


def hex_digest(algorithm, data):
    """hashlib's hex digest ("sha1" or "sha256") of `data`, from CPython's built-in
    hash modules where they exist: hashlib loads OpenSSL first, ~3 ms of every
    command, for digests of a few KB."""
    new = _HASHES.get(algorithm)
    if new is None:
        try:
            if algorithm == "sha1":
                from _sha1 import sha1 as new
            else:
                from _sha256 import sha256 as new
        except ImportError:   # other Pythons
            import hashlib
            new = getattr(hashlib, algorithm)
        _HASHES[algorithm] = new
    return new(data).hexdigest()
