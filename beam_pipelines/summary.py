"""The run summary: totals, per-language counts, and the checks that everything is accounted for.

Identities that must hold (summary["checks"]):
  pages:    pages/read = pages/article + pages/redirect + sum(pages/skipped/*)
  links:    links/found = mentions/train + mentions/holdout + sum(links/skipped/*)
  wikidata: wikidata/read = wikidata/kept + sum(wikidata/skipped/*)
  types:    types/assigned (type ids on entity records) = types/vocabulary/entity_refs (the
            vocabulary's entity counts summed)

The types section reports coverage (entities with WikiData types, category types, none), P31
classes that could not be expanded, categories kept / dropped and the vocabulary per source.
"""
import json
import os

from apache_beam.io.filesystems import FileSystems

from mel import records
from mel import schema


def entity_count_row(entity: schema.Entity) -> str:
  per_lang = ",".join(f"{l}:{n}" for l, n in sorted(entity.mention_counts.items()))
  return f"{entity.entity_id}\t{entity.mention_count}\t{per_lang}"


def _sum_prefix(totals, prefix):
  return sum(n for name, n in totals.items() if name.startswith(prefix))


def checks(totals: dict) -> dict:
  def check(lhs_name, rhs):
    lhs = totals.get(lhs_name, 0)
    return {"expected": lhs, "accounted": rhs, "ok": lhs == rhs}
  return {
      "pages": check("pages/read", totals.get("pages/article", 0) +
                     totals.get("pages/redirect", 0) + _sum_prefix(totals, "pages/skipped/")),
      "links": check("links/found", totals.get("mentions/train", 0) +
                     totals.get("mentions/holdout", 0) + _sum_prefix(totals, "links/skipped/")),
      "wikidata": check("wikidata/read", totals.get("wikidata/kept", 0) +
                        _sum_prefix(totals, "wikidata/skipped/")),
      "types": check("types/assigned", totals.get("types/vocabulary/entity_refs", 0)),
  }


def build_summary(counts: dict, config: dict, language_totals: dict) -> dict:
  """counts: {(lang, name): n} from every stage."""
  totals, by_language = {}, {}
  for (lang, name), n in sorted(counts.items()):
    totals[name] = totals.get(name, 0) + n
    if lang:
      by_language.setdefault(lang, {})[name] = n
  return {"pipeline": "extract_mentions", "config": config, "totals": totals,
          "by_language": by_language, "language_totals": dict(sorted(language_totals.items())),
          "checks": checks(totals)}


def write_atomically(path: str, text: str):
  """Writes text to path (local or gs://) via a temporary file and a rename."""
  tmp = f"{path}.tmp-{os.getpid()}"
  with FileSystems.create(tmp) as f:
    f.write(text.encode("utf-8"))
  if FileSystems.exists(path):
    FileSystems.delete([path])
  FileSystems.rename([tmp], [path])


def write_type_vocabulary(entries, output_dir) -> dict:
  """Writes records.TYPE_VOCABULARY (one file, atomically); returns its counts for the summary."""
  write_atomically(os.path.join(output_dir, records.TYPE_VOCABULARY),
                   records.format_type_vocabulary(entries))
  return {("", "types/vocabulary/entity_refs"): sum(e.entities for e in entries)}


def write_summary(counts, config, language_totals):
  """Last step of the pipeline: summary.json and counts/language_totals.json."""
  summary = build_summary(counts, config, language_totals)
  out = config["output_dir"]
  write_atomically(os.path.join(out, records.LANGUAGE_TOTALS),
                   json.dumps(summary["language_totals"], indent=1, sort_keys=True))
  write_atomically(os.path.join(out, records.SUMMARY_JSON),
                   json.dumps(summary, indent=1, ensure_ascii=False))
  return summary


def read_summary(output_dir: str):
  """summary.json of output_dir (local or gs://), or None if the run never completed."""
  path = os.path.join(output_dir, records.SUMMARY_JSON)
  if not FileSystems.exists(path):
    return None
  with FileSystems.open(path) as f:
    return json.loads(f.read().decode("utf-8"))


def finish_summary(output_dir, summary, seconds, finished_at):
  summary["seconds"] = round(seconds, 1)
  summary["finished_at"] = finished_at
  write_atomically(os.path.join(output_dir, records.SUMMARY_TXT), format_summary(summary) + "\n")
  write_atomically(os.path.join(output_dir, records.SUMMARY_JSON),
                   json.dumps(summary, indent=1, ensure_ascii=False))


