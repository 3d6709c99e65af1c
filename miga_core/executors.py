"""Who runs the model calls of a queue pass: one denoiser, replicas on several devices, or torch.distributed ranks.

The windows of one pass read the queue as it was when the pass began [D1] and their noise is a pure function of
(seed, latent, level) [D1b], so their model calls are independent: an executor may run them anywhere, in any order,
at once. :func:`~miga_core.passes.queue_pass` hands it the calls of a *wave* (the whole pass under Jacobi reads;
a run of windows that read nothing another window of the wave writes under Gauss-Seidel reads) and takes the
outputs back in call order; the sampler steps, the noise, the progress callbacks and every write stay on the
storage device, in window order, as with one device. The result is bit-identical to :class:`Sequential` for any
number of replicas, provided the replicas compute bit-identical outputs for identical inputs (same weights, same
kind of device and kernels; see README "Several GPUs").

An executor is passed where the denoiser goes (``run(Replicas(...), sigmas, plan)``): it is itself a
:class:`~miga_core.protocols.Denoiser` (calling it runs replica 0), so nothing else in the run API changes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch

from .errors import MigaError, MigaTypeError, MigaValueError, bad_value
from .protocols import Denoiser

__all__ = ["ModelCall", "Executor", "Sequential", "Replicas", "Distributed", "ReplicaFailedError", "executor_of", "assign"]


class ReplicaFailedError(MigaError, RuntimeError):
    """Another torch.distributed rank's denoiser raised; this rank stops at the same point (its own error is on that rank)."""


