"""Every code block of docs/*.md and of README.md runs, and the TF Function rules hold.

The runner executes each ```python block of a Markdown file, in order, in one namespace per
file, in a temporary working directory. A ```text block that directly follows a python block
is that block's expected output (everything it prints, Python `print` and `tf.print` alike),
compared like doctest with ELLIPSIS (`...` matches anything) and NORMALIZE_WHITESPACE. A
failing block fails the test with the file and line of the block. Blocks marked
```python requires-data need the real data sets (`CUSTOMKERAS_DATA_DIR`, see conftest.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import doctest
import io
import linecache
import os
import pathlib
import random
import re
import subprocess
import sys
import tempfile
import traceback

import numpy as np
import pytest
import tensorflow as tf

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
README = DOCS.parent / "README.md"
DOC_FILES = sorted(DOCS.glob("*.md")) + [README]
FENCE = re.compile(r"^```(\S*)(.*)$")


@dataclasses.dataclass
class Block:
    language: str
    options: tuple[str, ...]
    line: int  # line number of the first line of code (1-based)
    source: str
    expected: str | None = None  # the text block that follows, if any


def parse_blocks(path: pathlib.Path) -> list[Block]:
    """The fenced blocks of a Markdown file, each text block attached to the python before."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    last_code_end = -2
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        language, options = match.group(1), tuple(match.group(2).split())
        start = index + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"{path}:{index + 1}: unclosed code fence")
        source = "\n".join(lines[start:end]) + "\n"
        between = lines[last_code_end + 1:index]
        if (language == "text" and blocks and blocks[-1].language == "python"
                and blocks[-1].expected is None and not any(s.strip() for s in between)):
            blocks[-1].expected = source
        else:
            blocks.append(Block(language, options, start + 1, source))
        last_code_end = end
        index = end + 1
    return blocks


@contextlib.contextmanager
def captured_output():
    """Captures Python's stdout and file descriptor 1 (where `tf.print` writes) together."""
    with tempfile.TemporaryFile() as sink:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(sink.fileno(), 1)
        stream = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
        text = io.StringIO()
        try:
            with contextlib.redirect_stdout(stream):
                yield text
        finally:
            stream.flush()
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            text.write(sink.read().decode("utf-8", "replace"))


def _doc_traceback(error: BaseException, path: pathlib.Path) -> str:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == str(path)]
    where = "".join(traceback.format_list(frames))
    return where + "".join(traceback.format_exception_only(type(error), error))


def _shown(path: pathlib.Path) -> str:
    return str(path.relative_to(DOCS.parent)) if path.is_relative_to(DOCS.parent) else str(path)


def _reset_seeds() -> None:
    random.seed(42)
    np.random.seed(42)
    tf.random.set_seed(42)


def run_markdown(path: pathlib.Path, request) -> None:
    """Runs every python block of `path`; fails with file:line on the first bad block."""
    # AutoGraph reads a function's source through linecache: let it see the Markdown file.
    linecache.checkcache(str(path))
    namespace = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
    data_lines = []
    _reset_seeds()
    for block in parse_blocks(path):
        if block.language != "python":
            continue
        location = f"{_shown(path)}:{block.line}"
        if "requires-data" in block.options:
            try:
                data = request.getfixturevalue("data_dir")
            except pytest.skip.Exception:
                data_lines.append(block.line)
                continue
            request.getfixturevalue("monkeypatch").setenv("CUSTOMKERAS_DATA_DIR", str(data))
        code = compile("\n" * (block.line - 1) + block.source, str(path), "exec")
        with captured_output() as output:
            try:
                exec(code, namespace)  # noqa: S102 - the documentation's own examples
            except Exception as error:  # noqa: BLE001 - reported with its doc location
                failure = f"{location}: block raised\n{_doc_traceback(error, path)}"
            else:
                failure = None
        if failure:
            pytest.fail(failure, pytrace=False)
        got = output.getvalue()
        if block.expected is not None:
            checker = doctest.OutputChecker()
            flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
            if not checker.check_output(block.expected, got, flags):
                pytest.fail(
                    f"{location}: output differs from the text block that follows\n"
                    f"--- expected\n{block.expected}--- got\n{got}",
                    pytrace=False,
                )
    if data_lines:
        pytest.skip(f"{path.name}: no data directory, skipped data blocks at lines {data_lines}")


