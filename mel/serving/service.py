"""What `mel serve` serves: the settings, the Linker (loaded once, in the background), its
micro-batcher, metrics, and the atomic reload.

The model loads on a thread after the server starts listening, so that /health can answer
"loading" (503) until it is ready, then "ready" (200); a load that fails leaves the service
"failed" with the reason (503). Reload (POST /v1/reload) either serves the knowledge base's
newest generation of the same model dir (Linker.reload: `mel kb` commits them) or loads
another model dir (or reranker) beside the one serving and swaps the batcher's linker in one
assignment: batches already running finish on the old linker, every later batch uses the new
one, so no request is dropped or sees two models. One reload runs at a time.
"""
import asyncio
import dataclasses
import logging
from typing import Callable, Optional

from mel.linking import linker as linker_lib
from mel.linking.linker import Linker
from mel.serving import batcher as batcher_lib
from mel.serving.metrics import Metrics, ObservedCalls

log = logging.getLogger("mel.serve")


@dataclasses.dataclass
class ServeConfig:
  model_dir: str                               # local or gs:// (mel.load)
  reranker: str = ""                           # a CA model dir: full mode reranks (mel.load)
  rerank_top: int = linker_lib.DEFAULT_RERANK_TOP
  cache_dir: Optional[str] = None              # where gs:// model dirs are fetched to
  default_lang: str = ""                       # for REL / NIF requests that carry no language
  max_text_chars: int = 100_000                # longer texts: 413
  max_request_bytes: int = 16 * 2**20          # larger bodies: 413
  max_batch_documents: int = 256               # documents per /v1/link/batch request
  timeout_s: float = 30.0                      # per request: 504 after it
  max_wait_s: float = batcher_lib.DEFAULT_MAX_WAIT_S        # micro-batching wait
  max_micro_batch: int = batcher_lib.DEFAULT_MAX_DOCUMENTS  # documents per micro-batch
  workers: int = batcher_lib.DEFAULT_WORKERS   # inference threads
  allow_reload: bool = True                    # POST /v1/reload (403 when False)
  link_options: dict = dataclasses.field(default_factory=dict)   # to mel.load: threshold,
                                                                 # min_link_prob, min_linked


def load_linker(model_dir: str, reranker: str, config: ServeConfig) -> Linker:
  return linker_lib.load(model_dir, reranker=reranker or None, rerank_top=config.rerank_top,
                         cache_dir=config.cache_dir, **config.link_options)


class Service:
  """status: "loading", "ready" or "failed" (error: why). load(model_dir, reranker, config)
  -> Linker: load_linker, or another loader (tests slow it down to catch requests in flight)."""

  def __init__(self, config: ServeConfig, load: Callable[..., Linker] = load_linker):
    self.config = config
    self.metrics = Metrics()
    self.status = "loading"
    self.error = ""
    self.batcher: Optional[batcher_lib.MicroBatcher] = None
    self._load = load
    self._reloading = asyncio.Lock()
    self.model_dir = config.model_dir
    self.reranker = config.reranker

  @property
  def linker(self) -> Optional[Linker]:
    return None if self.batcher is None else self.batcher.linker

  async def start(self) -> None:
    """Loads the model (on a thread) and starts the batcher; status says how it went."""
    try:
      linker = await asyncio.to_thread(self._new_linker, self.model_dir, self.reranker)
    except Exception as e:   # noqa: BLE001 - reported by /health and the log
      self.status, self.error = "failed", f"{type(e).__name__}: {e}"
      log.error("loading %s failed: %s", self.model_dir, self.error)
      return
    c = self.config
    self.batcher = batcher_lib.MicroBatcher(
        linker, max_wait_s=c.max_wait_s, max_documents=c.max_micro_batch, workers=c.workers,
        on_batch=self.metrics.batch_documents.observe, queue_gauge=self.metrics.queue)
    self.batcher.start()
    self.metrics.serving(self.model_dir, linker.kb_generation)
    self.status = "ready"
    log.info("serving %s (knowledge base generation %s; NIL thresholds %s, %s)",
             self.model_dir, linker.kb_generation, linker.thresholds, linker.threshold_source)

  async def close(self) -> None:
    if self.batcher is not None:
      await self.batcher.close()

  def _new_linker(self, model_dir: str, reranker: str) -> Linker:
    linker = self._load(model_dir, reranker, self.config)
    linker.encoder = ObservedCalls(linker.encoder, self.metrics.tower_mentions)
    if linker.reranker is not None:
      linker.reranker = ObservedCalls(linker.reranker, self.metrics.reranker_pairs)
    return linker

  async def reload(self, model_dir: Optional[str] = None, reranker: Optional[str] = None
                   ) -> dict:
    """Serves model_dir (and reranker) if given and different, else the knowledge base's
    newest generation; {"reloaded": bool, "model_dir", "kb_generation"}. Errors (ValueError,
    OSError, ...) leave the old linker serving."""
    async with self._reloading:
      current = self.batcher.linker
      model_dir = model_dir or self.model_dir
      reranker = self.reranker if reranker is None else reranker
      try:
        if model_dir != self.model_dir or reranker != self.reranker:
          linker = await asyncio.to_thread(self._new_linker, model_dir, reranker)
          self.batcher.linker = linker   # the swap: later batches use it
          self.model_dir, self.reranker = model_dir, reranker
          changed = True
        else:
          # Linker.reload swaps the generation inside the linker in one assignment too
          changed = await asyncio.to_thread(current.reload)
          linker = current
      except Exception:
        self.metrics.reloads.labels("failed").inc()
        raise
      self.metrics.reloads.labels("swapped" if changed else "unchanged").inc()
      self.metrics.serving(self.model_dir, linker.kb_generation)
      log.info("reload: %s %s (knowledge base generation %s)",
               "now serving" if changed else "unchanged,", self.model_dir,
               linker.kb_generation)
      return {"reloaded": changed, "model_dir": self.model_dir, "reranker": self.reranker,
              "kb_generation": linker.kb_generation}

  def info(self) -> dict:
    """GET /v1/info: what is served (for the page and for operators)."""
    linker = self.linker
    out = {"status": self.status, "model_dir": self.model_dir, "reranker": self.reranker}
    if self.error:
      out["error"] = self.error
    if linker is not None:
      out.update(
          kb_generation=linker.kb_generation, thresholds=linker.thresholds,
          threshold_source=linker.threshold_source, tokenizer=linker.tokenizer,
          dictionary_languages=linker.dictionary.languages(),
          languages=sorted(linker.languages), default_lang=self.config.default_lang,
          max_text_chars=self.config.max_text_chars)
    return out
