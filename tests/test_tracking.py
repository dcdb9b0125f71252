"""Many agents: claims in one store, and stores sharing a real MLflow tracking server.

The server tests start `mlflow server` (tests/mlflow_server.py) once for the module,
each test on its own experiment; they skip only when mlflow is not installed.
"""

import json
import os
import subprocess
import sys
import unittest
import uuid

from mlhelpers import REPO_ROOT, LabCase, commit_change, git, make_repo, metrics

import mlflow_server
from memorylab_core import tracking

LATER = "2026-01-01T06:25:00Z"  # past a 20-minute claim made at NOW
SERVER = None


def setUpModule():
    global SERVER
    command = mlflow_server.find_mlflow()
    if command is None:
        return
    SERVER = mlflow_server.Server(command).start()


def tearDownModule():
    if SERVER is not None:
        SERVER.remove()


def server_runs(uri, experiment, filter_string=""):
    client = tracking.Client(uri, {"MEMORYLAB_TRACKING_TIMEOUT": "120"})
    return client.search_runs(client.experiment_id(experiment), filter_string)


def edit(repo, old, new):
    """An agent's edit of train.py in `repo` (a clone or a worktree), not committed."""
    path = os.path.join(repo, "train.py")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace(old, new))


def _now_ms():
    import time
    return int(time.time() * 1000)


class TwoStoresCase(LabCase):
    """Store A is self.repo; store B another repo ("another machine"); both mirror
    to the module's server on an experiment of their own."""

    server = property(lambda self: SERVER)

    def setUp(self):
        super().setUp()
        if self.server is None:
            mlflow_server.skip_or_fail(self)
        self.repo_b = make_repo(os.path.join(self.tmp, "repo_b"))
        self.experiment = f"test-{uuid.uuid4().hex[:8]}"
        self.env.update(MEMORYLAB_TRACKING_URI=self.server.uri,
                        MEMORYLAB_EXPERIMENT=self.experiment,
                        MEMORYLAB_TRACKING_TIMEOUT="120")
        for repo in (self.repo, self.repo_b):
            self.assertEqual(self.cli("init", cwd=repo).code, 0)

    def a(self, *argv, **env):
        return self.cli(*argv, **env)

    def b(self, *argv, **env):
        return self.cli(*argv, cwd=self.repo_b, **env)

    def runs(self, filter_string=""):
        return server_runs(self.server.uri, self.experiment, filter_string)


