"""Wikitext -> clean text with the character offsets of every article link's anchor.

One walk over mwparserfromhell's tree builds the text and accounts for every [[wikilink]] in
the page, including those nested in templates, refs, tables and file captions: each is either a
LinkSpan in the clean text or counted under the reason it was left out. That is what lets the
pipeline's summary show that links found = mentions + skipped.

What becomes text: prose, bold/italic and other inline tags' contents, headings, list items,
the displayed text of links and external links, HTML entities, <nowiki> contents.
What is dropped: templates, <ref>, tables, galleries, math and other non-prose tags, comments,
files and categories, magic words. Whitespace is normalised while building (single spaces, at
most one blank line), so recorded offsets never need fixing up afterwards.

Category links ('[[Category:X|sort key]]', any localised name of the namespace) are collected
as the page's categories, wherever they sit in the wikitext. Categories that a transcluded
template adds (stub templates, infoboxes) are not in the page's own wikitext, so they are not
seen; nor do we tell <includeonly>/<noinclude> apart: both are rare in articles.
"""
import collections
import dataclasses
import re
from typing import List, NamedTuple, Optional, Tuple

import mwparserfromhell
from mwparserfromhell import nodes as mw_nodes

from mel.wikipedia import sentences
from mel.wikipedia import titles

# Tags whose contents are not prose (the link-skip reason is "in_<group>").
_DROPPED_TAGS = {
    "ref": "in_ref", "references": "in_ref",
    "table": "in_table",
    "gallery": "in_tag", "math": "in_tag", "chem": "in_tag", "ce": "in_tag", "score": "in_tag",
    "timeline": "in_tag", "imagemap": "in_tag", "graph": "in_tag", "mapframe": "in_tag",
    "maplink": "in_tag", "syntaxhighlight": "in_tag", "source": "in_tag", "pre": "in_tag",
    "templatedata": "in_tag", "hiero": "in_tag", "inputbox": "in_tag",
    "categorytree": "in_tag", "poem": None, "code": None, "style": "in_tag",
    "templatestyles": "in_tag", "indicator": "in_tag", "section": "in_tag",
    "noinclude": "in_tag", "onlyinclude": None, "includeonly": "in_tag",
}
_BREAK_TAGS = frozenset({"br", "p", "div", "li", "dt", "dd", "tr", "hr", "blockquote"})
_MAGIC_WORD_RE = re.compile(r"__[A-ZÀ-ÿ_]+__|__[^\W\d_]+__")
_QUOTES_RE = re.compile(r"'{2,}")
# Stray HTML tags that the parser left as text (an unclosed <div ...> opened by a template).
_HTML_TAG_RE = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
# Link trails ('[[apple]]s' shows 'apples'): letters right after the link join the anchor.
# Scripts written without spaces take no trail.
_TRAIL_RE = re.compile(r"^[^\W\d_]+")
_NO_TRAIL_LANGS = frozenset({"ja", "zh", "th", "lo", "km", "my", "bo", "wuu", "yue", "zh-yue",
                             "zh-classical", "lzh", "gan", "ko"})
_REDIRECT_RE = re.compile(r"^\s*#\s*REDIRECT\s*:?\s*\[\[([^\]|]+)", re.IGNORECASE)


class WikitextParseError(Exception):
  """mwparserfromhell could not parse the page (rare: deep nesting, recursion limits)."""


class LinkSpan(NamedTuple):
  """An article link in the clean text (a NamedTuple: pickled as cheaply as a tuple)."""
  start: int       # code point offsets of the anchor in ParsedPage.text
  end: int
  target: str      # normalized ns0 title (before redirects)
  raw_target: str  # as written


@dataclasses.dataclass(frozen=True)
class ParsedPage:
  text: str
  links: Tuple[LinkSpan, ...]
  description: str                 # first sentence of the first prose paragraph
  link_counts: Tuple[Tuple[str, int], ...]  # ("found", n), (skip reason, n), ...
  categories: Tuple[str, ...] = ()  # normalized category titles, sorted, unique


_WS_RUN_RE = re.compile(r"\s+")
# Inside a piece, whitespace needs rewriting unless it is all single plain spaces.
_NEEDS_WS_FIX_RE = re.compile(r"[^\S ]|  ")


