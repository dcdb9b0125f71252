"""The store's mirror on an MLflow tracking server: one experiment shared by many
stores (machines), each pushing its own runs and claims and pulling the others'.

- Push: every run of this store's ledger (not one pulled from elsewhere) becomes
  one MLflow run: tags for the MemoryLab fields, params for hyperparameters,
  provenance and train.py's constants, metrics for the nine summary figures,
  status FINISHED (keep, discard) or FAILED (crash). A run is pushed once: pushed
  run ids are noted in pushed.jsonl, and before pushing the server is asked which
  pending runs it already holds (a push cut short is finished, not repeated).
  A live claim is a RUNNING run; released it is FINISHED, expired KILLED.
- Pull: runs of other stores that reached the server since the last pull
  (ordered by their end time, which is when they were pushed; a one-minute
  overlap absorbs clock skew, and duplicates are recognised by their origin)
  are appended to the local ledger with `origin` = {store, run_id,
  mlflow_run_id, tracking_uri, experiment}, through the store's one commit path
  (`Store.commit_run`); live claims of other stores replace remote_claims.json.
  A pulled run that cannot be recorded (its run id no folder name, its time
  unparseable) is skipped and named once; a metric that is no sane number is
  recorded as missing.
- The ledger stays the source of truth: the network is never touched under the
  store lock, a failure is one warning line and the next command tries again.

State lives in results/memorylab/mirror/<key>/ (key: the server and experiment):
pushed.jsonl, state.json (pull cursor and window, claim runs); the store's id in
results/memorylab/store_id.
"""

import hashlib
import json
import os

from . import claims as claims_module
from . import evidence, records, store as store_module, tracking

PULL_OVERLAP_MS = 60 * 1000  # re-read window of a pull: clock skew between machines
FEW_PENDING = 16  # up to this many runs to push are looked up on the server one by one
PUSH_THREADS = 4  # requests in flight at once when many runs are pending
DEFAULT_EXPERIMENT = "memorylab"
STATUS_TO_MLFLOW = {"keep": "FINISHED", "discard": "FINISHED", "crash": "FAILED"}
PREFIX = "memorylab."
STORE_ID = "store_id"
# record fields carried as tags (memorylab.<name>), strings as they are
TEXT_TAGS = ("run_id", "timestamp_utc", "branch", "commit", "parent_commit", "family", "status",
             "description", "hypothesis", "notes")
PARAM_GROUPS = (("hp.", "hyperparameters"), ("prov.", "provenance"))


def tracking_uri(flag, env):
    """--tracking-uri, else $MEMORYLAB_TRACKING_URI, else None (no mirror)."""
    uri = flag or env.get("MEMORYLAB_TRACKING_URI") or None
    if uri is not None and not uri.startswith(("http://", "https://")):
        raise records.InputError(f"tracking URI must start with http:// or https://, got {uri!r}")
    return uri


def experiment_name(flag, env, branch=None):
    """--experiment, else $MEMORYLAB_EXPERIMENT, else the campaign of an
    `autoresearch/<tag>[-gpuN]` branch (`autoresearch/<tag>`), else "memorylab"."""
    name = flag or env.get("MEMORYLAB_EXPERIMENT")
    if name:
        return name.strip()
    if branch and branch.startswith("autoresearch/"):
        tag = branch[len("autoresearch/"):]
        head, _, gpu = tag.rpartition("-gpu")
        return "autoresearch/" + (head if head and gpu.isdigit() else tag)
    return DEFAULT_EXPERIMENT