# README.md's blocks each run alone in a fresh interpreter, with their outputs checked
# (`test_readme_block_runs_alone_in_a_fresh_interpreter`), which covers running them in
# one namespace too.
@pytest.mark.parametrize("path", DOC_FILES[:-1], ids=[p.name for p in DOC_FILES[:-1]])
def test_doc_file_runs(path, request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_markdown(path, request)


def test_every_doc_exists_and_has_code():
    names = {p.name for p in DOC_FILES}
    assert {"tensors.md", "guide.md", "autodiff.md", "tf-functions.md", "answers.md"} <= names
    for path in DOC_FILES:
        if path.name != "answers.md":
            assert any(b.language == "python" for b in parse_blocks(path)), path


def test_runner_reports_file_and_line_of_a_failing_block(tmp_path, request):
    doc = tmp_path / "broken.md"
    doc.write_text("# t\n\n```python\nx = 1\n```\n\ntext\n\n```python\nassert x == 2\n```\n")
    with pytest.raises(pytest.fail.Exception, match=r"broken.md:10: block raised"):
        run_markdown(doc, request)


def test_runner_checks_expected_output(tmp_path, request):
    doc = tmp_path / "output.md"
    doc.write_text("```python\nprint(6 * 7)\n```\n```text\n41\n```\n")
    with pytest.raises(pytest.fail.Exception, match="output differs"):
        run_markdown(doc, request)
    doc.write_text("```python\nprint(6 * 7, 'and more')\n```\n```text\n42 ...\n```\n")
    run_markdown(doc, request)


# --- The TF Function rules of docs/tf-functions.md, each broken and followed -------------

from customkeras import tracing  # noqa: E402


def rule_python_code_runs_only_while_tracing():
    python_calls = []

    @tf.function
    def noisy_numpy(x):
        python_calls.append(1)
        return x + np.random.rand()

    @tf.function
    def noisy_tf(x):
        return x + tf.random.uniform([])

    zero = tf.constant(0.0)
    frozen = {float(noisy_numpy(zero)) for _ in range(3)}
    fresh = {float(noisy_tf(zero)) for _ in range(3)}
    assert len(frozen) == 1, "broken: NumPy's random number should be frozen at trace time"
    assert len(python_calls) == 1, "broken: Python side effects should run once"
    assert len(fresh) == 3, "followed: tf.random should draw at every call"


def rule_numpy_arrays_are_graph_constants():
    weights = np.array([1.0, 2.0], dtype=np.float32)

    @tf.function
    def captured(x):
        return tf.reduce_sum(x * weights)

    @tf.function
    def passed(x, w):
        return tf.reduce_sum(x * w)

    ones = tf.ones([2])
    before = float(captured(ones))
    weights *= 10
    assert float(captured(ones)) == before == 3.0, "broken: in-place change must be invisible"
    assert float(passed(ones, tf.constant(weights))) == 30.0, "followed: passed as a tensor"


def rule_called_python_functions_are_traced_into_the_graph():
    def helper(x):
        return tf.square(x) + 1.0

    def step(x):
        return helper(x) * 2.0

    types = [op.type for op in tracing.graph_ops(step, tf.constant(3.0))]
    assert "Square" in types, "the helper's operations belong to the caller's graph"
    assert float(tf.function(step)(tf.constant(3.0))) == step(tf.constant(3.0)).numpy() == 20.0


def rule_variables_are_created_on_the_first_call_only():
    @tf.function
    def new_variable_each_trace(x):
        return x * tf.Variable(1.0)

    with pytest.raises(ValueError, match="singleton tf.Variables created on the first call"):
        new_variable_each_trace(tf.constant(1.0))

    created = []

    @tf.function
    def create_once(x):
        if not created:
            created.append(tf.Variable(2.0))
        return x * created[0]

    assert float(create_once(tf.constant(3.0))) == float(create_once(tf.constant(3.0))) == 6.0
    assert len(created) == 1


LOOP_SOURCE = """
import tensorflow as tf

def add_n(x, n):
    for _ in tf.range(n):
        x += 1
    return x
"""


def rule_source_code_must_be_available(tmp_path_factory):
    without_source = {}
    exec(compile(LOOP_SOURCE, "<no source>", "exec"), without_source)  # noqa: S102
    with pytest.raises(tf.errors.OperatorNotAllowedInGraphError):
        tf.function(without_source["add_n"])(tf.constant(0), tf.constant(3))
    module_path = tmp_path_factory.mktemp("source") / "loop_module.py"
    module_path.write_text(LOOP_SOURCE)
    import importlib.util

    spec = importlib.util.spec_from_file_location("loop_module", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert int(tf.function(module.add_n)(tf.constant(0), tf.constant(3))) == 3


def rule_only_tensor_loops_become_graph_loops():
    def python_loop(x, n):
        for _ in range(n):
            x += 1
        return x

    def tensor_loop(x, n):
        for _ in tf.range(n):
            x += 1
        return x

    adds = {
        n: [op.type for op in tracing.graph_ops(python_loop, tf.constant(0), n)].count("AddV2")
        for n in (3, 10)
    }
    assert adds == {3: 3, 10: 10}, "broken: range() is unrolled, the graph grows with n"
    counter = tracing.count_traces(tensor_loop)
    results = [int(counter(tf.constant(0), tf.constant(n))) for n in (3, 10)]
    assert results == [3, 10] and counter.count == 1, "followed: one While graph for every n"


def rule_changing_python_scalars_retrace():
    def scale(x, factor):
        return x * factor

    with_python = tracing.count_traces(scale)
    with_tensor = tracing.count_traces(scale)
    for factor in (1.0, 2.0, 3.0):
        with_python(tf.ones([2]), factor)
        with_tensor(tf.ones([2]), tf.constant(factor))
    assert with_python.count == 3, "broken: one trace per Python value"
    assert with_tensor.count == 1, "followed: tensors of one signature share a graph"


def rule_prefer_vectorized_operations():
    def loop_sum(x):
        total = tf.constant(0.0)
        for i in tf.range(tf.shape(x)[0]):
            total += x[i]
        return total

    x = tf.range(100, dtype=tf.float32)
    loop_types = [op.type for op in tracing.graph_ops(loop_sum, x)]
    vector_types = [op.type for op in tracing.graph_ops(tf.reduce_sum, x)]
    assert "While" in loop_types or "StatelessWhile" in loop_types
    assert "Sum" in vector_types and not {"While", "StatelessWhile"} & set(vector_types)
    assert float(tf.function(loop_sum)(x)) == float(tf.reduce_sum(x)) == 4950.0


RULES = {
    "1-python-code-runs-only-while-tracing": rule_python_code_runs_only_while_tracing,
    "2-numpy-arrays-are-graph-constants": rule_numpy_arrays_are_graph_constants,
    "3-called-functions-are-traced": rule_called_python_functions_are_traced_into_the_graph,
    "4-variables-on-first-call-only": rule_variables_are_created_on_the_first_call_only,
    "5-source-code-must-be-available": rule_source_code_must_be_available,
    "6-only-tensor-loops-become-graph-loops": rule_only_tensor_loops_become_graph_loops,
    "7-changing-python-scalars-retrace": rule_changing_python_scalars_retrace,
    "8-prefer-vectorized-operations": rule_prefer_vectorized_operations,
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_tf_function_rule(rule, request):
    check = RULES[rule]
    if "tmp_path_factory" in check.__code__.co_varnames[: check.__code__.co_argcount]:
        check(request.getfixturevalue("tmp_path_factory"))
    else:
        check()


def test_each_rule_of_the_doc_has_a_test():
    text = (DOCS / "tf-functions.md").read_text(encoding="utf-8")
    numbers = re.findall(r"^\*\*(\d+)\. ", text, flags=re.MULTILINE)
    assert sorted(numbers, key=int) == sorted((r.split("-")[0] for r in RULES), key=int)


# What TensorFlow's C++ start-up prints on stderr when nothing quiets it (absl log lines such
# as "E0000 00:00:... failed call to cuInit", oneDNN and CUDA notices).
TF_NOISE = re.compile(r"^[IWEF]\d{4} |cuInit|oneDNN|cuda|TF-TRT|absl::|computation_placer",
                      re.MULTILINE)


def _readme_python_blocks() -> list[Block]:
    return [block for block in parse_blocks(README) if block.language == "python"]


@pytest.mark.parametrize("block", _readme_python_blocks(), ids=lambda b: f"README.md:{b.line}")
def test_readme_block_runs_alone_in_a_fresh_interpreter(block, tmp_path, request):
    """Each README block as a user pastes it: alone, in a new `python`, in a shell without
    TF_CPP_MIN_LOG_LEVEL; it prints what its text block shows and no TensorFlow noise."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(DOCS.parent / "src"), *filter(None, [env.get("PYTHONPATH")])])
    if "requires-data" in block.options:
        env["CUSTOMKERAS_DATA_DIR"] = str(request.getfixturevalue("data_dir"))
    done = subprocess.run([sys.executable, "-c", block.source], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    where = f"README.md:{block.line}"
    assert done.returncode == 0, f"{where} fails alone:\n{done.stderr[-3000:]}"
    noise = TF_NOISE.findall(done.stderr)
    assert not noise, f"{where} prints TensorFlow start-up noise:\n{done.stderr[-3000:]}"
    if block.expected is not None:
        flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        assert doctest.OutputChecker().check_output(block.expected, done.stdout, flags), (
            f"{where}: output differs\n--- expected\n{block.expected}--- got\n{done.stdout}")


def test_readme_uses_one_command_form():
    """`customkeras ...` after saying how to activate the venv; never `.venv/bin/customkeras`
    as the form to type (only in the sentence that names the alternative)."""
    text = README.read_text(encoding="utf-8")
    assert "source .venv/bin/activate" in text
    commands = [line for block in parse_blocks(README) if block.language == "bash"
                for line in block.source.splitlines()]
    assert not [line for line in commands if ".venv/bin/" in line
                and not line.startswith("source .venv/bin/activate")]
