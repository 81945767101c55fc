"""Policy replicas as Ray actors: a batched function runs on each worker's shard of the problems.

Each `PolicyWorker` holds a `LocalPolicy` (the project's engine) and runs `fn(shard, policy, *args)`, the same
function a single process runs on all problems, so a worker still batches its shard across problems in one engine
call per depth. Results come back in problem order and the workers' ledgers are summed into the caller's.

Weights. Before every call the pool compares the caller's model with what it last published (`fingerprint`: any
optimizer step or load changes it); if it changed, the weights go once into Ray's object store as numpy arrays (one
copy per node, read zero-copy by every worker there) with a new version number, and every worker loads them. Each
call carries the version it needs; a worker that holds older weights (a replacement started since) first fetches the
latest from the `Board`, and refuses with `StaleWeights` if that is still older.

Worker loss. Actors are created with `max_restarts` and `max_task_retries` (Ray's mechanism): a worker whose process
dies mid-call is restarted by Ray, loads the latest weights from the board in its constructor, and Ray runs the call
again. The board counts how often each call started, so the pool knows which shards ran twice: their tokens are
counted again as `waste_tokens` (the dead attempt's own tokens died with it; the rerun's cost bounds them), never
in the results, and one line says which worker was replaced. Past `max_restarts` deaths of one worker the call fails
with a `WorkerLost` error.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import ray
import torch

from searchlearn import progress
from searchlearn.config import ConfigError
from searchlearn.distributed.shard import bind, shards
from searchlearn.distributed.weights import from_arrays, to_arrays
from searchlearn.policy.weights import fingerprint
from searchlearn.types import Ledger, Problem


class StaleWeights(RuntimeError):
    """A worker was asked to generate with weights newer than any it can load."""


class WorkerLost(RuntimeError):
    """A worker died more often than its restarts allow."""


@ray.remote(num_cpus=0)
class Board:
    """What a (re)started worker needs to catch up, and who started what: the latest published weights
    (version, [spec ref, weights ref]); how many times each call started; each worker's incarnation."""

    def __init__(self):
        self._latest, self._starts, self._births = None, {}, {}

    def publish(self, version: int, refs: list) -> None:
        self._latest = (version, refs)

    def latest(self):
        return self._latest

    def started(self, call: tuple[int, int]) -> int:
        self._starts[call] = self._starts.get(call, 0) + 1
        return self._starts[call]

    def starts(self) -> dict:
        return dict(self._starts)

    def born(self, worker: int) -> int:
        self._births[worker] = self._births.get(worker, 0) + 1
        return self._births[worker]


class PolicyWorker:
    """One policy replica (`LocalPolicy` on CPU, or the GPU Ray gives it) running batched functions on shards."""

    def __init__(self, index: int, board: str, threads: int):
        torch.set_num_threads(threads)
        self.index, self.board = index, ray.get_actor(board)  # by name: a restart needs no argument in the store
        self.incarnation = ray.get(self.board.born.remote(index))
        self.policy, self.spec_id, self.version = None, None, -1
        latest = ray.get(self.board.latest.remote())
        if latest is not None:  # a replacement: catch up with what the learner last published
            self.load(*latest)

    def load(self, version: int, refs: list) -> int:
        """Weights `version` from the object store (refs: [spec, weights]); the model is rebuilt only when the spec
        (the module, tokenizer and engine settings) changed."""
        from searchlearn.policy.policy import LocalPolicy

        spec_id, model, tokenizer, options = ray.get(refs[0])
        if spec_id != self.spec_id:
            device = "cuda" if torch.cuda.is_available() else "cpu"
            self.policy = LocalPolicy(model, tokenizer, device=device, **options)
            self.spec_id = spec_id
        self.policy.model.load_state_dict(from_arrays(ray.get(refs[1])))
        self.version = version
        return version

    def run(self, call: tuple[int, int], min_version: int, fn: Callable, problems: list[Problem], args: list):
        """fn(problems, policy, *args) with weights ≥ min_version → (items, ledger spent, attempt, incarnation)."""
        attempt = ray.get(self.board.started.remote(call))
        if self.version < min_version and (latest := ray.get(self.board.latest.remote())) is not None:
            self.load(*latest)
        if self.version < min_version:
            raise StaleWeights(f"worker {self.index} holds weights version {self.version}; the call needs "
                               f"{min_version}, and no newer weights were published")
        before = self.policy.ledger.copy()
        items = fn(problems, self.policy, *bind(args, self.policy))
        return items, self.policy.ledger.since(before), attempt, self.incarnation

    def pid(self) -> int:
        return os.getpid()


