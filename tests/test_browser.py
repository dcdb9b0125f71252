"""The HTML report opened in a real headless browser (Debian's chromium).

Skipped, with the reason, only when no chromium binary is on PATH (set CHROMIUM to
point at one); with MEMORYLAB_REQUIRE_BROWSER=1 (CI) a missing browser is a failure.
`.ci/run` installs it with `apt-get install -y chromium`. Nothing is
fetched: the page is a local file and the browser runs with networking features off.
"""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from mlhelpers import LabCase
from test_html import Elements

BROWSER = os.environ.get("CHROMIUM") or next(
    (path for path in map(shutil.which, ("chromium", "chromium-browser", "google-chrome",
                                         "chrome")) if path), None)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--mute-audio", "--hide-scrollbars")
SCRIPT = "<script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(2)>"


def browse(*args, timeout=90):
    """Run the browser once with a fresh profile; returns its stdout."""
    profile = tempfile.mkdtemp(prefix="memorylab-chromium-")
    try:
        done = subprocess.run([BROWSER, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if done.returncode != 0:
        raise AssertionError(f"{BROWSER} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


MISSING = ("no chromium binary on PATH (install it: apt-get update && apt-get install -y "
           "chromium, or set CHROMIUM=/path/to/browser)")
REQUIRED = os.environ.get("MEMORYLAB_REQUIRE_BROWSER") == "1"


@unittest.skipIf(BROWSER is None and not REQUIRED, MISSING + "; browser test skipped")
class BrowserTest(LabCase):
    def setUp(self):
        if BROWSER is None:
            self.fail(MISSING + " and MEMORYLAB_REQUIRE_BROWSER=1")
        super().setUp()
        self.ok("init")
        self.log_keep("baseline", 0.998)
        self.log_keep(f"evil {SCRIPT} and {IMAGE}", 0.993)
        self.log_keep("raise lr", 0.995, "discard")
        self.ok("log", "--description", f"crash {IMAGE}", "--status", "crash",
                "--error", f"RuntimeError {SCRIPT}")
        self.log_keep("warmdown 0.6", 0.991)
        self.ok("report")
        self.page = self.path("results", "memorylab", "reports", "latest.html")

    def test_renders_with_one_mark_per_run_and_inert_descriptions(self):
        dom = browse("--dump-dom", f"file://{self.page}")
        parsed = Elements(dom)
        marks = [css.split()[1] for _, css in parsed.classes if css.split()[:1] == ["mark"]]
        for anchor in ("headline", "progress-chart", "decision-queue", "champion-board",
                       "lineages", "failure-clusters", "recent-runs"):
            self.assertIn(f'id="{anchor}"', dom)
        self.assertEqual(marks, ["keep", "keep", "discard", "crash", "keep"])
        self.assertIn("svg", parsed.tags)
        self.assertNotIn("script", parsed.tags)
        self.assertNotIn("img", parsed.tags)
        self.assertFalse(re.search(r"<img|<script", dom))
        text = "".join(parsed.text)
        self.assertIn(f"evil {SCRIPT} and {IMAGE}", text)
        self.assertIn(f"crash {IMAGE}", text)

    def test_screenshot(self):
        shot = os.path.join(self.tmp, "shot.png")
        browse(f"--screenshot={shot}", "--window-size=1200,900", f"file://{self.page}")
        with open(shot, "rb") as f:
            head = f.read(24)
        self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n")
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        self.assertEqual((width, height), (1200, 900))


if __name__ == "__main__":
    unittest.main()
