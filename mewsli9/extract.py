"""A Mewsli-9-format dataset from WikiNews dumps (paper Sec. 3 and Appendix A).

    python -m mewsli9.extract --wikinews_dumps 'dumps/*wikinews-*-pages-articles.xml.bz2' \
        --mining_dir out/mining --output DIR [--wikipedia_dumps GLOB[,GLOB]] \
        [--keep_page_entities] [--max_redirect_hops 4] [--max_docs N] [--overwrite] \
        [--no_progress]

WikiNews dumps are MediaWiki dumps like Wikipedia's, read with mel.wikipedia.dump_reader.
Per article (namespace 0, not a redirect):

1. **Text**: the wikitext is parsed with mwparserfromhell and turned into clean text by the
   mining pipeline's own walk (mel.wikipedia.wikitext: templates, refs, tables dropped;
   anchors kept with their offsets), so a Wikipedia page gives the mining run's text.
2. **End sections**: the page is cut at the first top-level heading that names a page-final
   section (sources, references, external links, related news, see also, ...): patterns per
   language in END_SECTION_HEADINGS (the article's language and English), matched on the
   heading text case-folded, without trailing ':' or '.'. That heading and everything after it
   is dropped, links included (counted).
3. **Mentions**: links that point at a Wikipedia article in any language:
   `[[w:Title|…]]`, `[[:w:Title|…]]`, `[[w:xx:Title|…]]`, `[[wikipedia:xx:Title|…]]`, the
   templates `{{w|Title|text}}` / `{{w|Title|text|lang=xx}}`; on a Wikipedia dump also
   `[[Title|…]]` and `[[:xx:Title|…]]`. (On a WikiNews dump `[[Title]]` and `[[:xx:Title]]` link
   to WikiNews pages, in its own and another language's WikiNews: not mentions.) The mention is
   the displayed anchor, trail included, as in mining.
4. **Resolution**: the title is normalised as MediaWiki does (mel.wikipedia.titles), followed
   through redirects of that Wikipedia (read from --wikipedia_dumps, the dumps the mining run
   read; at most --max_redirect_hops, loops detected, by mel.wikipedia.redirects: the mining
   pipeline's rule), then looked up in the KB: the mining run's entities (their sitelinks). A
   link that does not resolve is counted under its reason and dropped, as in the paper; so is
   one resolving to a page-only entity (no QID) unless --keep_page_entities.

Output (mewsli9.reader's format): `<output>/<lang>/docs.tsv, mentions.tsv, text/<docid>`, each
language directory written whole and renamed into place, plus `<output>/summary.json`, written
last. An output that already holds a dataset is replaced only with --overwrite (language
directories of the old dataset that the new one lacks are then removed, so two runs never mix).
Only documents with at least one mention are written (as in the release). docid is
`<lang>-<page id>`; revid is empty (the dump reader keeps the last revision's text, not its id);
freq_bin is the entity's bin by its training mentions in the mining run (mel.bins);
qid_in_refs is whether the entity has an English Wikipedia sitelink.

Accounting (summary.json, printed): links found = mentions + unresolved (by reason) + links that
are not Wikipedia links (by reason: WikiNews-internal, in a template/ref/table, category, ...);
links inside dropped end sections are counted apart. Every count is also kept per language.
"""
import argparse
import collections
import dataclasses
import glob as _glob
import html
import json
import os
import re
import shutil
import sys
import time
import urllib.parse
from typing import Dict, Iterable, List, Optional, Tuple

import mwparserfromhell

from mel import flags, languages
from mel.bins import frequency_bin
from mel.wikipedia import dump_reader, redirects as redirect_rule, titles, wikitext
from mewsli9 import reader

