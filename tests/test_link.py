"""mel.link / Linker: results, NIL, fast vs full, bad input, long text; the trained mini model
end to end, the `mel link` command, and gs:// model directories (gcp-storage-emulator)."""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from mel import languages
from mel.linking import cli, dictionary as dic, inputs, linker as L
from mel.retrieval.kb import EntityTexts
from mel.retrieval import BruteForceIndex

DIM = 8
ENTITIES = {"E:paris": "capital of France", "E:paris_tx": "city in Texas",
            "Q64": "capital of Germany", "E:kyiv": "capital of Ukraine",
            "E:tokyo": "capital of Japan"}


def _unit(v):
  v = np.asarray(v, np.float32)
  return v / np.linalg.norm(v)


class FakeEncoder:
  """Mention vectors by mention text (lower-cased); unknown text -> a far-away direction."""

  def __init__(self, vectors):
    self.vectors, self.calls = vectors, []

  def __call__(self, titles, lefts, mentions, rights):
    self.calls.append(len(mentions))
    assert len(titles) == len(lefts) == len(rights) == len(mentions)
    return np.stack([self.vectors.get(m.lower(), _unit(-np.ones(DIM))) for m in mentions])


@pytest.fixture
def fake(tmp_path):
  ids = sorted(ENTITIES)
  basis = {e: np.eye(DIM, dtype=np.float32)[i] for i, e in enumerate(ids)}
  table = tmp_path / "entities.tsv"
  table.write_text("".join(f"{e}\t{ENTITIES[e]}\n" for e in ids), encoding="utf-8")
  # index rows in another order than the table's (as a streamed ScaNN build gives)
  order = ids[::-1]
  index = BruteForceIndex.build(order, np.stack([basis[e] for e in order]))
  entities = EntityTexts(str(table), index.ids)
  dictionary = dic.SurfaceDictionary({
      "en": {"paris": dic.FormStats("paris", 30, 60, (("E:paris_tx", 27), ("E:paris", 3))),
             "berlin": dic.FormStats("berlin", 9, 10, (("Q64", 9),)),
             "tokyo": dic.FormStats("tokyo", 9, 10, (("E:tokyo", 9),))},
      "uk": {"київ": dic.FormStats("київ", 9, 10, (("E:kyiv", 9),))}})
  # "paris": the tower prefers E:paris (cosine 0.78), the anchors E:paris_tx (cosine 0.62,
  # prior 0.9); "tokyo": the tower prefers E:kyiv (0.86), the anchors E:tokyo (0.51, prior 1)
  mention_vectors = {"paris": _unit(basis["E:paris"] + 0.8 * basis["E:paris_tx"]),
                     "berlin": basis["Q64"], "київ": basis["E:kyiv"],
                     "tokyo": _unit(basis["E:kyiv"] + 0.6 * basis["E:tokyo"])}
  encoder = FakeEncoder(mention_vectors)

  def entity_encoder(inputs):
    entity_encoder.calls.append(list(inputs))
    by_text = {ENTITIES[e]: basis[e] for e in ids}
    return np.stack([by_text[t] for t in inputs])
  entity_encoder.calls = []
  linker = L.Linker(encoder, index, entities, dictionary, entity_encoder=entity_encoder,
                    threshold=0.5, prior_weight=0.5, min_link_prob=0.1, min_linked=2)
  return linker, basis


def test_links_spotted_mentions_with_offsets_ids_and_descriptions(fake):
  linker, _ = fake
  text = "From Berlin to PARIS."
  out = linker.link(text, "en", fast=True, top_k=2)
  assert [(m.start, m.end, m.text) for m in out] == [(5, 11, "Berlin"), (15, 20, "PARIS")]
  berlin = out[0]
  assert (berlin.entity_id, berlin.qid, berlin.description) == ("Q64", "Q64",
                                                                 "capital of Germany")
  assert berlin.score == pytest.approx(1.0, abs=1e-5) and berlin.link_prob == pytest.approx(0.9)
  assert len(berlin.candidates) == 2 and berlin.candidates[0].score >= berlin.candidates[1].score
  assert out[1].entity_id == "E:paris" and out[1].qid == ""
  json.dumps([m.to_dict() for m in out])   # JSON-serialisable


