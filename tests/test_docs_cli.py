"""The documentation matches the command line.

Both directions, against the argparse parser itself (`memorylab.build_parser`):
- every command has a section in docs/memorylab_api.md (a heading named after it)
  that names each of its flags, and a description and example in its --help;
- every `memorylab.py COMMAND --flag ...` written in docs/, README.md or
  program.md names a command and flags that exist, and every flag a command's
  section names belongs to that command; flags written after the repository's
  other scripts (`prepare.py`, `tests/cpu_smoke.py`, ...) exist in their argparse;
- the top-level keys each command prints with --json are named in its docs;
- docs/, README.md and program.md point at no file outside the repository;
- .ci/run runs the README's test command, on `uv sync --locked`.
"""

import os
import re
import subprocess
import sys
import unittest

from mlhelpers import CLI, REPO_ROOT, LabCase  # (puts the repository on sys.path)

import memorylab  # noqa: E402

API_DOC = os.path.join(REPO_ROOT, "docs", "memorylab_api.md")
VIEWS_DOC = os.path.join(REPO_ROOT, "docs", "memorylab_views.md")
DOCS = sorted([os.path.join(REPO_ROOT, "docs", name)
               for name in os.listdir(os.path.join(REPO_ROOT, "docs")) if name.endswith(".md")]
              + [os.path.join(REPO_ROOT, "README.md"), os.path.join(REPO_ROOT, "program.md")])
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
HEADING = re.compile(r"^#{2,4} `?([a-z][a-z-]*)`?\s*$")
CODE = re.compile(r"```.*?```|`[^`\n]+(?:\n[^`\n]+)*`", re.DOTALL)
INVOCATION = re.compile(r"(?<![\w.])memorylab\.py(?:[ \t]+[^|;>#&\n`]*)*")
OUTSIDE = re.compile(r"\bshared/|(?i:\bissue \d+)|(?<![\w&])#\d+\b")  # files users lack, work items


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def commands(parser):
    """{name: subparser} of the CLI."""
    action = next(a for a in parser._actions if a.dest == "command")
    return dict(action.choices)


def flags(parser):
    """The long option strings of a parser, --help excluded."""
    return {option for action in parser._actions for option in action.option_strings
            if option.startswith("--") and option != "--help"}


def sections(text):
    """{name: text} of each `## name` / `### name` section of a markdown page."""
    found, name, lines, fenced = {}, None, [], False
    for line in text.splitlines():
        fenced ^= line.startswith("```")
        heading = line.startswith("#") and not fenced  # `# comment` in a shell block is no heading
        if heading and name:
            found[name] = "\n".join(lines)
        if heading:
            match = HEADING.match(line)
            name, lines = (match.group(1) if match else None), []
        elif name:
            lines.append(line)
    if name:
        found[name] = "\n".join(lines)
    return found


def undocumented(parser, api_text):
    """Problems, one line each, of the API page against the parser (empty: in step)."""
    problems = []
    documented = sections(api_text)
    for option in sorted(flags(parser)):
        if option not in FLAG.findall(api_text):
            problems.append(f"top-level flag {option} is not documented in docs/memorylab_api.md")
    for name, sub in commands(parser).items():
        if name not in documented:
            problems.append(f"command {name} has no `## {name}` section in docs/memorylab_api.md")
            continue
        named = set(FLAG.findall(documented[name]))
        problems += [f"flag {option} of {name} is not documented in its section of "
                     "docs/memorylab_api.md" for option in sorted(flags(sub) - named)]
        problems += [f"docs/memorylab_api.md's {name} section names {option}, which {name} "
                     "does not have" for option in sorted(named - flags(sub) - flags(parser))]
    return problems


def invocations(text):
    """(command, flags) of each `memorylab.py ...` written in the code of a page."""
    for code in CODE.findall(text):
        # a shell line goes on after a trailing backslash; an inline `span` may wrap
        code = re.sub(r"\\\n", " ", code) if code.startswith("```") else code.replace("\n", " ")
        for match in INVOCATION.finditer(code):
            words = match.group(0).split()[1:]
            plain = [w for w in words if not w.startswith(("-", "[", "<", '"', "'"))]
            command = plain[0] if plain and re.fullmatch(r"[a-z][a-z-]*", plain[0]) else None
            yield command, set(FLAG.findall(" ".join(words)))


class DocsMatchTheParserTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.parser = memorylab.build_parser()
        cls.commands = commands(cls.parser)
        cls.api_text = read(API_DOC)

    def test_every_command_and_flag_is_documented(self):
        self.assertEqual(undocumented(self.parser, self.api_text), [])

    def test_an_undocumented_flag_is_caught(self):
        parser = memorylab.build_parser()
        commands(parser)["log"].add_argument("--frobnicate", action="store_true")
        self.assertIn("flag --frobnicate of log is not documented in its section of "
                      "docs/memorylab_api.md", undocumented(parser, self.api_text))

    def test_every_command_explains_itself(self):
        for name, sub in self.commands.items():
            with self.subTest(command=name):
                self.assertIn(name, memorylab.COMMAND_HELP,
                              f"add a description and an example for {name} to COMMAND_HELP")
                description, example = memorylab.COMMAND_HELP[name]
                self.assertTrue(description and example)
                text = sub.format_help()
                self.assertIn("\nexample:\n", text)
                self.assertIn(f"memorylab.py {name}", text.split("\nexample:\n")[1])

    def test_bare_command_prints_usage_and_the_command_list(self):
        done = subprocess.run([sys.executable, CLI], capture_output=True, text=True)
        self.assertEqual((done.returncode, done.stderr), (0, ""))
        self.assertTrue(done.stdout.startswith("usage: memorylab.py [-h] [--root PATH] COMMAND"))
        for name, sub in self.commands.items():
            self.assertRegex(done.stdout, rf"\n    {re.escape(name)}\s")
            # the shared --root is explained once, at the top; commands point there
            self.assertRegex(sub.format_help(), r"--root PATH +store root \(see memorylab\.py --help\)")

    def test_written_invocations_exist(self):
        top = flags(self.parser)
        for path in DOCS:
            for command, named in invocations(read(path)):
                where = os.path.relpath(path, REPO_ROOT)
                if command is None:  # `memorylab.py --help`, `memorylab.py COMMAND ...`
                    self.assertLessEqual(named - {"--help"}, top, where)
                    continue
                self.assertTrue(command in self.commands,
                                f"{where}: memorylab.py {command}: no such command")
                extra = named - flags(self.commands[command]) - top - {"--help"}
                self.assertEqual(extra, set(), f"{where}: memorylab.py {command} {sorted(extra)}")

    def test_flags_of_the_other_scripts_exist(self):
        """`prepare.py --num-shards`, `tests/cpu_smoke.py --dir`...: flags its argparse has."""
        script = re.compile(r"(?<![\w/.])((?:tests/)?[a-z_]+\.py)((?:[ \t]+[^|;>#&\n`]*)*)")
        for path in DOCS:
            for code in CODE.findall(read(path)):
                for name, rest in script.findall(code.replace("\\\n", " ")):
                    source = os.path.join(REPO_ROOT, name)
                    if name == "memorylab.py" or not os.path.isfile(source):
                        continue
                    known = set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", read(source)))
                    unknown = set(FLAG.findall(rest)) - known - {"--help"}
                    self.assertEqual(unknown, set(), f"{os.path.relpath(path, REPO_ROOT)}: {name}")

    def test_ci_runs_the_readme_test_command(self):
        readme = read(os.path.join(REPO_ROOT, "README.md"))
        block = re.search(r"^## Tests\n\n```\n(.*?)\n```", readme, re.MULTILINE | re.DOTALL)
        self.assertIsNotNone(block, "README.md: no command block right under `## Tests`")
        ci_lines = read(os.path.join(REPO_ROOT, ".ci", "run")).splitlines()
        self.assertIn(block.group(1).strip(), ci_lines)
        self.assertIn("uv sync --locked", ci_lines)

    def test_no_pointers_outside_the_repository(self):
        found = [f"{os.path.relpath(path, REPO_ROOT)}:{number}: {line.strip()}"
                 for path in DOCS for number, line in enumerate(read(path).splitlines(), 1)
                 if OUTSIDE.search(line)]
        self.assertEqual(found, [], "docs point at files users do not have, or at work items")


class JsonKeysAreDocumentedTest(LabCase):
    """Every top-level key a command prints with --json is named in its docs."""

    def test_json_keys(self):
        self.ok("init")
        first = self.log_keep("baseline", 0.99, "keep", "--json").json()
        self.log_keep("raise the learning rate", 0.98)
        run_id = self.records()[0]["run_id"]
        tsv = self.write("upstream.tsv", "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"
                                         "abc1234\t0.990000\t44.0\tkeep\tbaseline\n")
        runs = {"check": ["--description", "x"], "log": None, "report": [],
                "show": ["champion"], "list": [], "compare": [run_id, "champion"], "brief": [],
                "doctor": [], "import-tsv": [tsv, "--dry-run"],
                "claim": ["--description", "lower the warmdown ratio"]}
        api, views = sections(read(API_DOC)), sections(read(VIEWS_DOC))
        for name, argv in runs.items():
            with self.subTest(command=name):
                data = first if argv is None else self.ok(name, *argv, "--json").json()
                named = set(re.findall(r"\w+", api[name] + views.get(name, "")))
                self.assertEqual(set(data) - named, set(), f"{name} --json keys not in its docs")
        # sync needs a tracking server: its keys are checked with one in test_tracking.py
        self.assertEqual(set(self.commands_with_json()) - set(runs), {"sync"})

    def commands_with_json(self):
        parser = memorylab.build_parser()
        return [name for name, sub in commands(parser).items() if "--json" in flags(sub)]