# Page-final section headings, per language (regular expressions, full match on the heading
# case-folded and stripped of trailing ':' / '.'). English ones apply to every language.
END_SECTION_HEADINGS = {
    "en": [r"sources?", r"references?", r"external links?", r"see also", r"sister links",
           r"related (?:news|stories|articles|wikinews)", r"other news", r"notes?",
           r"footnotes?", r"further reading", r"bibliography"],
    "de": [r"quellen?", r"einzelnachweise", r"weblinks?", r"externe links", r"siehe auch",
           r"themenverwandte artikel", r"referenzen", r"literatur", r"anmerkungen"],
    "es": [r"fuentes?", r"referencias", r"enlaces? externos?", r"noticias? relacionadas?",
           r"v[eé]ase tambi[eé]n", r"ver tambi[eé]n", r"notas", r"bibliograf[ií]a"],
    "fr": [r"sources?", r"r[ée]f[ée]rences", r"liens externes", r"voir aussi",
           r"notes et r[ée]f[ée]rences", r"articles? connexes?"],
    "it": [r"fonti", r"note", r"collegamenti esterni", r"voci correlate", r"bibliografia"],
    "pt": [r"fontes?", r"refer[êe]ncias", r"liga[çc][õo]es externas", r"ver tamb[ée]m",
           r"not[íi]cias relacionadas"],
    "pl": [r"[źz]r[óo]d[łl](?:a|o)", r"przypisy", r"linki zewn[ęe]trzne", r"zobacz (?:też|także)"],
    "ru": [r"источники?", r"ссылки", r"примечания", r"см\. также", r"литература"],
    "uk": [r"джерела", r"джерело", r"посилання", r"примітки", r"див\. також", r"література",
           r"виноски"],
    "sr": [r"извори?", r"izvori?", r"референце", r"reference", r"спољашње везе",
           r"spoljašnje veze", r"види још", r"vidi još", r"повезане вести", r"povezane vesti",
           r"најновије вести", r"najnovije vesti"],
    "tr": [r"kaynaklar", r"kaynakça", r"kaynak", r"dış bağlantılar", r"ilgili haberler",
           r"ayrıca bakınız", r"notlar"],
    "ar": [r"ال?مصادر", r"ال?مراجع", r"وصلات خارجية", r"انظر أيضا[ًا]?", r"اقرأ أيضا[ًا]?"],
    "fa": [r"منابع", r"منبع", r"پیوند به بیرون", r"پیوندهای بیرونی", r"جستارهای وابسته",
           r"اخبار مرتبط", r"یادداشت‌?ها"],
    "ta": [r"மூலம்", r"மூலங்கள்", r"சான்றுகள்", r"தொடர்புள்ள செய்திகள்?",
           r"வெளி இணைப்புகள்", r"இவற்றையும் பார்க்கவும்"],
    "ja": [r"出典", r"情報源", r"関連記事", r"外部リンク", r"脚注", r"参考文献", r"関連項目",
           r"注釈"],
    "zh": [r"参考(?:资料|文献)", r"參考(?:資料|文獻)", r"(?:来|來)源", r"外部(?:链接|連結)",
           r"(?:参|參)(?:见|見)", r"相(?:关|關)新(?:闻|聞)"],
    "bn": [r"তথ্যসূত্র", r"বহিঃসংযোগ", r"আরও দেখুন", r"উৎস", r"টীকা"],
    "el": [r"παραπομπές", r"πηγές?", r"εξωτερικοί σύνδεσμοι", r"δείτε επίσης", r"σημειώσεις",
           r"βιβλιογραφία"],
    "mr": [r"संदर्भ(?: आणि नोंदी)?", r"बाह्य दुवे", r"हे सुद्धा पहा", r"स्रोत", r"नोंदी"],
    "vi": [r"tham khảo", r"chú thích", r"liên kết ngoài", r"xem thêm", r"nguồn", r"ghi chú"],
}

# Templates that display a link to Wikipedia: {{w|Title|text|lang=xx}} (first letter of a
# template name is case-insensitive).
WIKIPEDIA_LINK_TEMPLATES = frozenset({"W"})

# Language codes in link prefixes that name another code's Wikipedia (its database name).
LANGUAGE_ALIASES = {"nb": "no", "zh-cn": "zh", "zh-tw": "zh", "be-tarask": "be-x-old",
                    "rup": "roa-rup", "lzh": "zh-classical", "yue": "zh-yue",
                    "nan": "zh-min-nan", "vro": "fiu-vro", "sgs": "bat-smg"}

# Project database-name suffixes and their domains, for document URLs.
PROJECT_DOMAINS = (("wikinews", "wikinews.org"), ("wiki", "wikipedia.org"))

# Reasons a Wikipedia link does not become a mention (besides mel.wikipedia.redirects' REDIRECT_*).
NOT_IN_KB = "not_in_kb"
PAGE_ONLY_ENTITY = "page_only_entity"
# Reasons a link is not a Wikipedia link (besides mel.wikipedia.wikitext's skip reasons).
SAME_PROJECT_LINK = "same_project_link"
SPAN_PAST_TEXT_END = "span_past_text_end"

