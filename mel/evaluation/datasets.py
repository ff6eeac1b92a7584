"""What evaluation reads: the queries of a dataset (a mining run's held-out split or a Mewsli-9
directory) and the mining run's training counts that set the frequency bins, each with the
facts (path, bytes, sha256) of the files it came from, so a report names its inputs.

    queries, dataset = load_dataset("holdout:out/mining/mentions/holdout-*.tfrecord.gz")
    queries, dataset = load_dataset("mewsli9:DIR", context_chars=256)
    counts, files = read_entity_counts("out/mining")
"""
import glob
import os
from typing import Dict, List, NamedTuple, Sequence, Tuple

from mel.manifest import file_entry

KINDS = ("holdout", "mewsli9")


class Query(NamedTuple):
  """One mention to link (field names as mel.schema.Mention's, so the mention tower takes both)."""
  query_id: str
  lang: str
  doc_title: str
  left_context: str
  mention: str
  right_context: str
  gold: str           # gold entity id (QID, or "<wiki>:<Title>" for page-only entities)
  freq_bin: int = -1  # the dataset's own bin (Mewsli-9's freq_bin column), -1 if none


def file_facts(paths: Sequence[str]) -> List[dict]:
  """[{"path", "bytes", "sha256"}] of local files (what produced a figure)."""
  return [{"path": os.path.abspath(path), **file_entry(path)} for path in paths]


def read_entity_counts(mining_dir: str) -> Tuple[Dict[str, int], List[str]]:
  """({entity id: training mentions}, files read) from <mining_dir>/counts/entity_counts-*."""
  from mel import records
  pattern = records.pattern(mining_dir, records.ENTITY_COUNTS)
  files = sorted(glob.glob(pattern))
  if not files:
    raise FileNotFoundError(f"no files match {pattern} (the mining run's training counts)")
  counts = {}
  for path in files:
    with open(path, encoding="utf-8") as f:
      for n, line in enumerate(f, 1):
        parts = line.rstrip("\n").split("\t")
        if n == 1 and parts[0] == "entity_id":
          continue
        if len(parts) < 2 or not parts[0] or not parts[1].isdigit():
          raise ValueError(f"{path}: line {n} is not 'entity_id<TAB>mentions<TAB>...'")
        if parts[0] in counts:
          raise ValueError(f"{path}: line {n}: entity {parts[0]!r} appears twice")
        counts[parts[0]] = int(parts[1])
  return counts, files


def load_holdout(pattern: str) -> Tuple[List[Query], dict]:
  """Queries from Mention records (a mining run's holdout shards)."""
  from mel import records, schema
  files = sorted(glob.glob(pattern))
  if not files:
    raise FileNotFoundError(f"no files match {pattern}")
  queries = [Query(query_id=m.mention_id, lang=m.lang, doc_title=m.doc_title,
                   left_context=m.left_context, mention=m.mention,
                   right_context=m.right_context, gold=m.entity_id)
             for m in records.read_records(schema.Mention, pattern)]
  return queries, {"kind": "holdout", "spec": f"holdout:{pattern}", "files": file_facts(files),
                   "queries": len(queries)}


def load_mewsli9(root: str, context_chars: int = 256,
                 progress: bool = True) -> Tuple[List[Query], dict]:
  """Queries from a Mewsli-9 directory; mentions with problems are left out and counted.

  Contexts are cut from the text as the mining pipeline cuts them: context_chars each side.
  """
  from mewsli9 import reader
  dataset = reader.read_dataset(root, progress=progress)
  queries = []
  for m in dataset.usable_mentions():
    text = dataset.texts[m.docid]
    queries.append(Query(
        query_id=f"{m.docid}:{m.position}", lang=m.lang, doc_title=dataset.docs[m.docid].title,
        left_context=text[max(0, m.position - context_chars):m.position], mention=m.mention,
        right_context=text[m.end:m.end + context_chars], gold=m.qid, freq_bin=m.freq_bin))
  problems = {kind: entries[:20] for kind, entries in dataset.problems.items()}
  return queries, {"kind": "mewsli9", "spec": f"mewsli9:{root}", **dataset.summary(),
                   "problem_examples": problems, "context_chars": context_chars,
                   "files": file_facts([p for p in dataset.files if p.endswith(".tsv")]),
                   "queries": len(queries)}


def only_languages(queries: Sequence[Query], dataset: dict,
                   languages: Sequence[str]) -> Tuple[List[Query], dict]:
  """The queries in `languages` (--languages); the dataset's facts say which were kept of how
  many. ValueError when one of the languages has no query in the dataset."""
  present = sorted({q.lang for q in queries})
  missing = [lang for lang in languages if lang not in present]
  if missing:
    raise ValueError(f"--languages: {dataset['spec']} has no queries in {', '.join(missing)} "
                     f"(it has {', '.join(present)})")
  wanted = set(languages)
  kept = [q for q in queries if q.lang in wanted]
  return kept, {**dataset, "queries": len(kept), "language_filter": list(languages),
                "queries_all_languages": len(queries)}


def dataset_kind(spec: str) -> str:
  """"holdout" or "mewsli9" of a --dataset spec; ValueError naming the spec otherwise."""
  kind, _, path = spec.partition(":")
  if kind not in KINDS or not path:
    raise ValueError(f"--dataset {spec!r}: expected holdout:GLOB or mewsli9:DIR")
  return kind


def load_dataset(spec: str, context_chars: int = 256,
                 progress: bool = True) -> Tuple[List[Query], dict]:
  """The queries of a --dataset spec and what they were read from."""
  kind, path = dataset_kind(spec), spec.partition(":")[2]
  if kind == "holdout":
    return load_holdout(path)
  return load_mewsli9(path, context_chars, progress)
