"""In-flight claims: which agent is about to run which idea, so that two agents
sharing a store (or a tracking server) do not train the same idea at once.

An agent is one work tree on one host on one branch. `claim` appends a claim event
to results/memorylab/claims.jsonl (under the store lock, like the ledger); `log`
appends a release event for the agent's claims. A claim lives until it is released,
until the same agent claims another idea, or until it expires (default TTL 20
minutes). Claims pulled from a tracking server (other machines' agents) are kept
in remote_claims.json, replaced on every pull. Claims are never runs: nothing here
touches the ledger.
"""

import os

from . import gitinfo, records, store as store_module

CLAIMS = "claims.jsonl"
REMOTE_CLAIMS = "remote_claims.json"
DEFAULT_TTL_MINUTES = 20.0
MAX_TTL_MINUTES = 7 * 24 * 60
COMPACT_EVENTS = 2000  # the events file is rewritten with live claims only past this


def agent_of(cwd):
    """{"id", "host", "worktree", "branch"} of the agent running in `cwd`."""
    tree = gitinfo.work_tree(cwd) or os.path.abspath(cwd or os.getcwd())
    branch = gitinfo.current_branch(tree) or "-"
    import socket  # here: `check` without claims need not pay for the import
    host = socket.gethostname()
    return {"id": f"{host}:{tree}:{branch}", "host": host, "worktree": tree, "branch": branch}


def check_ttl(minutes):
    if not 0 < minutes <= MAX_TTL_MINUTES:
        raise records.InputError(f"--ttl-minutes must be > 0 and <= {MAX_TTL_MINUTES}, "
                                 f"got {minutes:g}")
    return minutes


def make_claim(agent, idea, features, config, *, now, ttl_minutes):
    """The claim event of `idea` (records.idea_of) by `agent`; `features` are the
    idea's novelty features, `config` train.py's fingerprint (with --code) or None."""
    from datetime import timedelta
    expires = records.parse_utc(now) + timedelta(minutes=ttl_minutes)
    return {"event": "claim",
            "claim_id": f"{records.compact_stamp(now)}-{os.urandom(4).hex()}",
            "agent": agent, "claimed_at": now, "expires_at": records.format_utc(expires),
            "ttl_minutes": ttl_minutes, "description": idea["description"],
            "hypothesis": idea["hypothesis"], "family": idea["family"],
            "tags": idea["tags"], "changes": features.get("changes") or [],
            "novelty_features": features,
            "config": {"code_sha256": config.get("code_sha256"),
                       "constants": config.get("constants")} if config else None}


def live(events, now):
    """The live claims among claim/release events, oldest first: not released, not
    superseded by a later claim of the same agent, not expired at `now`."""
    latest, released = {}, set()
    for position, event in enumerate(events):
        if event.get("event") == "claim" and isinstance(event.get("agent"), dict):
            latest[event["agent"].get("id")] = (position, event)
        elif event.get("event") == "release":
            released.update(event.get("claim_ids") or ())
    return [c for _, c in sorted(latest.values(), key=lambda p: (str(p[1].get("claimed_at")), p[0]))
            if c.get("claim_id") not in released and not expired(c, now)]


def expired(claim, now):
    return str(claim.get("expires_at") or "") <= now


def local_claims(store, now):
    """The store's own live claims (every agent writing to this store)."""
    return live(store_module.read_events(store, CLAIMS), now)


def remote_claims(store, now):
    """Live claims of other stores, as the last pull saw them."""
    claims = store_module.read_state(store, REMOTE_CLAIMS).get("claims") or []
    return [c for c in claims if isinstance(c, dict) and not expired(c, now)]


def all_claims(store, now):
    return local_claims(store, now) + remote_claims(store, now)


