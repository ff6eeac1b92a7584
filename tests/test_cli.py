"""The `beam` command's exit codes: 0 ok, 1 bad input, 2 usage, 3 when the accounting fails."""
import types

from beam_pipelines import cli


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