SUMMARY = "summary.json"   # written last: its presence means the dataset is complete

_SENTINEL = "\ue000"   # private-use character: marks Wikipedia links for the walk
_PREFIX_RE = re.compile(r"\s*(?:w|wikipedia)\s*:", re.IGNORECASE)
_BAD_TITLE_RE = re.compile(r"[<>\[\]{}|\x00-\x1f\x7f]")
_HEADING_TRAIL = " \t:：.。"


def _heading_matchers() -> Dict[str, "re.Pattern"]:
  out = {}
  for lang, patterns in END_SECTION_HEADINGS.items():
    merged = patterns + (END_SECTION_HEADINGS["en"] if lang != "en" else [])
    out[lang] = re.compile("|".join(f"(?:{p})" for p in merged))
  return out


_HEADING_MATCHERS = _heading_matchers()


def is_end_section(heading: str, lang: str) -> bool:
  """True if a heading (its displayed text) names a page-final section in lang (or English)."""
  text = " ".join(heading.split()).casefold().rstrip(_HEADING_TRAIL).strip()
  matcher = _HEADING_MATCHERS.get(lang, _HEADING_MATCHERS["en"])
  return bool(text) and matcher.fullmatch(text) is not None


def wiki_of_language(code: str) -> str:
  """Wikipedia database name of a language code: 'de' -> 'dewiki', 'zh-yue' -> 'zh_yuewiki'."""
  code = LANGUAGE_ALIASES.get(code, code)
  return code.replace("-", "_") + "wiki"


def prefixed_wikipedia_target(raw_target: str, lang: str,
                              on_wikipedia: bool) -> Optional[Tuple[str, str]]:
  """(language, title) of a prefixed link to Wikipedia, else None.

  `w:T`, `:w:T`, `wikipedia:T`, `w:xx:T`, `wikipedia:xx:T` (xx a Wikipedia language code; the
  page's own language without it); on a Wikipedia (on_wikipedia) also `:xx:T`. The title is
  normalised as MediaWiki does for that wiki; None when nothing valid is left.
  """
  target = raw_target.strip()
  if "&" in target:
    target = html.unescape(target)
  leading_colon = target.startswith(":")
  body = target.lstrip(":")
  m = _PREFIX_RE.match(body)
  if m:
    body = body[m.end():]
    if ":" in body:
      code, rest = body.split(":", 1)
      code = code.strip().lower()
      if code in languages.WIKIPEDIA_LANGUAGE_CODES:
        lang, body = code, rest
  elif on_wikipedia and leading_colon and ":" in body:
    code, rest = body.split(":", 1)
    code = code.strip().lower()
    if code not in languages.WIKIPEDIA_LANGUAGE_CODES:
      return None
    lang, body = code, rest
  else:
    return None
  if _BAD_TITLE_RE.search(body.split("#", 1)[0]):
    return None
  title = titles.normalize_title(body, "first-letter", lang)
  if not title or _BAD_TITLE_RE.search(title):
    return None
  return lang, title


@dataclasses.dataclass
class NewsPage:
  """One parsed article: clean text and its Wikipedia links."""
  text: str
  links: List[Tuple[int, int, str, str, str]]   # (start, end, language, wiki, title)
  counts: collections.Counter   # "found", link skip reasons; "end_section/...", "templates/w"


def _template_link(template) -> Optional[str]:
  """'[[w:xx:Title|text]]' for a {{w|Title|text|lang=xx}} template, else None."""
  name = str(template.name).strip()
  if not name or (name[0].upper() + name[1:]) not in WIKIPEDIA_LINK_TEMPLATES:
    return None
  positional = [p for p in template.params if not p.showkey]
  if not positional:
    return None
  title = str(positional[0].value).strip()
  text = str(positional[1].value).strip() if len(positional) > 1 else title
  code = str(template.get("lang").value).strip().lower() if template.has("lang") else ""
  if not title or "]]" in text or "[[" in title or not text:
    return None
  prefix = f"w:{code}:" if code else "w:"
  return f"[[{prefix}{title}|{text}]]"


