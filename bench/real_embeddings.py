"""Real entity and mention vectors for the retrieval benchmark, encoded from the shared dumps.

  python bench/real_embeddings.py --model_dir out/models/demo_f/round1
      [--dumps '../shared/data/wikipedia/excerpts/*.xml.bz2'] [--entities 120000]
      [--mentions 120000] [--output out/retrieval_real] [--batch_size 256]

The model dir is the demo's trained pretrained-init model (`bash scripts/demo.sh`). Entity side:
every entity of the model's table (its real descriptions, "name — description" as training
read them), then pseudo-entities up to --entities: one per distinct link target of the dumps'
articles that is not in the table, read as "target title — the sentence of its first link"
(the excerpts hold ~2.9k articles, so real descriptions alone are far too few; a sentence that
links to a page is what a short description of it would say, in its language). Mention side:
--mentions links drawn at random from every article link (resolved or not: the target need not
have a page in the excerpts), each with 256 characters of context as the mining pipeline cuts
it, encoded by the mention tower. Both towers are the model's exported ones (mel.towers).

Output (--output): entities.npy and mentions.npy (float32 [N, D], unit rows),
mention_gold.npy (int64 [M]: the entity row of a mention whose target is an entity of the
model's table, -1 otherwise: pseudo-entities are not gold, as their text holds a mention's own
sentence), and meta.json (model identity, counts by language and by source). Encoding runs in
chunks written atomically under parts/; a rerun resumes from them, and a run for another model
or other arguments starts over.
"""
import argparse
import glob
import hashlib
import json
import os
import pathlib
import shutil
import sys
import time
from collections import Counter

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONTEXT_CHARS = 256   # as extract_mentions cuts contexts (Config.context_chars)
CHUNK = 8192          # vectors per resumable part


def sentence_around(text: str, pos: int, lang: str) -> str:
  """The sentence of text holding code point pos (mel's sentence ends, paragraph by paragraph)."""
  from mel.wikipedia import sentences
  start = text.rfind("\n", 0, pos) + 1
  end = text.find("\n", pos)
  paragraph = text[start:end if end >= 0 else len(text)]
  offset, rest = pos - start, paragraph
  while rest.strip():
    lead = len(rest) - len(rest.lstrip())
    sentence = sentences.first_sentence(rest, lang)
    stop = lead + len(sentence)
    if offset < stop or stop >= len(rest) or not sentence:
      return sentence
    rest, offset = rest[stop:], offset - stop
  return paragraph.strip()


def read_links(patterns):
  """Every article link of the dumps: (mentions [(key, lang, title, left, mention, right)],
  first sentence per target key {key: (lang, target, sentence)}, counts)."""
  from mel.wikipedia import dump_reader, titles, wikitext
  mentions, first = [], {}
  counts = Counter()
  paths = sorted(p for pattern in patterns for p in glob.glob(pattern))
  if not paths:
    raise FileNotFoundError(f"no dump matches {patterns}")
  for path in paths:
    site = None
    for item in dump_reader.read_dump(path):
      if isinstance(item, titles.SiteInfo):
        site = item
        continue
      if item.ns != 0 or item.redirect:
        continue
      try:
        page = wikitext.parse_page(item.text, site)
      except wikitext.WikitextParseError:
        counts["pages/unparsed"] += 1
        continue
      counts[f"articles/{item.lang}"] += 1
      title = titles.normalize_title(item.title, site.case, site.lang)
      text = page.text
      for link in page.links:
        key = f"{item.wiki}:{link.target}"
        mentions.append((key, item.lang, title, text[max(0, link.start - CONTEXT_CHARS):link.start],
                         text[link.start:link.end], text[link.end:link.end + CONTEXT_CHARS]))
        if key not in first:
          first[key] = (item.lang, link.target, sentence_around(text, link.start, item.lang))
      counts[f"links/{item.lang}"] += len(page.links)
  return mentions, first, counts


def choose(n: int, k: int, seed: int) -> np.ndarray:
  """k of range(n) at random (all if k >= n), in ascending order."""
  if k >= n:
    return np.arange(n)
  return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def encode_in_parts(name, count, encode_batch, parts_dir, batch_size):
  """Encodes rows [0, count) in parts of CHUNK (resuming finished parts) -> float32 [count, D]."""
  from tqdm import tqdm
  out = []
  with tqdm(total=count, unit="vec", desc=f"encoding {name}", mininterval=10) as bar:
    for start in range(0, count, CHUNK):
      path = os.path.join(parts_dir, f"{name}-{start // CHUNK:05d}.npy")
      if os.path.exists(path):
        out.append(np.load(path))
      else:
        stop = min(count, start + CHUNK)
        part = np.concatenate([encode_batch(b, min(stop, b + batch_size))
                               for b in range(start, stop, batch_size)])
        tmp = path + ".tmp.npy"
        np.save(tmp, part.astype(np.float32))
        os.replace(tmp, path)
        out.append(part)
      bar.update(len(out[-1]))
  return np.concatenate(out)