class Mirror:
    """The mirror of `store` on the server at `uri`, experiment `experiment`.
    `client` may be given (tests); `now` is the command's time."""

    def __init__(self, store, uri, experiment, *, env, now, client=None):
        self.store, self.uri, self.experiment, self.now = store, uri, experiment, now
        self.client = client or tracking.Client(uri, env)
        key = hashlib.sha1(f"{uri.rstrip('/')}\n{experiment}".encode()).hexdigest()[:12]
        self.folder = os.path.join("mirror", key)
        self.wait_s = self.client.timeout * 2
        self.store_id = self.experiment_id = None

    def _name(self, name):
        return os.path.join(self.folder, name)

    def sync(self, push=True, pull=True, full=False):
        """Push then pull. Returns {"pushed", "claims_opened", "claims_closed",
        "pulled", "skipped", "claims_in_flight", "warnings", "busy"}; a failure is a
        warning; `skipped` names the pulled runs that could not be recorded."""
        counts = {"pushed": 0, "claims_opened": 0, "claims_closed": 0, "pulled": 0,
                  "skipped": [], "claims_in_flight": None, "warnings": [], "busy": False}
        try:
            with store_module.side_lock(self.store, self._name(".lock"), self.wait_s) as held:
                if not held:  # another process of this store is talking to the server
                    counts["busy"] = True
                    return counts
                self.store_id = store_id(self.store)
                self.experiment_id = self.client.experiment_id(self.experiment)
                if push:
                    counts["pushed"] = self.push_runs()
                    counts["claims_opened"], counts["claims_closed"] = self.push_claims()
                if pull:
                    counts["pulled"], counts["skipped"], problems = self.pull_runs(full=full)
                    counts["warnings"].extend(problems)
                    counts["claims_in_flight"] = self.pull_claims()
        except tracking.TrackingError as exc:
            counts["warnings"].append(f"tracking server {exc}")
        except OSError as exc:  # the mirror's own files; the ledger is never at stake
            counts["warnings"].append(f"mirror state not written ({exc.strerror or exc}: "
                                      f"{exc.filename or '-'})")
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
            counts["warnings"].append(f"tracking server {self.uri} gave an answer of "
                                      f"another shape ({type(exc).__name__}: {exc})")
        return counts

    # ---------------------------------------------------------------- push
    def push_runs(self):
        """Push the ledger's own runs not pushed yet; returns how many."""
        with self.store.lock(exclusive=False):
            rows, _ = self.store.read_rows()
        pushed = {e.get("run_id") for e in
                  store_module.read_events(self.store, self._name("pushed.jsonl"))}
        pending = [r for r in rows if not r.get("origin") and r.get("run_id") not in pushed]
        if not pending:
            return 0
        with self.store.lock(exclusive=False):
            found = store_module.records_at(self.store, [r["_line"] for r in pending])
        full = [found.get(r["_line"], r) for r in pending]
        return self._push_all(full, self._already_there(full))

    def _already_there(self, full):
        """{run id: (MLflow run id, status)} of the records the server already holds
        (pushed by a command cut short before noting it): one lookup per record when
        they are few, else one search from the earliest of them on."""
        base = f"tags.`{PREFIX}kind` = 'run' and tags.`{PREFIX}store` = " \
               f"{tracking.quoted(self.store_id)}"
        if len(full) <= FEW_PENDING:
            queries = [f"{base} and tags.`{PREFIX}run_id` = {tracking.quoted(r.get('run_id'))}"
                       for r in full]
        else:  # a run's start time is its log time less its training time (< a day)
            start = min(_ms(r.get("timestamp_utc")) for r in full) - 24 * 3600 * 1000
            queries = [f"{base} and attributes.start_time >= {max(0, start)}"]
        existing = {}
        for query in queries:
            for run in self.client.search_runs(self.experiment_id, query):
                info = run.get("info") or {}
                existing[tracking.run_tags(run).get(PREFIX + "run_id")] = (
                    info.get("run_id"), info.get("status"))
        return existing

    def _push_all(self, full, existing):
        """Push the records, PUSH_THREADS at a time; each is noted in pushed.jsonl as
        soon as the server has it. The first failure stops the rest and is raised."""
        import threading
        from concurrent.futures import ThreadPoolExecutor
        noted, failures = threading.Lock(), []

        def push(record):
            if failures:
                return 0
            try:
                self._push_run(record, existing.get(record.get("run_id")))
            except tracking.TrackingError as exc:
                failures.append(exc)
                return 0
            with noted:
                store_module.append_event(self.store, self._name("pushed.jsonl"),
                                          {"run_id": record.get("run_id"), "at": self.now})
            return 1

        with ThreadPoolExecutor(min(PUSH_THREADS, len(full))) as pool:
            count = sum(pool.map(push, full))
        if failures:
            raise tracking.TrackingError(f"{failures[0]} ({count} of {len(full)} runs pushed)")
        return count

    def _push_run(self, record, existing):
        """Create (unless `existing` = (id, status) says it is there), log, finish."""
        status = STATUS_TO_MLFLOW.get(record.get("status"), "FINISHED")
        if existing and existing[1] == status:
            return
        tags, params, metrics = run_payload(record, self.store_id)
        run_id = existing[0] if existing else None
        if run_id is None:
            seconds = ((record.get("metrics") or {}).get("total_seconds") or 0)
            start = _ms(record.get("timestamp_utc")) - int(seconds * 1000)
            run_id = self.client.create_run(
                self.experiment_id, name=record.get("run_id"), start_ms=start,
                tags={PREFIX + "kind": "run", PREFIX + "store": self.store_id,
                      PREFIX + "run_id": record.get("run_id")})
        self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
        self.client.update_run(run_id, status, end_ms=_clock_ms())

    def push_claims(self):
        """Open a RUNNING run for each live claim of this store not yet on the
        server; finish the claim runs whose claim was released or superseded
        (FINISHED) or expired (KILLED). Returns (opened, closed)."""
        state = store_module.read_state(self.store, self._name("state.json"))
        runs = state.setdefault("claims", {})
        events = store_module.read_events(self.store, claims_module.CLAIMS)
        live = {c["claim_id"]: c for c in claims_module.live(events, self.now)}
        opened = closed = 0
        try:
            for claim_id, claim in live.items():
                if claim_id not in runs:
                    runs[claim_id] = self.client.create_run(
                        self.experiment_id, name=f"claim {claim_id}",
                        start_ms=_ms(claim.get("claimed_at")),
                        tags=claim_tags(claim, self.store_id))
                    opened += 1
            known = {e.get("claim_id"): e for e in events if e.get("event") == "claim"}
            for claim_id in [c for c in runs if c not in live]:
                gone = known.get(claim_id)
                status = "KILLED" if gone is None or claims_module.expired(gone, self.now) \
                    else "FINISHED"
                self.client.update_run(runs[claim_id], status, end_ms=_clock_ms())
                del runs[claim_id]
                closed += 1
        finally:
            if opened or closed:
                store_module.write_state(self.store, self._name("state.json"), state)
        return opened, closed

    # ---------------------------------------------------------------- pull
    def pull_runs(self, full=False):
        """Append the runs other stores pushed since the last pull. Returns (how many,
        [one line per run skipped as unusable], [problems after the runs were recorded]).
        A skipped run is read past like the others: it is named once, never again.

        The pull reads runs that ended at or after the cursor (the newest end time
        seen) less the overlap, except the runs of that window it has read already
        (their MLflow ids, kept in the state), so a quiet pull reads nothing."""
        state = store_module.read_state(self.store, self._name("state.json"))
        cursor = 0 if full else int(state.get("pull_cursor_ms") or 0)
        window = {} if full else dict(state.get("pull_window") or {})
        query = f"tags.`{PREFIX}kind` = 'run' and " \
                f"tags.`{PREFIX}store` != {tracking.quoted(self.store_id)} and " \
                f"attributes.end_time >= {max(0, cursor - PULL_OVERLAP_MS) if cursor else 0}"
        if window:
            query += " and attributes.run_id NOT IN (" + \
                ", ".join(tracking.quoted(run_id) for run_id in sorted(window)) + ")"
        found = self.client.search_runs(self.experiment_id, query,
                                         order_by=("attributes.end_time ASC",))
        fetched, skipped = [], []
        for run in found:
            try:
                record = record_from_run(run, self.uri, self.experiment)
            except ValueError as exc:
                skipped.append(f"pulled run {(run.get('info') or {}).get('run_id')} of "
                               f"{self.uri} skipped: {exc}")
                continue
            if record is not None:
                fetched.append(record)
        added, problems = self._append_new(fetched)
        for run in found:
            info = run.get("info") or {}
            window[info.get("run_id")] = int(info.get("end_time") or 0)
        cursor = max([cursor] + list(window.values()))
        state = store_module.read_state(self.store, self._name("state.json"))
        state["pull_cursor_ms"] = cursor
        state["pull_window"] = {run_id: end for run_id, end in window.items()
                                if end >= cursor - PULL_OVERLAP_MS}
        store_module.write_state(self.store, self._name("state.json"), state)
        return added, skipped, problems

    def _append_new(self, fetched):
        """Append the fetched records whose origin is not in the ledger yet, through
        the store's one commit path (`commit_run`, a batch at a time, as import-tsv
        does); the registry is written after the lock. A record whose run id is taken
        here gets one made from its time and commit. Returns (how many, warnings)."""
        from . import importer, registry
        added, warnings, rows = 0, [], None
        for start in range(0, len(fetched), importer.BATCH_ROWS):
            with self.store.lock():
                self.store.ensure_layout()
                rows, _ = self.store.read_rows()
                have = {(o.get("store"), o.get("run_id")) for o in
                        (r.get("origin") for r in rows) if isinstance(o, dict)}
                known = {r.get("run_id") for r in rows}
                fresh = []
                for record in fetched[start:start + importer.BATCH_ROWS]:
                    origin = record["origin"]
                    if (origin["store"], origin["run_id"]) in have:
                        continue
                    have.add((origin["store"], origin["run_id"]))
                    if self.store.taken(record["run_id"], known):
                        record["run_id"] = importer.run_id_for(
                            record, self.now, lambda run_id: self.store.taken(run_id, known))
                    known.add(record["run_id"])
                    fresh.append(record)
                if fresh:
                    warnings = self.store.commit_run(fresh)
                    added += len(fresh)
                    rows = rows + [store_module.slim_row(r, None) for r in fresh]
                ledger_size = self.store.ledger_size()
            if warnings:  # its journal must be completed before the next batch
                break
        if added:
            self.store.write_registry_if_newer(registry.build_registry(rows, now=self.now),
                                               ledger_size)
        return added, [f"pulled runs were recorded, but {w}" for w in warnings]

    def pull_claims(self):
        """Replace remote_claims.json by the live claims of other stores; claim runs
        past their expiry (an agent that died) are closed as KILLED. Returns the
        number of live remote claims."""
        live, stale = [], []
        for run in self.client.search_runs(
                self.experiment_id, f"tags.`{PREFIX}kind` = 'claim' and "
                f"attributes.status = 'RUNNING'"):
            claim = claim_from_run(run)
            if claim is None:
                continue
            if claims_module.expired(claim, self.now):
                stale.append(claim["origin"]["mlflow_run_id"])
            elif claim["origin"]["store"] != self.store_id:
                live.append(claim)
        with self.store.lock():
            store_module.write_state(self.store, claims_module.REMOTE_CLAIMS,
                                     {"pulled_at": self.now, "claims": live})
        for run_id in stale:
            self.client.update_run(run_id, "KILLED", end_ms=_clock_ms())
        return len(live)


