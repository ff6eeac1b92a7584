"""The entity table's texts: description, name first when asked (data.entity_names)."""
from mel import entity_table, schema


def _entity(entity_id="ukwiki:1946", description="5 січня — розпочався Нюрнберзький процес",
            labels=None, lang="uk"):
  return schema.Entity(
      entity_id=entity_id, qid="", description=description, description_lang=lang,
      description_source="wikipedia" if description else "", mention_count=3,
      mention_counts={lang: 3}, sitelinks={f"{lang}wiki": entity_id.split(":", 1)[-1]},
      labels={lang: "1946"} if labels is None else labels, wikidata_descriptions={},
      wikipedia_descriptions={lang: description} if description else {}, aliases={})


def test_the_description_alone_by_default():
  assert entity_table.entity_text(_entity()) == "5 січня — розпочався Нюрнберзький процес"


def test_with_name_the_name_comes_first():
  assert entity_table.entity_text(_entity(), with_name=True) == (
      "1946 — 5 січня — розпочався Нюрнберзький процес")


def test_a_description_that_starts_with_the_name_is_kept_as_it_is():
  entity = _entity(entity_id="ukwiki:Київ", description="Київ — столиця України.",
                   labels={"uk": "Київ"})
  assert entity_table.entity_text(entity, with_name=True) == "Київ — столиця України."


def test_without_labels_the_page_title_names_it_and_without_description_the_name_is_the_text():
  entity = _entity(labels={})
  assert entity_table.entity_text(entity, with_name=True).startswith("1946 — 5 січня")
  assert entity_table.entity_text(_entity(description=""), with_name=True) == "1946"
  assert entity_table.entity_text(_entity(description="")) == "1946"
