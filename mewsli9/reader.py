"""The Mewsli-9 file format: reading, checking and writing a dataset.

Layout (what the release's `get-mewsli-9.sh` leaves in `mewsli-9/output/dataset`, and what
`python -m mewsli9.extract` writes), one directory per language:

    <root>/<lang>/docs.tsv       docid, title, curid, revid, url, text_md5
    <root>/<lang>/mentions.tsv   docid, position, length, mention, url, lang, qid, qid_in_refs,
                                 freq_bin
    <root>/<lang>/text/<docid>   the clean article text (UTF-8)

The TSVs have a header line and csv quoting (a field holding a tab, quote or line break is
quoted, `""` is a quote inside it), as pandas writes them. `position` and `length` count
Unicode code points of the text; `text_md5` is the MD5 of the text file's bytes; `qid_in_refs`
is "True"/"False" (the entity has an English Wikipedia page); `freq_bin` 0-5 is the frequency
bin of the entity in the paper's training data (mel.bins.BIN_LABELS).

`read_dataset` raises Mewsli9FormatError, naming the file and line, when a file cannot be read
as this format (missing column, non-integer position, ...). Content problems are reported, not
raised (`Dataset.problems`): a text whose MD5 differs from docs.tsv, a span whose text differs
from its `mention` column, a mention of a document without text or not in docs.tsv. Evaluation
uses the mentions without problems (`Dataset.usable_mentions`).

    python -m mewsli9.reader DIR [--lang ja,de]    # checks a dataset; exit 1 on any problem
"""
import argparse
import collections
import csv
import dataclasses
import glob
import hashlib
import os
import sys
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from mel.bins import BIN_LABELS

DOCS = "docs.tsv"
MENTIONS = "mentions.tsv"
TEXT_DIR = "text"
DOC_COLUMNS = ("docid", "title", "curid", "revid", "url", "text_md5")
MENTION_COLUMNS = ("docid", "position", "length", "mention", "url", "lang", "qid",
                   "qid_in_refs", "freq_bin")
NUM_BINS = len(BIN_LABELS)

# Problem kinds (Dataset.problems keys).
MD5_MISMATCH = "md5_mismatch"
SPAN_MISMATCH = "span_mismatch"
NO_TEXT = "doc_without_text"
UNKNOWN_DOC = "mention_of_unknown_doc"


