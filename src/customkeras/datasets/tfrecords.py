"""A verified cache of TFRecord shards: written once, atomically, checked on every use.

A cache entry is one directory per data set and source version::

    <cache>/<name>-<key>/manifest.json
    <cache>/<name>-<key>/<split>-00000-of-00008.tfrecord  ...

`manifest.json` lists, for every split, its shards with their number of examples, size in
bytes and SHA-256. The directory is built under a temporary name and renamed into place
in one step, so a reader never sees half an entry and two processes building the same
entry at once both end up using one complete copy. Readers verify the shards of the split
they open (size, then SHA-256) before any record is read.
"""

import hashlib
import json
import os
import pathlib
import shutil
import tempfile
import time

import tensorflow as tf

from customkeras.datasets.errors import DatasetError
from customkeras.datasets.locations import keras_home

CACHE_DIR_ENV = "CUSTOMKERAS_CACHE_DIR"
MANIFEST = "manifest.json"
FORMAT = "customkeras-tfrecords/1"

_CHUNK = 1 << 20
_PARSE_CHUNK = 1024
_READ_BUFFER = 256 * 1024
# A writer adds a shard every few seconds, which refreshes its directory's mtime: one left
# untouched this long belongs to a writer that was killed.
_STALE_SECONDS = 3600


def cache_root(cache_dir=None):
    """Return the cache directory: `cache_dir`, else `$CUSTOMKERAS_CACHE_DIR`, else Keras's.

    Args:
        cache_dir: Path-like or None, already checked by the caller. Defaults to None:
            `$CUSTOMKERAS_CACHE_DIR` if set and non-empty, else
            `$KERAS_HOME/datasets/customkeras-tfrecords` (`~/.keras/...`).
    """
    if cache_dir is not None:
        return pathlib.Path(cache_dir).expanduser()
    value = os.environ.get(CACHE_DIR_ENV, "")
    if value:
        return pathlib.Path(value).expanduser()
    return keras_home() / "datasets" / "customkeras-tfrecords"


def entry_key(description):
    """Return a short, stable hex key for a JSON-serializable description of an entry."""
    text = json.dumps(description, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def shard_name(split, index, count):
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_shard(path, records):
    """Write serialized records to one TFRecord file; return how many were written."""
    count = 0
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
            count += 1
    return count


def _build(directory, description, splits):
    """Write every split's shards and the manifest into `directory` (a fresh, private one).

    `splits` maps a split name to a list of record iterables, one per shard. The manifest
    is written last: a directory without one was never finished.
    """
    manifest = {"format": FORMAT, **description, "splits": {}}
    for split, shards in splits.items():
        entries = []
        for index, records in enumerate(shards):
            name = shard_name(split, index, len(shards))
            count = _write_shard(directory / name, records)
            entries.append({
                "file": name,
                "examples": count,
                "bytes": (directory / name).stat().st_size,
                "sha256": file_sha256(directory / name),
            })
        manifest["splits"][split] = {
            "examples": sum(e["examples"] for e in entries),
            "shards": entries,
        }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def _remove(path):
    shutil.rmtree(path, ignore_errors=True)


def _remove_stale(root, name):
    """Delete temporary directories that killed writers of entry `name` left behind."""
    now = time.time()
    for path in root.glob(f".{name}.*"):
        try:
            if now - path.stat().st_mtime > _STALE_SECONDS:
                _remove(path)
        except FileNotFoundError:
            pass


def build_entry(root, name, description, make_splits, overwrite=False):
    """Return the directory of the cache entry for `description`, building it if needed.

    Args:
        root: The cache directory (created if missing).
        name: The data set's name, the first part of the entry's directory name.
        description: JSON-serializable dict identifying the entry's content (source
            checksums, shard plan, feature layout); it is hashed into the directory name
            and copied into the manifest.
        make_splits: Callable returning `{split: [records of shard 0, ...]}`, called only
            when the entry must be written.
        overwrite: Whether to rebuild an existing entry (e.g. a damaged one). Defaults
            to False.

    Returns:
        `(directory, written)`: the entry's path, and whether this call wrote it.
    """
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{name}-{entry_key(description)}"
    if final.is_dir() and not overwrite:
        return final, False
    _remove_stale(root, final.name)
    building = pathlib.Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        _build(building, description, make_splits())
        if overwrite and final.is_dir():
            # Move the old entry aside first: rename cannot replace a non-empty directory.
            old = pathlib.Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}.", suffix=".old"))
            try:
                os.rename(final, old / "entry")
            except FileNotFoundError:  # another process is rebuilding it too
                pass
            _remove(old)
        try:
            os.rename(building, final)
        except OSError:
            # Another process finished the same entry first: its copy is as good as ours.
            if not (final / MANIFEST).is_file():
                raise
            _remove(building)
            return final, False
    except BaseException:
        _remove(building)
        raise
    return final, True


def _damaged(path, problem, fix):
    return DatasetError(f"{path}: {problem}; the shard cache is damaged. {fix}")


