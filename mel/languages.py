"""Language tables: the pretraining languages of mel's encoders, Wikipedia codes, dump names.

Source of MBERT_LANGUAGES: google-research/bert `multilingual.md`, "List of Languages" (102
entries, Chinese counted twice as Simplified and Traditional) plus Thai and Mongolian, which the
Multilingual Cased release added. Codes are Wikipedia subdomains, so 104 entries name 103 wikis.

Source of XLMR_LANGUAGES (multilingual-e5's XLM-R encoder, pretrained on CC-100): Conneau et
al. (2020), *Unsupervised Cross-lingual Representation Learning at Scale*, Table 6, the same
list as the XLM-R model card (fairseq `examples/xlmr/README.md`): 100 entries, of which five
are romanised variants (Bengali, Hindi, Tamil, Telugu, Urdu), one Burmese in the Zawgyi font and
Chinese counted twice, so 100 entries name 93 Wikipedia codes.

These lists say what the encoders were pretrained on, not what they can read: both vocabularies
tokenize text of other languages too (mel.linking.inputs.check_language accepts any code and
warns outside the list).
"""
import re

# (language name as in multilingual.md, Wikipedia code)
MBERT_LANGUAGES = (
    ("Afrikaans", "af"), ("Albanian", "sq"), ("Arabic", "ar"), ("Aragonese", "an"),
    ("Armenian", "hy"), ("Asturian", "ast"), ("Azerbaijani", "az"), ("Bashkir", "ba"),
    ("Basque", "eu"), ("Bavarian", "bar"), ("Belarusian", "be"), ("Bengali", "bn"),
    ("Bishnupriya Manipuri", "bpy"), ("Bosnian", "bs"), ("Breton", "br"), ("Bulgarian", "bg"),
    ("Burmese", "my"), ("Catalan", "ca"), ("Cebuano", "ceb"), ("Chechen", "ce"),
    ("Chinese (Simplified)", "zh"), ("Chinese (Traditional)", "zh"), ("Chuvash", "cv"),
    ("Croatian", "hr"), ("Czech", "cs"), ("Danish", "da"), ("Dutch", "nl"), ("English", "en"),
    ("Estonian", "et"), ("Finnish", "fi"), ("French", "fr"), ("Galician", "gl"),
    ("Georgian", "ka"), ("German", "de"), ("Greek", "el"), ("Gujarati", "gu"),
    ("Haitian", "ht"), ("Hebrew", "he"), ("Hindi", "hi"), ("Hungarian", "hu"),
    ("Icelandic", "is"), ("Ido", "io"), ("Indonesian", "id"), ("Irish", "ga"),
    ("Italian", "it"), ("Japanese", "ja"), ("Javanese", "jv"), ("Kannada", "kn"),
    ("Kazakh", "kk"), ("Kirghiz", "ky"), ("Korean", "ko"), ("Latin", "la"), ("Latvian", "lv"),
    ("Lithuanian", "lt"), ("Lombard", "lmo"), ("Low Saxon", "nds"), ("Luxembourgish", "lb"),
    ("Macedonian", "mk"), ("Malagasy", "mg"), ("Malay", "ms"), ("Malayalam", "ml"),
    ("Marathi", "mr"), ("Minangkabau", "min"), ("Nepali", "ne"), ("Newar", "new"),
    ("Norwegian (Bokmal)", "no"), ("Norwegian (Nynorsk)", "nn"), ("Occitan", "oc"),
    ("Persian (Farsi)", "fa"), ("Piedmontese", "pms"), ("Polish", "pl"), ("Portuguese", "pt"),
    ("Punjabi", "pa"), ("Romanian", "ro"), ("Russian", "ru"), ("Scots", "sco"),
    ("Serbian", "sr"), ("Serbo-Croatian", "sh"), ("Sicilian", "scn"), ("Slovak", "sk"),
    ("Slovenian", "sl"), ("South Azerbaijani", "azb"), ("Spanish", "es"), ("Sundanese", "su"),
    ("Swahili", "sw"), ("Swedish", "sv"), ("Tagalog", "tl"), ("Tajik", "tg"), ("Tamil", "ta"),
    ("Tatar", "tt"), ("Telugu", "te"), ("Turkish", "tr"), ("Ukrainian", "uk"), ("Urdu", "ur"),
    ("Uzbek", "uz"), ("Vietnamese", "vi"), ("Volapük", "vo"), ("Waray-Waray", "war"),
    ("Welsh", "cy"), ("West Frisian", "fy"), ("Western Punjabi", "pnb"), ("Yoruba", "yo"),
    # Added by the Multilingual Cased release.
    ("Thai", "th"), ("Mongolian", "mn"),
)

