"""The HTTP API of `mel serve` (FastAPI on uvicorn): create_app(Service) -> the ASGI app.

    GET  /                 the page: paste text, see its mentions linked (page.html)
    POST /                 REL's API (mel.serving.rel), as REL's own server answers it
    POST /v1/link          {text, lang, spans?, title?, fast?, top_k?, threshold?}
                           -> {"mentions": [LinkedMention.to_dict(), ...]}
    POST /v1/link/batch    {documents: [as /v1/link, ...]} -> {"documents": [{"mentions"}, ...]}
    POST /v1/rel           REL's API (also at POST /)
    POST /v1/nif           NIF 2.0 Turtle in, the same document annotated out (GERBIL)
    POST /v1/reload        {model_dir?, reranker?}: swap in a model or a knowledge-base generation
    GET  /v1/info          what is served: model dir, generation, thresholds, languages
    GET  /health           200 once the model is loaded, 503 while loading or after a failure
    GET  /metrics          Prometheus text (mel.serving.metrics)

Errors are JSON {"error": message, "request_id": id} (NIF: the same, as JSON too): 400 a body
that is not JSON (or not Turtle), 413 a body over max_request_bytes, a text over
max_text_chars or a batch over max_batch_documents, 422 missing, unknown or wrong-typed
fields and what mel.link rejects (language code, spans, top_k) with its message, 503 no model
loaded yet, 504 a request not answered within timeout_s, 500 anything else (logged with its
traceback; the client gets the request id only). Every answer carries X-Request-ID (the
client's, when it sent a sane one), and every error is logged with it.
"""
import asyncio
import contextlib
import importlib.resources
import json
import logging
import re
import time
import uuid
from typing import Any, List, Optional

import fastapi
from fastapi import responses
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mel.linking.linker import DEFAULT_TOP_K, LinkRequest
from mel.serving import nif, rel
from mel.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from mel.serving.service import Service

log = logging.getLogger("mel.serve")
MAX_TOP_K = 100
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class ApiError(Exception):
  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status, self.message = status, message


class LinkBody(BaseModel):
  """One document to link (POST /v1/link; each of /v1/link/batch's documents)."""
  model_config = ConfigDict(extra="forbid", strict=True)
  text: str
  lang: str                                  # a Wikipedia code or BCP-47 tag: en, zh-yue, pt-br
  spans: Optional[List[Any]] = None          # [[start, end], ...] in characters; absent: spot
  title: str = ""
  fast: bool = False
  top_k: int = Field(DEFAULT_TOP_K, ge=1, le=MAX_TOP_K)
  threshold: Optional[float] = None          # NIL below it; absent: the model's


class BatchBody(BaseModel):
  model_config = ConfigDict(extra="forbid", strict=True)
  documents: List[LinkBody]


class ReloadBody(BaseModel):
  model_config = ConfigDict(extra="forbid", strict=True)
  model_dir: Optional[str] = None            # absent: the knowledge base's newest generation
  reranker: Optional[str] = None             # "" drops the reranker


def _schema(model) -> dict:
  return {"requestBody": {"required": True, "content": {
      "application/json": {"schema": model.model_json_schema()}}}}


def _validation_message(error: ValidationError) -> str:
  return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                   for e in error.errors())