def parse_news_page(wikitext_source: str, site: titles.SiteInfo) -> NewsPage:
  """Clean text (end sections cut) and Wikipedia links of one page.

  Raises wikitext.WikitextParseError when mwparserfromhell cannot parse the page.
  """
  on_wikipedia = languages.is_wikipedia_site(site.wiki)
  counts = collections.Counter()
  try:
    code = mwparserfromhell.parse(wikitext_source)
  except Exception as e:  # mwparserfromhell raises assorted errors on pathological input.
    raise wikitext.WikitextParseError(f"{type(e).__name__}: {e}") from e

  # 2. Cut at the first top-level heading of a page-final section.
  for i, node in enumerate(code.nodes):
    if isinstance(node, mwparserfromhell.nodes.Heading) and is_end_section(
        wikitext.parse_page(str(node.title), site).text, site.lang):
      dropped = mwparserfromhell.wikicode.Wikicode(code.nodes[i:])
      counts["end_section/cut"] += 1
      counts["end_section/links"] += len(dropped.filter_wikilinks(recursive=True))
      del code.nodes[i:]
      break

  # 3. {{w|...}} -> [[w:...|...]], then prefixed Wikipedia links -> sentinel targets, so that
  # the walk keeps their anchors as spans ('[[w:T]]' alone displays 'w:T', as MediaWiki does).
  for template in code.filter_templates(recursive=True):
    link = _template_link(template)
    if link is not None:
      try:
        code.replace(template, link)
        counts["templates/w"] += 1
      except ValueError:  # already replaced with an enclosing template
        pass
  targets = []
  for link in code.filter_wikilinks(recursive=True):
    raw = str(link.title)
    target = prefixed_wikipedia_target(raw, site.lang, on_wikipedia)
    if target is None:
      continue
    if link.text is None:
      link.text = raw.lstrip(":")
    link.title = f"{_SENTINEL}{len(targets)}"
    lang = target[0]
    wiki = site.wiki if on_wikipedia and lang == site.lang else wiki_of_language(lang)
    targets.append((lang, wiki, target[1]))

  # What parse_page does, on the edited tree: serialising it and parsing again is not the same
  # (mwparserfromhell's backtracking depends on the rest of the page, so a page cut short can
  # parse differently before the cut).
  walker = wikitext._Walker(site)
  try:
    walker.walk(code, None)
  except RecursionError as e:
    raise wikitext.WikitextParseError(f"nesting too deep: {e}") from e
  text = walker.out.text()
  spans = [span for span in walker.links if span.end <= len(text)] if text else walker.links
  page_counts = dict(walker.counts)
  found = page_counts.pop("found", 0)
  counts["found"] += found
  counts.update(page_counts)
  links = []
  for span in spans:
    if span.target.startswith(_SENTINEL):
      links.append((span.start, span.end) + targets[int(span.target[1:])])
    elif on_wikipedia:
      links.append((span.start, span.end, site.lang, site.wiki, span.target))
    else:
      counts[SAME_PROJECT_LINK] += 1
  # parse_page drops a span that runs past the text's end (a trail after a final strip).
  counts[SPAN_PAST_TEXT_END] += found - len(spans) - sum(page_counts.values())
  if not counts[SPAN_PAST_TEXT_END]:
    del counts[SPAN_PAST_TEXT_END]
  counts["wikipedia_link"] += len(links)
  return NewsPage(text=text, links=links, counts=counts)


# ---------------------------------------------------------------------------------------------
# resolution


@dataclasses.dataclass(frozen=True)
class KbEntry:
  entity_id: str
  qid: str
  in_enwiki: bool
  training_mentions: int


def read_kb(mining_dir: str, wanted: Optional[set] = None) -> Dict[Tuple[str, str], KbEntry]:
  """(wiki, normalised sitelink title) -> KbEntry from a mining run's entities.

  With `wanted`, only those keys are kept (memory stays small on a full KB).
  """
  from mel import records
  kb = {}
  for entity in records.read_output(mining_dir, records.ENTITIES):
    entry = None
    for wiki, title in entity.sitelinks.items():
      key = (wiki, titles.normalize_title(title))
      if wanted is not None and key not in wanted:
        continue
      if entry is None:
        entry = KbEntry(entity.entity_id, entity.qid, "enwiki" in entity.sitelinks,
                        entity.mention_count)
      kb[key] = entry
  return kb


