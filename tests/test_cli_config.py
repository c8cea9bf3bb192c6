"""The CLI's options and configuration: defaults, validation, --help, config.json round trip.

No training here: these run in-process and fast.
"""

import json

import pytest

from customkeras import experiments
from customkeras.cli import build_parser, config, main
from customkeras.cli.errors import CommandError


def test_fashion_defaults_are_exercise_13a():
    run = config.resolve({"dataset": "fashion-mnist"})
    assert (run.model, run.optimizer, run.lr, run.epochs, run.batch_size) == (
        "mlp", "nadam", 1e-2, 5, 32)
    assert run.loss == "sparse_categorical_crossentropy" and run.metrics == ("accuracy",)
    assert not run.split_optimizers


def test_any_lower_or_upper_option_selects_13b_with_the_chapter_defaults():
    run = config.resolve({"dataset": "fashion-mnist", "upper_lr": 5e-3})
    assert run.split_optimizers
    assert (run.lower_optimizer, run.lower_lr) == ("sgd", 1e-4)
    assert (run.upper_optimizer, run.upper_lr) == ("nadam", 5e-3)
    assert run.optimizer is None and run.lr is None


def test_housing_defaults_follow_the_model():
    assert config.resolve({"dataset": "housing"}).optimizer == "nadam"
    exponential = config.resolve({"dataset": "housing", "model": "exponential"})
    assert (exponential.optimizer, exponential.lr) == ("sgd", 1e-2)
    custom = config.resolve({"dataset": "housing", "loss": "huber", "threshold": 2,
                             "metrics": "huber,mae"})
    assert custom.metrics == ("huber", "mae") and custom.threshold == 2.0


@pytest.mark.parametrize("values, message", [
    ({"dataset": "mnist"}, "`dataset` must be one of ('fashion-mnist', 'housing'); "
                           "received dataset='mnist'"),
    ({"dataset": "housing", "model": "deep"}, "one of ('mlp', 'residual'"),
    ({"dataset": "housing", "metrics": "mae,r2"},
     "`metrics` must be one of ('mae', 'mse', 'rmse', 'huber'); received metrics='r2'"),
    ({"dataset": "housing", "optimizer": "adamax"}, "one of ('sgd', 'momentum-sgd'"),
    ({"dataset": "fashion-mnist", "optimizer": "sgd", "lower_lr": 0.1}, "not both"),
    ({"dataset": "housing", "lower_optimizer": "sgd"}, "fashion-mnist only"),
    ({"dataset": "fashion-mnist", "threshold": 2.0}, "housing dataset only"),
    ({"dataset": "fashion-mnist", "epochs": 0}, "`epochs` must be an integer >= 1"),
    ({"dataset": "fashion-mnist", "lr": -1}, "`lr` must be a finite number > 0; received lr=-1"),
    ({"dataset": "fashion-mnist", "lr": float("nan")}, "received lr=nan"),
    ({"dataset": "fashion-mnist", "upper_lr": float("inf")}, "received upper_lr=inf"),
    ({"dataset": "fashion-mnist", "batch_size": 2.5}, "`batch_size` must be an integer"),
    ({"dataset": "fashion-mnist", "seed": 99999999999}, "<= 4294967295; received seed="),
    ({"dataset": "fashion-mnist", "seed": -1}, "`seed` must be an integer >= 0"),
    ({"dataset": "fashion-mnist", "epochs": 2**31}, "<= 2147483647; received epochs="),
    ({"dataset": "fashion-mnist", "colour": "red"}, "Unknown configuration key(s) colour"),
])
def test_bad_values_are_refused_with_the_choices(values, message):
    with pytest.raises(CommandError, match=None) as caught:
        config.resolve(values)
    assert message in str(caught.value)


@pytest.mark.parametrize("values", [
    {"dataset": "fashion-mnist", "max_train_samples": 100, "data_dir": "/data"},
    {"dataset": "fashion-mnist", "lower_optimizer": "adam", "upper_lr": 0.01},
    {"dataset": "housing", "model": "wide-deep", "loss": "huber", "metrics": "huber,rmse"},
])
def test_config_json_round_trip_resolves_to_the_same_run(tmp_path, values):
    run = config.resolve(values)
    path = tmp_path / "config.json"
    path.write_text(config.to_json(run, output_dir=str(tmp_path)))
    document = json.loads(path.read_text())
    assert document["format"] == "customkeras-run-config"
    assert document["run"]["output_dir"] == str(tmp_path)
    assert config.resolve(config.load(path)) == run


def test_a_hand_written_flat_config_is_accepted(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"dataset": "housing", "model": "residual", "epochs": 3}))
    run = config.resolve(config.load(path))
    assert (run.model, run.epochs, run.loss) == ("residual", 3, "mse")


@pytest.mark.parametrize("text, message", [
    ("{not json", "is invalid: Expecting property name"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"format": "something-else", "version": 1}', "is not a customkeras run configuration"),
    ('{"dataset": "housing", "epochs": Infinity}', "Infinity is not a number JSON allows"),
    ('{"dataset": "housing", "lr": NaN}', "NaN is not a number JSON allows"),
])
def test_bad_config_files_are_explained(tmp_path, text, message):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(CommandError) as caught:
        config.load(path)
    assert message in str(caught.value) and caught.value.exit_code == 2
    # The same file as a run's own config.json is a damaged run, not bad usage.
    with pytest.raises(CommandError) as caught:
        config.load(path, run_file=True)
    assert caught.value.exit_code == 1


