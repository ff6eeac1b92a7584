"""`mel link`: link text interactively, one text, or JSON lines in batch.

    mel link -i [--fast] [--lang en] [--model_dir DIR]       type text, see linked mentions
    mel link --text "..." --lang vi [--fast]                  one text
    mel link --input docs.jsonl [--output out.jsonl] [--lang en] [--fast]
    ... [--reranker CA_DIR [--rerank_top 5]]                  full mode reranked (+CA)

The model directory comes from --model_dir or $MEL_MODEL_DIR (see mel.linking.linker). Batch input is
one JSON object per line: {"text": ..., "lang": ... (else --lang), "title": ..., "spans":
[[start, end], ...], any other fields}; each output line is the input object plus "mentions"
(LinkedMention.to_dict(): start, end, text, entity_id (null = NIL), qid, score, description,
candidates, link_prob), or plus "error" for a line that could not be linked (bad JSON, malformed
language code, bad spans). Exit status: 0 ok, 1 if any line failed or the model cannot be loaded,
2 usage. In interactive mode, `:lang CODE` switches language, `:fast` / `:full` the mode,
`:reload` serves the knowledge base's newest generation (`mel kb`), `:quit` (or end of input)
leaves; it prints each mode's NIL threshold and where it came from first (the model's
nil.json, the default, or --threshold).

--reranker DIR (a model dir trained with model.kind CA) re-scores full mode's first
--rerank_top candidates per mention with the cross-attention reranker (mel.linking.linker):
the score is then its probability, sigmoid(logit), and NIL is below its threshold (the
model's nil.json "rerank", chosen by `mel evaluate --reranker DIR --nil_fraction F
--save_threshold`, else 0.5). --fast never reranks.

Languages: any well-formed code (a Wikipedia code such as en, zh-yue, simple, or a BCP-47 tag
such as gsw, pt-br) is linked; one outside the model's pretraining languages (the 104 mBERT
languages for wordpiece towers, XLM-R's 100 for e5 ones) is linked too, with one warning per
code on stderr ("mel link: warning: language 'gsw' is not one of ..."). A malformed --lang is a
usage error (exit 2).
"""
import json
import os
import sys
import warnings
from typing import Iterable, Iterator, List, Optional

from mel import flags
from mel.linking.inputs import UnseenLanguageWarning, check_language

TEXT_WIDTH = 100


def _shorten(text: Optional[str], width: int = TEXT_WIDTH) -> str:
  text = " ".join((text or "").split())
  return text if len(text) <= width else text[:width - 1] + "…"


def format_mentions(text: str, mentions, threshold: float) -> str:
  """The text with [mention](entity) marks, then one block per mention."""
  pieces, pos = [], 0
  for m in mentions:
    pieces.append(text[pos:m.start])
    pieces.append(f"[{m.text}]({'NIL' if m.is_nil else m.entity_id})")
    pos = m.end
  pieces.append(text[pos:])
  lines = ["  " + " ".join("".join(pieces).split())]
  if not mentions:
    lines.append("  (no mentions found)")
  for n, m in enumerate(mentions, 1):
    lp = "" if m.link_prob is None else f", link prob {m.link_prob:.2f}"
    if m.is_nil:
      best = m.candidates[0] if m.candidates else None
      why = (f"best {best.entity_id} score {m.score:.2f} < threshold {threshold:.2f}"
             if best else "no candidates")
      lines.append(f"  {n}. {m.text} [{m.start}:{m.end}] -> NIL ({why}{lp})")
    else:
      top = m.candidates[0]
      qid = f" {m.qid}" if m.qid and m.qid != m.entity_id else ""
      ca = "" if top.rerank is None else f", full-mode score {top.score:.2f}"
      lines.append(f"  {n}. {m.text} [{m.start}:{m.end}] -> {m.entity_id}{qid}  score "
                   f"{m.score:.2f} (cosine {top.cosine:.2f}, prior {top.prior:.2f}{ca}{lp})")
      lines.append(f"       {_shorten(m.description)}")
    others = m.candidates[0 if m.is_nil else 1:]
    if others:
      lines.append("       candidates: " + " | ".join(
          f"{c.entity_id} {c.score if c.rerank is None else c.rerank:.2f}" for c in others))
  return "\n".join(lines)


def _load(args):
  from mel.linking import linker
  options = {k: v for k, v in (("min_link_prob", args.min_link_prob),
                                ("min_linked", args.min_linked)) if v is not None}
  if args.threshold is not None:
    options["threshold"] = args.threshold
  return linker.load(args.model_dir, index=args.index, reranker=args.reranker or None,
                     rerank_top=args.rerank_top, **options)