def save_npy(path: str, array: np.ndarray) -> None:
  tmp = path + ".tmp.npy"
  np.save(tmp, array)
  os.replace(tmp, path)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model_dir", required=True)
  parser.add_argument("--dumps", default=str(ROOT.parent / "shared/data/wikipedia/excerpts"
                                             / "*.xml.bz2"), help="comma list of globs")
  parser.add_argument("--entities", type=int, default=120_000)
  parser.add_argument("--mentions", type=int, default=120_000)
  parser.add_argument("--output", default=str(ROOT / "out/retrieval_real"))
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)

  from mel import entity_table, towers
  from mel.model_dir import ModelDir
  started = time.time()
  directory = ModelDir(args.model_dir)
  table = entity_table.read(directory.entities)     # [(entity_id, text)]
  mentions, first, counts = read_links(args.dumps.split(","))
  table_row = {entity_id: row for row, (entity_id, _) in enumerate(table)}
  pseudo_keys = sorted(k for k in first if k not in table_row and first[k][2])
  pseudo = [pseudo_keys[i] for i in choose(len(pseudo_keys),
                                            max(0, args.entities - len(table)), args.seed)]
  entity_texts = [text for _, text in table] + [
      f"{first[k][1]}{entity_table.NAME_SEPARATOR}{first[k][2]}" for k in pseudo]
  entity_sources = ["table"] * len(table) + ["pseudo"] * len(pseudo)
  entity_langs = ["?"] * len(table) + [first[k][0] for k in pseudo]
  picked = [mentions[i] for i in choose(len(mentions), args.mentions, args.seed + 1)]
  gold = np.array([table_row.get(m[0], -1) for m in picked], np.int64)
  print(f"[real_embeddings] {len(mentions):,} article links, {len(first):,} distinct targets "
        f"({len(pseudo_keys):,} with a sentence outside the table of {len(table):,}); encoding "
        f"{len(entity_texts):,} entities ({len(pseudo):,} pseudo) and {len(picked):,} mentions "
        f"({int((gold >= 0).sum()):,} with a table entity as gold) "
        f"[{time.time() - started:.0f} s]", file=sys.stderr)

  identity = {"model": directory.identity(), "dumps": args.dumps, "entities": args.entities,
              "mentions": args.mentions, "seed": args.seed,
              "texts_sha256": hashlib.sha256("\n".join(
                  entity_texts + ["\t".join(m[2:]) for m in picked]).encode()).hexdigest()}
  os.makedirs(args.output, exist_ok=True)
  parts = os.path.join(args.output, "parts")
  run_path = os.path.join(parts, "run.json")
  if os.path.exists(run_path) and json.load(open(run_path, encoding="utf-8")) != identity:
    print(f"[real_embeddings] {parts} holds another run's parts; starting over", file=sys.stderr)
    shutil.rmtree(parts)
  os.makedirs(parts, exist_ok=True)
  with open(run_path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(identity, f, indent=2, sort_keys=True)
  os.replace(run_path + ".tmp", run_path)

  entity_tower = towers.entity_tower(args.model_dir)
  mention_tower = towers.mention_tower(args.model_dir)
  entity_vectors = encode_in_parts(
      "entities", len(entity_texts), lambda a, b: entity_tower(entity_texts[a:b]), parts,
      args.batch_size)
  mention_vectors = encode_in_parts(
      "mentions", len(picked),
      lambda a, b: mention_tower(*[[m[i] for m in picked[a:b]] for i in (2, 3, 4, 5)]), parts,
      args.batch_size)
  save_npy(os.path.join(args.output, "entities.npy"), entity_vectors)
  save_npy(os.path.join(args.output, "mentions.npy"), mention_vectors)
  save_npy(os.path.join(args.output, "mention_gold.npy"), gold)
  meta = {**identity, "entity_count": len(entity_texts), "mention_count": len(picked),
          "dimension": int(entity_vectors.shape[1]),
          "entity_sources": dict(Counter(entity_sources)),
          "pseudo_entity_languages": dict(Counter(entity_langs[len(table):])),
          "mention_languages": dict(Counter(m[1] for m in picked)),
          "mentions_with_gold": int((gold >= 0).sum()), "dump_counts": dict(counts),
          "seconds": round(time.time() - started, 1)}
  with open(os.path.join(args.output, "meta.json.tmp"), "w", encoding="utf-8") as f:
    json.dump(meta, f, indent=2, sort_keys=True, ensure_ascii=False)
  os.replace(os.path.join(args.output, "meta.json.tmp"), os.path.join(args.output, "meta.json"))
  print(f"[real_embeddings] wrote {args.output}: {len(entity_texts):,} entity and "
        f"{len(picked):,} mention vectors of {entity_vectors.shape[1]} dims in "
        f"{time.time() - started:.0f} s", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
