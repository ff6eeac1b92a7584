"""The page of `mel serve` (GET /, mel/serving/page.html) in a real headless Chromium.

The page is driven as a user would (type, click, Ctrl+Enter) and what it shows is checked
against what POST /v1/link answers. Which entity the tiny test model links a mention to depends
on its quality, so the linking tests use a server of the same model with the prior pinned:
prior_weight 100 and threshold 50, so that in full mode a form whose P(entity | form) is
dominant always links to that entity (score >= 90 + cosine) and in fast mode (score = cosine
<= 1) every mention is NIL.
"""
import json
import os
import pathlib
import re
import urllib.error
import urllib.request

import pytest

from conftest import MINI_LINK_OPTIONS, RunningServer

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
try:
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service as ChromeService
  from selenium.webdriver.common.by import By
  from selenium.webdriver.common.keys import Keys
  from selenium.webdriver.support.ui import WebDriverWait
  MISSING = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
except ImportError:
  MISSING = ["selenium (pip install -r requirements-test.txt)"]

# In CI a missing browser is a broken image, not a reason to skip: the browser fixture fails.
if MISSING and os.environ.get("CI") != "true":
  pytest.skip(f"no headless browser for the page test: {', '.join(MISSING)} missing "
              f"(apt-get install chromium chromium-driver)", allow_module_level=True)

PINNED_OPTIONS = {"prior_weight": 100.0, "threshold": 50.0}
DOMINANT = 0.9         # P(entity | form) of the forms the sentence is made of
MIN_ANCHORS = 3        # ... from at least this many anchors
WAIT_S = 60
# Before the mentions: an emoji and a Han character outside the BMP, two UTF-16 units each.
# Offsets count code points, so a page slicing the string by UTF-16 units shifts every
# highlight after them.
PREFIX = "😀 𠀋 "


@pytest.fixture(scope="module")
def browser():
  assert not MISSING, f"no headless browser: {', '.join(MISSING)} missing (CI=true: not skipped)"
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                   "--window-size=1200,1000"):
    options.add_argument(argument)
  driver = webdriver.Chrome(service=ChromeService(CHROMEDRIVER), options=options)
  yield driver
  driver.quit()


@pytest.fixture(scope="module")
def pinned_server(mini_serving_dir):
  """The mini model served with the prior pinned (module docstring): RunningServer."""
  from mel.serving.service import ServeConfig
  server = RunningServer(ServeConfig(model_dir=str(mini_serving_dir),
                                     link_options={**MINI_LINK_OPTIONS, **PINNED_OPTIONS}))
  assert server.service.status == "ready", server.service.error
  yield server
  server.stop()


def dominant_forms(serving_dir: pathlib.Path):
  """[(lang, form, entity id)] of the forms whose most likely entity has P >= DOMINANT from
  >= MIN_ANCHORS anchors, is in the knowledge base and that the spotter takes: most anchored
  first (ties by language, form), so the choice is the same on every run."""
  from mel.linking.dictionary import SurfaceDictionary
  from mel.surface_forms import normalize_surface
  dictionary = SurfaceDictionary.load(str(serving_dir / "dictionary"))
  with open(serving_dir / "entities.tsv", encoding="utf-8") as f:
    known = {line.split("\t", 1)[0] for line in f}
  found = []
  for lang in dictionary.languages():
    for form, stats in dictionary.tables[lang].items():
      prior = dictionary.prior(form, lang)
      if not prior or stats.linked < MIN_ANCHORS:
        continue
      entity, p = max(prior.items(), key=lambda x: (x[1], x[0]))
      if (p >= DOMINANT and entity in known and normalize_surface(form) == form and
          stats.link_prob >= MINI_LINK_OPTIONS["min_link_prob"] and
          not any(c.isdigit() or c in ",.()" for c in form)):
        found.append((-stats.linked, lang, form, entity))
  return [(lang, form, entity) for _, lang, form, entity in sorted(found)]