# ---------------------------------------------------------------- the store's id

def store_id(store):
    """A random id naming this store on the server, made once (every work tree and
    host sharing the store directory shares it)."""
    path = store_module.side_path(store, STORE_ID)
    text = store_module.read_or_create(path, os.urandom(8).hex())
    return text.strip()


# ---------------------------------------------------------------- record <-> MLflow run

def _text(value):
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _value(text):
    """A param or tag text back as the value it was written from; the text itself
    when it is not JSON or holds a number that is not finite (never in a record)."""
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except (TypeError, ValueError, RecursionError):
        return text


def _no_constant(name):
    raise ValueError(f"not a finite number: {name}")


def _finite(text):
    number = float(text)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"not a finite number: {text}")
    return number


def _fitting(value):
    """An object `value` as compact JSON text when it fits in one tag, else None."""
    if not isinstance(value, dict):
        return None
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text if len(text) <= tracking.MAX_TAG_CHARS else None


def _cut(text, limit):
    return text if len(text) <= limit else text[:limit - 3] + "..."


def run_payload(record, origin_store):
    """(tags, params, metrics) of a ledger record, as log-batch takes them."""
    tags = {"mlflow.runName": record.get("run_id"), PREFIX + "kind": "run",
            PREFIX + "store": origin_store,
            "mlflow.note.content": record.get("description") or ""}
    for name in TEXT_TAGS:
        if record.get(name) is not None:
            tags[PREFIX + name] = _text(record[name])
    tags[PREFIX + "tags"] = ",".join(record.get("tags") or [])
    if record.get("branch"):
        tags["mlflow.source.git.branch"] = record["branch"]
    if record.get("commit"):
        tags["mlflow.source.git.commit"] = record["commit"]
    guard = record.get("novelty_guard") or {}
    if guard.get("classification"):
        tags[PREFIX + "novelty"] = guard["classification"]
    for key, value in (record.get("decision_packet") or {}).items():
        if key in store_module.PACKET_FIELDS and value is not None:
            tags[PREFIX + "packet." + key] = _text(value)
    error = record.get("error")
    if isinstance(error, dict) and error.get("summary"):
        tags[PREFIX + "error"] = _text(error["summary"])
    config = record.get("config") or {}
    if config.get("code_sha256"):
        tags[PREFIX + "code_sha256"] = config["code_sha256"]
    if record.get("role") in evidence.ROLES:
        tags[PREFIX + "role"] = record["role"]
    for name in ("novelty_features", "change_set"):  # left out when too large for a tag
        text = _fitting(record.get(name))
        if text is not None:
            tags[PREFIX + name] = text
    params = {}
    for prefix, field in PARAM_GROUPS:
        for key, value in (record.get(field) or {}).items():
            params[prefix + key] = value
    for key, value in (config.get("constants") or {}).items():
        params["const." + key] = value
    tags = [(k[:tracking.MAX_KEY_CHARS], _cut(v, tracking.MAX_TAG_CHARS)) for k, v in tags.items()]
    params = [(k[:tracking.MAX_KEY_CHARS], _cut(_text(v), tracking.MAX_PARAM_CHARS))
              for k, v in params.items() if v is not None]
    stamp = _ms(record.get("timestamp_utc"))
    metrics = [{"key": name, "value": value, "timestamp": stamp, "step": 0}
               for name, value in (record.get("metrics") or {}).items()
               if name in records.METRIC_FIELDS and isinstance(value, (int, float))
               and not isinstance(value, bool)]
    return tags, params, metrics