class SharedLabTest(TwoStoresCase):
    def test_a_logs_b_blocks_the_same_idea_and_sees_the_champion(self):
        logged = self.log_keep("raise MATRIX_LR to 0.06", 0.981)
        self.assertEqual(logged.err, "")
        run_id = logged.out.split()[2]
        check = self.b("check", "--description", "increase MATRIX_LR to 0.06",
                       "--fail-on-similar")
        self.assertEqual(check.code, 2, check)
        self.assertIn(f"duplicate_run  score 0.970  {run_id}", check.out)
        self.assertIn("Blocked (--fail-on-similar).", check.out)
        brief = self.b("brief", "--json").json()
        self.assertEqual(brief["champion"]["run_id"], run_id)
        report = self.b("report", "--json").json()
        self.assertEqual(report["headline"]["champion"]["run_id"], run_id)
        pulled, = self.records(self.repo_b)
        self.assertEqual(pulled["run_id"], run_id)
        self.assertEqual(pulled["origin"]["run_id"], run_id)
        self.assertEqual(pulled["metrics"], metrics(val_bpb=0.981))
        self.assertEqual(pulled["config"]["constants"]["MATRIX_LR"], 0.04)
        self.assertEqual(len(self.tsv(self.repo_b)), 2)
        listed = self.b("list")
        self.assertIn(f"{run_id} keep", listed.out)
        self.assertIn("(from store ", listed.out)
        shown = self.b("show", run_id, "--json").json()
        self.assertEqual(shown["run"]["origin"]["store"], pulled["origin"]["store"])
        self.assertEqual(self.b("doctor").code, 0)
        # pulling again adds nothing; the server holds the run once
        self.assertEqual(self.b("sync", "--json").json()["pulled"], 0)
        self.assertEqual(len(self.records(self.repo_b)), 1)
        run, = self.runs()
        self.assertEqual(run["info"]["status"], "FINISHED")
        self.assertEqual(tracking.run_metrics(run)["val_bpb"], 0.981)
        self.assertEqual(tracking.run_params(run)["const.DEPTH"], "8")
        self.assertEqual(tracking.run_tags(run)["memorylab.run_id"], run_id)

    def test_a_crash_is_a_failed_run_and_b_sees_its_fix_as_one(self):
        log = self.write("crash.log", "Traceback\nRuntimeError: CUDA out of memory\n")
        self.ok("log", "--description", "double DEPTH", "--status", "crash", "--log", log)
        run, = self.runs()
        self.assertEqual(run["info"]["status"], "FAILED")
        data = self.b("check", "--description", "double DEPTH", "--json").json()
        pulled, = self.records(self.repo_b)
        # a crash says nothing about val_bpb: B's check calls the idea a fix of A's crash
        self.assertEqual(data["novelty_guard"]["fix_of"]["run_id"], pulled["run_id"])
        self.assertTrue(data["novelty_guard"]["fix_of"]["out_of_memory"])
        self.assertIsNone(pulled["metrics"]["val_bpb"])
        self.assertEqual(pulled["error"]["summary"], "RuntimeError: CUDA out of memory")

    def test_a_claim_is_seen_by_b_and_released_by_a_log(self):
        claimed = self.a("claim", "--description", "set DEPTH to 12", "--code")
        self.assertEqual(claimed.code, 0, claimed)
        self.assertIn("Claimed ", claimed.out)
        claim_run, = self.runs("tags.`memorylab.kind` = 'claim'")
        self.assertEqual(claim_run["info"]["status"], "RUNNING")

        check = self.b("check", "--description", "DEPTH 12", "--fail-on-similar")
        self.assertEqual(check.code, 2, check)
        self.assertIn("In flight (other agents):", check.out)
        self.assertIn("SAME IDEA", check.out)
        self.assertIn("has the same idea in flight.", check.out)
        taken = self.b("claim", "--description", "deeper model: DEPTH = 12")
        self.assertEqual(taken.code, 2, taken)
        self.assertIn("Not claimed: another agent has the same idea in flight.", taken.out)
        other = self.b("check", "--description", "lower EMBEDDING_LR to 0.3", "--json").json()
        self.assertEqual([c["same_idea"] for c in other["in_flight"]], [False])
        self.assertEqual(len(self.b("list", "--claims", "--json").json()["claims"]), 1)

        self.log_keep("set DEPTH to 12", 0.985)
        claim_run, = self.runs("tags.`memorylab.kind` = 'claim'")
        self.assertEqual(claim_run["info"]["status"], "FINISHED")
        after = self.b("check", "--description", "DEPTH 12", "--json").json()
        self.assertEqual(after["in_flight"], [])
        self.assertEqual(after["novelty_guard"]["classification"], "duplicate_run")
        self.assertIn("No live claims.", self.b("list", "--claims").out)

    def test_a_claim_expires(self):
        self.ok("claim", "--description", "set DEPTH to 12", "--ttl-minutes", "20")
        self.assertEqual(len(self.b("list", "--claims", "--json").json()["claims"]), 1)
        late = self.b("check", "--description", "DEPTH 12", "--fail-on-similar",
                      MEMORYLAB_NOW=LATER)
        self.assertEqual(late.code, 0, late)
        self.assertNotIn("In flight", late.out)
        claim_run, = self.runs("tags.`memorylab.kind` = 'claim'")
        self.assertEqual(claim_run["info"]["status"], "KILLED")  # closed by B's pull
        self.assertEqual(self.a("list", "--claims", "--json",
                                MEMORYLAB_NOW=LATER).json()["claims"], [])

    def test_a_replicate_stays_a_replicate_with_its_change_set(self):
        commit_change(self.repo, "EMBEDDING_LR = 0.6", "EMBEDDING_LR = 0.45")
        self.log_keep("lower EMBEDDING_LR to 0.45", 0.981, "keep", "--mode", "replicate")
        mine, = self.records()
        self.assertEqual(mine["role"], "replicate")
        self.assertEqual(mine["change_set"]["constants"][0]["name"], "EMBEDDING_LR")
        self.assertEqual(self.b("list").code, 0)
        pulled, = self.records(self.repo_b)
        self.assertEqual(pulled["role"], "replicate")
        self.assertEqual(pulled["change_set"], mine["change_set"])

    def test_unusable_pulled_runs_are_named_once_and_the_rest_recorded(self):
        own = self.b("log", "--description", "B's own run", "--status", "discard",
                     "--summary", self.summary(val_bpb=0.99))
        own_id = own.out.split()[2]
        client = tracking.Client(self.server.uri, {"MEMORYLAB_TRACKING_TIMEOUT": "120"})
        experiment_id = client.experiment_id(self.experiment)
        made = {}
        for key, run_id, stamp, commit, val_bpb in (
                ("escape", "../../escape x", "2026-01-01T06:00:00Z", "abc1234", 0.98),
                ("time", "20260101T060000Z-abc1234", "not a time", "abc1234", 0.98),
                ("nan", "20260101T060100Z-abc1234", "2026-01-01T06:01:00Z", "abc1234", "NaN"),
                ("clash", own_id, "2026-01-01T06:02:00Z", "feat/x y", 0.97)):
            tags = {"memorylab.kind": "run", "memorylab.store": "elsewhere",
                    "memorylab.run_id": run_id, "memorylab.timestamp_utc": stamp,
                    "memorylab.status": "keep", "memorylab.commit": commit,
                    "memorylab.description": f"remote {key}"}
            made[key] = client.create_run(experiment_id, name=key, start_ms=0, tags=tags)
            client.log_batch(made[key], metrics=[
                {"key": "val_bpb", "value": val_bpb, "timestamp": 0, "step": 0},
                {"key": "peak_vram_mb", "value": 1000.0, "timestamp": 0, "step": 0}])
            client.update_run(made[key], "FINISHED", end_ms=_now_ms())
        first = self.b("check", "--description", "anything")
        self.assertEqual(first.code, 0, first)
        warnings = first.err.splitlines()
        self.assertEqual(len(warnings), 2, first.err)
        self.assertIn(f"pulled run {made['escape']} ", warnings[0])
        self.assertIn("skipped: not a run id: '../../escape x'", warnings[0])
        self.assertIn(f"pulled run {made['time']} ", warnings[1])
        self.assertIn("not a time: 'not a time'", warnings[1])
        pulled = {r["description"]: r for r in self.records(self.repo_b)}
        self.assertEqual(set(pulled), {"B's own run", "remote nan", "remote clash"})
        self.assertIsNone(pulled["remote nan"]["metrics"]["val_bpb"])
        clash = pulled["remote clash"]
        self.assertEqual(clash["run_id"], "20260101T060200Z-feat_x_y")
        self.assertEqual(clash["origin"]["run_id"], own_id)
        self.assertEqual(len(self.tsv(self.repo_b)), 4)
        again = self.b("list")  # read past: named once
        self.assertEqual((again.code, again.err), (0, ""))
        self.assertEqual(self.b("doctor").code, 0)

    def test_a_claim_of_the_same_edit_on_another_base_is_matched_across_stores(self):
        commit_change(self.repo_b, "WARMDOWN_RATIO = 0.5", "WARMDOWN_RATIO = 0.6")
        for repo in (self.repo, self.repo_b):
            edit(repo, "EMBEDDING_LR = 0.6", "EMBEDDING_LR = 0.45")
        self.assertEqual(self.a("claim", "--code", "--description",
                                "try a gentler embedding").code, 0)
        words = self.b("check", "--description", "unrelated words entirely", "--json").json()
        self.assertEqual([c["same_idea"] for c in words["in_flight"]], [False])
        code = self.b("check", "--code", "--description", "unrelated words entirely",
                      "--fail-on-similar")
        self.assertEqual(code.code, 2, code)
        self.assertIn("SAME IDEA", code.out)

    def test_four_processes_per_store_log_at_once(self):
        per_process, processes = 3, 4
        summary = self.summary(val_bpb=0.99)
        workers = []
        for name, repo in (("a", self.repo), ("b", self.repo_b)):
            for n in range(processes):
                workers.append(subprocess.Popen(
                    [sys.executable, "-c", WORKER, REPO_ROOT, f"{name}{n}", str(per_process),
                     summary], cwd=repo, env=self.env, stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE, text=True))
        for worker in workers:
            _, err = worker.communicate(timeout=600)
            self.assertEqual(worker.returncode, 0, err)
        for repo in (self.repo, self.repo_b):
            done = self.cli("sync", "--json", cwd=repo)
            self.assertEqual(done.code, 0, done)
        self.cli("sync", cwd=self.repo)  # A pulls what B pushed after A's first sync
        # run ids are unique per store (both stores here share commit and clock, so
        # their ids coincide): a run is known everywhere by (store, run id)
        total = 2 * processes * per_process
        runs = {(tags["memorylab.store"], tags["memorylab.run_id"]) for tags in
                map(tracking.run_tags, self.runs("tags.`memorylab.kind` = 'run'"))}
        self.assertEqual(len(runs), total)
        descriptions = {f"worker {w}{n} idea {i}" for w in "ab" for n in range(processes)
                        for i in range(per_process)}
        for repo in (self.repo, self.repo_b):
            records = self.records(repo)
            self.assertEqual(len(records), total)
            self.assertEqual(len({r["run_id"] for r in records}), total)
            self.assertEqual({r["description"] for r in records}, descriptions)
            self.assertEqual(len(self.tsv(repo)), total + 1)


