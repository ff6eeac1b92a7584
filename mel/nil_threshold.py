"""A model's NIL threshold, chosen on held-out data: <model_dir>/nil.json.

    nil_threshold.write(model_dir, export_manifest, threshold, chosen_on, test, curve, full)
    chosen = nil_threshold.read(model_dir, export_manifest)   # dict, or None
    nil_threshold.thresholds(chosen, prior_weight)            # {"fast": t, "full": t}
    nil_threshold.rerank_threshold(chosen, reranker_manifest) # t, or None

`mel evaluate --nil_fraction F --save_threshold` writes it (mel.evaluation.nil chooses the
threshold); the linker (mel.linking.linker.load) reads it when no threshold is given. The
"threshold" is fast mode's, on the cosine of mention and entity vectors; "full" is full mode's,
on its score (mel.scoring: cosine + prior_weight x P(entity | text)), valid for that prior
weight. "rerank" (`mel evaluate --reranker DIR`) is the threshold on the +CA system's score,
sigmoid of the reranker's best logit among the model's top K candidates, valid for that
reranker (its step, loss and sequence length). All belong to one export of one model:

    {"format": "mel-nil/1", "threshold": 0.71, "score": "cosine",
     "full": {"threshold": 0.93, "score": "cosine + prior_weight x P(entity | text)",
              "prior_weight": 0.5, "test": {...}, "curve": [...]},
     "rerank": {"threshold": 0.42, "score": "sigmoid(reranker logit)", "top": 5,
                "reranker": {"model_dir", "step", "loss", "max_seq_length"}, "test", "curve"},
     "model": {"kind", "step", "embedding_dim"},      # of export/manifest.json when chosen
     "chosen_on": {"dataset", "queries", "nil_fraction", "seed", ...},
     "test": {...},      # figures at the threshold on the held-out half (mel.evaluation.nil)
     "curve": [{...}]}   # the same figures at other thresholds

read() returns None when the file is absent, and also (with a StaleThresholdWarning) when the
model was exported again since: another step, kind or dimension has another cosine range, and a
threshold of the old export would silently link too much or too little.
"""
import json
import math
import os
import warnings
from typing import Optional

from mel import scoring
from mel.model_dir import ModelDir

FORMAT = "mel-nil/1"
SCORE = "cosine"
RERANK_SCORE = "sigmoid(reranker logit)"
RERANKER_KEYS = ("step", "loss", "max_seq_length")   # what a reranker's logits depend on
MODEL_KEYS = ("kind", "step", "embedding_dim")   # what the cosines of an export depend on
RECHOOSE = "mel evaluate --model_dir M --dataset D --nil_fraction 0.2 --save_threshold"


class StaleThresholdWarning(UserWarning):
  """nil.json was chosen for another export of the model: it is ignored."""


def model_of(export_manifest: dict) -> dict:
  """{"kind", "step", "embedding_dim"} of an export manifest (mel.training.export)."""
  return {key: export_manifest.get(key) for key in MODEL_KEYS}


def reranker_of(reranker_manifest: dict, reranker_dir: str) -> dict:
  """{"model_dir", "step", "loss", "max_seq_length"} of a reranker (its export manifest)."""
  return {"model_dir": os.path.abspath(reranker_dir),
          **{key: reranker_manifest.get(key) for key in RERANKER_KEYS}}


def write(model_dir: str, export_manifest: dict, threshold: float, chosen_on: dict,
          test: dict, curve: list, full: Optional[dict] = None,
          rerank: Optional[dict] = None) -> str:
  """Writes <model_dir>/nil.json atomically (temp file, then rename); returns its path.

  full: full mode's {"threshold", "prior_weight", "test", "curve"}, when it was chosen;
  rerank: the +CA system's {"threshold", "top", "reranker" (reranker_of), "test", "curve"}."""
  for value in (threshold, (full or {}).get("threshold", 0.0),
                (rerank or {}).get("threshold", 0.0)):
    if not math.isfinite(value):
      raise ValueError(f"NIL threshold {value!r} is not a finite number")
  path = ModelDir(model_dir).nil_threshold
  content = {"format": FORMAT, "threshold": float(threshold), "score": SCORE,
             "model": model_of(export_manifest), "chosen_on": chosen_on, "test": test,
             "curve": curve}
  if full is not None:
    content["full"] = {"score": scoring.FULL_SCORE, **full,
                       "threshold": float(full["threshold"])}
  if rerank is not None:
    content["rerank"] = {"score": RERANK_SCORE, **rerank, "threshold": float(rerank["threshold"])}
  tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(content, f, indent=2, ensure_ascii=False)
    f.write("\n")
  os.replace(tmp, path)
  return path