def create_app(service: Service) -> fastapi.FastAPI:
  config = service.config

  @contextlib.asynccontextmanager
  async def lifespan(app):
    starting = asyncio.get_running_loop().create_task(service.start())
    yield
    starting.cancel()
    await service.close()

  app = fastapi.FastAPI(title="mel", description="Multilingual entity linking to WikiData",
                        lifespan=lifespan)
  page = importlib.resources.files("mel.serving").joinpath("page.html").read_text("utf-8")

  @app.middleware("http")
  async def observe(request: fastapi.Request, call_next):
    given = request.headers.get("x-request-id", "")
    request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]
    request.state.request_id = request_id
    start = time.perf_counter()
    try:
      response = await call_next(request)
    except Exception:   # noqa: BLE001 - logged with its traceback; the client gets the id
      log.exception("request %s: %s %s failed", request_id, request.method, request.url.path)
      response = _error(500, "internal error; the server log has the details", request_id)
    route = request.scope.get("route")
    endpoint = route.path if route is not None else "other"
    service.metrics.requests.labels(endpoint, str(response.status_code)).inc()
    service.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
    response.headers["X-Request-ID"] = request_id
    return response

  @app.exception_handler(ApiError)
  async def api_error(request: fastapi.Request, error: ApiError):
    request_id = request.state.request_id
    log.warning("request %s: %s %s -> %d: %s", request_id, request.method, request.url.path,
                error.status, error.message)
    return _error(error.status, error.message, request_id)

  @app.exception_handler(StarletteHTTPException)
  async def http_error(request: fastapi.Request, error: StarletteHTTPException):
    return await api_error(request, ApiError(error.status_code, str(error.detail)))

  async def read_body(request: fastapi.Request) -> bytes:
    limit = config.max_request_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
      raise ApiError(413, f"the body has {declared} bytes; this server takes at most {limit} "
                     f"(--max_request_bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
      size += len(chunk)
      if size > limit:
        raise ApiError(413, f"the body is over {limit} bytes (--max_request_bytes)")
      chunks.append(chunk)
    return b"".join(chunks)

  async def parse(request: fastapi.Request, model):
    body = await read_body(request)
    try:
      return model.model_validate_json(body)
    except ValidationError as e:
      if any(x["type"] == "json_invalid" for x in e.errors()):
        raise ApiError(400, f"the body is not valid JSON: {e.errors()[0]['msg']}") from None
      raise ApiError(422, _validation_message(e)) from None

  def ready() -> None:
    if service.status != "ready":
      detail = f": {service.error}" if service.error else ""
      raise ApiError(503, f"the model is {service.status}{detail}")

  def checked(doc: LinkBody, where: str = "") -> LinkRequest:
    if len(doc.text) > config.max_text_chars:
      raise ApiError(413, f"{where}text has {len(doc.text)} characters; this server takes at "
                     f"most {config.max_text_chars} (--max_text_chars)")
    try:
      return service.linker.request(doc.text, doc.lang, spans=doc.spans, top_k=doc.top_k,
                                    fast=doc.fast, title=doc.title, threshold=doc.threshold)
    except (TypeError, ValueError) as e:
      raise ApiError(422, f"{where}{e}") from None

  async def linked(requests: List[LinkRequest]):
    """Each request's mentions, through the micro-batcher; 504 after timeout_s."""
    try:
      results = await asyncio.wait_for(
          asyncio.gather(*(service.batcher.submit(r) for r in requests)), config.timeout_s)
    except asyncio.TimeoutError:
      raise ApiError(504, f"not answered within {config.timeout_s:g} s (--timeout_s)") from None
    for mentions in results:
      service.metrics.count_mentions(mentions)
    return results

  @app.get("/", response_class=responses.HTMLResponse, include_in_schema=False)
  async def index():
    return page

  @app.get("/health")
  async def health():
    body = {"status": service.status, "model_dir": service.model_dir}
    if service.error:
      body["error"] = service.error
    return responses.JSONResponse(body, status_code=200 if service.status == "ready" else 503)

  @app.get("/metrics")
  async def metrics():
    return responses.Response(service.metrics.render(), media_type=METRICS_CONTENT_TYPE)

  @app.get("/v1/info")
  async def info():
    return service.info()

  @app.post("/v1/link", openapi_extra=_schema(LinkBody))
  async def link(request: fastapi.Request):
    doc = await parse(request, LinkBody)
    ready()
    (mentions,) = await linked([checked(doc)])
    return {"mentions": [m.to_dict() for m in mentions]}

  @app.post("/v1/link/batch", openapi_extra=_schema(BatchBody))
  async def link_batch(request: fastapi.Request):
    batch = await parse(request, BatchBody)
    ready()
    if len(batch.documents) > config.max_batch_documents:
      raise ApiError(413, f"{len(batch.documents)} documents; this server takes at most "
                     f"{config.max_batch_documents} per request (--max_batch_documents)")
    requests = [checked(doc, f"documents.{i}: ") for i, doc in enumerate(batch.documents)]
    results = await linked(requests)
    return {"documents": [{"mentions": [m.to_dict() for m in ms]} for ms in results]}

  def language(given: Optional[str], what: str) -> str:
    lang = given or config.default_lang
    if not lang:
      raise ApiError(422, f"{what} carry no language: add ?lang=CODE to the URL, or start the "
                     f"server with --default_lang CODE")
    return lang

  async def rel_endpoint(request: fastapi.Request, lang: Optional[str] = None):
    body = await read_body(request)
    try:
      parsed = rel.parse_request(json.loads(body))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      raise ApiError(400, f"the body is not valid JSON: {e}") from None
    except ValueError as e:
      raise ApiError(422, str(e)) from None
    ready()
    doc = LinkBody.model_construct(text=parsed.text, lang=language(lang, "REL requests"),
                                   spans=parsed.spans, title="", fast=False,
                                   top_k=DEFAULT_TOP_K, threshold=None)
    (mentions,) = await linked([checked(doc)])
    return responses.JSONResponse(rel.response(mentions))

  app.post("/", include_in_schema=False)(rel_endpoint)
  app.post("/v1/rel")(rel_endpoint)

  @app.post("/v1/nif", response_class=responses.Response)
  async def nif_endpoint(request: fastapi.Request, lang: Optional[str] = None):
    body = await read_body(request)
    try:
      turtle = body.decode("utf-8")
      documents = nif.parse(turtle)
    except (UnicodeDecodeError, nif.TurtleSyntaxError) as e:
      raise ApiError(400, f"the body is not Turtle: {e}") from None
    except ValueError as e:
      raise ApiError(422, f"the body is not a NIF document GERBIL would send: {e}") from None
    ready()
    requests = [checked(LinkBody.model_construct(
        text=d.text, lang=d.lang or language(lang, "NIF documents without a language tag"),
        spans=d.spans, title="", fast=False, top_k=DEFAULT_TOP_K, threshold=None),
        f"{d.context}: ") for d in documents]
    results = await linked(requests)
    out = nif.annotate(turtle, {d.context: ms for d, ms in zip(documents, results)})
    return responses.Response(out, media_type="text/turtle; charset=utf-8")

  @app.post("/v1/reload", openapi_extra=_schema(ReloadBody))
  async def reload(request: fastapi.Request):
    body = await parse(request, ReloadBody)
    if not config.allow_reload:
      raise ApiError(403, "reload is disabled on this server (--no_reload)")
    ready()
    try:
      return await service.reload(body.model_dir, body.reranker)
    except (ValueError, OSError) as e:
      raise ApiError(422, f"reload failed, still serving {service.model_dir}: "
                     f"{type(e).__name__}: {e}") from None

  return app


def _error(status: int, message: str, request_id: str) -> responses.JSONResponse:
  return responses.JSONResponse({"error": message, "request_id": request_id},
                                status_code=status)