def read_manifest(directory, description, fix):
    """Load and check an entry's manifest; raise `DatasetError` naming it if unusable."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _damaged(path, "missing (the entry was not written by customkeras or was "
                       "partly deleted)", fix) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _damaged(path, f"unreadable ({error})", fix) from error
    expected = {"format": FORMAT, **description}
    found = {key: manifest.get(key) for key in expected} if isinstance(manifest, dict) else None
    if found != expected or not isinstance(manifest.get("splits"), dict):
        raise _damaged(path, f"expected a manifest with {expected} and its splits, found "
                       f"{found}", fix)
    return manifest


def verified_shards(directory, manifest, split, fix):
    """Return the paths of `split`'s shards after checking each one's size and SHA-256.

    Raises:
        DatasetError: naming the first shard that is missing, truncated or changed.
    """
    try:
        entries = manifest["splits"][split]["shards"]
        expected = [(e["file"], int(e["bytes"]), str(e["sha256"])) for e in entries]
    except (KeyError, TypeError, ValueError) as error:
        raise _damaged(directory / MANIFEST, f"no valid entry for split {split!r} ({error!r})",
                       fix) from error
    paths = []
    for file, size, sha256 in expected:
        path = directory / file
        try:
            found_size = path.stat().st_size
        except FileNotFoundError:
            raise _damaged(path, "missing shard", fix) from None
        if found_size != size:
            raise _damaged(path, f"expected {size} bytes, found {found_size} (truncated or "
                           "extended)", fix)
        digest = file_sha256(path)
        if digest != sha256:
            raise _damaged(path, f"SHA-256 differs: expected {sha256}, found {digest}", fix)
        paths.append(str(path))
    return paths


def record_dataset(paths, examples, batch_size, shuffle, seed, parse, max_examples=None,
                   epoch=None):
    """Return the batched, parsed, prefetched `tf.data` pipeline over verified shards.

    The shards are read in order (so, unshuffled, the records come in the order they were
    written); records are shuffled one by one over the whole split before batching, then
    each batch is parsed at once by `parse` (one `tf.io.parse_example` per batch rather
    than one per record), in chunks of whole batches. With `max_examples`, only the first
    that many records are read (then shuffled among themselves).

    Shuffled without `epoch`, each pass draws a new order from the pipeline's reshuffle
    state (`shuffle(..., reshuffle_each_iteration=True)`). With `epoch` (an int, or an
    integer `tf.Variable` read when a pass starts), a pass's order is a stateless
    permutation drawn from `(seed, epoch)` alone (`epoch_permutation`).
    """
    # One reader over the list of files (sequential, in order); tf.distribute's auto-shard
    # policy sees its file names and gives each worker whole files.
    # An explicit buffer size (TensorFlow's default) also silences the log line TensorFlow
    # prints when it is left unspecified.
    dataset = tf.data.TFRecordDataset(paths, buffer_size=_READ_BUFFER)
    if max_examples is not None and max_examples < examples:
        # The first records, as `--max-train-samples` takes the first array rows.
        dataset = dataset.take(max_examples)
        examples = max_examples
    # Parsing costs mostly per call: parse ~1,024 records at once, then cut them into
    # batches (rebatch keeps the order, so the batches are exactly those of batch()).
    chunk = batch_size * max(1, _PARSE_CHUNK // batch_size)
    if shuffle and epoch is not None:
        # The split's serialized records in one tensor (what a whole-split shuffle buffer
        # holds too), read in chunks of the pass's permutation: no shuffle buffer, so no
        # reshuffle state that TensorFlow would not checkpoint (tensorflow/tensorflow#48178).
        def chunks(records):
            n = tf.shape(records, out_type=tf.int64)[0]
            order = epoch_permutation(n, seed, epoch)
            # Gathered chunk by chunk (not a permuted copy of the whole split), one element
            # per chunk (no per-record tf.data work).
            return tf.data.Dataset.range(0, n, chunk).map(
                lambda start: tf.gather(records, order[start:start + chunk]))

        dataset = dataset.batch(examples).flat_map(chunks)
    else:
        if shuffle:
            dataset = dataset.shuffle(examples, seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(chunk)
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if chunk != batch_size:
        dataset = dataset.rebatch(batch_size)
    # A known length lets Keras show progress and tell one pass from an endless stream;
    # auto-sharding drops this assertion (it logs that it does), as each worker's share is
    # then shorter.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-examples // batch_size)))
    return dataset.prefetch(tf.data.AUTOTUNE)


def epoch_permutation(n, seed, epoch):
    """Return epoch `epoch`'s order of `n` items: a permutation drawn from `(seed, epoch)`.

    A stateless draw (`tf.random.experimental.stateless_shuffle`): the same arguments give
    the same permutation in any process, whatever was drawn before.

    Args:
        n: Int or int64 scalar tensor, how many items.
        seed: Int in [0, 2**32 - 1].
        epoch: Int, or an integer scalar `tf.Variable` or tensor (read when called).

    Returns:
        An int64 tensor of shape `(n,)` holding `0, ..., n - 1` in the epoch's order.
    """
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.stateless_shuffle(tf.range(tf.cast(n, tf.int64)), seed=key)
