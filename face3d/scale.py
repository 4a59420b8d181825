"""Running a batch command's per-item function on a Ray cluster (``--ray [ADDRESS]``).

One code path: a batch command has a ``setup(*args) -> context`` function (load the model, the
weights, the detector) and a per-item function ``fn(context, item) -> result``. The
single-process loop calls ``setup`` once and ``fn`` per item; :func:`ray_map` starts one Ray actor
per worker, each calling ``setup`` once (so models and weights load once per worker, not once per
item), and sends the items to the actors. Results come back to the driver, which merges them in
item order, so a report written from them is the same as the single-process one. A command that
has work of its own to do first builds a :class:`RayPool` early: Ray's start and the workers'
``setup`` then run in the background meanwhile.

The generators of the training sets (``sketch-train``'s drawings, ``audio2exp train``'s corpus)
use :func:`map_in_order`: every item carries its own seed, so where the work is deterministic the
gathered list is byte-for-byte the single-process one, whichever worker drew which item.
``face3d make-trainset`` (the estimator's and the stabilizer's stored sets) seeds its chunks the
same way (:func:`chunk_generator`) and writes each one as it comes back (:func:`map_items`).

Ray is optional (``pip install .[scale]``) and imported only inside :func:`ray_map`.
Outputs that ``fn`` writes go to the paths it is given: on a multi-machine cluster those must be
on storage every node sees (NFS, a mounted bucket).
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Iterator, Sequence

__all__ = ["chunk_generator", "map_items", "map_in_order", "map_shared", "ray_map", "RayPool", "RayConnectError",
           "import_ray", "ray_available", "add_ray_flags", "RAY_LOCAL"]

# argparse sentinel: ``--ray`` given without an address means "start a local Ray".
RAY_LOCAL = "local"


class RayConnectError(ConnectionError):
    """``--ray ADDRESS`` named a cluster that could not be joined (the commands print it, exit 2)."""


def import_ray():
    """``import ray``, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ImportError("--ray needs Ray: pip install 'face3d-toolkit[scale]' (or pip install 'ray==2.60.0')") from e
    return ray


def ray_available(command: str, prog: str = "face3d") -> bool:
    """True if Ray imports; else says how to install it (before any work starts), as ``prog command``."""
    try:
        import_ray()
    except ImportError as e:
        print(f"{prog} {command}: {e}", file=sys.stderr)
        return False
    return True


def add_ray_flags(p, what: str, shared_out: bool = True, worker_threads: str = "--threads torch threads") -> None:
    """``--ray [ADDRESS]`` and ``--workers N`` (see :mod:`face3d.scale`). ``shared_out``: the
    workers write the outputs themselves (False: results come back to the driver, which writes).
    ``worker_threads``: what the help says each worker's torch threads are."""
    where = ("; outputs go to --out, which on a multi-machine cluster must be shared storage" if shared_out else
             "; results come back to this process")
    p.add_argument("--ray", nargs="?", const=RAY_LOCAL, default=None, metavar="ADDRESS",
                   help=f"process the {what} on Ray workers (pip install .[scale]): without ADDRESS a local Ray "
                        "with one worker per CPU, with one (auto, HOST:6379, ray://HOST:10001) join that cluster"
                        + where)
    p.add_argument("--workers", type=int, default=None,
                   help=f"Ray workers (default: the cluster's CPUs); each uses {worker_threads}")