MBERT_LANGUAGE_CODES = frozenset(code for _, code in MBERT_LANGUAGES)

# (language name as in Conneau et al. 2020, Table 6 / the XLM-R model card, Wikipedia code)
XLMR_LANGUAGES = (
    ("Afrikaans", "af"), ("Albanian", "sq"), ("Amharic", "am"), ("Arabic", "ar"),
    ("Armenian", "hy"), ("Assamese", "as"), ("Azerbaijani", "az"), ("Basque", "eu"),
    ("Belarusian", "be"), ("Bengali", "bn"), ("Bengali Romanize", "bn"), ("Bosnian", "bs"),
    ("Breton", "br"), ("Bulgarian", "bg"), ("Burmese", "my"), ("Burmese zawgyi font", "my"),
    ("Catalan", "ca"), ("Chinese (Simplified)", "zh"), ("Chinese (Traditional)", "zh"),
    ("Croatian", "hr"), ("Czech", "cs"), ("Danish", "da"), ("Dutch", "nl"), ("English", "en"),
    ("Esperanto", "eo"), ("Estonian", "et"), ("Filipino", "tl"), ("Finnish", "fi"),
    ("French", "fr"), ("Galician", "gl"), ("Georgian", "ka"), ("German", "de"),
    ("Greek", "el"), ("Gujarati", "gu"), ("Hausa", "ha"), ("Hebrew", "he"), ("Hindi", "hi"),
    ("Hindi Romanize", "hi"), ("Hungarian", "hu"), ("Icelandic", "is"), ("Indonesian", "id"),
    ("Irish", "ga"), ("Italian", "it"), ("Japanese", "ja"), ("Javanese", "jv"),
    ("Kannada", "kn"), ("Kazakh", "kk"), ("Khmer", "km"), ("Korean", "ko"),
    ("Kurdish (Kurmanji)", "ku"), ("Kyrgyz", "ky"), ("Lao", "lo"), ("Latin", "la"),
    ("Latvian", "lv"), ("Lithuanian", "lt"), ("Macedonian", "mk"), ("Malagasy", "mg"),
    ("Malay", "ms"), ("Malayalam", "ml"), ("Marathi", "mr"), ("Mongolian", "mn"),
    ("Nepali", "ne"), ("Norwegian", "no"), ("Oriya", "or"), ("Oromo", "om"), ("Pashto", "ps"),
    ("Persian", "fa"), ("Polish", "pl"), ("Portuguese", "pt"), ("Punjabi", "pa"),
    ("Romanian", "ro"), ("Russian", "ru"), ("Sanskrit", "sa"), ("Scottish Gaelic", "gd"),
    ("Serbian", "sr"), ("Sindhi", "sd"), ("Sinhala", "si"), ("Slovak", "sk"),
    ("Slovenian", "sl"), ("Somali", "so"), ("Spanish", "es"), ("Sundanese", "su"),
    ("Swahili", "sw"), ("Swedish", "sv"), ("Tamil", "ta"), ("Tamil Romanize", "ta"),
    ("Telugu", "te"), ("Telugu Romanize", "te"), ("Thai", "th"), ("Turkish", "tr"),
    ("Ukrainian", "uk"), ("Urdu", "ur"), ("Urdu Romanize", "ur"), ("Uyghur", "ug"),
    ("Uzbek", "uz"), ("Vietnamese", "vi"), ("Welsh", "cy"), ("Western Frisian", "fy"),
    ("Xhosa", "xh"), ("Yiddish", "yi"),
)

XLMR_LANGUAGE_CODES = frozenset(code for _, code in XLMR_LANGUAGES)

# The export manifest's "tokenizer" (absent: "wordpiece") -> the encoder's pretraining languages.
TOKENIZERS = ("wordpiece", "e5")


def pretraining_languages(tokenizer: str) -> frozenset:
  """The Wikipedia codes of the languages a tokenizer's encoder was pretrained on:
  "wordpiece" (mBERT-style towers) -> MBERT_LANGUAGE_CODES, "e5" (multilingual-e5, XLM-R)
  -> XLMR_LANGUAGE_CODES; ValueError for any other tokenizer."""
  if tokenizer == "wordpiece":
    return MBERT_LANGUAGE_CODES
  if tokenizer == "e5":
    return XLMR_LANGUAGE_CODES
  raise ValueError(f"unknown tokenizer {tokenizer!r}: expected one of {', '.join(TOKENIZERS)}")

