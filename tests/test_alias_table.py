"""mel.evaluation.alias_table: P(entity | mention string) counts, ranking, language back-off, files."""
import gzip

import pytest

from mel.evaluation.alias_table import HEADER, AliasTable, AliasTableError

TRAINING = [  # (language, anchor text, entity)
    ("en", "Paris", "Q90"), ("en", "paris", "Q90"), ("en", "PARIS", "Q90"),
    ("en", "Paris", "Q830149"),                 # Paris, Texas: 1 of 4 English "paris"
    ("fr", "Paris", "Q90"), ("fr", "Paris", "Q167646"), ("fr", "Paris", "Q167646"),
    ("en", "Ｍｅｒｃｕｒｙ", "Q308"),             # full-width: NFKC folds it to "mercury"
    ("en", "Mercury", "Q925"), ("en", "mercury  ", "Q308"),
    ("en", "Springfield", "Q28515"), ("en", "Springfield", "Q151076"),
    ("en", "   ", "Q1"),                          # normalises to '': skipped, counted
]


def table():
  return AliasTable.build(TRAINING)


def test_probabilities_per_language_worked_out():
  t = table()
  # en "paris": Q90 3 of 4, Q830149 1 of 4.
  assert t.ranked("Paris", "en") == [("Q90", 0.75), ("Q830149", 0.25)]
  # fr "paris": Q167646 2 of 3, Q90 1 of 3.
  fr = t.ranked("paris", "fr")
  assert [e for e, _ in fr] == ["Q167646", "Q90"] and fr[0][1] == pytest.approx(2 / 3)


def test_back_off_to_all_languages_when_the_language_never_saw_the_string():
  t = table()
  # de saw no "paris": pooled counts Q90 4, Q167646 2, Q830149 1 of 7.
  pooled = t.ranked("PARIS", "de")
  assert [e for e, _ in pooled] == ["Q90", "Q167646", "Q830149"]
  assert [p for _, p in pooled] == pytest.approx([4 / 7, 2 / 7, 1 / 7])
  assert t.ranked("PARIS") == pooled      # no language: pooled


def test_normalisation_folds_width_case_and_whitespace():
  t = table()
  # "Ｍｅｒｃｕｒｙ" and "mercury  " both count for Q308: 2 of 3.
  assert t.candidates(" MERCURY", 2, "en") == ["Q308", "Q925"]
  assert t.skipped == {"empty_after_normalisation": 1}
  assert t.num_mentions == len(TRAINING) - 1


def test_ties_go_to_the_more_frequent_entity_then_the_id():
  # "springfield": 1 each; by id, Q151076 sorts first.
  assert table().candidates("springfield", 5, "en") == ["Q151076", "Q28515"]
  # Once Q28515 has 2 training mentions overall (one under another string), it goes first.
  t = AliasTable.build(TRAINING + [("en", "Springfield, Illinois", "Q28515")])
  assert t.candidates("springfield", 5, "en") == ["Q28515", "Q151076"]


def test_unseen_strings_have_no_candidates_and_k_cuts():
  t = table()
  assert t.candidates("Lyon", 10, "fr") == []
  assert t.candidates("paris", 1, "en") == ["Q90"]


@pytest.mark.parametrize("name", ["aliases.tsv", "aliases.tsv.gz"])
def test_save_and_load_round_trip(tmp_path, name):
  t = table()
  path = str(tmp_path / name)
  t.save(path)
  loaded = AliasTable.load(path)
  assert loaded.counts == t.counts and loaded.entity_totals == t.entity_totals
  for mention, lang in [("paris", "en"), ("paris", "de"), ("mercury", "en")]:
    assert loaded.ranked(mention, lang) == t.ranked(mention, lang)
  opener = gzip.open if name.endswith(".gz") else open
  with opener(path, "rt", encoding="utf-8") as f:
    assert f.readline().rstrip("\n") == HEADER
  assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("body, line", [
    ("en\tparis\tQ90\n", 2), ("en\tparis\tQ90\tmany\n", 2),
    ("en\tparis\tQ90\t1\nen\tx\tQ1\t0\n", 3), ("en\tparis\tQ90\t1\nen\tparis\tQ90\t2\n", 3)])
def test_malformed_files_name_the_line(tmp_path, body, line):
  path = tmp_path / "bad.tsv"
  path.write_text(HEADER + "\n" + body, encoding="utf-8")
  with pytest.raises(AliasTableError, match=rf"bad\.tsv: line {line}"):
    AliasTable.load(str(path))
  path.write_text("surface\tentity\n", encoding="utf-8")
  with pytest.raises(AliasTableError, match="line 1"):
    AliasTable.load(str(path))


def test_the_alias_table_ranks_as_the_shared_anchor_counts():
  """The baseline is mel.anchors' P(entity | text): the same counts and the same rankings as
  the spotter's dictionary gets from the same mentions."""
  from mel.anchors import AnchorCounts
  t, counts = table(), AnchorCounts.from_mentions(TRAINING)
  assert t.counts == counts.counts and t.pooled == counts.pooled
  assert t.entity_totals == counts.entity_totals and t.skipped == counts.skipped
  for text in ("paris", "PARIS", "Ｍｅｒｃｕｒｙ", "springfield", "lyon", "   "):
    for lang in ("en", "fr", "de", ""):
      assert t.ranked(text, lang) == counts.ranked(text, lang), (text, lang)


def test_cli_writes_a_loadable_table_and_names_a_missing_mining_run(tmp_path, capsys):
  from mel.evaluation import alias_table
  assert alias_table.main(["--mining_dir", str(tmp_path / "nowhere"), "--output",
                           str(tmp_path / "t.tsv"), "--no_progress"]) == 1
  assert "nowhere" in capsys.readouterr().err
  with pytest.raises(SystemExit):      # --output is required
    alias_table.main(["--mining_dir", str(tmp_path)])
