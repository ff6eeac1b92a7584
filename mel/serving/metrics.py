"""The service's Prometheus metrics (GET /metrics), one registry per app.

    mel_requests_total{endpoint, status}       requests answered
    mel_request_seconds{endpoint}              latency, request read to answer written
    mel_mentions_total{result}                 mentions answered: "linked" or "nil"
    mel_batch_documents                        documents per micro-batch (mel.serving.batcher)
    mel_tower_batch_mentions                   mentions per mention-tower call
    mel_reranker_batch_pairs                   pairs per reranker call
    mel_queue_documents                        documents waiting for a micro-batch
    mel_model_info{model_dir, kb_generation}   1 for the model served
    mel_reloads_total{result}                  reloads: "swapped", "unchanged" or "failed"

Endpoints are labelled by their route ("/v1/link"); paths no route serves count as "other", so
that a scan of random paths cannot grow the label set.
"""
import prometheus_client as prom

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
  """The instruments; `render()` is the /metrics body."""

  def __init__(self):
    self.registry = prom.CollectorRegistry()
    r = self.registry
    self.requests = prom.Counter("mel_requests", "Requests answered, by endpoint and status",
                                 ["endpoint", "status"], registry=r)
    self.latency = prom.Histogram("mel_request_seconds", "Request latency in seconds",
                                  ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
    self.mentions = prom.Counter("mel_mentions", "Mentions answered, linked or NIL",
                                 ["result"], registry=r)
    self.batch_documents = prom.Histogram(
        "mel_batch_documents", "Documents per micro-batch", buckets=SIZE_BUCKETS, registry=r)
    self.tower_mentions = prom.Histogram(
        "mel_tower_batch_mentions", "Mentions per mention-tower call", buckets=SIZE_BUCKETS,
        registry=r)
    self.reranker_pairs = prom.Histogram(
        "mel_reranker_batch_pairs", "Pairs per reranker call", buckets=SIZE_BUCKETS, registry=r)
    self.queue = prom.Gauge("mel_queue_documents", "Documents waiting for a micro-batch",
                            registry=r)
    self.model = prom.Gauge("mel_model_info", "The model served (1)",
                            ["model_dir", "kb_generation"], registry=r)
    self.reloads = prom.Counter("mel_reloads", "Reloads, by result", ["result"], registry=r)

  def serving(self, model_dir: str, kb_generation) -> None:
    """Marks the model now served (and only it)."""
    self.model.clear()
    self.model.labels(model_dir, "" if kb_generation is None else str(kb_generation)).set(1)

  def count_mentions(self, mentions) -> None:
    nil = sum(1 for m in mentions if m.is_nil)
    if nil:
      self.mentions.labels("nil").inc(nil)
    if len(mentions) - nil:
      self.mentions.labels("linked").inc(len(mentions) - nil)

  def render(self) -> bytes:
    return prom.generate_latest(self.registry)


class ObservedCalls:
  """A tower (or reranker) callable whose calls' batch sizes go to a histogram."""

  def __init__(self, call, histogram):
    self.call, self.histogram = call, histogram

  def __call__(self, *columns):
    self.histogram.observe(len(columns[0]))
    return self.call(*columns)

  def __getattr__(self, name):   # the wrapped tower's other attributes (manifest, ...)
    return getattr(self.call, name)


CONTENT_TYPE = prom.CONTENT_TYPE_LATEST
