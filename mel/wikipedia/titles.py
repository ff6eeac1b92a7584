"""MediaWiki page titles: normalisation, namespaces and what kind of page a link points at.

Follows MediaWiki's Title rules as far as they matter for dumps: HTML entities and %-escapes
decoded, underscores and Unicode spaces become one space, direction marks removed, NFC, the
`#fragment` dropped, a leading ':' removed, and the first letter upper-cased on wikis whose
`<case>` is "first-letter" (all Wikipedias).
"""
import dataclasses
import html
import re
import unicodedata
import urllib.parse
from typing import Mapping

from mel import languages

# Canonical (English) namespace names and common aliases, valid on every wiki besides the
# localised names that each dump's <siteinfo> lists (which name the project namespace, e.g.
# "Wikipedia", so it is not listed here: on WikiNews "Wikipedia:" is an interwiki prefix).
CANONICAL_NAMESPACES = {
    "media": -2, "special": -1, "talk": 1, "user": 2, "user talk": 3, "project": 4,
    "project talk": 5, "file": 6, "image": 6,
    "file talk": 7, "image talk": 7, "mediawiki": 8, "mediawiki talk": 9, "template": 10,
    "t": 10, "template talk": 11, "help": 12, "help talk": 13, "category": 14,
    "category talk": 15, "portal": 100, "portal talk": 101, "draft": 118, "draft talk": 119,
    "timedtext": 710, "timedtext talk": 711, "module": 828, "module talk": 829,
    "gadget": 2300, "gadget definition": 2302, "topic": 2600,
}
FILE_NAMESPACES = (6, -2)
CATEGORY_NAMESPACE = 14

# Namespace aliases per language (MediaWiki's Messages*.php $namespaceAliases), lower-cased. A
# dump's <siteinfo> lists only each namespace's primary localised name, yet editors still write
# the aliases: '[[カテゴリ:X]]' categorises a jawiki page as '[[Category:X]]' does. Only the
# category aliases of the mined languages that we know of are listed; a missing one makes its
# links look like article links to a title with a colon (counted, never a crash).
NAMESPACE_ALIASES = {
    "ja": {"カテゴリ": CATEGORY_NAMESPACE},
    "uk": {"категория": CATEGORY_NAMESPACE},
}

# Interwiki prefixes (other Wikimedia projects and common external wikis); language codes are
# handled separately because their meaning depends on the leading colon.
INTERWIKI_PREFIXES = frozenset("""
wikt wiktionary w wikipedia c commons s wikisource q wikiquote b wikibooks n wikinews v
wikiversity voy wikivoyage species wikispecies d wikidata m meta metawikipedia mw mediawikiwiki
mediawiki phab phabricator foundation wmf wikimedia incubator outreach mediazilla bugzilla
gerrit rev oldid diff tools toollabs wikitech translatewiki betawiki testwiki google doi
imdb arxiv pmid rfc iarchive wikiapiary
""".split())

_SPACES_RE = re.compile(r"[_\s\u00a0\u1680\u180e\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
_DIRECTION_MARKS_RE = re.compile(r"[\u200e\u200f\u202a-\u202e]")
# Characters that can never be part of a MediaWiki title.
_ILLEGAL_RE = re.compile(r"[<>\[\]{}|\x00-\x1f\x7f]")


@dataclasses.dataclass(frozen=True)
class SiteInfo:
  """What the dump's <siteinfo> says about title rules of one wiki."""
  wiki: str                    # database name, e.g. "ukwiki"
  lang: str                    # language code derived from it, e.g. "uk"
  case: str                    # "first-letter" or "case-sensitive"
  namespaces: Mapping[str, int]  # lower-cased localised namespace name -> key

  def namespace_of(self, prefix: str):
    """The namespace key of a 'Prefix' (before the first ':'), or None if it names none."""
    name = _SPACES_RE.sub(" ", prefix).strip().lower()
    if not name:
      return None
    key = self.namespaces.get(name)
    if key is None:
      key = NAMESPACE_ALIASES.get(self.lang, {}).get(name)
    return key if key is not None else CANONICAL_NAMESPACES.get(name)


def default_siteinfo(wiki: str) -> SiteInfo:
  """Title rules of a wiki when no <siteinfo> was seen: canonical names, first-letter case."""
  return SiteInfo(wiki=wiki, lang=languages.dbname_to_language(wiki), case="first-letter",
                  namespaces={})


# Wikis whose first-letter rule upper-cases 'i' to 'İ' (MediaWiki LanguageTr::ucfirst).
_DOTTED_I_LANGUAGES = frozenset({"tr", "az", "crh", "gag", "kaa"})

# Media file extensions: '[[Hình:x.jpg]]' is a file link even when the wiki's alias for the
# File namespace ('Hình', '画像', 'Datei' on a dump without <siteinfo>) is not known here.
_MEDIA_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".svg", ".tif", ".tiff", ".webp", ".bmp",
                     ".xcf", ".ogg", ".oga", ".ogv", ".webm", ".mp3", ".wav", ".flac", ".mid",
                     ".midi", ".opus", ".pdf", ".djvu", ".stl")