def interactive(lk, lang: str, fast: bool, top_k: int, title: str) -> int:
  lang = check_language(lang, lk.languages)
  print(f"mel link: {lk.model_dir} ({'fast' if fast else 'full'} mode, language {lang}). Type "
        f"text; :lang CODE, :fast, :full, :reload, :quit.", file=sys.stderr)
  print(f"mel link: NIL below score {lk.thresholds['full']:.3f} in full mode, cosine "
        f"{lk.thresholds['fast']:.3f} in fast mode ({lk.threshold_source})", file=sys.stderr)
  if "rerank" in lk.thresholds:
    print(f"mel link: full mode reranks its top {lk.rerank_top} with the reranker: NIL below "
          f"probability {lk.thresholds['rerank']:.3f}", file=sys.stderr)
  if lk.kb_generation:
    print(f"mel link: knowledge base generation {lk.kb_generation} (`mel kb`); :reload serves "
          "a newer one", file=sys.stderr)
  while True:
    sys.stderr.write(f"{lang}> ")
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
      sys.stderr.write("\n")
      return 0
    text = line.rstrip("\n")
    command = text.strip()
    if command in (":q", ":quit", ":exit"):
      return 0
    if command == ":reload":
      try:
        changed = lk.reload()
      except ValueError as e:
        print(f"  {e}", file=sys.stderr)
        continue
      print(f"  knowledge base generation {lk.kb_generation}"
            + ("" if changed else " (unchanged)"), file=sys.stderr)
      continue
    if command in (":fast", ":full"):
      fast = command == ":fast"
      print(f"  {'fast' if fast else 'full'} mode", file=sys.stderr)
      continue
    if command.startswith(":lang"):
      try:
        lang = check_language(command[len(":lang"):].strip(), lk.languages)
      except ValueError as e:
        print(f"  {e}", file=sys.stderr)
      continue
    if not command:
      continue
    try:
      mentions = lk.link(text, lang, top_k=top_k, fast=fast, title=title)
    except ValueError as e:
      print(f"  error: {e}", file=sys.stderr)
      continue
    print(format_mentions(text, mentions, lk.thresholds[lk.mode(fast)]),
          flush=True)


def batch(lk, input_path: str, output_path: str, lang: str, fast: bool, top_k: int,
          progress: bool) -> int:
  """JSON lines in, JSON lines out; returns the number of failed lines."""
  from tqdm import tqdm

  from mel.linking import linker
  total = None
  if input_path != "-":
    with open(input_path, "rb") as f:
      total = sum(1 for _ in f)
    source = open(input_path, encoding="utf-8")
  else:
    source = sys.stdin

  def documents():
    for n, line in enumerate(source, 1):
      if not line.strip():
        continue
      try:
        doc = json.loads(line)
      except ValueError as e:
        doc = {"line": n, "error_input": line.rstrip("\n")[:200], "__bad__": f"line {n}: not "
               f"JSON ({e})"}
      yield doc

  failed = linked = nil = 0
  tmp = None
  if output_path == "-":
    sink = sys.stdout
  else:
    tmp = f"{output_path}.tmp-{os.getpid()}"
    sink = open(tmp, "w", encoding="utf-8")
  try:
    with tqdm(total=total, unit="doc", desc="linking", disable=not progress,
              file=sys.stderr) as bar:
      for doc in documents():
        if "__bad__" in doc:
          out = {k: v for k, v in doc.items() if k != "__bad__"}
          out["error"] = doc["__bad__"]
        else:
          out = next(iter_documents(lk, [doc], default_lang=lang, top_k=top_k,
                                            fast=fast))
        if "error" in out:
          failed += 1
        else:
          linked += sum(m["entity_id"] is not None for m in out["mentions"])
          nil += sum(m["entity_id"] is None for m in out["mentions"])
        sink.write(json.dumps(out, ensure_ascii=False) + "\n")
        bar.update(1)
        bar.set_postfix(linked=linked, nil=nil, failed=failed, refresh=False)
    if tmp:
      sink.close()
      os.replace(tmp, output_path)
  finally:
    if tmp and not sink.closed:
      sink.close()
    if tmp and os.path.exists(tmp):
      os.remove(tmp)
    if source is not sys.stdin:
      source.close()
  print(f"[mel link] {linked} mentions linked, {nil} NIL, {failed} lines failed"
        + ("" if output_path == "-" else f"; wrote {output_path}"), file=sys.stderr)
  return failed


