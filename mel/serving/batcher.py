"""Micro-batching: link requests that arrive together share tower, index and reranker calls.

Requests wait in one queue. When an inference thread is free, the batcher takes the first
waiting request, then every other one already waiting, and keeps collecting for at most
`max_wait_s` while the queue is empty, up to `max_documents`; the batch is linked by
Linker.link_many on the inference thread (off the event loop), which encodes the mentions of
all its documents together in batches of the linker's max_batch. While a batch runs, the next
one gathers in the queue, so batches grow with the load and a lone request waits at most
max_wait_s. A request whose caller gave up (timeout, disconnect) before its batch started is
dropped from the batch.

`linker` is read once per batch: assigning a new Linker (a reload) serves later batches with it
while the batches already running finish on the old one.
"""
import asyncio
import concurrent.futures
from typing import List, Optional

from mel.linking.linker import Linker, LinkRequest
from mel.linking.results import LinkedMention

DEFAULT_MAX_WAIT_S = 0.002
DEFAULT_MAX_DOCUMENTS = 64
DEFAULT_WORKERS = 1


class MicroBatcher:
  """submit(request) -> its linked mentions; start() in the event loop, close() at shutdown.

  workers: inference threads, each running one batch at a time (2+ overlaps one batch's Python
  work, spotting and scoring, with another's tower call); on_batch(documents) is called per
  batch (metrics), queue_gauge tracks the waiting documents.
  """

  def __init__(self, linker: Linker, *, max_wait_s: float = DEFAULT_MAX_WAIT_S,
               max_documents: int = DEFAULT_MAX_DOCUMENTS, workers: int = DEFAULT_WORKERS,
               on_batch=None, queue_gauge=None):
    if max_wait_s < 0 or max_documents < 1 or workers < 1:
      raise ValueError("max_wait_s must be >= 0, max_documents and workers >= 1")
    self.linker = linker
    self.max_wait_s = float(max_wait_s)
    self.max_documents = int(max_documents)
    self.workers = int(workers)
    self._on_batch = on_batch
    self._queue_gauge = queue_gauge
    self._executor = concurrent.futures.ThreadPoolExecutor(workers,
                                                           thread_name_prefix="mel-link")
    self._queue: Optional[asyncio.Queue] = None
    self._task: Optional[asyncio.Task] = None
    self._running: set = set()

  def start(self) -> None:
    self._queue = asyncio.Queue()
    self._task = asyncio.get_running_loop().create_task(self._collect())

  async def close(self) -> None:
    if self._task is not None:
      self._task.cancel()
      await asyncio.gather(self._task, return_exceptions=True)
    await asyncio.gather(*self._running, return_exceptions=True)
    self._executor.shutdown(wait=False, cancel_futures=True)

  async def submit(self, request: LinkRequest) -> List[LinkedMention]:
    if self._queue is None:
      raise RuntimeError("MicroBatcher.start() was not called")
    future = asyncio.get_running_loop().create_future()
    self._queue.put_nowait((request, future))
    self._gauge()
    return await future

  def _gauge(self) -> None:
    if self._queue_gauge is not None:
      self._queue_gauge.set(self._queue.qsize())

  async def _collect(self) -> None:
    loop = asyncio.get_running_loop()
    free = asyncio.Semaphore(self.workers)
    while True:
      await free.acquire()
      batch = [await self._queue.get()]
      deadline = loop.time() + self.max_wait_s
      while len(batch) < self.max_documents:
        if self._queue.empty():
          left = deadline - loop.time()
          if left <= 0:
            break
          try:
            batch.append(await asyncio.wait_for(self._queue.get(), left))
          except asyncio.TimeoutError:
            break
        else:
          batch.append(self._queue.get_nowait())
      self._gauge()
      batch = [(r, f) for r, f in batch if not f.done()]
      if not batch:
        free.release()
        continue
      task = loop.create_task(self._link(batch, free))
      self._running.add(task)
      task.add_done_callback(self._running.discard)

  async def _link(self, batch, free: asyncio.Semaphore) -> None:
    linker = self.linker
    try:
      if self._on_batch is not None:
        self._on_batch(len(batch))
      results = await asyncio.get_running_loop().run_in_executor(
          self._executor, linker.link_many, [r for r, _ in batch])
      for (_, future), mentions in zip(batch, results):
        if not future.done():
          future.set_result(mentions)
    except Exception as e:   # noqa: BLE001 - every waiting request gets the error
      for _, future in batch:
        if not future.done():
          future.set_exception(e)
    finally:
      free.release()