WORKER = """
import sys
sys.path.insert(0, sys.argv[1])
import memorylab
worker, count, summary = sys.argv[2], int(sys.argv[3]), sys.argv[4]
for i in range(count):
    code = memorylab.main(["log", "--description", f"worker {worker} idea {i}",
                           "--status", "discard", "--summary", summary])
    if code != 0:
        sys.exit(f"worker {worker} run {i}: exit {code}")
"""


class ServerDownTest(TwoStoresCase):
    """A server that is not answering, then answering: its own server, started
    once A has logged, on the port A was told to use."""

    server = property(lambda self: self._server)

    def setUp(self):
        command = mlflow_server.find_mlflow()
        if command is None:
            mlflow_server.skip_or_fail(self)
        self._server = mlflow_server.Server(command)
        self.addCleanup(self._server.remove)
        super().setUp()

    def test_log_while_down_is_local_then_pushed_once(self):
        down = self.log_keep("raise MATRIX_LR to 0.06", 0.981)
        warnings = down.err.strip().splitlines()
        self.assertEqual(len(warnings), 1, down.err)
        self.assertRegex(warnings[0], r"^warning: tracking server http://127\.0\.0\.1:\d+ "
                                      r"unreachable \(.*\); the run is recorded locally and "
                                      r"pushed by the next command$")
        run_id = down.out.split()[2]
        self.assertEqual(len(self.records()), 1)
        check = self.b("check", "--description", "anything")
        self.assertEqual(check.code, 0, check)
        self.assertIn("the local view is as of the last pull", check.err)
        sync = self.a("sync")
        self.assertEqual(sync.code, 1, sync)
        self.assertRegex(sync.err, r"^error: tracking server http://\S+ unreachable \(.*\)\n$")

        self.server.start()
        listed = self.a("list")  # the next command pushes
        self.assertEqual(listed.err, "")
        synced = self.a("sync", "--json").json()
        self.assertEqual(synced["pushed"], 0)
        with open(os.path.join(REPO_ROOT, "docs", "memorylab_api.md"), encoding="utf-8") as f:
            sync_doc = f.read().split("### sync", 1)[1].split("\n## ", 1)[0]
        self.assertEqual([key for key in synced if f"`{key}`" not in sync_doc], [])
        seen = self.b("list", "--json").json()
        self.assertEqual([r["run_id"] for r in seen["runs"]], [run_id])
        self.assertEqual(self.b("sync", "--json").json()["pulled"], 0)
        self.assertEqual(len(self.records(self.repo_b)), 1)
        run, = self.runs()
        self.assertEqual(tracking.run_tags(run)["memorylab.run_id"], run_id)


