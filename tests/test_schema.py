"""mel.schema: validation, JSON and tf.train.Example round trips, the shared feature spec."""
import json

import numpy as np
import pytest
import tensorflow as tf

from mel import schema


def _mention(**overrides):
  fields = dict(mention_id="ukwiki:7:0", lang="uk", wiki="ukwiki", doc_id=7,
                doc_title="Географія", left_context="Геогра́фія — ", mention="система наук",
                right_context=", що вивчає", start=13, end=25, target_title="Наука",
                entity_id="ukwiki:Наука", qid="", split="train")
  fields.update(overrides)
  return schema.Mention(**fields)


def _entity(**overrides):
  fields = dict(entity_id="Q8646", qid="Q8646", description="香港是中華人民共和國的特別行政區。",
                description_lang="zh", description_source="wikipedia", mention_count=3,
                mention_counts={"vi": 2, "ja": 1}, sitelinks={"viwiki": "Hồng Kông"},
                labels={"vi": "Hồng Kông", "ja": "香港"},
                wikidata_descriptions={"en": "special administrative region of China"},
                wikipedia_descriptions={"zh": "香港是中華人民共和國的特別行政區。"},
                aliases={"en": ("HK", "Hongkong"), "vi": ("Hương Cảng",)})
  fields.update(overrides)
  return schema.Entity(**fields)


@pytest.mark.parametrize("record", [
    _mention(), _entity(),
    schema.MentionWithNegatives(**_mention().to_dict(), negative_ids=("Q2", "ukwiki:Мова")),
    schema.MentionWithNegatives(**_mention().to_dict(), negative_ids=()),
    schema.EntityPair("Q1", "en", "The Universe is all of space and time.", "ja", "宇宙とは…"),
    schema.Document("jawiki", "ja", 5, "アンパサンド", "アンパサンド（&）は記号である。", "holdout"),
    schema.DeadLetter("link", "target_has_no_page", "viwiki", "viwiki:X", "3 link(s)", 3),
])
def test_json_and_example_round_trip(record):
  cls = type(record)
  assert cls.from_json(record.to_json()) == record
  assert cls.from_example(record.to_example_bytes()) == record
  assert json.loads(record.to_json())  # valid JSON with multibyte text kept as is


def test_mention_span_must_match_text():
  with pytest.raises(schema.SchemaError, match="Mention 'ukwiki:7:0'.*mention length"):
    _mention(end=24)
  with pytest.raises(schema.SchemaError, match="empty mention text"):
    _mention(start=5, end=5, mention="")
  with pytest.raises(schema.SchemaError, match=r"bad span \[9, 3\)"):
    _mention(start=9, end=3)
  with pytest.raises(schema.SchemaError, match="split must be one of"):
    _mention(split="test")
  with pytest.raises(schema.SchemaError, match="field doc_id must be int"):
    _mention(doc_id="7")


def test_entity_invariants():
  with pytest.raises(schema.SchemaError, match="mention_count 4 != sum"):
    _entity(mention_count=4)
  with pytest.raises(schema.SchemaError, match="both set or both empty"):
    _entity(description="", description_lang="")
  with pytest.raises(schema.SchemaError, match="aliases"):
    _entity(aliases={"en": ["HK"]})  # lists are not tuples: the schema says tuple
  with pytest.raises(schema.SchemaError, match="differs from entity_id"):
    _entity(qid="Q1")


def test_from_dict_names_missing_and_unknown_fields():
  data = _mention().to_dict()
  del data["split"]
  data["extra"] = 1
  with pytest.raises(schema.SchemaError, match=r"missing fields \['split'\].*unknown.*extra"):
    schema.Mention.from_dict(data)


def test_feature_spec_parses_what_the_writer_wrote():
  entities = [_entity(), _entity(entity_id="viwiki:Hà Nội", qid="", mention_count=0,
                                 mention_counts={}, aliases={})]
  parsed = tf.io.parse_example([e.to_example_bytes() for e in entities],
                               schema.Entity.feature_spec())
  assert [x.decode() for x in parsed["entity_id"].numpy()] == ["Q8646", "viwiki:Hà Nội"]
  assert parsed["mention_count"].numpy().tolist() == [3, 0]
  keys = tf.sparse.to_dense(parsed["mention_counts/keys"], default_value=b"").numpy()
  values = tf.sparse.to_dense(parsed["mention_counts/values"]).numpy()
  assert keys[0].tolist() == [b"ja", b"vi"] and values[0].tolist() == [1, 2]
  assert keys[1].tolist() == [b"", b""]
  mentions = tf.io.parse_example([_mention().to_example_bytes()], schema.Mention.feature_spec())
  assert mentions["mention"].numpy()[0].decode() == "система наук"
  assert mentions["start"].numpy().tolist() == [13]


