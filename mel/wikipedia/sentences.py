"""The first sentence of a paragraph, with language-aware sentence ends.

The paper uses a page's first sentence as the entity description (Sec. 2.1). Ends:
- marks that always end a sentence: '。' '！' '？' (CJK), '।' '॥' (Devanagari, Bengali), '۔' (Urdu),
  '؟' (Arabic), '։' (Armenian), '።' (Ethiopic), '။' (Burmese), '᙮' (Canadian syllabics);
- '.', '!', '?' (and in Greek ';', the question mark, which NFC-normalised dumps store as
  U+003B) only when followed by a space or the end, outside brackets, and not after an
  abbreviation or an initial ('J. R. R. Tolkien', 'Дж. Пуччіні', 'पां.वा. काणे', 'St. Louis',
  'TP. Hồ Chí Minh') or before a lower-case letter;
- never before the first letter: a leading '॥' or a list number '१.' ends no sentence.
"""
import re
import unicodedata

ALWAYS_END = "。！？।॥۔؟։።။᙮"
SPACED_END = ".!?\u037e"
_OPEN = "([{（「『【《〈"
_CLOSE = ")]}）」』】》〉"
_CLOSING_QUOTES = "\"'»”’」』)）"

# Words after which '.' does not end a sentence (lower-cased, without the dot).
ABBREVIATIONS = frozenset("""
mr mrs ms dr prof st sr jr mt ft no nos vs etc ca cf al gen col lt sgt capt cmdr adm gov pres
rev hon inc ltd co corp bros dept univ jan feb mar apr jun jul aug sep sept oct nov dec approx
est fig vol pp op ed eds trans b d r c ph e.g i.e u.s u.k
tp tt q h tx
г гг им св т ст ул д с р н э ок см пр проф акад ім вул м дж
κ π μ.χ π.χ αγ τζ
डॉ श्री सौ कु प्रा कै ए बी सी डी ई एफ जी एच आय आई जे के एल एम एन ओ पी क्यू आर एस टी यू व्ही वी
डब्ल्यू एक्स वाय झेड
ডঃ ড এ বি সি ডি ই এফ জি এইচ আই জে কে এল এম এন ও পি কিউ আর এস টি ইউ ভি ডব্লিউ এক্স ওয়াই জেড
""".split())
# Languages whose one-letter words are common at a sentence end ('Đông Nam Á.'), so a single
# letter before '.' is not taken for an initial.
NO_INITIALS_LANGUAGES = frozenset({"vi"})

# Languages that write ordinal numbers with a dot ('1. Januar'): a number before '.' never ends.
ORDINAL_DOT_LANGUAGES = frozenset(
    "de da no nb nn fi et is cs sk sl hr sr bs sh hu pl lv lt tr eu fo".split())

_WORD_BEFORE_RE = re.compile(r"([^\s.()\[\]]+(?:\.[^\s.()\[\]]+)*)$")


def first_sentence(paragraph: str, lang: str = "") -> str:
  """The first sentence of `paragraph` (stripped); the whole paragraph if no end is found."""
  text = paragraph.strip()
  depth = 0
  n = len(text)
  seen_letter = False
  spaced_end = SPACED_END + (";" if lang == "el" else "")
  for i, ch in enumerate(text):
    if ch.isalpha():
      seen_letter = True
    elif ch in _OPEN:
      depth += 1
    elif ch in _CLOSE:
      depth = max(0, depth - 1)
    elif not seen_letter:
      continue
    elif ch in ALWAYS_END and depth == 0:
      return _with_closing_quotes(text, i)
    elif ch in spaced_end and depth == 0:
      if i + 1 < n and not text[i + 1].isspace() and text[i + 1] not in _CLOSING_QUOTES:
        continue
      if ch == "." and not _dot_ends_sentence(text, i, lang):
        continue
      return _with_closing_quotes(text, i)
  return text


def _with_closing_quotes(text, i):
  j = i + 1
  while j < len(text) and text[j] in _CLOSING_QUOTES and text[j] not in ")）":
    j += 1
  return text[:j].strip()


def _is_initial(word: str, lang: str) -> bool:
  """One letter ('J'), or one letter with combining marks (Devanagari 'वि', 'पां')."""
  if lang in NO_INITIALS_LANGUAGES:
    return False
  letters = sum(1 for ch in word if ch.isalpha())
  marks = sum(1 for ch in word if unicodedata.category(ch).startswith("M"))
  return letters == 1 and letters + marks == len(word)


def _dot_ends_sentence(text, i, lang):
  match = _WORD_BEFORE_RE.search(text[:i])
  word = match.group(1) if match else ""
  if word:
    if _is_initial(word, lang):
      return False
    if word.lower() in ABBREVIATIONS or word.lower().rstrip(".") in ABBREVIATIONS:
      return False
    parts = word.split(".")
    if len(parts) > 1 and all(0 < len(p) <= 3 and not any(c.isdigit() or c == "%" for c in p)
                              for p in parts):
      return False  # 'U.S', 'e.g', 'पां.वा', 'जे.आर.डी'; not '6.5%'
    if lang in ORDINAL_DOT_LANGUAGES and word.isdigit() and len(word) <= 2:
      return False  # '1. Januar', '19. Jahrhundert'; a year ('1943.') does end a sentence
  rest = text[i + 1:].lstrip()
  if rest and rest[0].islower():
    return False
  return True