def _reasons(totals, prefix):
  items = sorted(((n, name[len(prefix):]) for name, n in totals.items()
                  if name.startswith(prefix)), reverse=True)
  return ", ".join(f"{reason} {n:,}" for n, reason in items) or "none"


def type_coverage(totals: dict) -> dict:
  """Share of entities (in %) whose types come from each source."""
  n = totals.get("entities/emitted", 0)
  return {source: round(100.0 * totals.get(f"entities/types/{source}", 0) / n, 1) if n else 0.0
          for source in ("wikidata", "category", "none")}


def _types_lines(t, mark):
  cov = type_coverage(t)
  return [
      f"  types     entities with WikiData types {t.get('entities/types/wikidata', 0):,} "
      f"({cov['wikidata']}%), category types {t.get('entities/types/category', 0):,} "
      f"({cov['category']}%), none {t.get('entities/types/none', 0):,} ({cov['none']}%)",
      f"            P31 classes {t.get('types/wikidata/p31_classes', 0):,}, not in the dump "
      f"(not expandable) {t.get('types/wikidata/p31_classes_not_in_dump', 0):,}; categories "
      f"kept {t.get('types/category/kept', 0):,}, dropped {t.get('types/category/dropped', 0):,}"
      f" (with {t.get('types/category/dropped_assignments', 0):,} entity assignments)",
      f"            vocabulary: wikidata {t.get('types/vocabulary/wikidata', 0):,}, category "
      f"{t.get('types/vocabulary/category', 0):,}; type assignments "
      f"{t.get('types/assigned', 0):,} [{mark}]",
  ]


def format_summary(summary: dict) -> str:
  t = summary["totals"]
  c = summary["checks"]
  mark = lambda name: "ok" if c[name]["ok"] else (  # noqa: E731
      f"MISMATCH: {c[name]['expected']:,} != {c[name]['accounted']:,}")
  lines = [
      f"extract_mentions summary ({summary['config']['output_dir']})",
      f"  dumps     {t.get('dump/files', 0):,} files; errors: {_reasons(t, 'dump/errors/')}",
      f"            read by many workers (byte ranges) {t.get('dump/read_split', 0):,} files"
      f" ({t.get('dump/streams_read', 0):,} page streams); read whole: "
      f"{_reasons(t, 'dump/read_whole/')}",
      f"  pages     read {t.get('pages/read', 0):,} = articles {t.get('pages/article', 0):,} + "
      f"redirects {t.get('pages/redirect', 0):,} + skipped "
      f"{_sum_prefix(t, 'pages/skipped/'):,} [{mark('pages')}]",
      f"            skipped: {_reasons(t, 'pages/skipped/')}",
      f"  links     found {t.get('links/found', 0):,} = mentions "
      f"{t.get('mentions/train', 0) + t.get('mentions/holdout', 0):,} (train "
      f"{t.get('mentions/train', 0):,}, holdout {t.get('mentions/holdout', 0):,}) + skipped "
      f"{_sum_prefix(t, 'links/skipped/'):,} [{mark('links')}]",
      f"            skipped: {_reasons(t, 'links/skipped/')}",
  ]
  if t.get("wikidata/read"):
    lines += [
        f"  wikidata  read {t['wikidata/read']:,} = kept {t.get('wikidata/kept', 0):,} + "
        f"skipped {_sum_prefix(t, 'wikidata/skipped/'):,} [{mark('wikidata')}]",
        f"            skipped: {_reasons(t, 'wikidata/skipped/')}"]
  lines += [
      f"  entities  {t.get('entities/emitted', 0):,} (with QID {t.get('entities/with_qid', 0):,}"
      f", page-only {t.get('entities/page_only', 0):,}); descriptions: "
      f"{_reasons(t, 'entities/description/')}",
      f"  pairs     {t.get('entity_pairs/emitted', 0):,} entity-entity pairs; documents "
      f"{t.get('documents/emitted', 0):,}",
      "  per language:   pages  articles     links     train  holdout",
  ]
  lines[-1:-1] = _types_lines(t, mark("types") if "types" in c else "not checked")
  for lang, lt in sorted(summary["by_language"].items()):
    lines.append(f"    {lang:<10} {lt.get('pages/read', 0):>8,} {lt.get('pages/article', 0):>9,}"
                 f" {lt.get('links/found', 0):>9,} {lt.get('mentions/train', 0):>9,}"
                 f" {lt.get('mentions/holdout', 0):>8,}")
  if "seconds" in summary:
    lines.append(f"  finished in {summary['seconds']:.1f} s")
  return "\n".join(lines)