def test_from_example_rejects_foreign_examples():
  foreign = schema.EntityPair("Q1", "en", "a", "ja", "b").to_example_bytes()
  with pytest.raises(schema.SchemaError, match="Mention: example has no feature"):
    schema.Mention.from_example(foreign)


def test_mention_with_negatives_is_a_mention_with_one_more_feature():
  record = schema.MentionWithNegatives(**_mention().to_dict(), negative_ids=("Q2", "Q3", "Q4"))
  serialized = [record.to_example_bytes()]
  as_mention = tf.io.parse_example(serialized, schema.Mention.feature_spec())
  assert as_mention["entity_id"].numpy()[0].decode() == "ukwiki:Наука"
  parsed = tf.io.parse_example(serialized, schema.MentionWithNegatives.feature_spec())
  assert tf.sparse.to_dense(parsed["negative_ids"], b"").numpy()[0].tolist() == [
      b"Q2", b"Q3", b"Q4"]
  with pytest.raises(schema.SchemaError, match="gold entity 'ukwiki:Наука' is among"):
    schema.MentionWithNegatives(**_mention().to_dict(), negative_ids=("ukwiki:Наука",))
  with pytest.raises(schema.SchemaError, match="repeats"):
    schema.MentionWithNegatives(**_mention().to_dict(), negative_ids=("Q2", "Q2"))
  with pytest.raises(schema.SchemaError, match="tuple of str"):
    schema.MentionWithNegatives(**_mention().to_dict(), negative_ids=["Q2"])


def _with_teacher(**overrides):
  fields = dict(_mention().to_dict(), negative_ids=("Q2", "ukwiki:Мова"),
                teacher_logits=(2.5, -1.25, 0.1))
  fields.update(overrides)
  return schema.MentionWithTeacherScores(**fields)


def test_mention_with_teacher_scores_round_trips_with_float32_logits():
  record = _with_teacher()
  # 0.1 is not a float32: it is stored as the nearest one, so both round trips are exact.
  assert record.teacher_logits == (2.5, -1.25, float(tf.constant(0.1, tf.float32).numpy()))
  assert schema.MentionWithTeacherScores.from_json(record.to_json()) == record
  assert schema.MentionWithTeacherScores.from_example(record.to_example_bytes()) == record
  assert "Мова" in record.to_json() and "система наук" in record.to_json()
  parsed = tf.io.parse_example([record.to_example_bytes()],
                               schema.MentionWithTeacherScores.feature_spec())
  np.testing.assert_array_equal(tf.sparse.to_dense(parsed["teacher_logits"]).numpy()[0],
                                np.array(record.teacher_logits, np.float32))
  # A superset of MentionWithNegatives: its reader (the spec without teacher scores) parses it.
  as_negatives = schema.MentionWithNegatives.from_dict(
      {k: v for k, v in record.to_dict().items() if k != "teacher_logits"})
  assert as_negatives.negative_ids == record.negative_ids
  assert tf.io.parse_example([record.to_example_bytes()],
                             schema.MentionWithNegatives.feature_spec())["mention"].numpy()[0] \
      .decode() == "система наук"
  no_negatives = _with_teacher(negative_ids=(), teacher_logits=(3,))
  assert no_negatives.teacher_logits == (3.0,)
  assert schema.RECORD_TYPES["MentionWithTeacherScores"] is schema.MentionWithTeacherScores


def test_teacher_logits_must_match_the_candidates_and_be_finite():
  with pytest.raises(schema.SchemaError, match=r"MentionWithTeacherScores 'ukwiki:7:0': "
                     r"teacher_logits has 2 values, want 1 \+ 2"):
    _with_teacher(teacher_logits=(1.0, 2.0))
  with pytest.raises(schema.SchemaError, match="teacher_logits has 0 values"):
    schema.MentionWithTeacherScores(**_mention().to_dict(), negative_ids=("Q2",))
  with pytest.raises(schema.SchemaError, match="'ukwiki:7:0': teacher_logits holds a non-finite"):
    _with_teacher(teacher_logits=(1.0, float("nan"), 0.0))
  with pytest.raises(schema.SchemaError, match="non-finite"):
    _with_teacher(teacher_logits=(1.0, float("-inf"), 0.0))
  with pytest.raises(schema.SchemaError, match="beyond float32's range"):
    _with_teacher(teacher_logits=(1.0, 1e39, 0.0))
  with pytest.raises(schema.SchemaError, match="tuple of float"):
    _with_teacher(teacher_logits=[1.0, 2.0, 3.0])
  with pytest.raises(schema.SchemaError, match="tuple of float"):
    _with_teacher(teacher_logits=(1.0, "2", 3.0))