def read_redirects(paths: Iterable[str], wikis: Optional[set] = None,
                   progress: bool = True) -> Tuple[Dict[Tuple[str, str], str], collections.Counter]:
  """(wiki, title) -> target title ('' if not an article) of every ns0 redirect page."""
  from tqdm import tqdm
  redirects, counts = {}, collections.Counter()
  for path in paths:
    site = None
    for item in tqdm(dump_reader.read_dump(path), desc=f"redirects {os.path.basename(path)}",
                     unit="page", disable=not progress, mininterval=5):
      if isinstance(item, titles.SiteInfo):
        site = item
        if wikis is not None and site.wiki not in wikis:
          counts["wikipedia_dumps/skipped_wiki"] += 1
          break
        continue
      if item.ns != 0:
        continue
      raw = item.redirect or wikitext.redirect_target(item.text)
      if not raw:
        continue
      kind, target = titles.classify_link(raw, site)
      key = (site.wiki, titles.normalize_title(item.title, site.case, site.lang))
      redirects[key] = target if kind == titles.ARTICLE else ""
      counts["redirects"] += 1
  return redirects, counts


# ---------------------------------------------------------------------------------------------
# the run


@dataclasses.dataclass
class _Article:
  lang: str
  wiki: str
  page_id: int
  title: str
  text: str
  links: list
  source: str


def _expand(globs: str) -> List[str]:
  paths = []
  for pattern in (g for g in globs.split(",") if g):
    matched = sorted(_glob.glob(pattern))
    if not matched:
      raise FileNotFoundError(f"no files match {pattern}")
    paths += matched
  return paths


def _doc_url(wiki: str, lang: str, page_id: int) -> str:
  for suffix, domain in PROJECT_DOMAINS:
    if wiki.endswith(suffix):
      return f"https://{lang}.{domain}/wiki?curid={page_id}"
  return f"{wiki}?curid={page_id}"


def wikipedia_url(lang: str, title: str) -> str:
  return (f"http://{lang}.wikipedia.org/wiki/"
          + urllib.parse.quote(title.replace(" ", "_"), safe=";@$!*(),/:'~"))


def existing_dataset(output: str) -> List[str]:
  """What of a Mewsli-9 dataset output already holds: summary.json, language directories."""
  found = [os.path.join(output, SUMMARY)] if os.path.exists(os.path.join(output, SUMMARY)) else []
  return found + sorted(os.path.dirname(p)
                        for p in _glob.glob(os.path.join(_glob.escape(output), "*", reader.DOCS)))


