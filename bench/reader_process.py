"""A reader in a process of its own, so each reader's heap holds only what its service holds."""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")


class ReaderProcessError(RuntimeError):
    """The reader's process ended while running a read."""


class ReaderProcess:
    """A spawned process that runs one call at a time and sends back its result.

    Spawned, not forked: the process imports only what the calls it runs need,
    so the plain reader holds no scikit-learn and only the alibi consumer holds
    Alibi Detect. It ignores Ctrl-C; the parent stops it.

    Parameters
    ----------
    name : str
        The process's name, for ``ps``.
    preload : tuple of str, optional
        Modules to import as soon as the process starts, so imports that take
        seconds (scikit-learn, Alibi Detect) overlap with the caller's set-up.
    """

    def __init__(self, name: str, preload: tuple[str, ...] = ()) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, preload), name=name, daemon=True
        )
        self._process.start()
        child.close()
        self._ready = False

    def wait_ready(self) -> None:
        """Block until the process has imported its ``preload`` modules.

        Raises
        ------
        ReaderProcessError
            When the process ends first, e.g. because an import failed.
        """
        if not self._ready:
            self._receive()
            self._ready = True

    def run(self, func: Callable[..., T], *args: Any) -> T:
        """Call ``func(*args)`` in the process and return its result or raise its exception.

        Raises
        ------
        ReaderProcessError
            When the process ends before answering.
        """
        self.wait_ready()
        self._conn.send((func, args))
        ok, value = self._receive()
        if not ok:
            raise value
        return value

    def _receive(self) -> Any:
        try:
            return self._conn.recv()
        except EOFError as err:
            self._process.join(5.0)
            raise ReaderProcessError(
                f"{self._process.name} ended (exit code {self._process.exitcode})"
            ) from err

    def close(self, timeout: float = 10.0) -> None:
        """Ask the process to finish, and terminate it if it does not within ``timeout`` s."""
        if self._process.is_alive():
            with contextlib.suppress(OSError):  # it died: nothing left to ask
                self._conn.send(None)
            self._process.join(timeout)
        self.terminate()

    def terminate(self) -> None:
        """Stop the process now, whatever it is doing."""
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5.0)
        self._conn.close()

    def __enter__(self) -> ReaderProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()


def _serve(conn: Connection, preload: tuple[str, ...]) -> None:
    """The process's loop: import ``preload``, then run each call received until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for module in preload:
        importlib.import_module(module)
    conn.send("ready")
    while (job := conn.recv()) is not None:
        func, args = job
        try:
            conn.send((True, func(*args)))
        except Exception as err:
            conn.send((False, err))
    conn.close()
