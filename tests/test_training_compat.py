"""`training/compat.py`: the one door to Keras's and TensorFlow's private parts."""

import pathlib
import re

import pytest

from customkeras.training import compat

SRC = pathlib.Path(compat.__file__).resolve().parents[1]


def test_other_versions_are_refused_with_what_to_install():
    compat.check_versions()  # the installed ones: tested
    with pytest.raises(ImportError, match=r"tested with keras 3\.15; found keras 3\.16\.0"):
        compat.check_versions({"keras": "3.16.0", "tensorflow": "2.21.0"})
    with pytest.raises(ImportError, match=r"tensorflow 2\.21; found tensorflow 2\.22\.1"):
        compat.check_versions({"keras": "3.15.1", "tensorflow": "2.22.1"})


def test_no_private_keras_or_tensorflow_access_outside_compat():
    private = re.compile(
        r"keras\.src|\._(symbolic_build|initial_epoch|compile_loss|loss_tracker|"
        r"inputs_struct|flatten_metrics_in_order|save_model|training_metadata_path|"
        r"current_epoch|distribution_strategy|call_has_training_arg|compile_config|"
        r"should_trace|inputs\(\)|batch_size\b)|\"_(compile_loss|compile_config|"
        r"loss_tracker|inputs_struct|call_has_training_arg|compute_loss|batch_size|"
        r"distribution_strategy|should_trace)\"")
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "compat.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if private.search(code) and "`" not in code:
                found.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert found == []
