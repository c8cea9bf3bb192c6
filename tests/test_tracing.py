"""customkeras.tracing on functions that do and do not retrace."""

import numpy as np
import pytest
import tensorflow as tf

from customkeras import tracing


def cube(x):
    return x ** 3


def test_count_traces_same_signature_traces_once():
    counter = tracing.count_traces(cube)
    for value in (1.0, 2.0, 3.0):
        result = counter(tf.constant(value))
    np.testing.assert_allclose(result.numpy(), 27.0)
    assert counter.count == 1
    assert counter.signatures == ["(TensorSpec(shape=(), dtype=tf.float32, name='x'))"]


def test_count_traces_python_values_and_shapes_retrace():
    counter = tracing.count_traces(cube)
    counter(2)
    counter(3)
    counter(tf.constant([1.0, 2.0]))
    counter(tf.constant([[1.0], [2.0]]))
    counter(tf.constant([[3.0], [4.0]]))  # same shape as the previous call: no trace
    assert counter.count == 4
    assert counter.signatures[:2] == ["(2)", "(3)"]
    assert "shape=(2, 1)" in counter.signatures[3]


def test_count_traces_forwards_tf_function_options():
    counter = tracing.count_traces(cube, reduce_retracing=True)
    for n in (1, 2, 3, 4):
        counter(tf.ones([n]))
    # second shape: generalized to shape (None,), which serves every later length
    assert counter.count == 2
    assert "shape=(None,)" in counter.signatures[1]


def test_counter_observes_an_existing_tf_function_called_directly():
    step = tf.function(cube)
    step(tf.constant(1.0))
    with tracing.count_traces(step) as counter:
        step(tf.constant(2.0))  # cached: not counted
        step(tf.constant(2.0, tf.float64))
    assert counter.count == 1
    assert "float64" in counter.signatures[0]


def test_max_traces_raises_on_the_retracing_call():
    counter = tracing.count_traces(cube, max_traces=1)
    counter(tf.constant(1.0))
    counter(tf.constant(5.0))
    with pytest.raises(tracing.RetracingError, match=r"traced 2 times(.|\n)*\n  \(7\)\n"):
        counter(7)


def test_max_traces_in_a_with_block_raises_at_exit():
    step = tf.function(cube)
    with pytest.raises(tracing.RetracingError, match="max_traces=1"):
        with tracing.count_traces(step, max_traces=1):
            for i in range(3):
                step(i)  # a Python int: one trace per value


def test_function_creating_a_variable_traces_twice_on_first_call():
    state = []

    def scale(x):
        if not state:
            state.append(tf.Variable(2.0))
        return x * state[0]

    counter = tracing.count_traces(scale)
    counter(tf.constant(1.0))
    counter(tf.constant(3.0))
    assert counter.count == 2  # TensorFlow retraces once without variable creation
    assert len(state) == 1


def test_count_traces_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_traces.*0"):
        tracing.count_traces(cube, max_traces=0)
    with pytest.raises(ValueError, match="jit_compile"):
        tracing.count_traces(tf.function(cube), jit_compile=True)
    with pytest.raises(ValueError, match="callable.*42"):
        tracing.count_traces(42)


def test_graph_ops_of_cube():
    ops = tracing.graph_ops(cube, tf.constant(2.0))
    assert [op.type for op in ops] == ["Placeholder", "Const", "Pow", "Identity"]
    power = ops[2]
    assert [t.name for t in power.inputs] == ["x:0", ops[1].outputs[0].name]
    assert power.outputs == (tracing.GraphTensor("pow:0", "float32", ()),)


def test_graph_ops_python_range_unrolls_tf_range_does_not():
    def python_loop(x):
        for _ in range(10):
            x += 1
        return x

    def tensor_loop(x):
        for _ in tf.range(10):
            x += 1
        return x

    unrolled = [op.type for op in tracing.graph_ops(python_loop, tf.constant(5))]
    looped = [op.type for op in tracing.graph_ops(tensor_loop, tf.constant(5))]
    assert unrolled.count("AddV2") == 10
    # the loop body is a separate function of the While op; one AddV2 computes the trip count
    assert looped.count("AddV2") <= 1
    assert any(kind in ("While", "StatelessWhile") for kind in looped)