class Mewsli9FormatError(ValueError):
  """A dataset file is not in the Mewsli-9 format; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class Doc:
  docid: str
  title: str
  curid: str
  revid: str
  url: str
  text_md5: str
  lang: str       # the language directory it was read from


@dataclasses.dataclass(frozen=True)
class Mention:
  docid: str
  position: int   # code points into the doc's text
  length: int
  mention: str
  url: str        # the Wikipedia link taken as evidence
  lang: str
  qid: str
  qid_in_refs: bool
  freq_bin: int
  source: str     # "<file>:<line>", for reports

  @property
  def end(self) -> int:
    return self.position + self.length


@dataclasses.dataclass
class Dataset:
  root: str
  docs: Dict[str, Doc]
  texts: Dict[str, str]
  mentions: List[Mention]
  problems: Dict[str, List[str]]     # kind -> human-readable entries naming file/line
  files: List[str]                   # every file read
  unusable: frozenset = frozenset()  # sources of mentions with a problem

  def usable_mentions(self) -> List[Mention]:
    """Mentions whose document has text and whose span reads as the mention."""
    return [m for m in self.mentions if m.source not in self.unusable]

  def summary(self) -> dict:
    langs = collections.Counter(m.lang for m in self.mentions)
    return {"root": os.path.abspath(self.root), "docs": len(self.docs),
            "mentions": len(self.mentions), "usable_mentions": len(self.usable_mentions()),
            "mentions_per_language": dict(sorted(langs.items())),
            "problems": {k: len(v) for k, v in sorted(self.problems.items())}}


def language_dirs(root: str) -> List[str]:
  """The language directories under root (those holding docs.tsv); root itself if it does."""
  if os.path.exists(os.path.join(root, DOCS)):
    return [root]
  dirs = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(root, "*", DOCS)))
  if not dirs:
    raise FileNotFoundError(f"{root}: no {DOCS} in it or in any <lang>/ directory under it")
  return dirs


def _read_tsv(path: str, columns: Sequence[str]) -> Iterable[Tuple[int, Dict[str, str]]]:
  """(line number, row) per data row; the header must name every column (extra ones are kept)."""
  if not os.path.exists(path):
    raise Mewsli9FormatError(f"{path}: file not found")
  with open(path, encoding="utf-8", newline="") as f:
    reader = csv.reader(f, delimiter="\t")
    try:
      header = next(reader)
    except StopIteration:
      raise Mewsli9FormatError(f"{path}: empty file (no header line)") from None
    except (csv.Error, UnicodeDecodeError) as e:
      raise Mewsli9FormatError(f"{path}: line 1: {e}") from None
    missing = [c for c in columns if c not in header]
    if missing:
      raise Mewsli9FormatError(f"{path}: line 1: header lacks columns {missing} "
                               f"(has {header})")
    index = {name: header.index(name) for name in columns}
    while True:
      try:
        row = next(reader)
      except StopIteration:
        return
      except (csv.Error, UnicodeDecodeError) as e:
        raise Mewsli9FormatError(f"{path}: line {reader.line_num}: {e}") from None
      line = reader.line_num
      if not row:
        continue
      if len(row) != len(header):
        raise Mewsli9FormatError(f"{path}: line {line}: {len(row)} fields, the header has "
                                 f"{len(header)}")
      yield line, {name: row[i] for name, i in index.items()}


def _int(path, line, row, name, minimum=0) -> int:
  value = row[name]
  try:
    number = int(value)
  except ValueError:
    raise Mewsli9FormatError(f"{path}: line {line}: {name} {value!r} is not an integer") from None
  if number < minimum:
    raise Mewsli9FormatError(f"{path}: line {line}: {name} {number} is below {minimum}")
  return number


def read_language(directory: str) -> Tuple[Dict[str, Doc], List[Mention]]:
  """docs.tsv and mentions.tsv of one language directory (no text, no content checks)."""
  lang = os.path.basename(os.path.normpath(directory))
  docs_path = os.path.join(directory, DOCS)
  docs = {}
  for line, row in _read_tsv(docs_path, DOC_COLUMNS):
    if not row["docid"]:
      raise Mewsli9FormatError(f"{docs_path}: line {line}: empty docid")
    if row["docid"] in docs:
      raise Mewsli9FormatError(f"{docs_path}: line {line}: docid {row['docid']!r} repeats")
    if os.sep in row["docid"] or row["docid"] in (".", ".."):
      raise Mewsli9FormatError(f"{docs_path}: line {line}: docid {row['docid']!r} cannot name "
                               "a text file")
    docs[row["docid"]] = Doc(lang=lang, **{c: row[c] for c in DOC_COLUMNS})
  mentions_path = os.path.join(directory, MENTIONS)
  mentions = []
  for line, row in _read_tsv(mentions_path, MENTION_COLUMNS):
    if row["qid_in_refs"] not in ("True", "False"):
      raise Mewsli9FormatError(f"{mentions_path}: line {line}: qid_in_refs "
                               f"{row['qid_in_refs']!r} is not True/False")
    if not row["qid"]:
      raise Mewsli9FormatError(f"{mentions_path}: line {line}: empty qid")
    freq_bin = _int(mentions_path, line, row, "freq_bin")
    if freq_bin >= NUM_BINS:
      raise Mewsli9FormatError(f"{mentions_path}: line {line}: freq_bin {freq_bin} is not in "
                               f"0..{NUM_BINS - 1}")
    mentions.append(Mention(
        docid=row["docid"], position=_int(mentions_path, line, row, "position"),
        length=_int(mentions_path, line, row, "length", minimum=1), mention=row["mention"],
        url=row["url"], lang=row["lang"], qid=row["qid"],
        qid_in_refs=row["qid_in_refs"] == "True", freq_bin=freq_bin,
        source=f"{mentions_path}:{line}"))
  return docs, mentions


def read_text(directory: str, docid: str) -> Tuple[Optional[bytes], str]:
  """(bytes or None if missing, path) of a document's text file."""
  path = os.path.join(directory, TEXT_DIR, docid)
  if not os.path.exists(path):
    return None, path
  with open(path, "rb") as f:
    return f.read(), path


