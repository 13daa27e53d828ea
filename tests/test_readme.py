"""The README stays truthful: its example runs and prints what its comments say."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_example_runs_as_written() -> None:
    code = re.search(r"## Example\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert code is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0] == "dag [['call_1'], ['call_2', 'call_3']]"
    assert lines[2] == "call_2 ok <html>https://example.org/graphs/0</html>"
    assert lines[3] == "call_3 ok <html>https://example.org/graphs/1</html>"


def test_the_reliability_example_prints_what_the_readme_says() -> None:
    text = README.read_text()
    code = re.search(r"## Reliability.*?```python\n(.*?)```\n\nprints\n\n```\n(.*?)```", text, re.S)
    assert code is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), "README.md", "exec"), {})
    assert out.getvalue() == code.group(2)


def test_ci_runs_the_readme_test_command() -> None:
    text = README.read_text()
    command = next(line for line in text.splitlines() if line.endswith("-m pytest"))
    ci = (README.parent / ".ci" / "run").read_text()
    assert command in ci.splitlines()
