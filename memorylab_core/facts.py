"""Row facts: every per-row value the registry, decisions and the report read, as a tuple.

``row_facts(row)`` is (class key, status, val_bpb, replicate key, short commit, short
parent commit, failure (signature, label) or None, knobs touched, evidence role,
imported). The store's index keeps
it beside each slim row as ``_facts``, computed once when the row is indexed (lab's enrich
hook), so commands over 100k rows loop over ready tuples instead of re-deriving classes,
replicate keys and failure signatures from every row. ``facts_of(rows)`` takes the stored
tuple when there is one and computes it otherwise (full records, tests, a new run).
``FACTS_VERSION`` names the rule: the index is rebuilt when it changes, and so is a
registry file written under another version (its ``rules_version``). This module is
light on purpose (its dependencies load on first use): `check` imports it for the version
and never computes a fact.
"""

FACTS_VERSION = 3
FIELDS = ("class", "status", "val_bpb", "group", "commit", "parent", "failure", "knobs", "role",
          "imported")
CLASS, STATUS, VALUE, GROUP, COMMIT, PARENT, FAILURE, KNOBS, ROLE, IMPORTED = range(len(FIELDS))


def row_facts(row):
    """The facts tuple of one row: noise.comparability_class, fields.status_of,
    fields.val_bpb_of, noise.replicate_key (None for a row that cannot rank: not kept
    or discarded, or without a comparable val_bpb), fields.short_commit of the commit
    and of the parent, failures.failure_signature (discards and crashes that are not
    replicates, else None: a rerun is evidence about its group, never a failure of an
    idea), the research knobs of the row's parsed changes (sorted, no repeats, never
    SEED), evidence.role_of and whether the row was imported from a results.tsv."""
    from memorylab_core import noise
    from memorylab_core.evidence import NOT_KNOBS, role_of
    from memorylab_core.failures import failure_signature
    from memorylab_core.fields import short_commit, status_of, val_bpb_of
    status = status_of(row)
    value = val_bpb_of(row)
    ranks = (status == "keep" or status == "discard") and value is not None
    features = row.get("novelty_features")
    changes = features.get("changes") if type(features) is dict else None
    knobs = ()
    if changes and type(changes) is list:
        knobs = tuple(sorted({change["knob"] for change in changes
                              if type(change) is dict and type(change.get("knob")) is str
                              and change["knob"] and change["knob"] not in NOT_KNOBS}))
    role = role_of(row)
    failed = (status == "discard" or status == "crash") and role != "replicate"
    return (noise.comparability_class(row), status, value,
            noise.replicate_key(row) if ranks else None,
            short_commit(row.get("commit")), short_commit(row.get("parent_commit")),
            failure_signature(row) if failed else None, knobs, role,
            isinstance(row.get("imported"), dict))


def facts_of(rows):
    """row_facts of every row, in order: the index's stored ``_facts`` when present."""
    facts = []
    for row in rows:
        found = row.get("_facts")
        if type(found) is not tuple or len(found) != len(FIELDS):
            found = row_facts(row)
        facts.append(found)
    return facts