def read_dataset(root: str, languages: Optional[Sequence[str]] = None,
                 progress: bool = False) -> Dataset:
  """Every language directory under root (or only `languages`), texts checked."""
  from tqdm import tqdm
  docs, texts, mentions, files = {}, {}, [], []
  problems = collections.defaultdict(list)
  unusable = set()
  for directory in language_dirs(root):
    lang = os.path.basename(os.path.normpath(directory))
    if languages and lang not in languages:
      continue
    lang_docs, lang_mentions = read_language(directory)
    files += [os.path.join(directory, DOCS), os.path.join(directory, MENTIONS)]
    for docid, doc in tqdm(lang_docs.items(), desc=f"mewsli-9 {lang} texts", unit="doc",
                           disable=not progress, mininterval=5):
      if docid in docs:
        raise Mewsli9FormatError(f"{os.path.join(directory, DOCS)}: docid {docid!r} also in "
                                 f"{docs[docid].lang}/{DOCS}")
      docs[docid] = doc
      data, path = read_text(directory, docid)
      if data is None:
        problems[NO_TEXT].append(f"{path} missing (docs.tsv docid {docid})")
        continue
      files.append(path)
      digest = hashlib.md5(data).hexdigest()
      if digest != doc.text_md5:
        problems[MD5_MISMATCH].append(f"{path} has md5 {digest}, docs.tsv says {doc.text_md5}")
      try:
        texts[docid] = data.decode("utf-8")
      except UnicodeDecodeError as e:
        raise Mewsli9FormatError(f"{path}: not UTF-8 ({e})") from None
    for m in lang_mentions:
      if m.docid not in lang_docs:
        problems[UNKNOWN_DOC].append(f"{m.source} docid {m.docid!r} is not in "
                                     f"{os.path.join(directory, DOCS)}")
      elif m.docid not in texts:
        problems[NO_TEXT].append(f"{m.source} document {m.docid!r} has no text")
      else:
        found = texts[m.docid][m.position:m.end]
        if found == m.mention:
          continue
        problems[SPAN_MISMATCH].append(f"{m.source} span [{m.position}, {m.end}) reads "
                                       f"{found!r}, the mention column says {m.mention!r}")
      unusable.add(m.source)
    mentions.extend(lang_mentions)
  if not docs and not mentions:
    raise FileNotFoundError(f"{root}: no Mewsli-9 language directory matches {languages}")
  return Dataset(root=root, docs=docs, texts=texts, mentions=mentions, problems=dict(problems),
                 files=files, unusable=frozenset(unusable))


# writing ----------------------------------------------------------------------------------


def _write_tsv(path: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
  with open(path, "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f, delimiter="\t", lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
      writer.writerow(row)


def write_language(directory: str, docs: Sequence[Doc], texts: Dict[str, str],
                   mentions: Sequence[Mention]) -> None:
  """Writes one language directory atomically (mel.files.atomic_directory: built under a temp
  name, then renamed); an existing directory is replaced. text_md5 of each doc must match its
  text (it is the caller's MD5 of texts[docid].encode('utf-8')).
  """
  from mel.files import atomic_directory
  with atomic_directory(directory) as tmp:
    os.makedirs(os.path.join(tmp, TEXT_DIR))
    for doc in docs:
      with open(os.path.join(tmp, TEXT_DIR, doc.docid), "wb") as f:
        f.write(texts[doc.docid].encode("utf-8"))
    _write_tsv(os.path.join(tmp, DOCS), DOC_COLUMNS,
               ([getattr(d, c) for c in DOC_COLUMNS] for d in docs))
    _write_tsv(os.path.join(tmp, MENTIONS), MENTION_COLUMNS,
               ([m.docid, m.position, m.length, m.mention, m.url, m.lang, m.qid,
                 "True" if m.qid_in_refs else "False", m.freq_bin] for m in mentions))


def text_md5(text: str) -> str:
  return hashlib.md5(text.encode("utf-8")).hexdigest()


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m mewsli9.reader",
                                   description="Checks a Mewsli-9 dataset: format, text md5s, "
                                               "mention spans.")
  parser.add_argument("root", help="dataset directory (<lang>/docs.tsv, ...)")
  parser.add_argument("--lang", default="", help="only these languages, comma-separated")
  parser.add_argument("--show", type=int, default=10, help="problems listed per kind")
  args = parser.parse_args(argv)
  try:
    dataset = read_dataset(args.root, [x for x in args.lang.split(",") if x] or None,
                           progress=True)
  except (FileNotFoundError, Mewsli9FormatError) as e:
    print(f"[mewsli9.reader] error: {e}", file=sys.stderr)
    return 2
  summary = dataset.summary()
  print(f"{summary['root']}: {summary['docs']:,} documents, {summary['mentions']:,} mentions "
        f"({summary['usable_mentions']:,} usable); per language: "
        + ", ".join(f"{k} {v:,}" for k, v in summary["mentions_per_language"].items()))
  for kind, entries in sorted(dataset.problems.items()):
    print(f"  {kind}: {len(entries):,}")
    for entry in entries[:args.show]:
      print(f"    {entry}")
  return 1 if dataset.problems else 0


if __name__ == "__main__":
  sys.exit(main())