def test_link_many_answers_each_request_as_link_does_in_shared_encoder_calls(fake):
  linker, _ = fake
  calls = [("From Berlin to PARIS.", "en", {}), ("Tokyo and Paris", "en", {"fast": True}),
           ("Київ", "uk", {"top_k": 1}), ("nothing here", "en", {}),
           ("From Berlin to PARIS.", "en", {"spans": [(15, 20)], "threshold": 2.0}),
           ("Paris", "en", {"fast": True, "top_k": 2})]
  one_by_one = [linker.link(text, lang, **options) for text, lang, options in calls]
  linker.encoder.calls.clear()
  many = linker.link_many([linker.request(text, lang, **options)
                           for text, lang, options in calls])
  assert many == one_by_one
  assert many[4][0].is_nil and many[3] == []
  # one encoder call per (mode, search depth): full (4 mentions of 4 documents), fast top 5,
  # fast top 2
  assert sorted(linker.encoder.calls) == [1, 2, 4]
  linker.max_batch = 2
  linker.encoder.calls.clear()
  assert linker.link_many([linker.request(t, l, **o) for t, l, o in calls]) == one_by_one
  assert max(linker.encoder.calls) == 2


def test_request_checks_before_any_work(fake):
  linker, _ = fake
  with pytest.raises(ValueError, match="invalid language"):
    linker.request("Paris", "en us!")
  with pytest.raises(ValueError, match="span 0"):
    linker.request("Paris", "en", spans=[(0, 9)])
  with pytest.raises(TypeError, match="text must be str"):
    linker.request(b"Paris", "en")
  assert linker.encoder.calls == []


def test_full_mode_reranks_with_the_anchor_prior(fake):
  linker, _ = fake
  fast = linker.link("Paris", "en", fast=True)[0]
  full = linker.link("Paris", "en")[0]
  assert fast.entity_id == "E:paris" and fast.candidates[0].prior == 0.0
  assert full.entity_id == "E:paris_tx"
  top = full.candidates[0]
  assert top.prior == pytest.approx(0.9) and top.score == pytest.approx(top.cosine + 0.5 * 0.9)


def test_full_mode_scores_prior_entities_the_search_missed(fake, monkeypatch):
  linker, basis = fake
  monkeypatch.setattr(L, "FULL_CANDIDATES", 1)
  # "tokyo": the tower's nearest entity is E:kyiv; E:tokyo (prior 1.0) is not retrieved at k=1
  out = linker.link("Tokyo", "en", top_k=1)[0]
  assert out.entity_id == "E:tokyo"
  assert out.candidates[0].cosine == pytest.approx(
      float(linker.encoder.vectors["tokyo"] @ basis["E:tokyo"]), abs=1e-5)
  assert linker.entity_encoder.calls == [["capital of Japan"]]
  linker.link("Tokyo", "en", top_k=1)
  assert len(linker.entity_encoder.calls) == 1   # memoised


def test_full_mode_prior_backs_off_to_all_languages(fake):
  linker, _ = fake
  # uk never saw "paris" (its table holds only "київ"): the prior is en's, pooled (27/30)
  uk = linker.link("Paris", "uk", spans=[(0, 5)])[0]
  assert uk.entity_id == "E:paris_tx" and uk.candidates[0].prior == pytest.approx(0.9)
  # uk saw "київ": its own anchors
  assert linker.link("Київ", "uk")[0].candidates[0].prior == pytest.approx(1.0)


def test_nil_below_the_threshold_keeps_the_candidates(fake):
  linker, _ = fake
  out = linker.link("Lyon and Berlin", "en", spans=[(0, 4), (9, 15)], fast=True)
  lyon, berlin = out
  assert lyon.is_nil and lyon.entity_id is None and lyon.qid is None
  assert lyon.score < 0.5 and len(lyon.candidates) == len(ENTITIES)
  assert lyon.link_prob is None and not berlin.is_nil
  assert linker.link("Lyon", "en", spans=[(0, 4)], threshold=-1.0)[0].entity_id is not None


