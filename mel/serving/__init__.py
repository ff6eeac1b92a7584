"""`mel serve`: linking as an HTTP service. Imports linking, never training, mining or Beam.

    service    the settings (ServeConfig), the model loaded once, reload by atomic swap
    batcher    micro-batching: concurrent requests share tower, index and reranker calls
    app        the FastAPI app: /v1/link, /v1/link/batch, REL, NIF, /health, /metrics, the page
    rel        REL's request and answer shapes (POST / and /v1/rel)
    nif        NIF 2.0 Turtle in and out (POST /v1/nif), as GERBIL calls annotators
    metrics    the Prometheus metrics
    cli        `mel serve`
    page.html  the page at / (plain HTML and JavaScript)
"""