def chunk_generator(seed: int, chunk: int):
    """The random stream (a CPU ``torch.Generator``) of chunk ``chunk`` of a generated set.

    Chunk 0 uses ``seed`` itself (so a set of one chunk is the one a single sequential generator
    seeded with ``seed`` draws); later chunks get a stream of their own (numpy
    ``SeedSequence([seed, chunk])``), so any worker can draw any chunk and the set does not depend
    on which one did. Used by ``sketch-train``'s drawings and ``face3d make-trainset``.
    """
    import numpy as np
    import torch

    if chunk == 0:
        return torch.Generator().manual_seed(int(seed))
    s = int(np.random.SeedSequence([int(seed), int(chunk)]).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(s)


class _Worker:
    """A Ray actor holding one worker's context (built once by ``setup``).

    A failing ``setup`` does not kill the actor: the exception is kept and :meth:`probe` returns
    it, so the driver re-raises the very exception (type and message) the single-process run
    would have raised, not a Ray wrapper around it.
    """

    def __init__(self, setup: Callable[..., Any], setup_args: tuple) -> None:
        self.error: BaseException | None = None
        try:
            self.context = setup(*setup_args)
        except Exception as e:  # re-raised in the driver by RayPool
            self.context, self.error = None, e

    def probe(self, fn: Callable[[Any], Any] | None) -> tuple[BaseException | None, Any]:
        """``(setup's exception, None)``, or ``(None, fn(context))`` (None without ``fn``)."""
        if self.error is not None:
            return self.error, None
        return None, None if fn is None else fn(self.context)

    def call(self, fn: Callable[[Any, Any], Any], item: Any) -> Any:
        if self.error is not None:
            raise self.error
        return fn(self.context, item)


class _DropMessage:
    """A logging filter that drops the records whose message contains ``text``."""

    def __init__(self, text: str) -> None:
        self.text = text

    def filter(self, record) -> bool:
        return self.text not in record.getMessage()


class RayPool:
    """Ray workers that start in the background: ``ray.init`` and the actors' ``setup`` run while
    the caller goes on (checking its flags, loading what it needs itself).

    Args:
        setup, setup_args: as for :func:`ray_map` (a module-level function; Ray pickles it by
            reference). Each actor calls ``setup(*setup_args)`` once.
        address: a cluster to join, or None / :data:`RAY_LOCAL` for a local Ray (one CPU per worker);
            a Ray already running in this process is reused and left running.
        workers: number of actors (default: the cluster's CPUs), at most ``max_items``.
        max_items: the most items :meth:`map` will be given (no more actors than that are started).

    Starting a local Ray costs seconds (a head node's processes; the workers importing torch and
    loading models), which is why it overlaps with the caller. The thread that starts Ray stays
    alive until :meth:`close`: Ray's processes are tied to the thread that spawned them (Linux
    parent-death signal) and would be killed if it ended. Use as a context manager, or call
    :meth:`close` (kills the actors; shuts down a Ray started here).
    """

    def __init__(self, setup: Callable[..., Any], setup_args: tuple = (), address: str | None = None,
                 workers: int | None = None, max_items: int | None = None) -> None:
        import threading

        self._ray = import_ray()
        self._setup, self._setup_args = setup, setup_args
        self._address, self._workers, self._max_items = address, workers, max_items
        self._actors: list = []
        self._error: BaseException | None = None
        self._started = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._quiet_sigterm_warning = None
        if not self._ray.is_initialized() and threading.current_thread() is threading.main_thread():
            import logging
            import signal

            # What ray.init does in the main thread, and cannot in ours (it warns instead): SIGTERM
            # exits through sys.exit, so the atexit hooks shut a Ray started here down.
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
            self._quiet_sigterm_warning = _DropMessage("SIGTERM handler is not set")
            logging.getLogger("ray._private.worker").addFilter(self._quiet_sigterm_warning)
        self._thread = threading.Thread(target=self._own_ray, name="face3d-ray", daemon=True)
        self._thread.start()

    def _own_ray(self) -> None:
        ray = self._ray
        started_here = False
        try:
            if not ray.is_initialized():
                if self._address in (None, RAY_LOCAL):
                    ray.init(num_cpus=self._workers, include_dashboard=False, log_to_driver=False)
                else:
                    try:
                        ray.init(address=self._address, log_to_driver=False)
                    except ConnectionError as e:
                        raise RayConnectError(
                            f"--ray {self._address}: could not join a Ray cluster there ({e}). Start one with "
                            "`ray start --head`, give `--ray auto` for the one running on this machine, or "
                            "`--ray` alone for a local Ray of this command's own") from e
                started_here = True
            if self._quiet_sigterm_warning is not None:
                import logging

                logging.getLogger("ray._private.worker").removeFilter(self._quiet_sigterm_warning)
            n = self._workers or int(ray.cluster_resources().get("CPU", 1))
            n = max(1, min(n, self._max_items or n))
            actor_cls = ray.remote(num_cpus=1)(_Worker)
            self._actors = [actor_cls.remote(self._setup, self._setup_args) for _ in range(n)]
        except BaseException as e:  # re-raised by the caller's thread in _wait_started
            self._error = e
        finally:
            self._started.set()
        self._stop.wait()
        for a in self._actors:
            ray.kill(a)
        if started_here:
            ray.shutdown()

    def _wait_started(self) -> list:
        self._started.wait()
        if self._error is not None:
            raise self._error
        return self._actors

    def probe(self, fn: Callable[[Any], Any] | None = None) -> Any:
        """``fn(context)`` on the first worker whose ``setup`` has finished (None without ``fn``).

        Waits for that worker's ``setup`` and re-raises its exception, so a caller can check its
        settings through the workers instead of loading everything a second time itself; ``fn``
        (module-level) can return something small derived from the context, e.g. a key of what
        ``setup`` loaded. Every worker runs the same ``setup``, so any one of them answers.
        """
        actors = self._wait_started()
        refs = [a.probe.remote(fn) for a in actors]
        done, _ = self._ray.wait(refs, num_returns=1)
        err, value = self._ray.get(done[0])
        if err is not None:
            raise err
        return value

    def map(self, fn: Callable[[Any, Any], Any], items: Sequence[Any], progress: bool = True, desc: str = "",
            unit: str = "item", done_before: int = 0) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(context, items[index]))`` for every item, in completion order.

        ``done_before``: items a resumed run skipped, shown as already done on the progress bar.

        One item in flight per actor: an actor gets its next item only when it returns one, so at
        the end of a batch no actor sits on a queued item while another is idle; the round trip
        between items is milliseconds against seconds of work per item.
        Raises ``setup``'s exception if it failed on a worker (wrapped by Ray, but still an instance
        of its type; :meth:`probe` first to get it unwrapped), and whatever ``fn`` raises.
        """
        items = list(items)
        if not items:
            return
        actors = self._wait_started()
        ray = self._ray
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(items) + done_before, initial=done_before, desc=desc, unit=unit, file=sys.stderr)
        try:
            todo = iter(range(len(items)))
            running = {}  # ObjectRef -> (item index, actor)

            def submit(actor) -> None:
                i = next(todo, None)
                if i is not None:
                    running[actor.call.remote(fn, items[i])] = (i, actor)

            for actor in actors:
                submit(actor)
            while running:
                ready, _ = ray.wait(list(running), num_returns=1)
                i, actor = running.pop(ready[0])
                result = ray.get(ready[0])
                submit(actor)
                if bar is not None:
                    bar.update(1)
                yield i, result
        finally:
            if bar is not None:
                bar.close()

    def close(self) -> None:
        """Kill the actors and shut down a Ray started here (waits for the start to finish first)."""
        if not self._closed:
            self._closed = True
            self._stop.set()
            self._thread.join()

    def __enter__(self) -> "RayPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def ray_map(fn: Callable[[Any, Any], Any], items: Sequence[Any], setup: Callable[..., Any], setup_args: tuple = (),
            address: str | None = None, workers: int | None = None, progress: bool = True,
            desc: str = "", unit: str = "item", done_before: int = 0) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, fn(setup(*setup_args), items[index]))`` for every item, in completion order.

    Args:
        fn, setup: module-level functions (Ray pickles them by reference).
        items: the work; each is sent to one worker.
        address: a Ray cluster to join (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); None or
            :data:`RAY_LOCAL` starts a local Ray (one CPU per worker) unless one is already running in
            this process (then it is reused and left running).
        workers: number of actors (default: the cluster's CPUs, at most ``len(items)``); each reserves
            one CPU, so set torch threads to 1 in ``setup``.
        progress: a tqdm bar on stderr over the whole job (``done_before``: items a resumed run
            skipped, shown as already done).

    An exception raised by ``setup`` or ``fn`` propagates (batch commands catch per item inside
    ``fn``); the actors are killed and a Ray started here is shut down on the way out, Ctrl-C
    included. To overlap Ray's start with other work, build a :class:`RayPool` earlier instead.
    """
    items = list(items)
    if not items:
        return
    with RayPool(setup, setup_args, address=address, workers=workers, max_items=len(items)) as pool:
        yield from pool.map(fn, items, progress=progress, desc=desc, unit=unit, done_before=done_before)