def record_from_run(run, uri, experiment):
    """The ledger record of a run another store pushed, with its `origin`; None
    when the run lacks MemoryLab's tags; ValueError saying why when it cannot be
    recorded (a run id that is no folder name, a time that does not parse). A
    metric that is no sane number (NaN, out of range) is recorded as missing."""
    tags, params = tracking.run_tags(run), tracking.run_params(run)
    values = tracking.run_metrics(run)
    run_id = tags.get(PREFIX + "run_id")
    status = tags.get(PREFIX + "status")
    if not run_id or status not in records.STATUSES or not tags.get(PREFIX + "timestamp_utc"):
        return None
    store_module.check_run_id(run_id)
    text = {name: tags.get(PREFIX + name) for name in TEXT_TAGS}
    moment = records.parse_utc(text["timestamp_utc"])
    if moment is None:
        raise ValueError(f"run {run_id}: not a time: {text['timestamp_utc'][:60]!r}")
    text["timestamp_utc"] = records.format_utc(moment)
    metrics = {name: _metric(name, values.get(name)) for name in records.METRIC_FIELDS}
    if status == "crash":
        metrics["val_bpb"] = None
    grouped = {field: {} for _, field in PARAM_GROUPS}
    constants = {}
    for key, value in params.items():
        for prefix, field in PARAM_GROUPS:
            if key.startswith(prefix):
                grouped[field][key[len(prefix):]] = _value(value)
        if key.startswith("const."):
            constants[key[len("const."):]] = _value(value)
    sha = tags.get(PREFIX + "code_sha256")
    packet = {key: tags.get(PREFIX + "packet." + key) for key in store_module.PACKET_FIELDS}
    features = _value(tags.get(PREFIX + "novelty_features"))
    change_set = _value(tags.get(PREFIX + "change_set"))
    role = tags.get(PREFIX + "role")
    from . import SCHEMA_VERSION
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id, "timestamp_utc": text["timestamp_utc"], "branch": text["branch"],
        "commit": text["commit"] or records.NO_COMMIT, "parent_commit": text["parent_commit"],
        "family": text["family"] or records.DEFAULT_FAMILY, "status": status,
        "description": text["description"] or "", "hypothesis": text["hypothesis"] or "",
        "tags": [t for t in (tags.get(PREFIX + "tags") or "").split(",") if t],
        "notes": text["notes"] or "", "metrics": metrics,
        "error": {"summary": tags.get(PREFIX + "error") or "crash", "tail": [],
                  "source": "mirror"} if status == "crash" else None,
        "artifacts": {},
        "novelty_guard": {"classification": tags[PREFIX + "novelty"]}
        if tags.get(PREFIX + "novelty") else None,
        "decision_packet": packet if any(packet.values()) else None,
        "provenance": grouped["provenance"], "hyperparameters": grouped["hyperparameters"],
        "config": {"code_sha256": sha, "constants": constants} if sha or constants else None,
        "change_set": change_set if isinstance(change_set, dict) else None,
        "novelty_features": features if isinstance(features, dict) else None,
        "role": role if role in evidence.ROLES else None,
        "imported": None,
        "origin": {"store": tags.get(PREFIX + "store"), "run_id": run_id,
                   "mlflow_run_id": (run.get("info") or {}).get("run_id"),
                   "tracking_uri": uri, "experiment": experiment},
    }


