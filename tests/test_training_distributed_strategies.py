"""`create_strategy` and `read_tf_config`: names, TF_CONFIG checks and their messages."""

import json

import pytest
import tensorflow as tf

from customkeras.training import STRATEGIES, create_strategy, read_tf_config

WORKERS = {"worker": ["10.0.0.1:2222", "10.0.0.2:2222", "10.0.0.3:2222"]}


def _config(cluster, task):
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": task})}


def test_read_tf_config_places_this_process_in_the_cluster():
    task = read_tf_config(_config(WORKERS, {"type": "worker", "index": 2}))
    assert (task.num_workers, task.worker_id, task.is_chief, task.address) == (
        3, 2, False, "10.0.0.3:2222")
    assert read_tf_config(_config(WORKERS, {"type": "worker", "index": 0})).is_chief
    # With a "chief" job, the chief is worker 0 and the workers are numbered after it,
    # as TensorFlow numbers them.
    with_chief = {"chief": ["10.0.0.9:2222"], **WORKERS}
    chief = read_tf_config(_config(with_chief, {"type": "chief", "index": 0}))
    worker = read_tf_config(_config(with_chief, {"type": "worker", "index": 0}))
    assert (chief.is_chief, chief.num_workers, worker.is_chief, worker.worker_id) == (
        True, 4, False, 1)


@pytest.mark.parametrize("environ, expected", [
    ({}, "needs the TF_CONFIG environment variable"),
    ({"TF_CONFIG": "{cluster: 1}"}, "not JSON"),
    ({"TF_CONFIG": "[1, 2]"}, "must be a JSON object"),
    (_config({}, {"type": "worker", "index": 0}), '"cluster" must map job names'),
    (_config({"worker": ["10.0.0.1"]}, {"type": "worker", "index": 0}), '"host:port"'),
    (_config({"ps": ["h:1"], **WORKERS}, {"type": "worker", "index": 0}),
     "parameter servers and evaluators are not supported"),
    (_config(WORKERS, {"type": "chief", "index": 0}), "\"task\" type must be one of"),
    (_config(WORKERS, {"type": "worker", "index": 3}), "index must be an integer from 0 to 2"),
    (_config(WORKERS, None), '"task" must be an object'),
])
def test_a_bad_tf_config_says_what_is_wrong(environ, expected):
    with pytest.raises(ValueError, match="TF_CONFIG") as raised:
        read_tf_config(environ)
    assert expected in str(raised.value)
    assert '{"cluster": {"worker": ["host1:12345", "host2:12345"]}' in str(raised.value)


def test_create_strategy_by_name(monkeypatch):
    assert STRATEGIES == ("default", "mirrored", "multi-worker")
    assert create_strategy("default") is tf.distribute.get_strategy()
    assert isinstance(create_strategy("mirrored"), tf.distribute.MirroredStrategy)
    with pytest.raises(ValueError, match="one of"):
        create_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG"):
        create_strategy("multi-worker")


def test_multi_worker_after_tensorflow_started_is_a_clear_error(monkeypatch):
    tf.constant(1.0) + 1.0  # TensorFlow is running in this process
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}))
    with pytest.raises(ValueError, match="before TensorFlow runs any operation"):
        create_strategy("multi-worker")