class WorktreesOneStoreTest(LabCase):
    """Three worktrees (one per GPU) on autoresearch/<tag>-gpuN sharing one store."""

    def setUp(self):
        super().setUp()
        self.store = os.path.join(self.tmp, "shared-store")
        self.env["MEMORYLAB_ROOT"] = self.store
        self.trees = []
        for n in range(3):
            tree = os.path.join(self.tmp, f"gpu{n}")
            git(self.repo, "worktree", "add", "-q", "-b", f"autoresearch/jan1-gpu{n}", tree)
            self.trees.append(tree)

    def test_claims_and_runs_across_worktrees(self):
        gpu0, gpu1, gpu2 = self.trees
        self.assertEqual(self.cli("claim", "--description", "set DEPTH to 12",
                                  cwd=gpu0).code, 0)
        blocked = self.cli("check", "--description", "DEPTH 12", "--fail-on-similar", cwd=gpu1)
        self.assertEqual(blocked.code, 2, blocked)
        self.assertIn(f":{gpu0}:autoresearch/jan1-gpu0 has the same idea in flight.",
                      blocked.out)
        # the agent's own claim does not block it
        own = self.cli("check", "--description", "DEPTH 12", "--json", cwd=gpu0).json()
        self.assertEqual(own["in_flight"], [])
        self.assertEqual(self.cli("claim", "--description", "lower EMBEDDING_LR to 0.3",
                                  cwd=gpu1).code, 0)
        claims = self.cli("list", "--claims", "--json", cwd=gpu2).json()["claims"]
        self.assertEqual([c["branch"] for c in claims],
                         ["autoresearch/jan1-gpu0", "autoresearch/jan1-gpu1"])

        summary = self.summary(val_bpb=0.97)
        logged = self.cli("log", "--description", "set DEPTH to 12", "--status", "keep",
                          "--summary", summary, cwd=gpu0)
        self.assertEqual(logged.code, 0, logged)
        record, = self.records(self.store)
        self.assertEqual(record["branch"], "autoresearch/jan1-gpu0")
        claims = self.cli("list", "--claims", "--json", cwd=gpu2).json()["claims"]
        self.assertEqual([c["branch"] for c in claims], ["autoresearch/jan1-gpu1"])
        brief = self.cli("brief", "--json", cwd=gpu2).json()
        self.assertEqual(brief["champion"]["run_id"], record["run_id"])
        self.assertEqual(len(brief["in_flight"]), 1)
        # a new claim by gpu1 supersedes its earlier one
        self.cli("claim", "--description", "raise WARMDOWN_RATIO to 0.7", cwd=gpu1)
        claims = self.cli("list", "--claims", "--json", cwd=gpu2).json()["claims"]
        self.assertEqual([c["description"] for c in claims], ["raise WARMDOWN_RATIO to 0.7"])

    def test_the_same_train_py_is_the_same_idea_whatever_its_words(self):
        gpu0, gpu1, _ = self.trees
        for tree in (gpu0, gpu1):  # both agents make the same edit, uncommitted
            edit(tree, "EMBEDDING_LR = 0.6", "EMBEDDING_LR = 0.45")
        self.assertEqual(self.cli("claim", "--code", "--description", "try a gentler embedding",
                                  cwd=gpu0).code, 0)
        words = self.cli("check", "--description", "unrelated words entirely", "--json",
                         cwd=gpu1).json()
        self.assertEqual([c["same_idea"] for c in words["in_flight"]], [False])
        code = self.cli("check", "--code", "--description", "unrelated words entirely",
                        "--fail-on-similar", cwd=gpu1)
        self.assertEqual(code.code, 2, code)
        self.assertIn("SAME IDEA", code.out)

    def test_the_same_edit_on_another_base_is_the_same_idea(self):
        gpu0, gpu1, _ = self.trees
        # gpu0's branch moved on (another constant committed): its train.py differs
        edit(gpu0, "WARMDOWN_RATIO = 0.5", "WARMDOWN_RATIO = 0.6")
        git(gpu0, "commit", "-qam", "warmdown 0.6")
        for tree in (gpu0, gpu1):  # then both agents make the same edit, uncommitted
            edit(tree, "EMBEDDING_LR = 0.6", "EMBEDDING_LR = 0.45")
        self.assertEqual(self.cli("claim", "--code", "--description", "try a gentler embedding",
                                  cwd=gpu0).code, 0)
        code = self.cli("check", "--code", "--description", "unrelated words entirely",
                        "--fail-on-similar", cwd=gpu1)
        self.assertEqual(code.code, 2, code)
        self.assertIn("SAME IDEA", code.out)
        refused = self.cli("claim", "--code", "--description", "unrelated words entirely",
                           cwd=gpu1)
        self.assertEqual(refused.code, 2, refused)
        self.assertIn("Not claimed: another agent has the same idea in flight.", refused.out)

    def test_claims_expire_and_are_never_runs(self):
        gpu0, gpu1, _ = self.trees
        self.cli("claim", "--description", "set DEPTH to 12", "--ttl-minutes", "5", cwd=gpu0)
        later = self.cli("check", "--description", "DEPTH 12", "--fail-on-similar", "--json",
                         cwd=gpu1, MEMORYLAB_NOW="2026-01-01T06:05:00Z").json()
        self.assertEqual(later["in_flight"], [])
        self.assertEqual(self.records(self.store), [])
        self.assertEqual(self.cli("list", "--json", cwd=gpu1).json()["runs"], [])


    def test_a_claim_on_another_base_is_the_same_idea_in_words_and_in_code(self):
        # gpu1 trains MATRIX_LR 0.05 on its own champion (DEPTH 10); gpu0 (DEPTH 8)
        # plans the same change: both of its steps see the same idea in flight
        gpu0, gpu1, _ = self.trees
        edit(gpu1, "DEPTH = 8", "DEPTH = 10")
        git(gpu1, "commit", "-q", "-am", "its champion")
        edit(gpu1, "MATRIX_LR = 0.04", "MATRIX_LR = 0.05")
        claimed = self.cli("claim", "--code", "--description", "raise MATRIX_LR to 0.05", cwd=gpu1)
        self.assertEqual(claimed.code, 0, claimed)
        words = self.cli("check", "--description", "raise MATRIX_LR to 0.05",
                         "--fail-on-similar", cwd=gpu0)
        edit(gpu0, "MATRIX_LR = 0.04", "MATRIX_LR = 0.05")
        code = self.cli("check", "--code", "--description", "raise MATRIX_LR to 0.05",
                        "--fail-on-similar", cwd=gpu0)
        for result in (words, code):
            self.assertEqual(result.code, 2, result)
            self.assertIn(f":{gpu1}:autoresearch/jan1-gpu1 has the same idea in flight.",
                          result.out)