def test_nil_is_decided_on_each_modes_own_score(fake):
  """Full mode ranks and thresholds by cosine + 0.5 x prior, fast mode by the cosine: "paris"
  in full mode is E:paris_tx, score 0.625 + 0.5 x 0.9 = 1.075 (cosine 0.625); in fast mode
  E:paris, cosine 0.781."""
  linker, _ = fake
  full = linker.link("Paris", "en", threshold=1.1)[0]
  assert full.is_nil and full.score == pytest.approx(1.075, abs=1e-3)
  assert full.candidates[0].entity_id == "E:paris_tx"
  assert full.candidates[0].cosine == pytest.approx(0.625, abs=1e-3)
  assert linker.link("Paris", "en", threshold=1.0)[0].entity_id == "E:paris_tx"
  fast = linker.link("Paris", "en", fast=True, threshold=0.7)[0]
  assert fast.entity_id == "E:paris" and fast.score == pytest.approx(0.781, abs=1e-3)
  assert linker.link("Paris", "en", fast=True, threshold=0.8)[0].is_nil
  assert "-> NIL (best E:paris_tx score 1.07 < threshold 1.10" in cli.format_mentions(
      "Paris", [full], 1.1)
  # per-mode thresholds (nil.json sets them): each mode compares its own
  linker.thresholds = {"fast": 0.8, "full": 1.0}
  assert linker.link("Paris", "en", fast=True)[0].is_nil
  assert linker.link("Paris", "en")[0].entity_id == "E:paris_tx"


def test_load_takes_the_thresholds_from_nil_json(fake, tmp_path, monkeypatch):
  from mel import nil_threshold
  linker, _ = fake
  parts = L.loading.Parts(linker.encoder, linker.index, linker.entities, linker.dictionary,
                          None, "description", None, "wordpiece")
  monkeypatch.setattr(L.loading, "read_parts", lambda *args: parts)
  (tmp_path / "export").mkdir()
  export = {"kind": "F", "step": 120, "embedding_dim": DIM}
  (tmp_path / "export" / "manifest.json").write_text(json.dumps(export))
  default = L.load(str(tmp_path))
  assert default.thresholds == {"fast": L.DEFAULT_THRESHOLD, "full": L.DEFAULT_THRESHOLD}
  assert default.threshold_source == "default"
  nil_threshold.write(str(tmp_path), export, 0.7, {
      "dataset": "holdout:h-*.tfrecord.gz", "calibration_queries": 2800, "nil_fraction": 0.2,
      "seed": 0}, {}, [], full={"threshold": 1.1, "prior_weight": 0.5, "test": {},
                                "curve": []})
  chosen = L.load(str(tmp_path))
  assert chosen.thresholds == {"fast": 0.7, "full": 1.1} and chosen.threshold_source == (
      "nil.json chosen on holdout:h-*.tfrecord.gz (2,800 calibration queries, nil_fraction "
      "0.2, seed 0)")
  assert chosen.link("Paris", "en")[0].is_nil          # score 1.075 < 1.1
  assert chosen.link("Paris", "en", fast=True)[0].entity_id == "E:paris"   # 0.781 >= 0.7
  given = L.load(str(tmp_path), threshold=0.6)
  assert given.thresholds == {"fast": 0.6, "full": 0.6} and given.threshold_source == "given"
  assert given.link("Paris", "en")[0].entity_id == "E:paris_tx"
  # another prior weight than the one full mode's threshold was chosen for: fast mode's only
  with pytest.warns(UserWarning, match="prior weight 0.5"):
    other = L.load(str(tmp_path), prior_weight=0.3)
  assert other.thresholds == {"fast": 0.7, "full": L.DEFAULT_THRESHOLD}
  # the model exported again since: the threshold is stale, the default is used
  (tmp_path / "export" / "manifest.json").write_text(json.dumps({**export, "step": 240}))
  with pytest.warns(UserWarning, match="nil.json is stale"):
    stale = L.load(str(tmp_path))
  assert stale.thresholds["fast"] == L.DEFAULT_THRESHOLD and stale.threshold_source == "default"
  (tmp_path / "nil.json").write_text("{")
  with pytest.raises(ValueError, match="nil.json: unreadable"):
    L.load(str(tmp_path))


def test_mel_link_interactive_says_where_the_threshold_came_from(fake, monkeypatch, capsys):
  import io
  linker, _ = fake
  monkeypatch.setattr(cli, "_load", lambda args: linker)
  monkeypatch.setattr(sys, "stdin", io.StringIO("Berlin\n:reload\n:quit\n"))
  assert cli.main(["-i", "--lang", "en"]) == 0
  captured = capsys.readouterr()
  assert captured.err.count("mel link: NIL below score 0.500 in full mode, cosine 0.500 in "
                            "fast mode (given)") == 1
  assert "reload needs a Linker loaded from a model directory" in captured.err
  assert "[Berlin](Q64)" in captured.out