def _normalise_ws(match) -> str:
  newlines = match.group(0).count("\n")
  return "\n\n" if newlines >= 2 else ("\n" if newlines else " ")


class _TextBuilder:
  """Appends text with whitespace normalised on the fly, tracking code point length."""

  def __init__(self):
    self.parts: List[str] = []
    self.length = 0
    self.pending_newlines = 0
    self.pending_space = False
    self.first_content: Optional[int] = None  # for spans: where the first content landed
    self.heading_starts: List[int] = []

  def _pending(self, ws: str):
    newlines = ws.count("\n")
    if newlines:
      self.pending_newlines = min(2, self.pending_newlines + newlines)
      self.pending_space = False
    elif not self.pending_newlines:
      self.pending_space = True

  def append(self, piece: str):
    core = piece.strip()
    if not core:
      if piece:
        self._pending(piece)
      return
    if piece[0].isspace():
      self._pending(piece[:len(piece) - len(piece.lstrip())])
    if self.length:
      if self.pending_newlines:
        self.parts.append("\n" * self.pending_newlines)
        self.length += self.pending_newlines
      elif self.pending_space:
        self.parts.append(" ")
        self.length += 1
    self.pending_newlines = 0
    self.pending_space = False
    if self.first_content is None:
      self.first_content = self.length
    if _NEEDS_WS_FIX_RE.search(core):
      core = _WS_RUN_RE.sub(_normalise_ws, core)
    self.parts.append(core)
    self.length += len(core)
    if piece[-1].isspace():
      self._pending(piece[len(piece.rstrip()):])

  def newline(self, count=1):
    self.pending_newlines = min(2, max(self.pending_newlines, count))
    self.pending_space = False

  def text(self) -> str:
    return "".join(self.parts)


class _Walker:
  """One pass over the parse tree; `reason` is None where text is kept, else why it is not."""

  def __init__(self, site: titles.SiteInfo):
    self.site = site
    self.out = _TextBuilder()
    self.links: List[LinkSpan] = []
    self.categories = set()
    self.counts = collections.Counter()
    self.trail = site.lang not in _NO_TRAIL_LANGS

  def walk(self, code, reason: Optional[str]):
    node_list = code.nodes
    skip_prefix = 0  # characters of the next Text node already used as a link trail
    for i, node in enumerate(node_list):
      if isinstance(node, mw_nodes.Text):
        value = node.value[skip_prefix:]
        skip_prefix = 0
        if reason is None and value:
          self.out.append(_clean_text(value))
      elif isinstance(node, mw_nodes.Wikilink):
        nxt = node_list[i + 1] if i + 1 < len(node_list) else None
        skip_prefix = self._link(node, nxt, reason)
      elif isinstance(node, mw_nodes.Template):
        self._dropped(node.name, "in_template")
        for param in node.params:
          self._dropped(param.value, "in_template")
      elif isinstance(node, mw_nodes.Tag):
        self._tag(node, reason)
      elif isinstance(node, mw_nodes.Heading):
        if reason is None:
          self.out.newline(2)
          self.out.heading_starts.append(
              self.out.length + (self.out.pending_newlines if self.out.length else 0))
        self.walk(node.title, reason)
        if reason is None:
          self.out.newline(2)
      elif isinstance(node, mw_nodes.ExternalLink):
        if node.title is not None:
          self.walk(node.title, reason)
      elif isinstance(node, mw_nodes.HTMLEntity):
        if reason is None:
          try:
            self.out.append(node.normalize())
          except (ValueError, OverflowError):
            self.out.append(str(node))
      elif isinstance(node, mw_nodes.Argument):
        self._dropped(node.name, "in_template")
        if node.default is not None:
          self._dropped(node.default, "in_template")
      # Comments and anything else: no text, no links.

  def _dropped(self, code, reason):
    """Walks a subtree whose text is dropped, to account for the links inside it."""
    if code is not None and "[[" in str(code):
      self.walk(code, reason)

  def _tag(self, node, reason):
    name = str(node.tag).strip().lower()
    for attribute in node.attributes:  # e.g. <ref name="[[X]]">: never displayed
      self._dropped(attribute.value, reason or "in_tag_attribute")
    if name in _DROPPED_TAGS and _DROPPED_TAGS[name] is not None:
      if node.contents is not None:
        self._dropped(node.contents, reason or _DROPPED_TAGS[name])
      return
    if name == "nowiki":
      if reason is None and node.contents is not None:
        self.out.append(str(node.contents))
      return
    if reason is None and name in _BREAK_TAGS:
      self.out.newline()
    if node.contents is not None and not node.self_closing:
      self.walk(node.contents, reason)
    if reason is None and name in _BREAK_TAGS and name not in ("li", "dt", "dd"):
      self.out.newline()

  def _link(self, node, next_node, reason) -> int:
    """Handles one wikilink; returns how many characters of next_node it used as trail."""
    self.counts["found"] += 1
    raw_target = str(node.title)
    kind, target = titles.classify_link(raw_target, self.site)
    if kind in (titles.FILE, titles.CATEGORY, titles.INTERLANGUAGE):
      self.counts[reason or kind] += 1
      if kind == titles.CATEGORY:
        category = titles.category_title(raw_target, self.site)
        if category:
          self.categories.add(category)
      if node.text is not None:  # file captions can hold links; account for them too
        self._dropped(node.text, reason or "in_file_caption")
      return 0
    if reason is not None:
      self.counts[reason] += 1
      if node.text is not None:
        self._dropped(node.text, reason)
      return 0
    # The link is displayed: its anchor text goes into the clean text.
    out = self.out
    out.first_content = None
    if node.text is not None:
      self.walk(node.text, None)
    else:
      out.append(_clean_text(raw_target.lstrip(":")))
    used = 0
    if self.trail and isinstance(next_node, mw_nodes.Text):
      m = _TRAIL_RE.match(next_node.value)
      if m and out.first_content is not None:
        used = m.end()
        out.parts.append(m.group(0))
        out.length += used
    start, end = out.first_content, out.length
    if kind != titles.ARTICLE:
      self.counts[kind] += 1
    elif start is None or start >= end:
      self.counts["empty_anchor"] += 1
    else:
      self.links.append(LinkSpan(start, end, target, raw_target))
    return used


