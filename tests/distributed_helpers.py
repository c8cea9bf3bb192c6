"""Worker processes for the multi-worker tests: free ports, TF_CONFIG, always stopped.

Each worker's output goes to files (a pipe could fill up with TensorFlow's logs and
block the worker). Workers are stopped with SIGKILL: TensorFlow catches SIGTERM (for
preemption handling), and a worker waiting for its cluster ignores it.
"""

import json
import os
import signal
import socket
import subprocess
import time


def free_ports(count):
    """`count` TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports, index):
    """The TF_CONFIG of worker `index` in a cluster of local workers on `ports`."""
    return json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
        "task": {"type": "worker", "index": index},
    })


class Workers:
    """Runs `command(index)` for each worker of a local cluster; a context manager.

    Leaving the `with` block kills every worker still running, whatever happened.

    Args:
        command: a function of the worker index returning its argument list.
        count: number of workers.
        env: the environment shared by the workers (each gets its own TF_CONFIG).
        log_dir: where each worker's stdout and stderr go.
    """

    def __init__(self, command, count, env, log_dir):
        self.ports = free_ports(count)
        self._command, self._env, self._log_dir = command, env, log_dir
        self.processes = []

    def __enter__(self):
        for index in range(len(self.ports)):
            env = dict(self._env, TF_CONFIG=tf_config(self.ports, index))
            with open(self._log_path(index, "out"), "w") as out, \
                    open(self._log_path(index, "err"), "w") as err:
                self.processes.append(subprocess.Popen(
                    self._command(index), env=env, stdout=out, stderr=err, text=True))
        return self

    def __exit__(self, *exc_info):
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
        for process in self.processes:
            process.wait()
        return False

    def _log_path(self, index, stream):
        return os.path.join(self._log_dir, f"worker{index}.{stream}")

    def output(self, index):
        """`(stdout, stderr)` of worker `index` so far."""
        with open(self._log_path(index, "out")) as out, open(self._log_path(index, "err")) as err:
            return out.read(), err.read()

    def kill(self, index):
        """SIGKILLs worker `index` (a machine that dies)."""
        self.processes[index].send_signal(signal.SIGKILL)
        self.processes[index].wait()

    def interrupt(self, index):
        """Sends SIGINT to worker `index`, as Ctrl-C in its terminal would."""
        self.processes[index].send_signal(signal.SIGINT)

    def wait(self, index, timeout):
        """Waits for worker `index` to exit; returns its exit status."""
        try:
            return self.processes[index].wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            out, err = self.output(index)
            raise AssertionError(
                f"worker {index} still running after {timeout} s\n{out[-2000:]}\n{err[-3000:]}"
            ) from None

    def wait_all(self, timeout):
        """Waits for every worker (`timeout` in all); returns their exit statuses."""
        deadline = time.monotonic() + timeout
        return [self.wait(index, max(deadline - time.monotonic(), 0.1))
                for index in range(len(self.processes))]

    def wait_for_file(self, path, timeout):
        """Waits until `path` exists, failing early if a worker exits."""
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            for index, process in enumerate(self.processes):
                if process.poll() is not None:
                    out, err = self.output(index)
                    raise AssertionError(f"worker {index} exited ({process.returncode}) before "
                                         f"{path} appeared\n{out[-2000:]}\n{err[-3000:]}")
            assert time.monotonic() < deadline, f"{path} did not appear in {timeout} s"
            time.sleep(0.05)
