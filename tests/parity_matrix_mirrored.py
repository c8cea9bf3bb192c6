"""Runs every MirroredStrategy cell of tests/test_parity_matrix.py and writes them as JSON.

Usage: `python parity_matrix_mirrored.py RESULT.json`. Two logical CPU devices must be
set up before TensorFlow initialises, hence a process of its own. The result file is
written whole (renamed into place) or not at all; on an error it holds `{"error": ...}`.
"""

import json
import os
import sys
import traceback

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def main(path):
    try:
        import parity_matrix_cells

        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        results = {"replicas": strategy.num_replicas_in_sync,
                   "cells": parity_matrix_cells.strategy_cells(strategy)}
    except Exception:  # noqa: BLE001 (any error is reported by the tests that read the file)
        results = {"error": traceback.format_exc()}
    with open(path + ".tmp", "w") as stream:
        json.dump(results, stream)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main(sys.argv[1])