def add_claim(store, claim, idea, *, now, config=None, base_constants=None, change_set=None):
    """Record `claim` (the agent's earlier claims are superseded by it), unless
    another agent has the same idea in flight: checked and written under one
    exclusive lock, so two agents of one store cannot both claim it. Returns the
    other agents' live claims (see in_flight); `claim` was recorded when none of
    them has `same_idea`."""
    with store.lock():
        store.ensure_layout()
        others = in_flight(store, idea, agent=claim["agent"], now=now, config=config,
                           base_constants=base_constants, change_set=change_set)
        if not any(c["same_idea"] for c in others):
            store_module.append_event(store, CLAIMS, claim)
            _compact(store, now)
    return others


def release(store, agent_id, now):
    """Release the live claims of the agent `agent_id`; returns their ids."""
    if not os.path.exists(store_module.side_path(store, CLAIMS)):
        return []  # no claim was ever made in this store: no lock to take
    with store.lock():
        mine = [c["claim_id"] for c in local_claims(store, now)
                if (c.get("agent") or {}).get("id") == agent_id]
        if mine:
            store_module.append_event(store, CLAIMS, {"event": "release", "agent_id": agent_id,
                                                      "claim_ids": mine, "at": now})
    return mine


def _compact(store, now):
    """Keep the events file short: past COMPACT_EVENTS lines it is rewritten
    (atomically, under the caller's exclusive lock) with the live claims only."""
    events = store_module.read_events(store, CLAIMS)
    if len(events) > COMPACT_EVENTS:
        text = "".join(store_module.to_json(c, indent=None) + "\n" for c in live(events, now))
        store_module.write_atomic(store_module.side_path(store, CLAIMS), text)


# ---------------------------------------------------------------- matching

def claim_row(claim):
    """A claim in the shape of a history row, for the novelty comparison."""
    return {"run_id": claim.get("claim_id"), "description": claim.get("description"),
            "hypothesis": claim.get("hypothesis"), "family": claim.get("family"),
            "tags": claim.get("tags") or [], "status": None, "commit": None, "metrics": {},
            "novelty_features": claim.get("novelty_features"), "config": claim.get("config")}


def same_ideas(idea, claims, *, config=None, base_constants=None, change_set=None):
    """{claim_id: reason} of the claims that are the same idea as `idea`: the same
    train.py fingerprint, or the same parsed change (what the novelty guard calls a
    duplicate). The one place that decides what "the same idea" is for a claim."""
    from . import novelty
    if not claims:
        return {}
    guard = novelty.assess(idea, [claim_row(c) for c in claims], mode="exploit",
                           limit=len(claims), base_constants=base_constants, config=config,
                           change_set=change_set)
    return {m["run_id"]: m.get("reason") or m.get("relation") for m in guard["top_matches"]
            if m["category"] == "duplicate_run"}


def in_flight(store, idea, *, agent, now, config=None, base_constants=None, change_set=None):
    """The live claims of other agents, each with `same_idea` (and why), for check.
    `agent` is the agent's dict, or the working directory to find it from (looked up
    only when there are live claims: it asks git for the branch)."""
    live_claims = all_claims(store, now)
    if not live_claims:
        return []
    if not isinstance(agent, dict):
        agent = agent_of(agent)
    others = [c for c in live_claims if (c.get("agent") or {}).get("id") != agent["id"]]
    same = same_ideas(idea, others, config=config, base_constants=base_constants,
                      change_set=change_set)
    return [summary(c, same_idea=c.get("claim_id") in same, reason=same.get(c.get("claim_id")))
            for c in others]


def summary(claim, **extra):
    """What check, brief and list show of a claim."""
    agent = claim.get("agent") or {}
    return dict({"claim_id": claim.get("claim_id"), "agent": agent.get("id"),
                 "host": agent.get("host"), "branch": agent.get("branch"),
                 "description": claim.get("description"), "claimed_at": claim.get("claimed_at"),
                 "expires_at": claim.get("expires_at"),
                 "code": bool((claim.get("config") or {}).get("code_sha256")),
                 "origin": (claim.get("origin") or {}).get("store")}, **extra)