@pytest.mark.parametrize("command", [
    [], ["train"], ["train", "fashion-mnist"], ["train", "housing"], ["evaluate"],
    ["predict"], ["verify"], ["trace"],
])
def test_every_subcommand_has_help(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: customkeras" in capsys.readouterr().out


def test_housing_help_lists_every_model(capsys):
    with pytest.raises(SystemExit):
        main(["train", "housing", "--help"])
    text = capsys.readouterr().out
    for name in experiments.HOUSING_MODELS:
        assert name in text


@pytest.mark.parametrize("argv, messages", [
    (["train", "housing", "--model", "deep"], ["invalid choice: 'deep'", "residual", "wide-deep"]),
    (["train", "fashion-mnist", "--optimizer", "adamw"], ["invalid choice: 'adamw'", "nadam"]),
    (["train", "cifar10"], ["invalid choice: 'cifar10'", "fashion-mnist", "housing"]),
    (["train", "fashion-mnist", "--epochs", "two"], ["invalid int value: 'two'"]),
    (["train", "fashion-mnist", "--verbose", "3"], ["choose from auto, 0, 1, 2"]),
    (["train", "fashion-mnist", "--profile", "5:3"],
     ["argument --profile: expected A:B", "1 <= A <= B", "received '5:3'"]),
    (["train", "--profile", "0:2", "fashion-mnist"], ["argument --profile", "received '0:2'"]),
    (["train", "housing", "--profile", "10"], ["argument --profile", "received '10'"]),
    (["train", "housing", "--profile", "a:b"], ["argument --profile", "received 'a:b'"]),
    (["fit"], ["invalid choice: 'fit'", "train", "verify"]),
])
def test_argparse_errors_list_the_choices(capsys, argv, messages):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    for message in messages:
        assert message in err


@pytest.mark.parametrize("argv, message", [
    (["train"], "Choose a dataset"),
    (["train", "housing", "--metrics", "mae,r2"], "received metrics='r2'"),
    (["train", "fashion-mnist", "--optimizer", "sgd", "--lower-lr", "0.1"], "not both"),
    (["train", "fashion-mnist", "--epochs", "0"], "`epochs` must be an integer >= 1"),
    (["train", "fashion-mnist", "--lr", "nan"], "received lr=nan"),
    (["train", "fashion-mnist", "--seed", "99999999999"], "received seed=99999999999"),
    (["train", "housing", "--threshold", "inf"], "received threshold=inf"),
])
def test_semantic_errors_exit_2_with_a_message_and_leave_no_directory(capsys, tmp_path, argv,
                                                                      message):
    run_dir = tmp_path / "run"
    assert main([*argv, "--output-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("customkeras train: error: ") and message in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert not run_dir.exists()


@pytest.mark.parametrize("text", ['{"dataset": "housing", "epochs": Infinity}',
                                  '{"dataset": "housing", "lr": NaN}'])
def test_a_config_file_with_non_finite_numbers_is_one_line_and_no_directory(capsys, tmp_path,
                                                                           text):
    path = tmp_path / "mine.json"
    path.write_text(text)
    assert main(["train", "--config", str(path), "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "is not a number JSON allows" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_profile_parses_to_keras_profile_batch():
    args = build_parser().parse_args(["train", "fashion-mnist", "--profile", "10:20"])
    assert args.profile == (10, 20)
    assert build_parser().parse_args(["train", "--profile", "7:7", "housing"]).profile == (7, 7)


def test_parser_keeps_only_typed_options():
    args = build_parser().parse_args(["train", "--epochs", "3", "fashion-mnist", "--lr", "0.5"])
    assert (args.dataset, args.epochs, args.lr) == ("fashion-mnist", 3, 0.5)
    assert not hasattr(args, "batch_size")  # so a --config file's value is not overridden


def test_optimizer_names_build_keras_optimizers():
    for name in experiments.OPTIMIZERS:
        optimizer = experiments.build_optimizer(name, 0.25)
        assert float(optimizer.learning_rate) == pytest.approx(0.25)


def test_loose_config_values_are_refused(tmp_path, capsys):
    # Issue 25.7: `"data_dir": 5` was read as the directory "5"; `--metrics ""` silently
    # meant no metrics.
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"dataset": "housing", "data_dir": 5}))
    assert main(["train", "--config", str(path)]) == 2
    assert ("`data_dir` must be a directory name (a string); received data_dir=5"
            in capsys.readouterr().err)
    assert main(["train", "housing", "--metrics", ""]) == 2
    assert "`metrics` must name at least one metric" in capsys.readouterr().err
    assert main(["train", "housing", "--metrics", " , "]) == 2
    assert "received metrics=' , '" in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_unless_debug(monkeypatch, capsys):
    from customkeras.cli import train

    def broken(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(train, "handle", broken)
    monkeypatch.setattr(train, "add_parser", _with_handler(train.add_parser, broken))
    assert main(["train", "housing"]) == 1
    err = capsys.readouterr().err
    assert err == ("customkeras train: error: unexpected ZeroDivisionError: division by zero "
                   "second line (a case the command does not check yet; 'customkeras --debug "
                   "train ...' shows the traceback for a report)\n")
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "train", "housing"])


def _with_handler(add_parser, handler):
    def add(subparsers):
        add_parser(subparsers)
        subparsers.choices["train"].set_defaults(handler=handler)
    return add