def read(model_dir: str, export_manifest: dict) -> Optional[dict]:
  """nil.json of model_dir, checked; None when absent or chosen for another export (warned).

  ValueError naming the file when it is not JSON, not mel-nil/1, or its threshold is not a
  finite number.
  """
  path = ModelDir(model_dir).nil_threshold
  if not os.path.isfile(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      content = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"{path}: unreadable ({e}); choose the threshold again with "
                     f"`{RECHOOSE}`, or delete the file") from None
  if not isinstance(content, dict) or content.get("format") != FORMAT:
    found = content.get("format") if isinstance(content, dict) else type(content).__name__
    raise ValueError(f"{path}: format {found!r}, expected {FORMAT!r}")
  threshold = content.get("threshold")
  if (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
      or not math.isfinite(threshold)):
    raise ValueError(f"{path}: threshold {threshold!r} is not a finite number")
  if content.get("score", SCORE) != SCORE:
    raise ValueError(f"{path}: a threshold on {content['score']!r}, the linker compares "
                     f"{SCORE!r}")
  if not isinstance(content.get("model"), dict):
    raise ValueError(f"{path}: no 'model' object (the export it was chosen for)")
  chosen_for, exported = model_of(content["model"]), model_of(export_manifest)
  if chosen_for != exported:
    differ = _differences(chosen_for, exported)
    warnings.warn(f"{path} is stale: it was chosen for another export of the model ({differ}); "
                  f"ignored. Choose the threshold again with `{RECHOOSE}`",
                  StaleThresholdWarning, stacklevel=2)
    return None
  content["threshold"] = float(threshold)
  full = content.get("full")
  if full is not None and (not isinstance(full, dict) or not _finite(full.get("threshold"))
                           or not _finite(full.get("prior_weight"))):
    raise ValueError(f"{path}: 'full' must hold a finite threshold and prior_weight")
  rerank = content.get("rerank")
  if rerank is not None and (not isinstance(rerank, dict) or not _finite(rerank.get("threshold"))
                             or not isinstance(rerank.get("reranker"), dict)):
    raise ValueError(f"{path}: 'rerank' must hold a finite threshold and its 'reranker'")
  return content


def _differences(chosen_for: dict, now: dict) -> str:
  """"key old -> new, ..." for the keys whose values differ."""
  return ", ".join(f"{k} {chosen_for[k]!r} -> {now[k]!r}" for k in chosen_for
                   if chosen_for[k] != now[k])


def _finite(value) -> bool:
  return (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value))


def thresholds(content: dict, prior_weight: float) -> dict:
  """{"fast": threshold, "full": threshold} of a read nil.json; "full" only when it was chosen
  for this prior weight (the score moves with it; warned otherwise)."""
  out = {"fast": content["threshold"]}
  full = content.get("full")
  if full is not None:
    if abs(full["prior_weight"] - prior_weight) < 1e-9:
      out["full"] = float(full["threshold"])
    else:
      warnings.warn(f"nil.json's full-mode threshold was chosen for prior weight "
                    f"{full['prior_weight']}, the linker uses {prior_weight}: ignored",
                    StaleThresholdWarning, stacklevel=2)
  return out


def rerank_threshold(content: dict, reranker_manifest: dict) -> Optional[float]:
  """The "rerank" threshold of a read nil.json when it was chosen for this reranker (its step,
  loss and sequence length, RERANKER_KEYS); None when there is none, or (warned) when it was
  chosen for another."""
  rerank = (content or {}).get("rerank")
  if rerank is None:
    return None
  chosen_for = {key: rerank["reranker"].get(key) for key in RERANKER_KEYS}
  loaded = {key: reranker_manifest.get(key) for key in RERANKER_KEYS}
  if chosen_for != loaded:
    differ = _differences(chosen_for, loaded)
    warnings.warn(f"nil.json's rerank threshold was chosen for another reranker ({differ}); "
                  f"ignored. Choose it again with `{RECHOOSE} --reranker DIR`",
                  StaleThresholdWarning, stacklevel=2)
    return None
  return float(rerank["threshold"])


def describe(content: dict) -> str:
  """Where a threshold read from nil.json was chosen, in one line (Linker.threshold_source)."""
  on = content.get("chosen_on") or {}
  facts = [f"{on['calibration_queries']:,} calibration queries"
           if isinstance(on.get("calibration_queries"), int) else "",
           f"nil_fraction {on['nil_fraction']}" if "nil_fraction" in on else "",
           f"seed {on['seed']}" if "seed" in on else ""]
  facts = ", ".join(f for f in facts if f)
  return f"nil.json chosen on {on.get('dataset', '?')}" + (f" ({facts})" if facts else "")