def _metric(name, value):
    """A pulled metric as the ledger stores it, or None when it is not a sane one."""
    try:
        return records.checked_metric(name, value, "pulled run")
    except records.InputError:
        return None


def claim_tags(claim, origin_store):
    """The tags of a claim's RUNNING run: what other stores need to match it. The
    novelty features (the parsed and code changes) and train.py's fingerprint go in
    tags of their own, each left out when too large for a tag (the fingerprint then
    keeps its code hash only)."""
    agent = claim.get("agent") or {}
    shipped = {key: claim.get(key) for key in ("claim_id", "agent", "claimed_at", "expires_at",
                                               "ttl_minutes", "description", "hypothesis",
                                               "family", "tags", "changes")}
    config = claim.get("config") or {}
    shipped["config"] = {"code_sha256": config.get("code_sha256")} if config else None
    tags = {"mlflow.runName": f"claim {claim.get('claim_id')}", PREFIX + "kind": "claim",
            PREFIX + "store": origin_store,
            PREFIX + "claim": _cut(_text(shipped), tracking.MAX_TAG_CHARS),
            PREFIX + "expires_at": claim.get("expires_at") or "",
            PREFIX + "agent": agent.get("id") or "",
            "mlflow.note.content": f"in flight: {claim.get('description') or ''}"}
    for name, value in (("novelty_features", claim.get("novelty_features")),
                        ("config", config)):
        text = _fitting(value)
        if text is not None:
            tags[PREFIX + name] = text
    return tags


def claim_from_run(run):
    """The claim carried by a claim run (with its `origin`), or None."""
    tags = tracking.run_tags(run)
    claim = _value(tags.get(PREFIX + "claim"))
    if not isinstance(claim, dict) or not claim.get("claim_id"):
        return None
    features, config = (_value(tags.get(PREFIX + name)) for name in ("novelty_features", "config"))
    if isinstance(features, dict):
        claim["novelty_features"] = features
    if isinstance(config, dict):
        claim["config"] = config
    claim["event"] = "claim"
    claim["origin"] = {"store": tags.get(PREFIX + "store"),
                       "mlflow_run_id": (run.get("info") or {}).get("run_id")}
    return claim


def _clock_ms():
    """The wall clock, for the end time of a run on the server: pulls go by it, so
    it is the real time of the push even when MEMORYLAB_NOW is set."""
    import time
    return int(time.time() * 1000)


def _ms(stamp):
    moment = records.parse_utc(stamp) if stamp else None
    return int(moment.timestamp() * 1000) if moment else 0