def extract(wikinews_dumps: List[str], mining_dir: str, output: str, *, wikipedia_dumps=(),
            keep_page_entities: bool = False, max_redirect_hops: int = 4, max_docs: int = 0,
            overwrite: bool = False, progress: bool = True) -> dict:
  """Runs the extraction; returns the summary (also <output>/summary.json).

  ValueError when output already holds a dataset and overwrite is False (checked first, so a
  refused run reads no dump).
  """
  from tqdm import tqdm
  old = existing_dataset(output)
  if old and not overwrite:
    names = ", ".join(os.path.basename(path) for path in old)
    raise ValueError(f"{output} already holds a Mewsli-9 dataset ({names}): pass --overwrite "
                     "to replace it")
  started = time.time()
  counts = collections.defaultdict(collections.Counter)   # lang -> counter
  articles: List[_Article] = []
  errors = []
  for path in wikinews_dumps:
    site = None
    try:
      for item in tqdm(dump_reader.read_dump(path), desc=os.path.basename(path), unit="page",
                       disable=not progress, mininterval=5):
        if isinstance(item, titles.SiteInfo):
          site = item
          continue
        c = counts[site.lang]
        c["pages/read"] += 1
        if item.ns != 0:
          c["pages/skipped/non_article_namespace"] += 1
          continue
        if item.redirect or wikitext.redirect_target(item.text):
          c["pages/skipped/redirect"] += 1
          continue
        if max_docs and c["pages/article"] >= max_docs:
          c["pages/skipped/max_docs"] += 1
          continue
        try:
          page = parse_news_page(item.text, site)
        except wikitext.WikitextParseError as e:
          c["pages/skipped/parse_error"] += 1
          errors.append(f"{path}: page {item.page_id} {item.title!r}: {e}")
          continue
        c["pages/article"] += 1
        for name, n in page.counts.items():
          c[name if "/" in name else "links/" + name] += n
        articles.append(_Article(site.lang, site.wiki, item.page_id, item.title, page.text,
                                 page.links, path))
    except dump_reader.DumpError as e:
      errors.append(str(e))
      if site is not None:
        counts[site.lang]["dumps/error"] += 1

  # Resolution: redirects of the wikis that links point at, then the KB for the final titles.
  keys = {(wiki, title) for a in articles for _, _, _, wiki, title in a.links}
  redirects, redirect_counts = read_redirects(wikipedia_dumps, {w for w, _ in keys}, progress)
  # ("ok", final key, hops) | ("fail", reason, detail)
  resolved = {key: redirect_rule.follow(key, redirects, max_redirect_hops) for key in keys}
  kb = read_kb(mining_dir, {r[1] for r in resolved.values() if r[0] == "ok"})

  by_lang = collections.defaultdict(lambda: ([], {}, []))   # lang -> (docs, texts, mentions)
  for a in articles:
    c = counts[a.lang]
    mentions = []
    docid = f"{a.lang}-{a.page_id}"
    for start, end, lang, wiki, title in a.links:
      status, value = resolved[(wiki, title)][:2]
      entry = kb.get(value) if status == "ok" else None
      reason = value if status == "fail" else (
          NOT_IN_KB if entry is None else
          PAGE_ONLY_ENTITY if not entry.qid and not keep_page_entities else None)
      if reason:
        c[f"links/unresolved/{reason}"] += 1
        continue
      c["links/mention"] += 1
      mentions.append(reader.Mention(
          docid=docid, position=start, length=end - start, mention=a.text[start:end],
          url=wikipedia_url(lang, title), lang=a.lang, qid=entry.entity_id,
          qid_in_refs=entry.in_enwiki, freq_bin=frequency_bin(entry.training_mentions),
          source=f"{a.source}:{a.page_id}"))
    if not mentions:
      c["documents/without_mentions"] += 1
      continue
    c["documents/written"] += 1
    docs, texts, lang_mentions = by_lang[a.lang]
    if docid in texts:
      raise ValueError(f"{a.source}: page id {a.page_id} appears twice in {a.lang}")
    texts[docid] = a.text
    docs.append(reader.Doc(docid=docid, title=a.title, curid=str(a.page_id), revid="",
                           url=_doc_url(a.wiki, a.lang, a.page_id),
                           text_md5=reader.text_md5(a.text), lang=a.lang))
    lang_mentions.extend(mentions)

  os.makedirs(output, exist_ok=True)
  for lang, (docs, texts, mentions) in tqdm(sorted(by_lang.items()), desc="writing",
                                            disable=not progress):
    reader.write_language(os.path.join(output, lang), docs, texts, mentions)
  written = {os.path.join(output, lang) for lang in by_lang}
  for stale in old:
    if os.path.isdir(stale) and stale not in written:
      shutil.rmtree(stale)
  summary = _summary(counts, wikinews_dumps, wikipedia_dumps, redirect_counts, mining_dir,
                     output, keep_page_entities, max_redirect_hops, errors,
                     time.time() - started)
  tmp = os.path.join(output, f".{SUMMARY}.tmp-{os.getpid()}")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=2, sort_keys=True, ensure_ascii=False)
  os.replace(tmp, os.path.join(output, SUMMARY))
  return summary


def _summary(counts, wikinews_dumps, wikipedia_dumps, redirect_counts, mining_dir, output,
             keep_page_entities, max_redirect_hops, errors, seconds) -> dict:
  total = collections.Counter()
  for c in counts.values():
    total.update(c)
  found = total["links/found"]
  mentions = total["links/mention"]
  unresolved = sum(n for k, n in total.items() if k.startswith("links/unresolved/"))
  not_wikipedia = sum(n for k, n in total.items() if k.startswith("links/") and k not in (
      "links/found", "links/mention", "links/wikipedia_link") and
      not k.startswith("links/unresolved/"))
  return {
      "inputs": {"wikinews_dumps": [os.path.abspath(p) for p in wikinews_dumps],
                 "wikipedia_dumps": [os.path.abspath(p) for p in wikipedia_dumps],
                 "mining_dir": os.path.abspath(mining_dir),
                 "keep_page_entities": keep_page_entities,
                 "max_redirect_hops": max_redirect_hops},
      "output": os.path.abspath(output),
      "totals": dict(sorted(total.items())),
      "per_language": {lang: dict(sorted(c.items())) for lang, c in sorted(counts.items())},
      "redirects": dict(redirect_counts),
      "checks": {
          "links_found": found, "mentions": mentions, "unresolved": unresolved,
          "not_wikipedia_links": not_wikipedia,
          "found_equals_mentions_unresolved_and_others":
              found == mentions + unresolved + not_wikipedia,
          "wikipedia_links_equal_mentions_and_unresolved":
              total["links/wikipedia_link"] == mentions + unresolved},
      "errors": errors[:100], "error_count": len(errors),
      "seconds": round(seconds, 1),
  }