def iter_documents(linker, documents: Iterable[dict], *, default_lang: str = "",
                   top_k: int, fast: bool = False) -> Iterator[dict]:
  """{"text", "lang", "title"?, "spans"?, ...} -> the same dict + "mentions" (or "error")."""
  for doc in documents:
    out = dict(doc) if isinstance(doc, dict) else {"input": doc}
    try:
      if not isinstance(doc, dict) or "text" not in doc:
        raise ValueError('each document must be a JSON object with a "text" field')
      lang = doc.get("lang") or default_lang
      if not lang:
        raise ValueError('no "lang" field and no default language (--lang)')
      mentions = linker.link(doc["text"], lang, spans=doc.get("spans"), top_k=top_k,
                             fast=fast, title=doc.get("title") or "")
      out["mentions"] = [m.to_dict() for m in mentions]
    except (TypeError, ValueError) as e:
      out["error"] = str(e)
    yield out


def main(argv: Optional[List[str]] = None, prog: str = "mel link") -> int:
  p = flags.parser(prog, __doc__)
  mode = p.add_mutually_exclusive_group(required=True)
  mode.add_argument("-i", "--interactive", action="store_true", help="type text, see links")
  mode.add_argument("--input", help="JSON lines to link ('-': stdin)")
  mode.add_argument("--text", help="one text to link")
  flags.output(p, required=False, default="-", help="JSON lines out (default: stdout)")
  p.add_argument("--lang", default="", help="language code (default for --input lines "
                 "without one; required for -i and --text)")
  p.add_argument("--fast", action="store_true",
                 help="index search only (no wider search, no anchor prior)")
  flags.top_k(p, 3, help="candidates per mention (default 3)")
  p.add_argument("--threshold", type=float, default=None,
                 help="NIL when the best candidate's score (fast: its cosine) is below this "
                 "(default: the mode's threshold in the model's nil.json, chosen by `mel "
                 "evaluate --nil_fraction F --save_threshold`; without one "
                 "mel.linking.linker.DEFAULT_THRESHOLD)")
  p.add_argument("--min_link_prob", type=float, default=None,
                 help="spot dictionary forms linked at least this often when they occur "
                 "(default: mel.linking.spotter.DEFAULT_MIN_LINK_PROB)")
  p.add_argument("--min_linked", type=int, default=None,
                 help="spot forms with at least this many training anchors "
                 "(default: mel.linking.spotter.DEFAULT_MIN_LINKED)")
  p.add_argument("--title", default="", help="document title given to the mention encoder")
  flags.model_dir(p, required=False, default=None,
                  help="model directory (default: $MEL_MODEL_DIR)")
  p.add_argument("--index", default=None, help="index directory (default: MODEL_DIR/index)")
  p.add_argument("--reranker", default="",
                 help="a cross-attention reranker's model dir (model.kind CA): full mode "
                 "re-scores its top --rerank_top candidates with it")
  p.add_argument("--rerank_top", type=int, default=5,
                 help="candidates per mention the reranker re-scores (default 5)")
  flags.no_progress(p)
  try:
    args = p.parse_args(argv)
    flags.require_positive(p, args, "top_k", "rerank_top")
  except SystemExit as e:
    return int(e.code or 0)
  if (args.interactive or args.text is not None) and not args.lang:
    print("mel link: --lang is required with -i and --text", file=sys.stderr)
    return 2
  if args.lang:
    try:
      check_language(args.lang)
    except ValueError as e:
      print(f"mel link: {e}", file=sys.stderr)
      return 2
  if args.input and args.input != "-" and not os.path.exists(args.input):
    print(f"mel link: {args.input}: no such file", file=sys.stderr)
    return 1
  with warnings.catch_warnings():
    warnings.simplefilter("always", UnseenLanguageWarning)   # check_language warns once a code
    shown = warnings.showwarning

    def show(message, category, *rest, **kwargs):
      if issubclass(category, UnseenLanguageWarning):
        print(f"mel link: warning: {message}", file=sys.stderr, flush=True)
      else:
        shown(message, category, *rest, **kwargs)
    warnings.showwarning = show
    return _run(args)


def _run(args) -> int:
  try:
    lk = _load(args)
  except (OSError, ValueError) as e:
    print(f"mel link: cannot load the model: {e}", file=sys.stderr)
    return 1
  if args.lang:
    check_language(args.lang, lk.languages)   # the warning for a code outside them, up front
  if args.interactive:
    return interactive(lk, args.lang, args.fast, args.top_k, args.title)
  if args.text is not None:
    try:
      mentions = lk.link(args.text, args.lang, top_k=args.top_k, fast=args.fast,
                         title=args.title)
    except ValueError as e:
      print(f"mel link: {e}", file=sys.stderr)
      return 1
    print(format_mentions(args.text, mentions,
                          lk.thresholds[lk.mode(args.fast)]))
    return 0
  failed = batch(lk, args.input, args.output, args.lang, args.fast, args.top_k,
                 not args.no_progress)
  return 1 if failed else 0

