"""`mel serve`: link over HTTP (FastAPI on uvicorn).

    mel serve --model_dir out/models/demo_f/round1 [--host 127.0.0.1] [--port 8000]
    curl -s localhost:8000/v1/link -H 'content-type: application/json' \\
         -d '{"text": "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.", "lang": "el"}'

The endpoints, their errors and the limits: mel.serving.app (and README "Serving"). The model
directory (local or gs://, as mel.load) is loaded once, after the server starts listening:
GET /health answers 503 until it is ready. If it cannot be loaded the server logs why and
exits with status 1. POST /v1/reload swaps in the knowledge base's newest generation, or
another model dir ({"model_dir": ...}), without dropping requests in flight; --no_reload turns
it off. The server listens on 127.0.0.1 unless --host says otherwise: it has no
authentication, put it behind your own gateway before exposing it.
"""
import asyncio
import logging
import sys
from typing import List, Optional

from mel import flags

DEFAULT_PORT = 8000


def main(argv: Optional[List[str]] = None, prog: str = "mel serve") -> int:
  from mel.serving import service as service_lib
  defaults = service_lib.ServeConfig(model_dir="")
  p = flags.parser(prog, __doc__)
  flags.model_dir(p, required=False, default=None,
                  help="model directory, local or gs:// (default: $MEL_MODEL_DIR)")
  p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
  p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
  p.add_argument("--reranker", default="", help="a reranker model dir (model.kind CA): full "
                 "mode reranks its top --rerank_top candidates")
  p.add_argument("--rerank_top", type=int, default=defaults.rerank_top)
  p.add_argument("--default_lang", default="", help="language of REL and NIF requests that "
                 "name none (?lang=CODE in the URL overrides it)")
  p.add_argument("--threshold", type=float, default=None,
                 help="NIL threshold for every mode (default: the model's nil.json)")
  p.add_argument("--min_link_prob", type=float, default=None, help="spotter threshold")
  p.add_argument("--min_linked", type=int, default=None, help="spotter threshold")
  p.add_argument("--max_text_chars", type=int, default=defaults.max_text_chars,
                 help=f"longer texts get 413 (default {defaults.max_text_chars:,})")
  p.add_argument("--max_request_bytes", type=int, default=defaults.max_request_bytes,
                 help=f"larger bodies get 413 (default {defaults.max_request_bytes:,})")
  p.add_argument("--max_batch_documents", type=int, default=defaults.max_batch_documents,
                 help=f"documents per /v1/link/batch request (default "
                 f"{defaults.max_batch_documents})")
  p.add_argument("--timeout_s", type=float, default=defaults.timeout_s,
                 help=f"per request; 504 after it (default {defaults.timeout_s:g})")
  p.add_argument("--max_wait_ms", type=float, default=defaults.max_wait_s * 1000,
                 help=f"how long a micro-batch waits for more requests (default "
                 f"{defaults.max_wait_s * 1000:g})")
  p.add_argument("--max_micro_batch", type=int, default=defaults.max_micro_batch,
                 help=f"documents per micro-batch (default {defaults.max_micro_batch})")
  p.add_argument("--workers", type=int, default=defaults.workers,
                 help=f"inference threads (default {defaults.workers})")
  p.add_argument("--no_reload", action="store_true", help="refuse POST /v1/reload (403)")
  p.add_argument("--log_level", default="info", choices=("debug", "info", "warning", "error"))
  args = p.parse_args(argv)
  from mel.linking.loading import ModelNotFoundError, resolve_model_dir
  try:
    model_dir = resolve_model_dir(args.model_dir)
  except ModelNotFoundError as e:
    p.error(str(e))
  options = {k: v for k, v in (("threshold", args.threshold),
                                ("min_link_prob", args.min_link_prob),
                                ("min_linked", args.min_linked)) if v is not None}
  config = service_lib.ServeConfig(
      model_dir=model_dir, reranker=args.reranker, rerank_top=args.rerank_top,
      default_lang=args.default_lang, max_text_chars=args.max_text_chars,
      max_request_bytes=args.max_request_bytes, max_batch_documents=args.max_batch_documents,
      timeout_s=args.timeout_s, max_wait_s=args.max_wait_ms / 1000,
      max_micro_batch=args.max_micro_batch, workers=args.workers,
      allow_reload=not args.no_reload, link_options=options)
  return serve(config, args.host, args.port, args.log_level)


def serve(config, host: str, port: int, log_level: str = "info") -> int:
  """Runs the server until SIGINT / SIGTERM; 1 when the model failed to load."""
  import uvicorn
  from mel.serving.app import create_app
  from mel.serving.service import Service
  logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                      format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  service = Service(config)
  server = uvicorn.Server(uvicorn.Config(create_app(service), host=host, port=port,
                                         log_level=log_level, access_log=False))

  async def run() -> int:
    serving = asyncio.create_task(server.serve())
    while service.status == "loading" and not serving.done():
      await asyncio.sleep(0.05)
    if service.status == "failed":
      server.should_exit = True
    await serving
    return 1 if service.status == "failed" else 0

  return asyncio.run(run())