def test_caller_spans_skip_detection(fake):
  linker, _ = fake
  out = linker.link("Київ, Paris", "uk", spans=[{"start": 0, "end": 4}])
  assert [(m.start, m.end, m.entity_id) for m in out] == [(0, 4, "E:kyiv")]
  # spans come back in text order
  out = linker.link("Київ, Paris", "uk", spans=[(6, 11), (0, 4)])
  assert [m.start for m in out] == [0, 6]


@pytest.mark.parametrize("spans, message", [
    ([(0, 99)], r"span 0 \[0, 99\) is out of range for a text of 11 characters"),
    ([(-1, 3)], "out of range"),
    ([(3, 3)], "out of range"),
    ([(0, 5), (4, 8)], r"spans 0 \[0, 5\) and 1 \[4, 8\) overlap"),
    ([(4, 5)], r"span 0 \[4, 5\) holds only whitespace"),
    ([(0, 2.5)], "must be integers"),
    ([(0, 1, 2)], "not a \\(start, end\\) pair"),
])
def test_invalid_spans(fake, spans, message):
  linker, _ = fake
  with pytest.raises(ValueError, match=message):
    linker.link("Київ Paris!", "en", spans=spans)


def test_empty_and_whitespace_text_and_bad_arguments(fake):
  linker, _ = fake
  assert linker.link("", "en") == [] and linker.link(" \n\t ", "en") == []
  assert linker.encoder.calls == []
  with pytest.raises(ValueError, match=r"invalid language 'x-'.* zh-yue"):
    linker.link("Paris", "x-")
  assert linker.link("Paris", " EN ")[0].text == "Paris"   # codes are case-insensitive
  with pytest.raises(ValueError, match="out of range"):
    linker.link("", "en", spans=[(0, 1)])
  with pytest.raises(TypeError, match="text must be str"):
    linker.link(b"Paris", "en")
  with pytest.raises(ValueError, match="top_k"):
    linker.link("Paris", "en", top_k=0)


@pytest.fixture(autouse=True)
def fresh_language_warnings(monkeypatch):
  """UnseenLanguageWarning is given once per code per process: each test starts afresh."""
  monkeypatch.setattr(inputs, "_WARNED", set())


def _unseen_warnings(record):
  return [str(w.message) for w in record if issubclass(w.category, inputs.UnseenLanguageWarning)]


@pytest.mark.parametrize("lang", ["gsw", "yue", "zh_YUE"])
def test_a_language_outside_the_pretraining_list_links_with_one_warning(fake, lang):
  linker, _ = fake
  code = lang.lower().replace("_", "-")
  with pytest.warns(inputs.UnseenLanguageWarning, match=rf"language '{code}' is not one of the "
                    rf"languages this model was pretrained on .*results may be poor"):
    out = linker.link("Paris und Berlin", lang, spans=[(0, 5), (10, 16)])
  # caller spans link in a language the dictionary never saw (prior: all languages pooled)
  assert [(m.text, m.entity_id) for m in out] == [("Paris", "E:paris_tx"), ("Berlin", "Q64")]
  assert out[0].candidates[0].prior == pytest.approx(0.9)
  with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter("always")
    # the spotter falls back to the pooled forms of all languages; no second warning
    spotted = linker.link("Paris und Berlin", lang)
  assert [(m.text, m.entity_id) for m in spotted] == [("Paris", "E:paris_tx"), ("Berlin", "Q64")]
  assert _unseen_warnings(record) == []


@pytest.mark.parametrize("lang", ["", "  ", "12", "en us!", "e", "english", "zh--yue", None, 7])
def test_malformed_language_codes_are_errors_naming_them(fake, lang):
  linker, _ = fake
  import re
  with pytest.raises(ValueError, match=rf"invalid language {re.escape(repr(lang))}: give a "
                     rf"Wikipedia language code"):
    linker.link("Paris", lang)


