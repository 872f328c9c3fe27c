"""Dynamic batching: questions that wait together go through one call, within the size limit, split by
top_k; a failed call fails its requests only; a full queue refuses at once."""

from __future__ import annotations

import asyncio
import threading

import pytest

from odqa.service.batcher import DynamicBatcher, QueueFull


class Recorder:
    """A run_batch that records its calls; the first call can be held until `release` is set, so the
    requests sent meanwhile must wait and be batched together."""

    def __init__(self, hold_first: bool = False):
        self.calls: list[tuple[list[str], int | None]] = []
        self.first_started = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, questions, top_k):
        self.calls.append((list(questions), top_k))
        if len(self.calls) == 1:
            self.first_started.set()
            self.release.wait(30)
        if any(q == "boom" for q in questions):
            raise RuntimeError("reader failed")
        return "v1", [{"answer": q.upper()} for q in questions]


async def _with_batcher(run, body, **kwargs):
    batcher = DynamicBatcher(run, **kwargs)
    await batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.stop()


async def _held_then_concurrent(batcher, recorder, requests):
    first = asyncio.create_task(batcher.submit(["first"]))
    await asyncio.to_thread(recorder.first_started.wait, 30)
    tasks = [asyncio.create_task(batcher.submit(qs, k)) for qs, k in requests]
    while batcher.waiting < sum(len(qs) for qs, _ in requests):
        await asyncio.sleep(0)  # let every submit enqueue (no wall-clock wait)
    recorder.release.set()
    return await first, await asyncio.gather(*tasks, return_exceptions=True)


def test_requests_waiting_together_share_one_call_and_get_their_own_answers():
    recorder = Recorder(hold_first=True)
    requests = [([f"q{i}"], None) for i in range(10)] + [(["a", "b"], None)]

    async def body(batcher):
        return await _held_then_concurrent(batcher, recorder, requests)

    first, results = asyncio.run(_with_batcher(recorder, body, max_batch_size=32, max_wait_s=0.0))
    assert first == ("v1", [{"answer": "FIRST"}])
    assert [r[1] for r in results] == [[{"answer": f"Q{i}"}] for i in range(10)] + [
        [{"answer": "A"}, {"answer": "B"}]
    ]
    assert [len(qs) for qs, _ in recorder.calls] == [1, 12]


def test_a_batch_never_exceeds_max_batch_size_and_top_k_values_do_not_mix():
    recorder = Recorder(hold_first=True)
    requests = [([f"q{i}"], 3 if i % 2 else None) for i in range(10)]

    async def body(batcher):
        return await _held_then_concurrent(batcher, recorder, requests)

    asyncio.run(_with_batcher(recorder, body, max_batch_size=4, max_wait_s=0.0))
    later = recorder.calls[1:]
    assert all(len(qs) <= 4 for qs, _ in later)
    assert sorted(q for qs, _ in later for q in qs) == sorted(f"q{i}" for i in range(10))
    for qs, top_k in later:
        assert {int(q[1:]) % 2 for q in qs} == ({1} if top_k == 3 else {0})


def test_a_failed_call_fails_its_requests_and_the_next_one_answers():
    recorder = Recorder()

    async def body(batcher):
        with pytest.raises(RuntimeError, match="reader failed"):
            await batcher.submit(["boom"])
        return await batcher.submit(["ok"])

    assert asyncio.run(_with_batcher(recorder, body, max_wait_s=0.0)) == ("v1", [{"answer": "OK"}])


def test_a_full_queue_refuses_at_once():
    recorder = Recorder(hold_first=True)

    async def body(batcher):
        first = asyncio.create_task(batcher.submit(["first"]))
        await asyncio.to_thread(recorder.first_started.wait, 30)
        waiting = asyncio.create_task(batcher.submit(["a", "b"]))
        while batcher.waiting < 2:
            await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await batcher.submit(["c"])
        recorder.release.set()
        return await first, await waiting

    assert asyncio.run(_with_batcher(recorder, body, max_queue=2, max_wait_s=0.0))[1][1] == [
        {"answer": "A"},
        {"answer": "B"},
    ]
