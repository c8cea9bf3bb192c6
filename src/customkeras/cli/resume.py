"""`--resume`: what a run directory may be trusted with, and what must be refused.

- The options given with `--resume` must equal the run's values, except `RESUMABLE` ones
  (`--epochs`, `--data-dir`, `--strategy`): repeating the original command line with
  `--resume` added is fine, changing a value is refused naming the old and new value.
- `config.json` must match what the run was trained with: the manifest's SHA-256 for a
  finished run, the configuration saved in every checkpoint otherwise.
- A run is finished only when its manifest is written and every file it lists matches.
"""

import json
import pathlib

from customkeras.cli import artifacts, config
from customkeras.cli.errors import CommandError
from customkeras.training.run.checkpoint import checkpoint_metadata


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return "(not set)" if value is None else repr(value) if isinstance(value, str) else f"{value}"


def changed_options(run: config.RunConfig, given: config.RunConfig) -> list[str]:
    """`'--name: old -> new'` for each value `given` changes in `run`, resumable ones aside."""
    old, new = run.fixed_values(), given.fixed_values()
    return [f"{_flag(name)} {_shown(old[name])} -> {_shown(new[name])}"
            for name in old if old[name] != new[name]]


def refuse_changes(run_dir: pathlib.Path, run: config.RunConfig, given: config.RunConfig) -> None:
    """Raises a usage error listing every fixed value the options would change."""
    changes = changed_options(run, given)
    if changes:
        raise CommandError(
            f"--resume continues {run_dir} with its own configuration; these options would "
            f"change it: {'; '.join(changes)}. Only --epochs, --data-dir, --strategy, "
            "--worker-timeout and --verbose may differ. Start a new run to change the rest.")


def metadata(run: config.RunConfig) -> str:
    """The configuration kept in every checkpoint, to detect an edited `config.json`."""
    return json.dumps(run.fixed_values(), sort_keys=True)


def check_against_checkpoints(run_dir: pathlib.Path, run: config.RunConfig) -> None:
    """Refuses a `config.json` that differs from the configuration its checkpoints hold.

    Raises:
        CommandError: (exit status 1) naming the file, each differing value, and the fix.
    """
    found = checkpoint_metadata(run_dir / artifacts.CHECKPOINT_DIR)
    if found is None or not found[1]:
        return
    path, text = found
    try:
        trained = json.loads(text)
    except ValueError:
        return  # a damaged checkpoint: restoring will say so
    current = run.fixed_values()
    differences = [f"{name} is {_shown(current.get(name))} in the file but the run was "
                   f"trained with {_shown(value)}"
                   for name, value in sorted(trained.items()) if current.get(name) != value]
    if differences:
        config_file = run_dir / artifacts.CONFIG_FILE
        raise CommandError(
            f"{config_file} does not match the run's checkpoint {pathlib.Path(path).name}: "
            f"{'; '.join(differences)}. It was edited after the run started; put the trained "
            "values back, or train with the new ones in a new directory: customkeras train "
            f"--config {config_file} --output-dir NEW_DIR", exit_code=1)


def unfinished_reason(run_dir: pathlib.Path) -> str | None:
    """None when the run is finished and intact, else why it is not (for a message)."""
    damage = artifacts.manifest_damage(run_dir)
    if damage is not None:
        return f"its {artifacts.MANIFEST_FILE} is damaged ({damage})"
    recorded = artifacts.read_manifest(run_dir)
    if recorded is None:
        return (f"it has no {artifacts.MANIFEST_FILE} (it was stopped while writing its "
                "results)")
    missing = [name for name in (artifacts.MODEL_FILE, artifacts.METRICS_FILE)
               if name not in recorded]
    if missing:
        return f"its {artifacts.MANIFEST_FILE} does not list {', '.join(missing)}"
    changed = artifacts.changed_files(run_dir, recorded)
    if changed:
        return (f"{', '.join(changed)} no longer match{'es' if len(changed) == 1 else ''} "
                f"its {artifacts.MANIFEST_FILE} (damaged, edited or deleted)")
    return None
