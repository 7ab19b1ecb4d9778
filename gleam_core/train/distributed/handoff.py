"""Point-to-point hand-offs between consecutive pipeline stages, with credit-based flow control.

A stage sends its last module's detached output, complex ``(B, M, *S)`` (complex64 for float32
models), to the next stage of its replica; the receiver knows the shape and dtype from its own
copy of the batch (every stage loads the same batches), so only the tensor travels, as its
real view ``(B, M, *S, 2)``. Each taken hand-off is acknowledged by a credit (a 1-element int64
tensor holding the running count of hand-offs taken, sent in ``World.credit_group``); the
sender never has more than ``depth`` hand-offs that the receiver has not taken yet, so a slow
stage stops its upstream instead of letting queued activations grow (back-pressure). Messages between two ranks are
matched in order: hand-offs flow one way, credits the other, and the pipeline has no cycle.

Every wait is bounded by ``World.timeout_s`` and a failure becomes a :class:`PeerFailure`
that names this rank and the peer (rank, stage, replica) and says whether the peer died
(connection closed) or did not answer in time (hang). The same code runs on gloo (CPU tensors)
and NCCL (CUDA tensors; waits poll ``Work.is_completed``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor

from .world import World

Hook = Callable[[str | None], None]


class PeerFailure(RuntimeError):
    """A hand-off or credit from ``peer`` failed or timed out."""

    def __init__(self, message: str, peer: int | None, hang: bool) -> None:
        super().__init__(message)
        self.peer, self.hang = peer, hang


def failure_kind(exc: BaseException) -> tuple[str, bool]:
    """A plain-words cause of a communication error, and whether it was a timeout (hang)."""
    text = str(exc)
    if isinstance(exc, TimeoutError) or "Timed out" in text or "timed out" in text or "timeout" in text.lower():
        return "no answer in time: that rank hangs, is stuck in a long step, or is far slower", True
    if any(s in text for s in ("Connection closed", "Connection reset", "Broken pipe", "closed by peer",
                               "pair closure", "Socket closed")):
        return "the connection was closed: that rank died (crashed, was killed, or exited)", False
    return f"communication failed ({type(exc).__name__})", False


def _failure(world: World, exc: BaseException, action: str, peer: int | None) -> PeerFailure:
    cause, hang = failure_kind(exc)
    who = world.describe(peer) if peer is not None else "a peer"
    limit = f" (distributed.timeout_s={world.timeout_s:g})" if hang else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    return PeerFailure(f"{world.describe()}: {'gave up on' if hang else 'lost'} {who} while {action}{limit}: "
                       f"{cause}. Backend message: {first}", peer, hang)


def post(world: World, op, tensor: Tensor, peer: int, what: str, group=None) -> "dist.Work":
    """``dist.isend``/``dist.irecv`` of ``tensor`` with ``peer`` (a global rank) in ``group``
    (default: the default group); errors become :class:`PeerFailure`."""
    try:
        return op(tensor, peer, group=group)
    except Exception as exc:  # noqa: BLE001 (a closed connection fails the post itself)
        raise _failure(world, exc, what, peer) from exc


def wait_work(world: World, work: "dist.Work", what: str, peer: int | None) -> float:
    """Waits for ``work`` at most ``world.timeout_s``; returns the seconds waited.

    Raises :class:`PeerFailure` naming this rank, ``what`` it waited for and ``peer``."""
    t0 = time.perf_counter()
    try:
        if world.backend == "gloo":
            work.wait(world.timeout())
        else:  # NCCL: host-side polling, so a dead or hung peer cannot block forever
            deadline = t0 + world.timeout_s
            while not work.is_completed():
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"timed out after {world.timeout_s:g} s")
                time.sleep(1e-4)
            work.wait()
    except Exception as exc:  # noqa: BLE001 (backends raise RuntimeError, DistBackendError, ...)
        raise _failure(world, exc, f"waiting {time.perf_counter() - t0:.1f} s for {what}", peer) from exc
    return time.perf_counter() - t0


def settles(work: "dist.Work", within_s: float = 0.002) -> bool:
    """Whether ``work`` completes within ``within_s`` (polled), i.e. waiting for it will not block."""
    end = time.perf_counter() + within_s
    while not work.is_completed():
        if time.perf_counter() > end:
            return False
        time.sleep(1e-4)
    return True


def wait_reported(world: World, work: "dist.Work", what: str, peer: int, on_wait: Hook | None,
                  waiting: str) -> float:
    """:func:`wait_work`, telling ``on_wait`` (``waiting``, then None) only if the wait blocks."""
    if on_wait is None or settles(work):
        return wait_work(world, work, what, peer)
    on_wait(waiting)
    try:
        return wait_work(world, work, what, peer)
    finally:
        on_wait(None)


class Sender:
    """The sending end of one hand-off queue (this stage -> ``peer``, the next stage).

    Args:
        world: this rank's world.
        peer: the next stage's rank (same replica).
        depth: the most hand-offs sent but not yet taken by the peer (>= 1).
        on_wait: called with a description while blocked, and with None afterwards.
    """

    def __init__(self, world: World, peer: int, depth: int, on_wait: Hook | None = None) -> None:
        if depth < 1:
            raise ValueError(f"queue depth must be >= 1, got {depth}")
        self.world, self.peer, self.depth, self.on_wait = world, peer, depth, on_wait
        self.sent = 0          # hand-offs sent
        self.acked = 0         # credits received (hand-offs the peer has taken)
        self.max_in_flight = 0
        self.wait_s = 0.0      # total seconds blocked waiting for credits or sends
        self._pending: deque[tuple[dist.Work, Tensor]] = deque()
        self._credit = torch.zeros(1, dtype=torch.int64, device=world.comm_device)
        self._credit_work: dist.Work | None = None

    @property
    def in_flight(self) -> int:
        """Hand-offs sent that the peer has not acknowledged."""
        return self.sent - self.acked

    def send(self, x: Tensor) -> None:
        """Queues ``x`` (complex (B, M, *S)) for the peer; blocks while ``depth`` are in flight."""
        while self.in_flight >= self.depth:
            self._take_credit()
        payload = torch.view_as_real(x.detach().contiguous()).to(self.world.comm_device)
        self._pending.append((post(self.world, dist.isend, payload, self.peer,
                                    f"sending hand-off {self.sent + 1}"), payload))
        self.sent += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self._post_credit()
        self.poll()

    def poll(self) -> None:
        """Takes the credits that have arrived and releases completed sends (never blocks)."""
        while self._credit_work is not None and self._credit_work.is_completed():
            self._take_credit()
        while self._pending and self._pending[0][0].is_completed():
            work, _ = self._pending.popleft()
            self.wait_s += wait_work(self.world, work, "a hand-off to be taken", self.peer)

    def drain(self) -> None:
        """Waits until the peer has taken every hand-off (end of training)."""
        while self.in_flight:
            self._take_credit()
        while self._pending:
            work, _ = self._pending.popleft()
            self.wait_s += wait_work(self.world, work, "a hand-off to be taken", self.peer)

    def _post_credit(self) -> None:
        if self._credit_work is None and self.in_flight > 0:
            self._credit_work = post(self.world, dist.irecv, self._credit, self.peer,
                                     f"posting the receive of credit {self.acked + 1}", self.world.credit_group)

    def _take_credit(self) -> None:
        if self._credit_work is None:
            self._post_credit()
        self.wait_s += wait_reported(self.world, self._credit_work,
                                     f"a credit (acknowledgement of hand-off {self.acked + 1})", self.peer,
                                     self.on_wait, f"waiting for a credit from {self.world.describe(self.peer)}")
        got = int(self._credit.item())
        if got != self.acked + 1:
            raise RuntimeError(f"{self.world.describe()}: hand-off protocol error: credit {got} from "
                               f"{self.world.describe(self.peer)}, expected {self.acked + 1}")
        self.acked, self._credit_work = got, None
        self._post_credit()


class Receiver:
    """The receiving end of one hand-off queue (``peer``, the previous stage -> this stage)."""

    def __init__(self, world: World, peer: int, on_wait: Hook | None = None) -> None:
        self.world, self.peer, self.on_wait = world, peer, on_wait
        self.received = 0
        self.wait_s = 0.0
        self._credits: deque[tuple[dist.Work, Tensor]] = deque()

    def recv(self, like: Tensor) -> Tensor:
        """The next hand-off, shaped and typed like ``like`` (complex (B, M, *S)) on its device;
        acknowledges it with a credit."""
        real = torch.view_as_real(like)
        buf = torch.empty(real.shape, dtype=real.dtype, device=self.world.comm_device)
        work = post(self.world, dist.irecv, buf, self.peer, f"posting the receive of hand-off {self.received + 1}")
        self.wait_s += wait_reported(self.world, work, f"hand-off {self.received + 1}", self.peer, self.on_wait,
                                     f"waiting for hand-off {self.received + 1} from "
                                     f"{self.world.describe(self.peer)}")
        self.received += 1
        credit = torch.tensor([self.received], dtype=torch.int64, device=self.world.comm_device)
        self._credits.append((post(self.world, dist.isend, credit, self.peer, f"sending credit {self.received}",
                                   self.world.credit_group), credit))
        while self._credits and self._credits[0][0].is_completed():
            work, _ = self._credits.popleft()
            wait_work(self.world, work, "a credit to be taken", self.peer)
        return torch.view_as_complex(buf).to(like.device, non_blocking=True)

    def drain(self) -> None:
        """Waits until the peer has taken every credit (end of training)."""
        while self._credits:
            work, _ = self._credits.popleft()
            wait_work(self.world, work, "a credit to be taken", self.peer)