class ClaimInputTest(LabCase):
    def test_bad_input_is_one_error_line(self):
        self.assertIn("--ttl-minutes must be > 0",
                      self.fails("claim", "--description", "x", "--ttl-minutes", "0"))
        self.assertIn("sync needs --tracking-uri", self.fails("sync"))
        self.assertIn("tracking URI must start with http:// or https://",
                      self.fails("check", "--description", "x", "--tracking-uri", "ftp://h"))
        os.remove(self.path("train.py"))
        self.assertIn("--code: no train.py", self.fails("claim", "--description", "x", "--code"))

    def test_experiment_names(self):
        from memorylab_core.mirror import experiment_name
        self.assertEqual(experiment_name(None, {}, "autoresearch/jan1-gpu3"), "autoresearch/jan1")
        self.assertEqual(experiment_name(None, {}, "autoresearch/jan1"), "autoresearch/jan1")
        self.assertEqual(experiment_name(None, {}, "main"), "memorylab")
        self.assertEqual(experiment_name(None, {"MEMORYLAB_EXPERIMENT": "team"}, "main"), "team")
        self.assertEqual(experiment_name("night", {"MEMORYLAB_EXPERIMENT": "team"}, "x"), "night")


# ---------------------------------------------------------------- the client alone

class _FakeServer:
    """A loopback HTTP server answering from a script of (status, body, headers)."""

    def __init__(self, script):
        import http.server
        import threading
        self.script, self.requests = list(script), []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                outer.requests.append((self.path, dict(self.headers),
                                       json.loads(self.rfile.read(length) or b"{}")))
                status, body, headers = outer.script.pop(0) if outer.script else (200, {}, {})
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class ClientTest(unittest.TestCase):
    def fake(self, script=()):
        server = _FakeServer(script)
        self.addCleanup(server.close)
        return server

    def test_retries_429_and_503_with_backoff(self):
        server = self.fake([(429, {}, {"Retry-After": "3"}), (503, {}, {}),
                            (200, {"run": {"info": {"run_id": "r1"}}}, {})])
        waits = []
        client = tracking.Client(server.uri, {}, sleep=waits.append)
        self.assertEqual(client.create_run("1", name="n", start_ms=0, tags={}), "r1")
        self.assertEqual(waits, [3.0, 1.0])
        self.assertEqual(len(server.requests), 3)

    def test_gives_up_after_the_retries_with_one_line(self):
        server = self.fake([(503, {"error_code": "TEMPORARILY_UNAVAILABLE"}, {})] * 10)
        client = tracking.Client(server.uri, {}, sleep=lambda s: None)
        with self.assertRaises(tracking.TrackingError) as caught:
            client.update_run("r1", "FINISHED")
        self.assertIn("HTTP 503 TEMPORARILY_UNAVAILABLE", str(caught.exception))
        self.assertEqual(len(server.requests), tracking.RETRIES + 1)

    def test_auth_from_the_environment(self):
        server = self.fake()
        tracking.Client(server.uri, {"MLFLOW_TRACKING_TOKEN": "tok"}).update_run("r", "FINISHED")
        tracking.Client(server.uri, {"MLFLOW_TRACKING_USERNAME": "ann",
                                     "MLFLOW_TRACKING_PASSWORD": "pw"}).update_run("r", "FINISHED")
        tracking.Client(server.uri, {}).update_run("r", "FINISHED")
        sent = [headers.get("Authorization") for _, headers, _ in server.requests]
        self.assertEqual(sent, ["Bearer tok", "Basic YW5uOnB3", None])

    def test_log_batch_keeps_within_mlflow_limits(self):
        server = self.fake()
        client = tracking.Client(server.uri, {})
        params = [(f"p{i}", "v") for i in range(250)]
        tags = [(f"t{i}", "v") for i in range(120)]
        metrics = [{"key": f"m{i}", "value": 1.0, "timestamp": 0, "step": 0} for i in range(1500)]
        client.log_batch("r1", metrics=metrics, params=params, tags=tags)
        bodies = [body for _, _, body in server.requests]
        for body in bodies:
            self.assertLessEqual(len(body["params"]), 100)
            self.assertLessEqual(len(body["tags"]), 100)
            self.assertLessEqual(len(body["metrics"]), 1000)
            self.assertLessEqual(len(body["params"]) + len(body["tags"]) + len(body["metrics"]),
                                 1000)
        self.assertEqual(sum(len(b["params"]) for b in bodies), 250)
        self.assertEqual(sum(len(b["tags"]) for b in bodies), 120)
        self.assertEqual(sum(len(b["metrics"]) for b in bodies), 1500)

    def test_unreachable_server_is_one_error(self):
        port = mlflow_server.free_port()  # nothing listens there
        with self.assertRaises(tracking.TrackingError) as caught:
            tracking.Client(f"http://127.0.0.1:{port}", {}).experiment_id("x")
        self.assertIn("unreachable", str(caught.exception))


