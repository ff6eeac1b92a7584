"""The `beam` command's exit codes (0 ok, 1 bad input, 2 usage, 3 when the accounting fails) and
the `mel` command: one subcommand per stage, the same flag names for the same ideas."""
import subprocess
import sys
import types

import pytest

from beam_pipelines import cli
from mel import cli as mel_cli


def _fake_pipeline(monkeypatch, run):
  module = types.SimpleNamespace(run=run)
  monkeypatch.setattr(cli.importlib, "import_module", lambda name: module)


def test_exit_3_when_a_summary_check_fails(monkeypatch):
  seen = {}

  def run(argv):
    seen["argv"] = argv
    return {"checks": {"pages": {"ok": True}, "links": {"ok": False}}}
  _fake_pipeline(monkeypatch, run)
  assert cli.main(["run", "extract_mentions", "--output_dir=x"]) == 3
  assert seen["argv"] == ["--output_dir=x"]


def test_exit_0_when_every_check_holds(monkeypatch):
  _fake_pipeline(monkeypatch, lambda argv: {"checks": {"pages": {"ok": True}}})
  assert cli.main(["run", "extract_mentions"]) == 0


def test_exit_1_on_bad_input(monkeypatch, capsys):
  def run(argv):
    raise FileNotFoundError("--wikipedia_dumps: no file matches 'x'")
  _fake_pipeline(monkeypatch, run)
  assert cli.main(["run", "extract_mentions"]) == 1
  assert "no file matches 'x'" in capsys.readouterr().err


def test_usage_errors(capsys):
  assert cli.main(["run"]) == 2
  assert cli.main(["run", "nope"]) == 2
  assert "unknown pipeline 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# the `mel` command


def test_mel_lists_its_stages(capsys):
  assert mel_cli.main([]) == 2
  assert "stages:" in capsys.readouterr().err
  assert mel_cli.main(["--help"]) == 0
  out = capsys.readouterr().out
  for stage in mel_cli.STAGES:
    assert f"  {stage} " in out


def test_mel_rejects_an_unknown_stage(capsys):
  assert mel_cli.main(["mine"]) == 2
  assert "unknown stage 'mine'" in capsys.readouterr().err


# The same idea has the same flag in every stage (mel.flags); old spellings are gone.
WRITES = ("rounds", "vocab", "encode", "index", "negatives", "teacher", "alias-table",
          "evaluate", "dictionary")
REUSES = ("vocab", "encode", "index", "negatives", "teacher", "dictionary")   # finished work
PROGRESS = ("vocab", "encode", "index", "negatives", "teacher", "alias-table", "evaluate",
            "dictionary", "link")
OLD_SPELLINGS = ("--work_dir", "--max_shard_size", "--k ", "--output_dir", "--dumps")


@pytest.mark.parametrize("stage", sorted(mel_cli.STAGES))
def test_every_stage_has_help_and_shared_flag_names(stage, capsys):
  assert mel_cli.main([stage, "--help"]) == 0
  text = capsys.readouterr().out
  assert text.startswith(f"usage: mel {stage}")
  for old in OLD_SPELLINGS:
    assert old not in text, f"mel {stage}: {old.strip()} is spelled differently elsewhere"
  if stage in WRITES:
    assert "--output" in text
  if stage in REUSES:
    assert "--overwrite" in text
  if stage in PROGRESS:
    assert "--no_progress" in text


def test_python_m_mel_is_the_mel_command():
  result = subprocess.run([sys.executable, "-m", "mel", "nope"], capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 2 and "unknown stage 'nope'" in result.stderr


def test_extract_mentions_takes_output_as_well_as_output_dir():
  from beam_pipelines import extract_mentions
  parser = extract_mentions.build_parser()
  both = [parser.parse_args(["--wikipedia_dumps=x", flag]).output_dir
          for flag in ("--output_dir=o", "--output=o")]
  assert both == ["o", "o"]