def _check_address(address: str) -> None:
    """A clear error for a cluster address nothing answers at (ray.init would retry for a minute)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise ConfigError(f"--ray-address {address}: no Ray cluster answers there ({e}); start one with "
                              "`ray start --head` and pass the address it prints (host:6379)") from None


class WorkerPool:
    """`workers` policy replicas on Ray (a local cluster started here, or `address`'s). `map` runs a batched function
    on shards of the problems; `close` (or `with`) ends the actors and a cluster this pool started."""

    def __init__(self, workers: int, address: str | None = None, threads: int = 1, max_restarts: int = 3):
        if workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        if address:
            _check_address(address)
        self.started_ray = not ray.is_initialized()
        if self.started_ray:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     num_cpus=None if address else os.cpu_count())
        cpus = int(ray.cluster_resources().get("CPU", 0))
        share = 1.0
        if workers * threads > cpus:
            warnings.warn(f"{workers} workers × {threads} threads on {cpus} CPUs: they will share cores (slower than "
                          "fewer workers)", stacklevel=2)
            share = cpus / workers
        board = f"searchlearn-board-{uuid.uuid4().hex[:12]}"
        self.board = Board.options(name=board).remote()
        actor = ray.remote(PolicyWorker).options(num_cpus=share, num_gpus=1 if torch.cuda.is_available() else 0,
                                                 max_restarts=max_restarts, max_task_retries=max_restarts,
                                                 max_concurrency=2)  # `pid` answers while `run` works
        self.workers = [actor.remote(i, board, threads) for i in range(workers)]
        self.version, self._published, self._spec = -1, None, None
        self._calls = itertools.count()
        self.waste = Ledger()  # tokens of shards that ran again after their worker died
        self.replaced = 0  # calls that ran again on a replacement worker
        self.sync_seconds = 0.0  # time spent publishing and loading weights

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self.workers:
            ray.kill(w)
        ray.kill(self.board)
        self.workers = []
        if self.started_ray and ray.is_initialized():
            ray.shutdown()

    # -- weights ----------------------------------------------------------------------------------------------------
    def sync(self, policy) -> int:
        """Publish `policy`'s weights if they changed since the last sync and load them on every worker; returns the
        version every later call requires."""
        mark = fingerprint(policy.model)
        if mark == self._published:
            return self.version
        t0 = time.perf_counter()
        options = policy.engine_options()
        spec = (id(policy.model), id(policy.tokenizer), options)
        if self._spec is None or self._spec[1:] != spec:  # a new module: workers build it once (pickled whole)
            self._spec = (ray.put((self.version + 1, policy.model, policy.tokenizer, options)),) + spec
        self.version += 1
        refs = [self._spec[0], ray.put(to_arrays(policy.model))]
        ray.get(self.board.publish.remote(self.version, refs))
        ray.get([w.load.remote(self.version, refs) for w in self.workers])
        self._published = mark
        self.sync_seconds += time.perf_counter() - t0
        return self.version

    # -- calls ------------------------------------------------------------------------------------------------------
    def map(self, fn: Callable, problems: Sequence[Problem], policy, args: Sequence = ()) -> list:
        """fn(shard, policy, *args) on each worker's shard (WithPolicy args built there); items in problem order;
        the workers' ledgers charged to `policy.ledger`."""
        version = self.sync(policy)
        parts = [s for s in shards([p.prompt for p in problems], len(self.workers)) if s]
        call = next(self._calls)
        pending = {self.workers[w].run.remote((call, w), version, fn, [problems[i] for i in part], list(args)): w
                   for w, part in enumerate(parts)}
        items: list = [None] * len(problems)
        state = ["running"] * len(parts)
        t0 = time.time()
        live = progress.bar(f"{len(parts)} workers", len(problems)) if progress.enabled() else nullcontext()
        with live as bar:  # on a terminal: each worker's state; in a log only a replaced worker's line
            while pending:
                [ref], _ = ray.wait(list(pending))
                w = pending.pop(ref)
                try:
                    out, spent, attempt, incarnation = ray.get(ref)
                except ray.exceptions.RayActorError as e:
                    raise WorkerLost(f"worker {w} died more than its restarts allow: {e}") from e
                for i, item in zip(parts[w], out):
                    items[i] = item
                policy.ledger.add(spent)
                if attempt > 1:
                    self.waste.add(spent)
                    self.replaced += 1
                    progress.say(f"worker {w} died during this call and was replaced (incarnation {incarnation}); "
                                 f"its {len(parts[w])} problems ran again ({spent.generated_tokens:.0f} tokens)")
                state[w] = f"done in {time.time() - t0:.0f} s"
                if bar is not None:
                    bar.describe(" · ".join(f"w{j} {s}" for j, s in enumerate(state)))
                    bar.advance(len(parts[w]))
        return items

    def pids(self) -> list[int]:
        """Each worker's process id (what a test kills)."""
        return ray.get([w.pid.remote() for w in self.workers])