def _clean_text(value: str) -> str:
  if "''" in value:
    value = _QUOTES_RE.sub("", value)
  if "__" in value:
    value = _MAGIC_WORD_RE.sub("", value)
  if "<" in value:
    value = _HTML_TAG_RE.sub("", value)
  return value


def redirect_target(text: str) -> str:
  """Target of a '#REDIRECT [[...]]' page text ('' if none); for dumps without <redirect>."""
  m = _REDIRECT_RE.match(text)
  return m.group(1).strip() if m else ""


def parse_page(wikitext: str, site: titles.SiteInfo) -> ParsedPage:
  """Clean text, article links with offsets, description, and link accounting of one page."""
  try:
    code = mwparserfromhell.parse(wikitext)
  except Exception as e:  # mwparserfromhell raises assorted errors on pathological input.
    raise WikitextParseError(f"{type(e).__name__}: {e}") from e
  walker = _Walker(site)
  try:
    walker.walk(code, None)
  except RecursionError as e:
    raise WikitextParseError(f"nesting too deep: {e}") from e
  text = walker.out.text()
  links = tuple(walker.links)
  if text:
    # A trail can run past a later rstrip; keep every span inside the text and non-empty.
    links = tuple(l for l in links if l.end <= len(text))
  return ParsedPage(text=text, links=links,
                    description=describe(text, walker.out.heading_starts, site.lang),
                    link_counts=tuple(sorted(walker.counts.items())),
                    categories=tuple(sorted(walker.categories)))


# A paragraph starting so is markup the parser could not place (an unclosed '{{Infobox'), not
# prose.
_MARKUP_LEFTOVERS = ("{{", "{|", "|", "!", "}}", "[[", "<")


def describe(text: str, heading_starts, lang: str) -> str:
  """First sentence of the first paragraph that is prose (not a heading, has letters)."""
  headings = set(heading_starts)
  pos = 0
  for paragraph in text.split("\n"):
    start = pos
    pos += len(paragraph) + 1
    if (start in headings or not any(ch.isalpha() for ch in paragraph) or
        paragraph.lstrip().startswith(_MARKUP_LEFTOVERS)):
      continue
    return sentences.first_sentence(paragraph, lang)
  return ""
