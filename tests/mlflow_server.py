"""A real MLflow tracking server for tests and the benchmark: `mlflow server` on a
free loopback port with a temporary sqlite backend, stopped afterwards.

Not a test module. `find_mlflow()` names the command that runs MLflow, or None
when it is not installed (tests then skip with SKIP_REASON).
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_REASON = ("mlflow is not installed, so no tracking server can run: install the dev "
               "group (`uv sync`) or `pip install mlflow`, or point MEMORYLAB_TEST_MLFLOW "
               "at an mlflow executable")
STARTUP_TIMEOUT_S = 300


def skip_or_fail(case):
    """Skip `case` (no mlflow here), or fail it where CI promised mlflow
    (MEMORYLAB_REQUIRE_MLFLOW=1)."""
    if os.environ.get("MEMORYLAB_REQUIRE_MLFLOW") == "1":
        raise AssertionError(SKIP_REASON + " (MEMORYLAB_REQUIRE_MLFLOW=1)")
    case.skipTest(SKIP_REASON)


def find_mlflow():
    """The argv prefix that runs `mlflow`, or None."""
    chosen = os.environ.get("MEMORYLAB_TEST_MLFLOW")
    if chosen:
        return [chosen]
    local = os.path.join(REPO_ROOT, ".venv-mlflow", "bin", "mlflow")
    if os.access(local, os.X_OK):
        return [local]
    done = subprocess.run([sys.executable, "-c", "import mlflow"], capture_output=True)
    if done.returncode == 0:
        return [sys.executable, "-m", "mlflow"]
    found = shutil.which("mlflow")
    return [found] if found else None


def server_or_exit():
    """A Server (not started yet) for the scripts, or exit naming what is missing."""
    command = find_mlflow()
    if command is None:
        sys.exit(SKIP_REASON)
    return Server(command)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `mlflow server` process; start() blocks until it answers."""

    def __init__(self, command, port=None, folder=None):
        self.command = command
        self.port = port or free_port()
        self.folder = folder or tempfile.mkdtemp(prefix="memorylab-mlflow-")
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        argv = self.command + [
            "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{os.path.join(self.folder, 'mlflow.db')}",
            "--default-artifact-root", os.path.join(self.folder, "artifacts")]
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        env=env, cwd=self.folder, start_new_session=True)
        ready = threading.Event()
        self.output = []

        def drain():  # keep the pipe empty; note when the server says it is up
            started = False
            for raw in self.process.stdout:
                line = raw.decode("utf-8", "replace")
                self.output.append(line)
                if started or "Application startup complete" in line:
                    started = True
                    ready.set()
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        try:
            self._wait_until_answering(ready)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_answering(self, ready):
        """Block until the server answers a search: first its "startup complete"
        line, then (the socket may open a moment later) connection attempts."""
        import time
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        if not ready.wait(STARTUP_TIMEOUT_S) or self.process.poll() is not None:
            raise RuntimeError("mlflow server did not start:\n" + "".join(self.output[-30:]))
        request = urllib.request.Request(
            self.uri + "/api/2.0/mlflow/experiments/search", method="POST",
            data=b'{"max_results": 1}', headers={"Content-Type": "application/json"})
        while True:
            try:
                with urllib.request.urlopen(request, timeout=STARTUP_TIMEOUT_S) as answer:
                    answer.read()
                return
            except urllib.error.URLError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("mlflow server does not answer:\n"
                                       + "".join(self.output[-30:])) from None
                ready.clear()
                ready.wait(0.25)  # woken early by the server's next output line

    def stop(self):
        """Stop the server and its workers (the process group it leads)."""
        import signal
        if self.process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=60)
                break
            except subprocess.TimeoutExpired:
                continue
        self.process.wait()
        self.process.stdout.close()
        self.process = None

    def remove(self):
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