def map_items(fn: Callable[[Any, Any], Any], items: Sequence[Any], setup: Callable[..., Any], setup_args: tuple = (),
              ray: str | None = None, workers: int | None = None, progress: bool = True, desc: str = "",
              unit: str = "item", context: Any = None, done_before: int = 0,
              pool: RayPool | None = None) -> Iterator[tuple[int, Any]]:
    """The one loop of every batch command: ``(index, fn(context, item))`` for each item.

    ``ray`` None: in this process, with ``context`` (or ``setup(*setup_args)`` built once), in item
    order. Otherwise the address for :func:`ray_map` (:data:`RAY_LOCAL` for a local Ray): the same
    ``fn`` on Ray workers, in completion order. ``done_before``: items skipped by a resumed run,
    shown as already done on the progress bar. ``pool``: a :class:`RayPool` started earlier (then
    ``ray``, ``workers``, ``setup`` and ``setup_args`` are its; the caller closes it).
    """
    if pool is not None:
        yield from pool.map(fn, items, progress=progress, desc=f"{desc} (ray)", unit=unit, done_before=done_before)
        return
    if ray is not None:
        yield from ray_map(fn, items, setup, setup_args, address=ray, workers=workers, progress=progress,
                           desc=f"{desc} (ray)", unit=unit, done_before=done_before)
        return
    ctx = setup(*setup_args) if context is None else context
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items) + done_before, initial=done_before, desc=desc, unit=unit, file=sys.stderr)
    try:
        for i, item in enumerate(items):
            yield i, fn(ctx, item)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def map_in_order(fn: Callable[[Any, Any], Any], items: Sequence[Any], setup: Callable[..., Any],
                 setup_args: tuple = (), ray: str | None = None, workers: int | None = None,
                 progress: bool = True, desc: str = "", unit: str = "item", context: Any = None) -> list:
    """``[fn(context, item) for item in items]``, on Ray workers when ``ray`` is an address.

    :func:`map_items` gathered back into item order: what a data generator needs, whose items
    (chunks of a training set, each with its own seed) must come back as one list in the order
    the single-process run makes them. ``context``: an already built context for the
    single-process run (skips ``setup``). Example::

        >>> map_in_order(lambda ctx, x: ctx + x, [1, 2, 3], setup=lambda: 10, progress=False)
        [11, 12, 13]
    """
    items = list(items)
    out: list = [None] * len(items)
    for i, r in map_items(fn, items, setup, setup_args, ray=ray, workers=workers, progress=progress, desc=desc,
                          unit=unit, context=context):
        out[i] = r
    return out


def map_shared(fn: Callable[[Any, Any], Any], items: Sequence[Any], setup: Callable[..., Any],
               setup_args: tuple = (), ray: str | None = None, workers: int | None = None,
               progress: bool = True, desc: str = "", unit: str = "item", dist: Any = None) -> list:
    """:func:`map_in_order` for a training set that every process of a ``torchrun`` job needs.

    ``dist`` (a :class:`face3d.distributed.DistInfo`; default: the running process group, if
    any): without Ray the ranks split the items (:func:`face3d.distributed.build_across_ranks`);
    with ``ray`` rank 0 alone sends them to the Ray workers. Either way every rank gets the whole
    list, in item order. Only rank 0 shows a progress bar (over its share without Ray).
    """
    from face3d import distributed

    info = distributed.current() if dist is None else dist
    items = list(items)

    def build(idx) -> list:
        return map_in_order(fn, [items[i] for i in idx], setup, setup_args, ray=ray, workers=workers,
                            progress=progress and info.is_main, desc=desc, unit=unit)

    if ray is not None:
        return distributed.broadcast_object(build(range(len(items))) if info.is_main else None, info)
    return distributed.build_across_ranks(build, len(items), info)
