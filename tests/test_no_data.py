"""prepare.py and train.py on a machine with no data yet: clear one-line failures.

Copies of the two files run as processes in an empty temporary HOME. The data
host is replaced (in the copy) by a local address: a closed port stands for an
offline machine, a local HTTP server for a working connection. Nothing leaves
the machine.
"""

import functools
import http.server
import os
import shutil
import socket
import tempfile
import threading
import unittest

import training_harness as harness


def setUpModule():
    harness.require_training_deps()


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoDataTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="ar-nodata-")
        self.addCleanup(shutil.rmtree, self.root, ignore_errors=True)
        self.home = os.path.join(self.root, "home")
        self.workdir = os.path.join(self.root, "run")
        os.makedirs(self.home)
        os.makedirs(self.workdir)

    def write_copies(self, base_url):
        prepare_overrides = dict(harness.TINY_PREPARE, BASE_URL=repr(base_url))
        harness.write_shrunk_copies(self.workdir, prepare_overrides, harness.TINY_TRAIN)

    def test_train_without_data_says_to_run_prepare(self):
        self.write_copies("http://127.0.0.1:9")
        result = harness.run_script(self.workdir, self.home, ["train.py"])
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        cache = os.path.join(self.home, ".cache", "autoresearch")
        self.assertEqual(result.stderr.splitlines(), [
            f"error: no tokenizer or data shards in {cache}: run `uv run prepare.py` first"])

    def test_offline_prepare_stops_at_the_first_failed_connection(self):
        self.write_copies(f"http://127.0.0.1:{closed_port()}/data")
        result = harness.run_script(self.workdir, self.home, ["prepare.py", "--num-shards", "2"])
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertNotIn("Attempt", result.stdout + result.stderr)  # no retry storm
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertRegex(lines[0], r"^error: cannot connect to 127\.0\.0\.1 \(.*[Rr]efused.*\); "
                                   r"prepare\.py needs the network once")

    def test_prepare_downloads_through_a_working_connection(self):
        served = os.path.join(self.root, "served")
        data_dir = harness.make_corpus(served, num_train_shards=2, docs_per_shard=300)
        handler = functools.partial(QuietHandler, directory=data_dir)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        self.write_copies(f"http://127.0.0.1:{server.server_address[1]}")
        result = harness.run_script(self.workdir, self.home, ["prepare.py", "--num-shards", "2"])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("Data: 3/3 shards ready", result.stdout)
        self.assertIn("Tokenizer: trained 1024 tokens", result.stdout)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


if __name__ == "__main__":
    unittest.main()
