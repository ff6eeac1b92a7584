"""A local cache of gs:// model directories, for serving (ScaNN and SavedModels read local disk).

    local = fetch_all("gs://bucket/models/m")   # -> Fetched(paths=(model, index, dictionary))

Only what serving reads is fetched (mel.model_dir.SERVING_PARTS, index/, kb/ and dictionary/; not
checkpoints, summaries or embeddings). Files go to $MEL_CACHE (default ~/.cache/mel) under
gcs/<bucket>/<path>, each downloaded to a temp name and renamed, with google-cloud-storage's
crc32c/md5 check of the transfer. `.mel-fetch.json` beside them records each object's
generation and size; a later fetch lists the objects again (one listing per directory) and
downloads only those that are new or changed, and deletes cached files the bucket no longer
has. If the listing fails (no network) and the cache is complete, the cached copy is used
with a warning. The caller (mel.linking.loading) then verifies the files against the manifests'
sha256 and asks for a forced re-download once if a cached file fails.

Credentials: Application Default Credentials; with STORAGE_EMULATOR_HOST set (tests,
gcp-storage-emulator) or without credentials, an anonymous client.
"""
import json
import os
import sys
from typing import NamedTuple, Optional, Tuple

from mel.model_dir import DICTIONARY, INDEX, KB, SERVING_PARTS

RECORD = ".mel-fetch.json"


class Fetched(NamedTuple):
  paths: Tuple[str, str, str]   # local model dir, index dir, dictionary dir
  stats: dict                   # {"downloaded": n, "reused": n, "bytes": n, "offline": bool}


def split_gs(url: str) -> Tuple[str, str]:
  if not url.startswith("gs://") or len(url) <= 5:
    raise ValueError(f"{url!r} is not a gs:// path")
  bucket, _, prefix = url[5:].partition("/")
  if not bucket:
    raise ValueError(f"{url!r} names no bucket")
  return bucket, prefix.strip("/")


def cache_root(cache_dir: Optional[str] = None) -> str:
  return cache_dir or os.environ.get("MEL_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "mel")


def _client():
  from google.cloud import storage
  if os.environ.get("STORAGE_EMULATOR_HOST"):
    from google.auth.credentials import AnonymousCredentials
    return storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "mel"),
                          credentials=AnonymousCredentials())
  try:
    return storage.Client()
  except Exception as e:  # google.auth.exceptions.DefaultCredentialsError, missing project
    print(f"[mel] no Google Cloud credentials ({type(e).__name__}); using an anonymous "
          f"client (public buckets only)", file=sys.stderr)
    return storage.Client.create_anonymous_client()


def local_dir(url: str, cache_dir: Optional[str] = None) -> str:
  """Where fetch_dir mirrors url: <cache>/gcs/<bucket>/<path>."""
  bucket_name, prefix = split_gs(url)
  return os.path.join(cache_root(cache_dir), "gcs", bucket_name, *prefix.split("/"))


def fetch_dir(url: str, parts=None, cache_dir: Optional[str] = None, force: bool = False,
              client=None) -> Tuple[str, dict]:
  """Mirrors the objects under url (those under `parts` prefixes, or all) into the cache.

  Returns (local directory, stats). force re-downloads every object.
  """
  bucket_name, prefix = split_gs(url)
  local = local_dir(url, cache_dir)
  os.makedirs(local, exist_ok=True)
  record_path = os.path.join(local, RECORD)
  record = {}
  if os.path.exists(record_path) and not force:
    try:
      with open(record_path, encoding="utf-8") as f:
        record = json.load(f)
    except (OSError, ValueError):
      record = {}
  stats = {"downloaded": 0, "reused": 0, "bytes": 0, "offline": False}
  try:
    client = client or _client()
    listing = [b for b in client.list_blobs(bucket_name, prefix=f"{prefix}/" if prefix else "")
               if not b.name.endswith("/")]
  except Exception as e:  # network, permissions: fall back to a complete cached copy
    if record and all(os.path.exists(os.path.join(local, n)) for n in record):
      print(f"[mel] could not list {url} ({type(e).__name__}: {e}); using the cached copy "
            f"in {local}", file=sys.stderr)
      stats["offline"] = True
      stats["reused"] = len(record)
      return local, stats
    raise OSError(f"{url}: cannot list the objects ({type(e).__name__}: {e})") from e
  wanted = {}
  for blob in listing:
    rel = blob.name[len(prefix) + 1:] if prefix else blob.name
    if parts is None or any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in parts):
      wanted[rel] = blob
  if not wanted:
    raise FileNotFoundError(f"{url}: no such model directory or part (no objects"
                            f"{' under ' + ', '.join(parts) if parts else ''})")
  new_record = {}
  for rel, blob in sorted(wanted.items()):
    dest = os.path.join(local, *rel.split("/"))
    entry = {"generation": blob.generation, "size": blob.size}
    if (record.get(rel) == entry and os.path.isfile(dest)
        and os.path.getsize(dest) == blob.size):
      stats["reused"] += 1
    else:
      os.makedirs(os.path.dirname(dest), exist_ok=True)
      tmp = f"{dest}.part-{os.getpid()}"
      try:
        blob.download_to_filename(tmp)   # checksum="auto": crc32c or md5 of the transfer
        os.replace(tmp, dest)
      finally:
        if os.path.exists(tmp):
          os.remove(tmp)
      stats["downloaded"] += 1
      stats["bytes"] += blob.size or 0
    new_record[rel] = entry
  # files the bucket no longer has (e.g. an index rebuilt with other shard names)
  for rel in set(record) - set(new_record):
    stale = os.path.join(local, *rel.split("/"))
    if os.path.exists(stale):
      os.remove(stale)
  tmp = f"{record_path}.tmp-{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(new_record, f, indent=1, sort_keys=True)
  os.replace(tmp, record_path)
  return local, stats


def fetch_all(model_dir: str, index: Optional[str] = None, dictionary: Optional[str] = None,
              cache_dir: Optional[str] = None, force: bool = False) -> Fetched:
  """Local paths of a model directory's serving parts, fetching the gs:// ones."""
  stats = {"downloaded": 0, "reused": 0, "bytes": 0, "offline": False}
  client = None

  def add(s):
    for key in ("downloaded", "reused", "bytes"):
      stats[key] += s[key]
    stats["offline"] = stats["offline"] or s["offline"]

  parts = list(SERVING_PARTS)
  if index is None:
    parts += [INDEX + "/", KB + "/"]   # kb/: the knowledge base's generations, when grown
  if dictionary is None:
    parts.append(DICTIONARY + "/")
  if model_dir.startswith("gs://"):
    client = _client()
    local_model, s = fetch_dir(model_dir, parts, cache_dir, force, client)
    add(s)
  else:
    local_model = model_dir
  paths = [local_model]
  for given, default in ((index, INDEX), (dictionary, DICTIONARY)):
    if given is None:
      paths.append(os.path.join(local_model, default))
    elif given.startswith("gs://"):
      client = client or _client()
      local, s = fetch_dir(given, None, cache_dir, force, client)
      add(s)
      paths.append(local)
    else:
      paths.append(given)
  return Fetched(tuple(paths), stats)