class _OneRunClient:
    """Stands in for the server of a pull: one run of another store, no claims."""
    timeout = 1

    def __init__(self, run):
        self.run = run

    def experiment_id(self, name):
        return "1"

    def search_runs(self, experiment_id, filter_string, order_by=()):
        return [self.run] if "'run'" in filter_string else []


class PullCommitTest(LabCase):
    def test_a_pull_cut_short_after_the_ledger_is_completed_by_the_next_writer(self):
        from memorylab_core import mirror, store as store_module
        self.ok("init")
        tags = {"memorylab.kind": "run", "memorylab.store": "elsewhere",
                "memorylab.run_id": "20260101T050000Z-abc1234", "memorylab.status": "keep",
                "memorylab.timestamp_utc": "2026-01-01T05:00:00Z",
                "memorylab.commit": "abc1234", "memorylab.description": "remote run"}
        run = {"info": {"run_id": "m1", "end_time": 5}, "data": {
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
            "metrics": [{"key": "val_bpb", "value": 0.98},
                        {"key": "peak_vram_mb", "value": 1000.0}]}}
        store = store_module.Store(self.repo)
        real = store_module._append_line

        def append_line(path, text):  # results.tsv cannot be written: the disk failed
            if path == store.tsv_path:
                raise OSError(5, "Input/output error", path)
            return real(path, text)

        store_module._append_line = append_line
        try:
            counts = mirror.Mirror(store, "http://127.0.0.1:9", "e", env={},
                                   now="2026-01-01T06:00:00Z",
                                   client=_OneRunClient(run)).sync(push=False)
        finally:
            store_module._append_line = real
        self.assertEqual(counts["pulled"], 1)
        self.assertIn("results.tsv was not updated", counts["warnings"][0])
        self.assertEqual(len(self.tsv()), 1)
        self.log_keep("local run", 0.99)  # the next writer finishes the pull's journal
        self.assertEqual([line.split("\t")[4] for line in self.tsv()[1:]],
                         ["remote run", "local run"])


class OddServerTest(LabCase):
    def test_an_odd_answer_is_one_warning_and_the_run_is_recorded(self):
        server = _FakeServer([])  # answers {} to everything
        self.addCleanup(server.close)
        logged = self.log_keep("raise MATRIX_LR to 0.06", 0.98, "keep",
                               "--tracking-uri", server.uri)
        warnings = [line for line in logged.err.splitlines() if line.startswith("warning:")]
        self.assertEqual(len(warnings), 1, logged.err)
        self.assertIn("gave an answer of another shape", warnings[0])
        self.assertEqual(len(self.records()), 1)


if __name__ == "__main__":
    unittest.main()