@pytest.fixture(scope="module")
def sentence(mini_serving_dir):
  """(lang, text, {form: (code-point start, entity id)}): the most anchored dominant form,
  and the most anchored one of an entity with a QID in the same language when there is one
  (its WikiData link is checked)."""
  from mel.linking.inputs import qid_of
  forms = dominant_forms(mini_serving_dir)
  assert forms, "no surface form of the mini model has a dominant entity"
  lang, form, entity = forms[0]
  chosen = {form: entity}
  with_qid = [(f, e) for l, f, e in forms if l == lang and qid_of(e) and f not in chosen]
  if with_qid and not qid_of(entity):
    chosen[with_qid[0][0]] = with_qid[0][1]
  text, where = PREFIX, {}
  for f, e in chosen.items():
    where[f] = (len(text), e)
    text += f + ", "
  return lang, text[:-2] + ".", where


def post_link(server, text: str, lang: str, fast: bool = False) -> dict:
  body = json.dumps({"text": text, "lang": lang, "fast": fast}).encode("utf-8")
  request = urllib.request.Request(server.url + "/v1/link", body,
                                   {"Content-Type": "application/json"})
  with urllib.request.urlopen(request, timeout=WAIT_S) as response:
    return json.load(response)


def open_page(browser, server):
  browser.get(server.url + "/")
  WebDriverWait(browser, WAIT_S).until(
      lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-info") == "loaded")


def link_on_page(browser, text: str, lang: str, fast: bool = False, shortcut: bool = False):
  """Fills the form and links (the button, or Ctrl+Enter); returns once the answer is shown."""
  text_box = browser.find_element(By.ID, "text")
  # send_keys cannot type characters outside the BMP (ChromeDriver): set the value instead
  browser.execute_script("arguments[0].value = arguments[1]", text_box, text)
  lang_box = browser.find_element(By.ID, "lang")
  lang_box.clear()
  lang_box.send_keys(lang)
  fast_box = browser.find_element(By.ID, "fast")
  if fast_box.is_selected() != fast:
    fast_box.click()
  body = browser.find_element(By.TAG_NAME, "body")
  before = body.get_attribute("data-answered")
  if shortcut:
    text_box.send_keys(Keys.CONTROL, Keys.ENTER)
  else:
    browser.find_element(By.ID, "link").click()
  WebDriverWait(browser, WAIT_S).until(lambda d: body.get_attribute("data-answered") != before)


def shown_mentions(browser):
  return [{"text": m.find_element(By.CLASS_NAME, "mention-text").text,
           "entity_id": m.get_attribute("data-entity-id"),
           "nil": "nil" in m.get_attribute("class").split()}
          for m in browser.find_elements(By.CSS_SELECTOR, "#output .mention")]


def test_page_links_a_dominant_form(browser, pinned_server, sentence):
  lang, text, where = sentence
  answer = post_link(pinned_server, text, lang)["mentions"]
  by_start = {m["start"]: m for m in answer}
  for form, (start, entity) in where.items():
    assert by_start[start]["text"] == form and by_start[start]["entity_id"] == entity, answer

  open_page(browser, pinned_server)
  info = json.load(urllib.request.urlopen(pinned_server.url + "/v1/info", timeout=WAIT_S))
  model_line = browser.find_element(By.ID, "model").text
  assert info["model_dir"] in model_line and f"generation {info['kb_generation']}" in model_line
  # the picker offers the languages with surface forms first, and starts on one of them
  offered = [o.get_attribute("value")
             for o in browser.find_elements(By.CSS_SELECTOR, "#lang-options option")]
  with_forms = [code for code in info["dictionary_languages"] if code != "*"]
  assert offered[:len(with_forms)] == with_forms and set(info["languages"]) <= set(offered)
  assert browser.find_element(By.ID, "lang").get_attribute("value") == with_forms[0]

  link_on_page(browser, text, lang)
  assert browser.find_element(By.ID, "error").text == ""
  shown = shown_mentions(browser)
  assert shown == [{"text": m["text"], "entity_id": m["entity_id"] or "",
                    "nil": m["entity_id"] is None} for m in answer]
  linked = sum(m["entity_id"] is not None for m in answer)
  status = browser.find_element(By.ID, "status").text
  assert re.fullmatch(rf"{len(answer)} mentions?, {linked} linked, {len(answer) - linked} NIL, "
                      rf"took \d+ ms", status), status

  details = browser.find_elements(By.CSS_SELECTOR, "#mentions .details")
  assert len(details) == len(answer)
  for form, (start, entity) in where.items():
    i = answer.index(by_start[start])
    mention = browser.find_elements(By.CSS_SELECTOR, "#annotated .mention")[i]
    assert mention.get_attribute("data-entity-id") == entity
    mention.click()   # its details light up
    assert "active" in details[i].get_attribute("class").split()
    assert entity in details[i].find_element(By.CLASS_NAME, "head").text
    description = by_start[start]["description"]
    if description:
      shown_description = details[i].find_element(By.CLASS_NAME, "description").text
      assert shown_description.split() == description.split()   # as rendered: spaces collapse
    qid = by_start[start]["qid"]
    links = [a.get_attribute("href")
             for a in details[i].find_elements(By.CSS_SELECTOR, ".head a.wikidata")]
    assert links == ([f"https://www.wikidata.org/wiki/{qid}"] if qid else [])
    candidates = details[i].find_elements(By.CSS_SELECTOR, "tr.candidate")
    assert ([c.get_attribute("data-entity-id") for c in candidates] ==
            [c["entity_id"] for c in by_start[start]["candidates"]])


def test_page_shows_nil_mentions_as_nil(browser, pinned_server, sentence):
  # fast mode scores by the cosine alone (<= 1): below the pinned threshold, all NIL
  lang, text, where = sentence
  answer = post_link(pinned_server, text, lang, fast=True)["mentions"]
  assert answer and all(m["entity_id"] is None for m in answer), answer
  open_page(browser, pinned_server)
  link_on_page(browser, text, lang, fast=True, shortcut=True)
  assert shown_mentions(browser) == [{"text": m["text"], "entity_id": "", "nil": True}
                                     for m in answer]
  for mention in browser.find_elements(By.CSS_SELECTOR, "#annotated .mention"):
    assert mention.find_element(By.CLASS_NAME, "badge").text == "NIL"
  for details in browser.find_elements(By.CSS_SELECTOR, "#mentions .details"):
    assert "nil" in details.get_attribute("class").split()
    assert details.find_element(By.CSS_SELECTOR, ".head .entity").text == "NIL"
    assert details.find_elements(By.CSS_SELECTOR, ".head a.wikidata") == []
  assert f", 0 linked, {len(answer)} NIL," in browser.find_element(By.ID, "status").text


def test_page_shows_the_server_error(browser, mini_server, sentence):
  open_page(browser, mini_server)
  lang, text, _ = sentence
  link_on_page(browser, text, lang)
  assert browser.find_element(By.ID, "output").is_displayed()
  link_on_page(browser, "Some text.", "en us!")
  try:
    post_link(mini_server, "Some text.", "en us!")
    raise AssertionError("the server took an invalid language code")
  except urllib.error.HTTPError as e:
    assert e.code == 422
    message = json.load(e)["error"]
  error = browser.find_element(By.ID, "error")
  assert error.is_displayed()
  assert error.text.startswith("Error 422") and message in error.text, error.text
  # the answer to the text before is not left on show as if it were this one's
  assert not browser.find_element(By.ID, "output").is_displayed()
  assert browser.find_element(By.ID, "status").text == ""


def test_page_shows_what_the_served_model_answers_escaped(browser, mini_server, sentence):
  # The session's own server (default thresholds): whatever the tiny model decides, the page
  # shows exactly the API's mentions, and model output or input is never parsed as HTML.
  lang, text, _ = sentence
  text = "<b>bold</b> " + text
  answer = post_link(mini_server, text, lang)["mentions"]
  assert answer
  open_page(browser, mini_server)
  link_on_page(browser, text, lang)
  assert shown_mentions(browser) == [{"text": m["text"], "entity_id": m["entity_id"] or "",
                                      "nil": m["entity_id"] is None} for m in answer]
  annotated = browser.find_element(By.ID, "annotated")
  assert annotated.find_elements(By.TAG_NAME, "b") == []
  assert "<b>bold</b>" in annotated.get_attribute("textContent")
