"""Hand-off queues between two real processes (gloo): credits bound what a stage may have in
flight (back-pressure from a slow receiver), tensors arrive whole and in order, and a peer that
dies is reported by rank and stage."""

from __future__ import annotations

import json
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gleam_core.train.distributed.config import DistributedOptions
from gleam_core.train.distributed.handoff import PeerFailure, Receiver, Sender
from gleam_core.train.distributed.world import Layout, init_world

DEPTH, MESSAGES, SLOW = 2, 6, 0.15


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    store = dist.TCPStore("127.0.0.1", port, 2, is_master=rank == 0, timeout=__import__("datetime").timedelta(30))
    world = init_world(Layout(2, 1, 2), rank, rank, "cpu", DistributedOptions(timeout_s=20), store=store)
    log: dict = {"events": []}
    shapes = [(2, 1, 3, 4), (1, 1, 5, 4)] * MESSAGES
    if rank == 0:
        sender = Sender(world, 1, DEPTH)
        for k in range(MESSAGES):
            x = torch.full(shapes[k], complex(k, -k), dtype=torch.complex64)
            sender.send(x)
            log["events"].append(["sent", k, time.time(), sender.in_flight])
        sender.drain()
        log["max_in_flight"] = sender.max_in_flight
        # phase 2: the receiver dies; the sender must name it
        try:
            for k in range(3):
                sender.send(torch.zeros(2, 1, 3, 4, dtype=torch.complex64))
            sender.drain()
            log["failure"] = None
        except PeerFailure as exc:
            log["failure"] = str(exc)
        with open(out, "w") as f:
            json.dump(log, f)
        os._exit(0)
    receiver = Receiver(world, 0)
    for k in range(MESSAGES):
        time.sleep(SLOW)
        like = torch.empty(shapes[k], dtype=torch.complex64)
        start = time.time()  # the receiver starts taking message k
        got = receiver.recv(like)
        ok = got.shape == like.shape and bool((got == complex(k, -k)).all())
        log["events"].append(["taken", k, start, ok])
    receiver.drain()
    with open(out + ".rx", "w") as f:
        json.dump(log, f)
    os._exit(0)  # dies without closing anything: the sender's next wait must notice


def test_credits_bound_the_queue_and_a_dead_peer_is_named(tmp_path):
    out = str(tmp_path / "log.json")
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, out)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(90)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    tx, rx = json.load(open(out)), json.load(open(out + ".rx"))
    sent = {k: t for _, k, t, _ in tx["events"]}
    taken = {k: t for _, k, t, _ in rx["events"]}
    assert all(ok for *_, ok in rx["events"])                       # whole, in order, right shapes
    assert tx["max_in_flight"] == DEPTH
    assert all(n <= DEPTH for *_, n in tx["events"])
    for k in range(DEPTH, MESSAGES):
        # send k could only return once the receiver had started taking message k - DEPTH
        assert sent[k] >= taken[k - DEPTH], (k, sent[k], taken[k - DEPTH])
    assert sent[MESSAGES - 1] - sent[0] >= (MESSAGES - DEPTH - 1) * SLOW * 0.8   # back-pressure slowed it
    assert tx["failure"] is not None and "lost rank 1 (stage 1, replica 0)" in tx["failure"]
    assert "that rank died" in tx["failure"] and tx["failure"].startswith("rank 0 (stage 0, replica 0)")