def format_summary(summary: dict) -> str:
  t = summary["totals"]
  checks = summary["checks"]
  unresolved = {k.split("/", 2)[2]: n for k, n in t.items() if k.startswith("links/unresolved/")}
  others = {k.split("/", 1)[1]: n for k, n in t.items() if k.startswith("links/") and
            not k.startswith("links/unresolved/") and
            k not in ("links/found", "links/mention", "links/wikipedia_link")}
  ok = "ok" if checks["found_equals_mentions_unresolved_and_others"] else "MISMATCH"

  def fmt(counts):
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))

  lines = [
      f"mewsli9.extract -> {summary['output']}",
      f"  pages     read {t.get('pages/read', 0):,}: articles {t.get('pages/article', 0):,}; "
      f"documents written {t.get('documents/written', 0):,}, without mentions "
      f"{t.get('documents/without_mentions', 0):,}",
      f"  links     found {checks['links_found']:,} = mentions {checks['mentions']:,} + "
      f"unresolved {checks['unresolved']:,} + not Wikipedia links "
      f"{checks['not_wikipedia_links']:,} [{ok}]",
      f"            unresolved: {fmt(unresolved) or 'none'}",
      f"            not Wikipedia links: {fmt(others) or 'none'}",
      f"  end sections cut {t.get('end_section/cut', 0):,} (with "
      f"{t.get('end_section/links', 0):,} links); {{{{w}}}} templates "
      f"{t.get('templates/w', 0):,}; redirects read "
      f"{summary['redirects'].get('redirects', 0):,}",
      f"  errors {summary['error_count']}; {summary['seconds']} s",
  ]
  for lang, c in summary["per_language"].items():
    lines.append(f"    {lang}: articles {c.get('pages/article', 0):,}, documents "
                 f"{c.get('documents/written', 0):,}, mentions {c.get('links/mention', 0):,}")
  return "\n".join(lines)


def main(argv=None, prog: str = "python -m mewsli9.extract") -> int:
  p = flags.parser(prog, __doc__)
  p.add_argument("--wikinews_dumps", required=True,
                 help="WikiNews (or Wikipedia) pages-articles dumps: GLOB[,GLOB]")
  flags.mining_dir(p, required=True,
                   help="mining run (beam run extract_mentions output) whose entities "
                   "(sitelinks -> QID) are the KB")
  flags.output(p, help="dataset directory")
  p.add_argument("--wikipedia_dumps", default="",
                 help="Wikipedia dumps (as for beam run extract_mentions), read for their "
                 "redirect pages, which resolve link titles: GLOB[,GLOB] (without: redirects "
                 "are not followed)")
  p.add_argument("--keep_page_entities", action="store_true",
                 help="keep links resolving to entities without a QID (not the paper's "
                 "setting; for KBs of dump excerpts)")
  p.add_argument("--max_redirect_hops", type=int, default=4,
                 help="redirect hops followed at most (default 4, as beam run extract_mentions)")
  p.add_argument("--max_docs", type=int, default=0,
                 help="articles per language to read (0: all)")
  flags.overwrite(p, help="replace a dataset already in --output")
  flags.no_progress(p)
  args = p.parse_args(argv)
  try:
    summary = extract(_expand(args.wikinews_dumps), args.mining_dir, args.output,
                      wikipedia_dumps=_expand(args.wikipedia_dumps),
                      keep_page_entities=args.keep_page_entities,
                      max_redirect_hops=args.max_redirect_hops, max_docs=args.max_docs,
                      overwrite=args.overwrite, progress=not args.no_progress)
  except (FileNotFoundError, ValueError) as e:
    print(f"[mewsli9.extract] error: {e}", file=sys.stderr)
    return 1
  print(format_summary(summary), file=sys.stderr)
  if summary["error_count"]:
    print(f"[mewsli9.extract] {summary['error_count']} errors, e.g. {summary['errors'][0]}",
          file=sys.stderr)
  return 0 if summary["checks"]["found_equals_mentions_unresolved_and_others"] else 3


if __name__ == "__main__":
  sys.exit(main())