def test_pretraining_languages_and_which_codes_warn(fake):
  assert languages.pretraining_languages("wordpiece") is languages.MBERT_LANGUAGE_CODES
  assert len(languages.MBERT_LANGUAGES) == 104 and len(languages.MBERT_LANGUAGE_CODES) == 103
  e5 = languages.pretraining_languages("e5")
  assert e5 is languages.XLMR_LANGUAGE_CODES
  assert len(languages.XLMR_LANGUAGES) == 100 and len(e5) == 93
  assert {"sw", "km", "xh", "am", "so", "en", "zh", "my"} <= e5 and not {"war", "ceb", "yue"} & e5
  assert e5 <= languages.WIKIPEDIA_LANGUAGE_CODES
  with pytest.raises(ValueError, match="unknown tokenizer 'bpe': expected one of wordpiece, e5"):
    languages.pretraining_languages("bpe")
  linker, _ = fake
  e5_linker = L.Linker(linker.encoder, linker.index, linker.entities, linker.dictionary,
                       tokenizer="e5", threshold=0.5)
  with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter("always")
    for lk, lang in ((linker, "en"), (linker, " EN "), (linker, "pt-BR"), (linker, "zh-hans"),
                     (linker, "simple"), (e5_linker, "sw"), (e5_linker, "km")):
      assert lk.link("Berlin", lang, spans=[(0, 6)])[0].entity_id == "Q64"
    assert _unseen_warnings(record) == []
    # a Wikipedia code is its own language (zh-yue is not zh); war is mBERT's, not XLM-R's
    for lk, lang in ((linker, "zh-yue"), (linker, "xh"), (e5_linker, "war")):
      assert lk.link("Berlin", lang, spans=[(0, 6)])[0].entity_id == "Q64"
  assert [w.split(" is ")[0] for w in _unseen_warnings(record)] == [
      "language 'zh-yue'", "language 'xh'", "language 'war'"]


def test_the_dictionary_serves_any_language_code(fake):
  d = fake[0].dictionary
  assert [d.table_language(x) for x in ("en", "en-gb", "uk", "gsw", "zh-yue", "be-tarask")] == [
      "en", "en", "uk", dic.ALL_LANGUAGES, dic.ALL_LANGUAGES, dic.ALL_LANGUAGES]
  assert set(d.table("gsw")) == {"paris", "berlin", "tokyo", "київ"}
  assert d.prior("київ", "gsw") == {"E:kyiv": 1.0} and d.prior("lyon", "gsw") == {}
  # en-gb spots with en's forms
  assert [m.text for m in fake[0].link("Tokyo, Київ", "en-gb")] == ["Tokyo"]


def test_the_export_manifest_names_the_tokenizer(fake, tmp_path, monkeypatch):
  linker, _ = fake
  parts = L.loading.Parts(linker.encoder, linker.index, linker.entities, linker.dictionary,
                          None, "description", None, "e5")
  monkeypatch.setattr(L.loading, "read_parts", lambda *args: parts)
  assert L.load(str(tmp_path)).languages == languages.XLMR_LANGUAGE_CODES
  monkeypatch.setattr(L.loading, "read_parts", lambda *args: parts._replace(tokenizer="x"))
  with pytest.raises(ValueError, match="unknown tokenizer 'x'"):
    L.load(str(tmp_path))
  # a manifest without the key: wordpiece (the default of Parts); an unknown one is named
  assert L.loading.Parts(*parts[:7]).tokenizer == "wordpiece"
  monkeypatch.undo()
  model = tmp_path / "model"
  for part in ("export/mention_encoder", "index", "dictionary"):
    (model / part).mkdir(parents=True)
  (model / "entities.tsv").write_text("Q1\tx\n")
  (model / "export" / "manifest.json").write_text('{"embedding_dim": 8, "tokenizer": "bpe"}')
  with pytest.raises(ValueError, match=r"export/manifest.json: unknown tokenizer 'bpe'"):
    L.load(str(model))


def test_mel_link_accepts_any_language_code_with_a_warning(fake, tmp_path, monkeypatch, capsys):
  linker, _ = fake
  monkeypatch.setattr(cli, "_load", lambda args: linker)
  assert cli.main(["--text", "Paris und Berlin", "--lang", "gsw"]) == 0
  captured = capsys.readouterr()
  assert "[Berlin](Q64)" in captured.out
  assert captured.err.count("mel link: warning: language 'gsw' is not one of the languages") == 1
  assert "results may be poor" in captured.err
  source = tmp_path / "in.jsonl"
  docs = [{"text": "Berlin", "lang": "gsw"}, {"text": "Berlin", "lang": "yue", "spans": [[0, 6]]},
          {"text": "Berlin", "lang": "en us!"}, {"text": "Berlin"}]
  source.write_text("".join(json.dumps(d) + "\n" for d in docs))
  assert cli.main(["--input", str(source), "--lang", "en", "--no_progress"]) == 1
  captured = capsys.readouterr()
  lines = [json.loads(x) for x in captured.out.splitlines()]
  assert [m["entity_id"] for x in lines[:2] + lines[3:] for m in x["mentions"]] == ["Q64"] * 3
  assert lines[2]["error"].startswith("invalid language 'en us!'")
  assert captured.err.count("warning: language 'yue'") == 1 and "'gsw'" not in captured.err
  assert "1 lines failed" in captured.err
  assert cli.main(["--text", "Berlin", "--lang", "12"]) == 2
  assert "mel link: invalid language '12'" in capsys.readouterr().err