# Language codes of Wikipedia editions (subdomains), used to recognise interlanguage links such
# as [[fr:Paris]]. Includes closed and renamed editions that still appear in old wikitext.
WIKIPEDIA_LANGUAGE_CODES = frozenset("""
aa ab ace ady af ak als alt am ami an ang anp ar arc ary arz as ast atj av avk awa ay az azb ba
ban bar bat-smg bcl be be-tarask be-x-old bg bh bi bjn blk bm bn bo bpy br bs bug bxr ca cbk-zam
cdo ce ceb ch cho chr chy ckb co cr crh cs csb cu cv cy da dag de din diq dsb dty dv dz ee el eml
en eo es et eu ext fa fat ff fi fiu-vro fj fo fr frp frr fur fy ga gag gan gcr gd gl glk gn gom
gor got gpe gu guc gur guw gv ha hak haw he hi hif ho hr hsb ht hu hy hyw hz ia id ie ig ii ik
ilo inh io is it iu ja jam jbo jv ka kaa kab kbd kbp kcg kg ki kj kk kl km kn ko koi kr krc ks
ksh ku kv kw ky la lad lb lbe lez lfn lg li lij lld lmo ln lo lrc lt ltg lv lzh mad mai map-bms
mdf mg mh mhr mi min mk ml mn mni mnw mr mrj ms mt mus mwl my myv mzn na nah nan nap nb nds
nds-nl ne new ng nia nl nn no nov nqo nrm nso nv ny oc olo om or os pa pag pam pap pcd pcm pdc
pfl pi pih pl pms pnb pnt ps pt pwn qu rm rmy rn ro roa-rup roa-tara ru rue rup rw sa sah sat sc
scn sco sd se sg sgs sh shi shn si simple sk skr sl sm smn sn so sq sr srn ss st stq su sv sw szl
szy ta tay tcy te tet tg th ti tk tl tly tn to tpi tr trv ts tt tum tw ty tyv udm ug uk ur uz ve
vec vep vi vls vo vro wa war wo wuu xal xh xmf yi yo yue za zea zh zh-classical zh-min-nan
zh-yue zu
""".split())

# Wiki database names that are not "<code>wiki" with underscores for hyphens.
_DBNAME_LANGUAGE_EXCEPTIONS = {"be_x_old": "be-tarask"}

# Project suffixes of Wikimedia database names, longest first so "wikinews" wins over "wiki".
_PROJECT_SUFFIXES = ("wiktionary", "wikiquote", "wikisource", "wikibooks", "wikinews",
                     "wikiversity", "wikivoyage", "wiki")

# Sites ending in "wiki" that are not a language edition of Wikipedia.
NON_WIKIPEDIA_SITES = frozenset({
    "commonswiki", "specieswiki", "metawiki", "mediawikiwiki", "wikidatawiki", "sourceswiki",
    "incubatorwiki", "outreachwiki", "wikimaniawiki", "foundationwiki", "wikifunctionswiki",
    "testwiki", "test2wiki", "testwikidatawiki", "strategywiki", "usabilitywiki", "otrs_wikiwiki",
    "betawikiversity", "nostalgiawiki", "tenwiki", "advisorywiki", "wikimania2005wiki",
})

_DBNAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

# A language code as Mention.lang holds it (a Wikipedia subdomain: "bn", "zh-yue", "simple").
LANGUAGE_CODE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def dbname_to_language(dbname: str) -> str:
  """'ukwiki' -> 'uk', 'zh_yuewiki' -> 'zh-yue', 'enwikinews' -> 'en'.

  Raises ValueError for names that are not a Wikimedia project database name.
  """
  if not _DBNAME_RE.match(dbname or ""):
    raise ValueError(f"not a Wikimedia database name: {dbname!r}")
  for suffix in _PROJECT_SUFFIXES:
    if dbname.endswith(suffix) and len(dbname) > len(suffix):
      base = dbname[:-len(suffix)]
      return _DBNAME_LANGUAGE_EXCEPTIONS.get(base, base.replace("_", "-"))
  raise ValueError(f"not a Wikimedia database name: {dbname!r}")


def is_wikipedia_site(site: str) -> bool:
  """True for WikiData sitelink keys of Wikipedia language editions ('enwiki', 'zh_yuewiki')."""
  return (site.endswith("wiki") and site not in NON_WIKIPEDIA_SITES and
          bool(_DBNAME_RE.match(site)) and len(site) > 4)
