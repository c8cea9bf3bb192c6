"""`customkeras trace`: the command lives in `customkeras.tracing` (the CLI plugs it in); bad
examples are one-line errors."""

import argparse

import pytest

from customkeras import tracing
from customkeras.cli import main, trace


def test_the_library_package_has_no_argparse_hook():
    assert not hasattr(tracing, "add_parser") and "add_parser" not in tracing.__all__


def test_add_parser_plugs_trace_into_a_command_parser(capsys):
    parser = argparse.ArgumentParser(prog="customkeras")
    trace.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["trace", "tensorflow:square",
                              "--example", "tf.ones([2])", "--example", "tf.ones([3])"])
    assert args.handler(args) == 0
    assert capsys.readouterr().out.startswith("2 trace(s) for 2 call(s):")


def test_trace_command_from_python_runs_the_same_command(capsys):
    assert tracing.trace_command(["tensorflow:square", "--example", "tf.ones([2])"]) == 0
    assert capsys.readouterr().out.startswith("1 trace(s) for 1 call(s):")


@pytest.mark.parametrize("argv, status, message", [
    (["math:sqrt", "--example", "1/0"], 2,
     "cannot evaluate --example '1/0': ZeroDivisionError: division by zero"),
    (["math:sqrt", "--example", "(4.0,"], 2, "cannot evaluate --example '(4.0,': SyntaxError"),
    (["math:sqrt", "--example", "'four'"], 1,
     "math:sqrt failed on an example: TypeError: must be real number, not str"),
    (["cube", "--example", "1"], 2,
     "cannot load 'cube': expected FILE.py:FUNCTION or MODULE:FUNCTION"),
    (["mysteps.py", "--example", "1"], 2,
     "cannot load 'mysteps.py': expected FILE.py:FUNCTION or MODULE:FUNCTION"),
    (["no_such_file_here.py:cube", "--example", "1"], 2,
     "cannot load 'no_such_file_here.py:cube': the file no_such_file_here.py does not exist"),
    (["no_such_module_here:f", "--example", "1"], 2, "No module named 'no_such_module_here'"),
])
def test_bad_targets_and_examples_are_one_line_errors(capsys, argv, status, message):
    assert main(["trace", *argv]) == status
    err = capsys.readouterr().err
    assert err.startswith("customkeras trace: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_trace_takes_file_py_colon_function_like_train(tmp_path, monkeypatch, capsys):
    (tmp_path / "mysteps.py").write_text("def cube(x):\n    return x ** 3\n")
    (tmp_path / "broken.py").write_text("raise RuntimeError('half-written file')\n")
    monkeypatch.chdir(tmp_path)
    assert main(["trace", "mysteps.py:cube", "--example", "tf.constant(2.0)",
                 "--example", "tf.constant(3.0)"]) == 0
    assert capsys.readouterr().out.startswith("1 trace(s) for 2 call(s):")
    # A module that fails while importing: one line naming it, not a traceback.
    assert main(["trace", "broken.py:f", "--example", "1"]) == 2
    err = capsys.readouterr().err
    assert err == ("customkeras trace: error: cannot load 'broken.py:f': RuntimeError: "
                   "half-written file\n")