def test_graph_ops_with_tensor_spec_and_concrete_function():
    spec = tf.TensorSpec([None, 3], tf.float32)
    ops = tracing.graph_ops(tf.function(cube), spec)
    assert ops[0].outputs[0].shape == (None, 3)
    concrete = tf.function(cube).get_concrete_function(spec)
    assert [op.name for op in tracing.graph_ops(concrete)] == [op.name for op in ops]


def test_autograph_source_converts_tensor_loops():
    @tf.function
    def add_10(x):
        for _ in tf.range(10):
            x += 1
        return x

    code = tracing.autograph_source(add_10)
    assert "ag__.for_stmt" in code
    assert code == tracing.autograph_source(add_10.python_function)


def test_autograph_source_of_a_tf_function_method():
    class Counter:
        def __init__(self):
            self.total = tf.Variable(0)

        @tf.function
        def increment(self, c=1):
            return self.total.assign_add(c)

    counter = Counter()
    counter.increment()
    assert "def tf__increment(self" in tracing.autograph_source(counter.increment)


def test_describe_plain_function_retraces_on_everything():
    step = tf.function(lambda x, n: x * n)
    step(tf.ones([2]), 3)
    report = tracing.describe(step, tf.ones([2]), 3)
    probes = {p.change: p for p in report.probes}
    assert probes["shape"].traces == (1, 1)
    assert probes["dtype"].traces == (1,)
    assert probes["python value"].traces == (1, 1)
    assert report.input_signature is None and report.reduce_retracing is False
    # the probes ran on a copy: the user's function kept its one trace
    assert report.tracing_count == 1 == step.experimental_get_tracing_count()
    assert len(report.concrete_signatures) == 1


def test_describe_reduce_retracing_generalizes_after_one_more_shape():
    step = tf.function(cube, reduce_retracing=True)
    probes = {p.change: p for p in tracing.describe(step, tf.ones([2, 3])).probes}
    assert probes["shape"].traces == (1, 0)
    assert probes["shape"].retraces


def test_describe_input_signature_never_retraces_but_rejects_dtypes():
    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.float32)])
    def shrink(images):
        return images[:, ::2, ::2]

    report = tracing.describe(shrink, tf.zeros([3, 28, 28]))
    probes = {p.change: p for p in report.probes}
    assert probes["shape"].traces == (0, 0) and not probes["shape"].retraces
    assert probes["dtype"].error.startswith("TypeError")
    assert "Received args" not in probes["dtype"].error
    assert report.input_signature == (tf.TensorSpec([None, 28, 28], tf.float32),)
    assert "new shape (float32[3, 28, 28] -> float32[4, 28, 28]" in str(report)


def test_describe_without_examples_reports_options_only():
    report = tracing.describe(cube)
    assert report.probes == () and report.tracing_count == 0
    assert report.name == "cube"


MODULE = '''
import tensorflow as tf

def scale(x, factor):
    return x * factor
'''


def test_trace_command(tmp_path, monkeypatch, capsys):
    (tmp_path / "user_steps.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    status = tracing.trace_command([
        "user_steps:scale", "--example", "tf.constant([1., 2.]), 2.0",
        "--example", "tf.constant([3., 4.]), factor=3.0",
        "--example", "tf.constant([5., 6.]), 2.0", "--autograph",
    ])
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith("2 trace(s) for 3 call(s):")
    assert "new python value (2.0 -> 3.0, 4.0)" in out
    assert "[Mul](x:0" in out
    assert "def tf__scale(x, factor)" in out
    status = tracing.trace_command([
        "user_steps:scale", "--example", "tf.ones([2]), 1.0",
        "--example", "tf.ones([2]), 2.0", "--max-traces", "1",
    ])
    assert status == 1
    assert "retracing: 2 traces > --max-traces 1" in capsys.readouterr().err


def test_trace_command_rejects_a_bad_target(capsys):
    assert tracing.trace_command(["cube", "--example", "1"]) == 2
    assert ("cannot load 'cube': expected FILE.py:FUNCTION or MODULE:FUNCTION"
            in capsys.readouterr().err)
    assert tracing.trace_command(["customkeras.tracing:no_such", "--example", "1"]) == 2
    assert "no_such" in capsys.readouterr().err