def test_megabytes_of_text_go_through_in_bounded_batches(fake):
  linker, _ = fake
  linker.max_batch = 64
  linker.detector.window = 50_000
  sentence = "A trip from Berlin to Paris and on to Tokyo, by way of Lyon. "
  text = sentence * 50_000   # 3 MB
  out = linker.link(text, "en", fast=True, top_k=1)
  assert len(out) == 3 * 50_000
  assert max(linker.encoder.calls) <= 64
  assert all(text[m.start:m.end] == m.text for m in out[:10] + out[-10:])
  assert out[-1].start == len(text) - len(sentence) + sentence.index("Tokyo")


# what serving must never import: training, negative mining, entity encoding, Beam
FORBIDDEN = ("apache_beam", "official", "beam_pipelines", "mel.training", "mel.modeling",
             "mel.retrieval.negatives", "mel.retrieval.encode")


def test_serving_modules_import_no_training_or_beam_code():
  code = ("import sys\n"
          "from mel.linking import build_dictionary, cli, linker, loading, model_cache\n"
          f"print(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r})))")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == "[]"


def test_importing_mel_is_cheap_and_a_missing_model_is_explained(monkeypatch):
  code = ("import sys, mel; assert 'tensorflow' not in sys.modules and 'mel.linking.linker' not in "
          "sys.modules; print('ok')")
  assert subprocess.run([sys.executable, "-c", code], capture_output=True,
                        text=True).stdout.strip() == "ok"
  import mel
  monkeypatch.delenv(L.ENV_MODEL_DIR, raising=False)
  with pytest.raises(L.ModelNotFoundError, match="MEL_MODEL_DIR"):
    mel.link("Paris", "en")
  with pytest.raises(L.ModelNotFoundError, match="no such model directory"):
    mel.load("/nonexistent/model")


def test_a_missing_part_is_named_with_the_command_that_builds_it(tmp_path):
  model = tmp_path / "model"
  (model / "export").mkdir(parents=True)
  with pytest.raises(L.ModelNotFoundError, match="export/manifest.json: missing; .*`mel train`"):
    L.load(str(model))
  (model / "export" / "manifest.json").write_text('{"embedding_dim": 8}')
  (model / "export" / "mention_encoder").mkdir()
  (model / "entities.tsv").write_text("Q1\tx\n")
  with pytest.raises(L.ModelNotFoundError, match=r"index: missing; .*`mel encode --model_dir "
                     r".*`mel index --model_dir"):
    L.load(str(model))
  (model / "index").mkdir()
  with pytest.raises(L.ModelNotFoundError, match=r"dictionary: missing; .*`mel dictionary "
                     r"--mining_dir D --output .*dictionary`"):
    L.load(str(model))


# ---------------------------------------------------------------------------------------------
# the trained mini model, end to end


@pytest.fixture(scope="module")
def model_dir(mini_serving_dir):
  return mini_serving_dir


@pytest.fixture(scope="module")
def held_out(mini_mining):
  """Per language (el, uk, ja): the first 3,000 characters of the training document with the
  most anchors there (text the dictionary has forms for), and every held-out document's first
  3,000 with its gold spans."""
  import collections
  from mel import records
  gold = collections.defaultdict(list)
  for m in records.read_output(str(mini_mining[0]), records.MENTIONS_HOLDOUT):
    if m.end <= 3000:
      gold[(m.wiki, m.doc_id)].append((m.start, m.end, m.entity_id))
  anchors = collections.Counter((m.wiki, m.doc_id) for m in records.read_output(
      str(mini_mining[0]), records.MENTIONS_TRAIN) if m.end <= 3000)
  out = {lang: {"text": "", "docs": [], "anchors": 0} for lang in ("el", "uk", "ja")}
  for d in records.read_output(str(mini_mining[0]), records.DOCUMENTS):
    if d.lang not in out:
      continue
    if anchors[(d.wiki, d.doc_id)] > out[d.lang]["anchors"]:
      out[d.lang].update(text=d.text[:3000], title=d.title, anchors=anchors[(d.wiki, d.doc_id)])
    elif (d.wiki, d.doc_id) in gold:
      out[d.lang]["docs"].append((d.text[:3000], d.title, sorted(gold[(d.wiki, d.doc_id)])))
  assert all(x["text"] and x["docs"] for x in out.values())
  return out