def normalize_title(raw: str, case: str = "first-letter", lang: str = "") -> str:
  """Canonical form of a page title as MediaWiki stores it; '' when nothing is left.

  'hồng_kông#Lịch sử' -> 'Hồng kông'; ':en:Foo' keeps its prefix (callers split prefixes
  first); '#Section' (a link into the same page) -> ''.
  """
  title = raw
  if "&" in title:
    title = html.unescape(title)
  if "%" in title:
    unquoted = urllib.parse.unquote(title, errors="strict") if _is_valid_escape(title) else title
    title = unquoted
  title = title.split("#", 1)[0]
  title = _DIRECTION_MARKS_RE.sub("", title)
  title = _SPACES_RE.sub(" ", title).strip()
  title = title.lstrip(":").strip()
  title = unicodedata.normalize("NFC", title)
  if title and case == "first-letter":
    upper = "İ" if title[0] == "i" and lang in _DOTTED_I_LANGUAGES else title[0].upper()
    # MediaWiki keeps characters whose upper case is several letters ('ß' -> 'SS').
    if len(upper) == 1:
      title = upper + title[1:]
  return title


def _is_valid_escape(text: str) -> bool:
  try:
    urllib.parse.unquote(text, errors="strict")
    return True
  except UnicodeDecodeError:
    return False


# What a [[link]] target is. Only ARTICLE links become mentions.
ARTICLE = "article"
SECTION = "section_link"            # [[#Section]]: a link into the same page
FILE = "file_link"                  # [[File:...]] / [[Image:...]]: image, caption not prose
CATEGORY = "category_link"          # [[Category:...]]: page categorisation, not displayed
INTERLANGUAGE = "interlanguage_link"  # [[fr:Paris]]: sidebar link to another language
INTERWIKI = "interwiki_link"        # [[wikt:foo]], [[:fr:Paris]]: another wiki, displayed
NAMESPACE = "non_article_namespace"  # [[Help:...]], [[:Category:...]], [[User:...]]
INVALID = "invalid_title"           # empty or containing characters no title may hold


def classify_link(raw_target: str, site: SiteInfo):
  """Returns (kind, normalized ns0 title or '') for the target of a [[link]]."""
  target = raw_target.strip()
  if "&" in target:
    target = html.unescape(target)
  if not target or _ILLEGAL_RE.search(target.split("#", 1)[0]):
    return (SECTION if target.startswith("#") else INVALID), ""
  if target.startswith("#"):
    return SECTION, ""
  leading_colon = target.startswith(":")
  body = target.lstrip(":").strip()
  if ":" in body:
    prefix, rest = body.split(":", 1)
    ns = site.namespace_of(prefix)
    if ns is not None and ns != 0:
      if not leading_colon and ns in FILE_NAMESPACES:
        return FILE, ""
      if not leading_colon and ns == CATEGORY_NAMESPACE:
        return CATEGORY, ""
      return NAMESPACE, ""
    code = _SPACES_RE.sub(" ", prefix).strip().lower()
    if code in languages.WIKIPEDIA_LANGUAGE_CODES:
      return (INTERWIKI if leading_colon else INTERLANGUAGE), ""
    if code in INTERWIKI_PREFIXES:
      return INTERWIKI, ""
    if rest.split("|", 1)[0].strip().lower().endswith(_MEDIA_EXTENSIONS):
      return (NAMESPACE if leading_colon else FILE), ""
  title = normalize_title(body, site.case, site.lang)
  if not title or _ILLEGAL_RE.search(title):  # also what %-escapes decoded to
    return INVALID, ""
  return ARTICLE, title


def category_title(raw_target: str, site: SiteInfo) -> str:
  """The normalized category of a '[[Category:X|sort key]]' target ('Category:X'), or ''.

  Any name of the category namespace works (localised, alias, canonical); the sort key after
  '|' is the caller's to drop (mwparserfromhell splits it off as the link text). Titles follow
  the wiki's rules: '[[Κατηγορία:πρωτεύουσες_της  Ευρώπης]]' -> 'Πρωτεύουσες της Ευρώπης'.
  """
  target = raw_target.split("|", 1)[0].strip()
  if "&" in target:
    target = html.unescape(target)
  if target.startswith(":") or ":" not in target:
    return ""  # '[[:Category:X]]' links to the category page, it does not categorise
  prefix, rest = target.split(":", 1)
  if site.namespace_of(prefix) != CATEGORY_NAMESPACE:
    return ""
  title = normalize_title(rest, site.case, site.lang)
  return "" if _ILLEGAL_RE.search(title) else title


def page_namespace(title: str, site: SiteInfo) -> int:
  """Namespace key of a page title, for dumps whose pages lack <ns>."""
  if ":" in title:
    ns = site.namespace_of(title.split(":", 1)[0])
    if ns is not None:
      return ns
  return 0