@dataclass(frozen=True)
class ModelCall:
    """One denoiser invocation of a pass (``windows`` windows stacked along the batch).

    Attributes:
        prepare: builds ``(x [B*k, C, F, H, W], sigma [B*k, F], prompt [B*k, P])`` on the storage device; called once, by
            whoever runs the call (so only the devices that run it hold its inputs).
        shape: ``x``'s shape, known without preparing it (ranks receiving the output allocate it).
        storage: the device ``prepare`` puts the inputs on; outputs come back there.
        windows: k, the windows in this call.
        check: ``check(out, x)`` validates the output of input ``x`` (shape, device, finite) and returns it, or raises
            :class:`~miga_core.errors.DenoiserOutputShapeError` / :class:`~miga_core.errors.NonFiniteDenoiserOutputError`.
    """

    prepare: Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    shape: torch.Size
    storage: torch.device
    windows: int
    check: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _prompt_for(denoiser: Denoiser, prompt: torch.Tensor, move: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The prompt weights as ``denoiser`` takes them: left on the host where it sets ``prompt_on_host``, else ``move``d."""
    return prompt if getattr(denoiser, "prompt_on_host", False) else move(prompt)


def _run_call(denoiser: Denoiser, call: ModelCall, device: torch.device) -> torch.Tensor:
    """Prepare ``call``, run it on ``device`` (the current CUDA device while it runs), check it; the output stays on ``device``."""
    x, sigma, prompt = call.prepare()
    xs = x.to(device)
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        return call.check(denoiser(xs, sigma.to(device), _prompt_for(denoiser, prompt, lambda p: p.to(device))), xs)


def _run_call_home(denoiser: Denoiser, call: ModelCall, device: torch.device) -> torch.Tensor:
    """:func:`_run_call`, the output copied back to the call's storage device (by the replica's own thread)."""
    return _run_call(denoiser, call, device).to(call.storage)


def assign(num_calls: int, num_devices: int) -> list[int]:
    """The device of each call of a wave: round robin, ``j % num_devices``.

    Every device gets the same number of calls +-1, and the outputs complete roughly in call order (so callbacks,
    which come in window order, keep flowing during a pass). With ``window_batch=1`` a call is one window.
    """
    return [j % num_devices for j in range(num_calls)]


class Executor:
    """Base of the executors: a :class:`~miga_core.protocols.Denoiser` that can also run a wave of calls.

    Subclasses implement :meth:`map_calls` and :meth:`__call__`.
    """

    def map_calls(self, calls: Sequence[ModelCall], compute: torch.device) -> Iterator[torch.Tensor]:
        """The outputs of ``calls``, in call order, each on its call's storage device.

        ``compute`` is where a single-device executor runs them (``config.compute_device``, else the storage device).
        If the consumer stops early (an exception, a cancel), nothing keeps running once the iterator is closed.
        """
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    multi_device = False  # whether the calls run on other devices than ``compute`` (config.compute_device is refused)


class Sequential(Executor):
    """One denoiser runs the calls one by one on ``compute``.

    With the latents stored on the host and the calls run on a CUDA device (the nodes' setup), each call is queued on
    the device *before* the previous call's output is handed back (pipelined, one call ahead): the GPU computes call k+1
    while the host does the sampler step, noise and callback of call k, instead of idling between windows. Inputs go
    up and outputs come back through pinned host memory without blocking, and only the host copy of call k waits
    (for its own copy, not for call k+1). Outputs are the same as one by one (the same calls on the same inputs; the
    calls of a wave are independent, see the module docstring); a cancel between windows drops the call in flight.
    Elsewhere (one device for both, or a CPU) calls run when their output is asked for.

    A plain denoiser passed to the run API is wrapped in this.

    Args:
        denoiser: the model.
        pipelined: None (the default: the environment variable ``MIGA_PIPELINE``, ``1`` on or ``0`` off, else where
            it pays, as above), True (also on the CPU: tests), False (never).
    Raises:
        MigaValueError: at the first wave, ``MIGA_PIPELINE`` set to another value than ``0`` or ``1``.
    """

    def __init__(self, denoiser: Denoiser, pipelined: bool | None = None) -> None:
        self.denoiser = denoiser
        self.pipelined = pipelined

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x, sigma, prompt)

    def map_calls(self, calls: Sequence[ModelCall], compute: torch.device) -> Iterator[torch.Tensor]:
        ahead = self.pipelined if self.pipelined is not None else _pipeline_setting()
        if ahead is None:
            ahead = compute.type == "cuda" and any(call.storage != compute for call in calls)
        if not ahead:
            for call in calls:
                yield _run_call_home(self.denoiser, call, compute)
            return
        pending: _Launched | None = None
        for call in calls:
            launched = _Launched(self.denoiser, call, compute)
            if pending is not None:
                yield pending.land()
            pending = launched
        if pending is not None:
            yield pending.land()


def _pipeline_setting() -> bool | None:
    """``MIGA_PIPELINE``: True (``1``), False (``0``) or None (unset or empty: where it pays)."""
    value = os.environ.get("MIGA_PIPELINE", "")
    if value not in ("", "0", "1"):
        raise MigaValueError(bad_value("MIGA_PIPELINE", value, "0 (one model call at a time), 1 (pipelined, one call ahead) or unset",
                                       "unset it to let the run choose (pipelined on CUDA with the latents in host memory)"))
    return None if value == "" else value == "1"


class _Launched:
    """A call queued on its device with its output's copy home (non-blocking on CUDA); :meth:`land` waits for that copy
    alone and checks the output there (shape and device were checked at launch, without waiting)."""

    def __init__(self, denoiser: Denoiser, call: ModelCall, device: torch.device) -> None:
        cuda = device.type == "cuda"

        def up(t: torch.Tensor) -> torch.Tensor:  # pinned, so the copy neither blocks nor waits for the call in flight
            return (t.pin_memory() if cuda and t.device.type == "cpu" else t).to(device, non_blocking=True)

        x, sigma, prompt = call.prepare()
        xs = up(x)
        with torch.cuda.device(device) if cuda else contextlib.nullcontext():
            out = denoiser(xs, up(sigma), _prompt_for(denoiser, prompt, up))
            if not isinstance(out, torch.Tensor) or out.shape != xs.shape or out.device != xs.device:
                call.check(out, xs)  # raises, naming what came back
            self.home = out
            if call.storage != device:
                pin = cuda and call.storage.type == "cpu"
                self.home = torch.empty(out.shape, dtype=out.dtype, device=call.storage, pin_memory=pin)
                self.home.copy_(out, non_blocking=True)
            self.copied = torch.cuda.Event() if cuda else None
            if self.copied is not None:
                self.copied.record()
        self.call = call

    def land(self) -> torch.Tensor:
        if self.copied is not None:
            self.copied.synchronize()
        return self.call.check(self.home, self.home)


def _check_devices(denoisers: Sequence[Denoiser], devices: Sequence[str | torch.device]) -> list[torch.device]:
    fix = "pass one denoiser replica per device, e.g. Replicas([d0, d1], ['cuda:0', 'cuda:1'])"
    if isinstance(denoisers, (str, bytes)) or not isinstance(denoisers, Sequence) or not isinstance(devices, Sequence) or isinstance(devices, (str, bytes)):
        raise MigaTypeError(f"Replicas(denoisers={type(denoisers).__name__}, devices={type(devices).__name__}): allowed are two "
                            f"lists of equal length. Fix: {fix}.")
    if not denoisers or len(denoisers) != len(devices):
        raise MigaValueError(bad_value("len(devices)", len(devices), f"equal to len(denoisers)={len(denoisers)} and >= 1", fix))
    out = []
    for d in devices:
        try:
            out.append(torch.device(d))
        except (RuntimeError, TypeError) as e:
            raise MigaValueError(bad_value("devices", d, "torch device strings such as 'cuda:0' or 'cpu'", fix)) from e
    for k, den in enumerate(denoisers):
        if not callable(den):
            raise MigaTypeError(f"denoisers[{k}] has type {type(den).__name__}: allowed is a callable denoiser. Fix: {fix}.")
    return out


class Replicas(Executor):
    """Spread the calls of a wave over N denoiser replicas, one thread per replica, outputs gathered in call order.

    Call ``j`` of a wave runs on replica ``j % N`` (:func:`assign`); replica ``k`` gets its inputs moved to
    ``devices[k]`` and runs its calls one after another, all replicas at once (CUDA releases the GIL while kernels run).
    The outputs come back to the storage device in call order, where the pass applies the sampler steps in window
    order: the latents are bit-identical to :class:`Sequential` with ``denoisers[0]`` [D1], given replicas that compute
    identical outputs for identical inputs. ``config.compute_device`` must be None (the devices say where calls run).

    If a replica raises, the pass raises that exception when it reaches that call in window order, after cancelling
    the calls not started and waiting for the running ones; the latents the caller passed in are never modified.

    Args:
        denoisers: one replica per device (e.g. one ModelPatcher clone per GPU), same weights.
        devices: where each replica's calls run (``"cuda:0"``, ``"cuda:1"``, or ``"cpu"`` for tests).
    Attributes:
        waves: per wave run so far, the windows each replica ran (for balance checks; grows by one list per wave).
    Raises:
        MigaTypeError, MigaValueError: lists of different lengths, empty, or a bad device string.
    """

    multi_device = True

    def __init__(self, denoisers: Sequence[Denoiser], devices: Sequence[str | torch.device]) -> None:
        self.devices = _check_devices(denoisers, devices)
        self.denoisers = list(denoisers)
        self.waves: list[list[int]] = []

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        d, den = self.devices[0], self.denoisers[0]
        return den(x.to(d), sigma.to(d), _prompt_for(den, prompt, lambda p: p.to(d))).to(x.device)

    def map_calls(self, calls: Sequence[ModelCall], compute: torch.device) -> Iterator[torch.Tensor]:
        n = len(self.denoisers)
        owner = assign(len(calls), n)
        counts = [0] * n
        for j, call in enumerate(calls):
            counts[owner[j]] += call.windows
        self.waves.append(counts)
        pools = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"miga-replica{k}") for k in range(n)]
        try:
            futures: list[Future] = [pools[owner[j]].submit(_run_call_home, self.denoisers[owner[j]], call, self.devices[owner[j]])
                                     for j, call in enumerate(calls)]
            for fut in futures:
                yield fut.result()  # re-raises the replica's exception, in call order
        finally:  # on an error or an early close: drop the calls not started, wait for the running ones
            for pool in pools:
                pool.shutdown(wait=True, cancel_futures=True)


_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


class Distributed(Executor):
    """The calls of a wave spread over the ranks of a torch.distributed group (``torchrun``; NCCL on GPUs, gloo on CPUs).

    Every rank runs the same program on the same inputs (same plan, seed, initial clip, weights). Call ``j`` runs on
    rank ``j % world`` (:func:`assign`); then every rank learns whether any call failed (one all-reduce), and the
    outputs are broadcast from their owners in call order, so every rank applies the same steps and ends with identical
    latents, bit-identical to :class:`Sequential`. Each rank's callbacks see every window (after its wave's exchange).
    Leave NVLink multicast off for NCCL (``NCCL_NVLS_ENABLE=0`` in the environment before ``init_process_group``).

    A callback that raises (a cancel) must do so on every rank at the same window, or the other ranks wait at the
    next exchange until the group's timeout.

    Args:
        denoiser: this rank's replica.
        device: where this rank runs its calls and exchanges outputs (``cuda:<local rank>`` with NCCL, ``cpu`` with gloo).
        group: the process group (None: the default group, which must be initialised).
    Raises:
        MigaValueError: torch.distributed is not initialised.
        ReplicaFailedError: (from a pass) another rank's denoiser raised; the rank that raised re-raises its own error.
    """

    multi_device = True

    def __init__(self, denoiser: Denoiser, device: str | torch.device, group=None) -> None:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise MigaValueError(bad_value("torch.distributed", "not initialised", "an initialised process group",
                                           "call torch.distributed.init_process_group (torchrun sets the environment) first"))
        self.dist, self.denoiser, self.device, self.group = dist, denoiser, torch.device(device), group
        self.rank, self.world = dist.get_rank(group), dist.get_world_size(group)
        self.waves: list[list[int]] = []

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        d = self.device
        return self.denoiser(x.to(d), sigma.to(d), _prompt_for(self.denoiser, prompt, lambda p: p.to(d))).to(x.device)

    def map_calls(self, calls: Sequence[ModelCall], compute: torch.device) -> Iterator[torch.Tensor]:
        dist, n, rank = self.dist, len(calls), self.rank
        owner = assign(n, self.world)
        counts = [0] * self.world
        for j, call in enumerate(calls):
            counts[owner[j]] += call.windows
        self.waves.append(counts)
        # codes[j]: 1 + the dtype index of call j's output (set by its owner only); codes[n + r]: rank r failed
        codes = torch.zeros(n + self.world, dtype=torch.int64)
        mine: dict[int, torch.Tensor] = {}
        error: BaseException | None = None
        for j in range(rank, n, self.world):
            try:
                out = _run_call(self.denoiser, calls[j], self.device)
                if out.dtype not in _DTYPES:
                    raise MigaTypeError(bad_value("denoiser output dtype", out.dtype, f"one of {_DTYPES}", "return a float tensor"))
            except Exception as e:  # noqa: BLE001 - re-raised below, after the other ranks know
                error = e
                codes[n + rank] = 1
                break
            mine[j] = out.contiguous()
            codes[j] = 1 + _DTYPES.index(out.dtype)
        codes = codes.to(self.device)
        dist.all_reduce(codes, group=self.group)
        codes = codes.cpu()
        if error is not None:
            raise error
        failed = [r for r in range(self.world) if codes[n + r]]
        if failed:
            raise ReplicaFailedError(f"the denoiser of rank(s) {failed} raised in this pass (their error is in their log); "
                                     f"rank {rank} stops at the same point. Fix: see the failing rank's error.")
        outs = []
        for j, call in enumerate(calls):
            src = owner[j]
            buf = mine[j] if src == rank else torch.empty(call.shape, dtype=_DTYPES[int(codes[j]) - 1], device=self.device)
            dist.broadcast(buf, src=dist.get_global_rank(self.group, src) if self.group is not None else src, group=self.group)
            outs.append(buf)
        for out, call in zip(outs, calls):
            yield out.to(call.storage)


def executor_of(denoiser: Denoiser) -> Executor:
    """``denoiser`` itself when it is an :class:`Executor`, else :class:`Sequential` over it."""
    return denoiser if isinstance(denoiser, Executor) else Sequential(denoiser)