@pytest.mark.slow
def test_the_mini_model_links_in_three_scripts(model_dir, held_out):
  # the mini mining output is small: spot with looser thresholds than the defaults
  code = f"""
import json, sys
import mel
linker = mel.load({str(model_dir)!r}, min_linked=1, min_link_prob=0.01)
out = {{}}
for lang, x in json.loads(sys.stdin.read()).items():
  spotted = [m.to_dict() for m in linker.link(x["text"], lang, title=x["title"])]
  fast, full = [], []
  for text, title, gold in x["docs"]:
    spans = [(a, b) for a, b, _ in gold]
    fast += [m.to_dict() for m in linker.link(text, lang, spans=spans, fast=True, title=title)]
    full += [m.to_dict() for m in linker.link(text, lang, spans=spans, title=title)]
  out[lang] = [spotted, fast, full]
bad = sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))
print(json.dumps({{"out": out, "imported": bad}}))
"""
  result = subprocess.run([sys.executable, "-c", code], input=json.dumps(held_out),
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  assert result.returncode == 0, result.stderr[-3000:]
  answer = json.loads(result.stdout.strip().splitlines()[-1])
  assert answer["imported"] == []   # serving loads no Beam and no training code
  hits = {"fast": 0, "full": 0}
  total = 0
  for lang, (spotted, fast, full) in answer["out"].items():
    text = held_out[lang]["text"]
    assert spotted, f"nothing spotted in the {lang} document"
    for m in spotted:
      assert text[m["start"]:m["end"]] == m["text"] and m["link_prob"] >= 0.01
    truth = [e for _, _, gold in held_out[lang]["docs"] for _, _, e in gold]
    assert len(fast) == len(full) == len(truth)
    for name, results in (("fast", fast), ("full", full)):
      hits[name] += sum(m["candidates"][0]["entity_id"] == e for m, e in zip(results, truth))
      assert all(m["link_prob"] is None for m in results)
    total += len(truth)
  # the anchor prior makes full mode better than the (barely trained) tower alone
  assert hits["full"] > hits["fast"] and hits["full"] >= 0.3 * total, (hits, total)


@pytest.mark.slow
def test_mel_link_command_batch_and_interactive(model_dir, held_out, tmp_path):
  from conftest import run_module
  docs = [{"id": lang, "text": x["text"], "lang": lang} for lang, x in held_out.items()]
  docs.append({"id": "bad", "text": "Paris", "lang": "x1!"})
  docs.append({"id": "spans", "text": "Київ і Львів", "lang": "uk", "spans": [[0, 4]]})
  source = tmp_path / "in.jsonl"
  source.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs) +
                    "{not json\n", encoding="utf-8")
  output = tmp_path / "out.jsonl"
  result = run_module("mel", "link", "--model_dir", model_dir, "--input", source,
                      "--output", output, "--top_k", "2", "--threshold", "0.3",
                      "--min_linked", "1", "--min_link_prob", "0.01")
  assert result.returncode == 1, result.stderr[-3000:]   # two lines failed
  assert "linking" in result.stderr and "2 lines failed" in result.stderr
  lines = [json.loads(x) for x in output.read_text(encoding="utf-8").splitlines()]
  assert [x.get("id") for x in lines] == ["el", "uk", "ja", "bad", "spans", None]
  for x in lines[:3]:
    assert x["mentions"] and all(len(m["candidates"]) <= 2 for m in x["mentions"])
  assert "invalid language 'x1!'" in lines[3]["error"] and "not JSON" in lines[5]["error"]
  assert [(m["start"], m["end"]) for m in lines[4]["mentions"]] == [(0, 4)]

  text = held_out["uk"]["text"][:600]
  result = subprocess.run(
      [sys.executable, "-m", "mel", "link", "-i", "--lang", "el", "--model_dir",
       str(model_dir), "--fast", "--min_linked", "1", "--min_link_prob", "0.01"],
      input=f":lang uk\n{text}\n:lang 12\n:lang zz\n:quit\n",
      capture_output=True, text=True, timeout=300,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  assert result.returncode == 0, result.stderr[-3000:]
  assert "uk> " in result.stderr and "invalid language '12'" in result.stderr
  # a well-formed code outside the 104 mBERT languages: accepted, with one warning
  assert "zz> " in result.stderr and "warning: language 'zz' is not one of" in result.stderr
  assert "1. " in result.stdout and ("score" in result.stdout or "NIL" in result.stdout)

  result = run_module("mel", "link", "--text", "x", "--lang", "en")
  assert result.returncode == 1 and "MEL_MODEL_DIR" in result.stderr


@pytest.mark.slow
def test_gs_model_directory_is_fetched_verified_and_reused(model_dir, held_out, tmp_path,
                                                           gcs_emulator):
  from google.auth.credentials import AnonymousCredentials
  from google.cloud import storage
  client = storage.Client(project="mel-test", credentials=AnonymousCredentials())
  bucket = client.bucket(gcs_emulator["bucket"])
  for root, _, names in os.walk(model_dir):
    for name in names:
      path = os.path.join(root, name)
      rel = os.path.relpath(path, model_dir)
      if not rel.startswith("embeddings"):
        bucket.blob(f"models/m/{rel}").upload_from_filename(path)
  bucket.blob("models/m/checkpoints/ckpt-1.index").upload_from_string(b"not fetched")
  cache = tmp_path / "cache"
  text, lang = held_out["el"]["text"], "el"
  loose = {"min_linked": 1, "min_link_prob": 0.01}
  local = L.load(str(model_dir), **loose).link(text, lang)
  assert local
  url = f"gs://{gcs_emulator['bucket']}/models/m"
  remote = L.load(url, cache_dir=str(cache), **loose)
  assert remote.fetch_stats["downloaded"] > 0 and remote.fetch_stats["reused"] == 0
  assert [m.to_dict() for m in remote.link(text, lang)] == [m.to_dict() for m in local]
  cached = cache / "gcs" / gcs_emulator["bucket"] / "models" / "m"
  assert not (cached / "checkpoints").exists() and not (cached / "embeddings").exists()

  again = L.load(f"gs://{gcs_emulator['bucket']}/models/m", cache_dir=str(cache))
  assert again.fetch_stats["downloaded"] == 0
  assert again.fetch_stats["reused"] == remote.fetch_stats["downloaded"]

  # a cached file altered in place (same size) fails the manifest's checksum: fetched again
  forms = cached / "dictionary" / dic.FORMS
  data = bytearray(forms.read_bytes())
  data[-3] ^= 1
  forms.write_bytes(bytes(data))
  healed = L.load(f"gs://{gcs_emulator['bucket']}/models/m", cache_dir=str(cache))
  assert healed.fetch_stats["downloaded"] == remote.fetch_stats["downloaded"]
  assert forms.read_bytes() == (model_dir / "dictionary" / dic.FORMS).read_bytes()

  # a nil.json in the bucket comes with the serving parts and sets the threshold
  from mel import nil_threshold
  chosen_dir = tmp_path / "chosen"
  chosen_dir.mkdir()
  export = json.loads((model_dir / "export" / "manifest.json").read_text())
  nil_threshold.write(str(chosen_dir), export, 0.25, {"dataset": "holdout:x"}, {}, [])
  bucket.blob("models/m/nil.json").upload_from_filename(str(chosen_dir / "nil.json"))
  calibrated = L.load(url, cache_dir=str(cache))
  assert calibrated.fetch_stats["downloaded"] == 1 and (cached / "nil.json").exists()
  assert calibrated.thresholds["fast"] == 0.25
  assert calibrated.threshold_source == "nil.json chosen on holdout:x"

  # a knowledge base grown with `mel kb` (here: one entity removed) comes with them too
  import shutil
  from mel.retrieval import kb_changes
  grown = tmp_path / "grown"
  shutil.copytree(model_dir, grown, ignore=shutil.ignore_patterns("embeddings"))
  gone = next(iter(calibrated.index.live_ids()))
  kb_changes.remove(str(grown), [gone])
  for root, _, names in os.walk(grown / "kb"):
    for name in names:
      path = os.path.join(root, name)
      bucket.blob(f"models/m/{os.path.relpath(path, grown)}").upload_from_filename(path)
  served = L.load(url, cache_dir=str(cache))
  assert served.kb_generation == 1 and (cached / "kb" / "manifest.json").exists()
  assert gone not in set(served.index.live_ids())

  with pytest.raises(FileNotFoundError, match="no such model directory"):
    L.load(f"gs://{gcs_emulator['bucket']}/models/none", cache_dir=str(cache))
