"""Dynamic batching: questions that arrive together share one retriever + reader call.

A batch starts with the first waiting request and takes every request that arrives within `max_wait_s`
of it, up to `max_batch_size` questions; while a batch runs (in one worker thread, so the event loop
keeps accepting requests), the next one fills up. Requests asking for different `top_k` share the
window but not the call. At concurrency 1 a question waits at most `max_wait_s` for company."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# (questions, top_k) -> (model version, one record per question)
RunBatch = Callable[[list[str], "int | None"], tuple[str, list[dict[str, Any]]]]


class QueueFull(Exception):
    """More questions are waiting than the service accepts (answered with 503)."""


@dataclass
class _Item:
    questions: list[str]
    top_k: int | None
    future: asyncio.Future = field(repr=False)


class DynamicBatcher:
    def __init__(
        self,
        run_batch: RunBatch,
        max_batch_size: int = 32,
        max_wait_s: float = 0.005,
        max_queue: int = 1024,
        on_batch: Callable[[int], None] | None = None,
    ):
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Item] | None = None
        self._waiting = 0  # questions queued, not yet in a batch
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def waiting(self) -> int:
        return self._waiting

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="odqa-reader")
        self._task = asyncio.create_task(self._loop(), name="odqa-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        while self._queue is not None and not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(RuntimeError("the service is shutting down"))

    async def submit(
        self, questions: list[str], top_k: int | None = None
    ) -> tuple[str, list[dict[str, Any]]]:
        """(model version, records) for these questions, answered in some batch."""
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        if self._waiting + len(questions) > self.max_queue:
            raise QueueFull(f"{self._waiting} questions are waiting (max_queue {self.max_queue})")
        item = _Item(list(questions), top_k, asyncio.get_running_loop().create_future())
        self._waiting += len(questions)
        self._queue.put_nowait(item)
        return await item.future

    async def _next_batch(self, carry: _Item | None) -> tuple[list[_Item], _Item | None]:
        """Items for one batch (bounded wait after the first) and an item that did not fit, if any."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        first = carry if carry is not None else await self._queue.get()
        batch, size = [first], len(first.questions)
        deadline = loop.time() + self.max_wait_s
        while size < self.max_batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
            if size + len(item.questions) > self.max_batch_size:
                return batch, item
            batch.append(item)
            size += len(item.questions)
        return batch, None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        carry: _Item | None = None
        while True:
            batch, carry = await self._next_batch(carry)
            self._waiting -= sum(len(i.questions) for i in batch)
            live = [i for i in batch if not i.future.done()]  # a client that went away was cancelled
            groups: dict[int | None, list[_Item]] = {}
            for item in live:
                groups.setdefault(item.top_k, []).append(item)
            for top_k, items in groups.items():
                questions = [q for i in items for q in i.questions]
                if self._on_batch:
                    self._on_batch(len(questions))
                try:
                    version, records = await loop.run_in_executor(
                        self._executor, self._run_batch, questions, top_k
                    )
                except Exception as e:  # noqa: BLE001 (each waiting request gets the failure)
                    log.exception("reader call failed for %d questions", len(questions))
                    for i in items:
                        if not i.future.done():
                            i.future.set_exception(e)
                    continue
                start = 0
                for i in items:
                    part = records[start : start + len(i.questions)]
                    start += len(i.questions)
                    if not i.future.done():
                        i.future.set_result((version, part))
