"""The README's set-up sentences that a new user trips over (issue 24, Small): `python` is the project's
environment, said where the commands start; `./test.bash` examples pass no second `-q` (test.bash passes one,
and `-q -q` drops pytest's summary line)."""

import os
import re
import shlex

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_the_readme_says_python_means_the_venv_in_the_quickstart():
    text = readme()
    quickstart = text[text.index("## Quickstart"):text.index("\n## ", text.index("## Quickstart") + 1)]
    first_block_with_python = min(m.start() for m in re.finditer(r"^```(bash|python)\n(?:(?!^```).)*?^python ",
                                                                  text, re.M | re.S))
    assert "python -m bpfree" in quickstart  # its first appearance, which the note must follow closely
    for how in ("source .venv/bin/activate", ".venv/bin/python"):
        assert how in quickstart, how
        assert text.index(how) < first_block_with_python


def test_test_bash_passes_q_and_the_readmes_examples_do_not_add_another():
    with open(os.path.join(ROOT, "test.bash")) as f:
        runner = [line for line in f if line.startswith("exec ")]
    assert len(runner) == 1 and " -q " in runner[0], runner
    text = " ".join(readme().split())
    examples = re.findall(r"`(\./test\.bash[^`]*)`", text) + re.findall(r"^(\./test\.bash.*)$", readme(), re.M)
    assert examples
    for example in examples:
        tokens = shlex.split(example)
        assert not any(t in ("-q", "--quiet") or re.fullmatch(r"-[a-zA-Z]*q[a-zA-Z]*", t) for t in tokens), example
