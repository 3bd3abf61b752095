"""The arena end to end at a tiny size, and its data: a user's text file, or the standard library."""

from __future__ import annotations

import json

import pytest

from tasks.data.char_text import CharTextDataModule, stdlib_text
from tasks.lab import cli_main
from tasks.lab.arena import run_name, train_all


def test_arena_writes_its_report_with_every_table(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("def add(a, b):\n    return a + b\n" * 400)
    out = tmp_path / "arena"
    cli_main(["arena", "--designs", '["pre", "hyper-connections", "denseformer"]', "--depths", "[1, 2]",
              "--seeds", "[0]", "--steps", "4", "--sweep", "[0.001]", "--sweep_depth", "1", f"--text_file={text}",
              f"--out={out}"])  # fmt: skip
    report = (out / "report.md").read_text()
    for heading in ("Held-out bits per byte", "Stability", "Cost against pre-norm"):
        assert heading in report
    assert "| hyper-connections |" in report
    for png in ("loss_curves.png", "bits_vs_depth.png", "stream_rms.png", "grad_norm.png"):
        assert (out / png).stat().st_size > 1000


def test_runs_in_parallel_match_runs_in_turn_and_are_kept(tmp_path, capsys):
    """Two worker processes give each run its own result: the same numbers as one process, run by run."""
    text = tmp_path / "corpus.txt"
    text.write_text("for i in range(10):\n    print(i * i)\n" * 300)
    todo = [dict(design=d, depth=2, seed=s, lr=3e-3, steps=5, dim=16, heads=2, target=2.5, text_file=str(text),
                 batch_size=4) for d in ("pre", "post") for s in (0, 1)]  # fmt: skip
    in_turn = train_all(todo, tmp_path / "serial", workers=1, resume=False)
    at_once = train_all(todo, tmp_path / "parallel", workers=2, resume=False)
    assert sorted(in_turn) == sorted(at_once) == sorted(run_name(s) for s in todo)
    for name, result in in_turn.items():
        assert at_once[name]["_losses"] == pytest.approx(result["_losses"], rel=1e-4), name
        assert (tmp_path / "parallel" / name / "result.json").is_file()
    assert len({r["held-out bits/byte"] for r in at_once.values()}) == 4  # four different runs, not one four times
    capsys.readouterr()
    again = train_all(todo, tmp_path / "parallel", workers=2, resume=True)  # a stopped arena goes on: nothing to train
    assert json.dumps(again, sort_keys=True) == json.dumps(at_once, sort_keys=True)  # NaN-safe, as saved
    assert "reusing 4 finished runs" in capsys.readouterr().out


def test_unknown_design_is_named():
    with pytest.raises(ValueError, match="unknown designs \\['pre-nrom'\\]"):
        cli_main(["arena", "--designs", '["pre-nrom"]'])


def test_a_failed_run_in_a_worker_raises_its_error_in_the_arena(tmp_path):
    todo = [dict(design="pre", depth=1, seed=s, lr=3e-3, steps=2, dim=16, heads=2, target=2.5,
                 text_file=str(tmp_path / "missing.txt"), batch_size=2) for s in range(6)]  # fmt: skip
    with pytest.raises(FileNotFoundError, match=r"missing\.txt does not exist"):
        train_all(todo, tmp_path / "runs", workers=2, resume=False)
    assert not list((tmp_path / "runs").glob("*/result.json"))


def test_workers_below_one_are_refused(tmp_path):
    with pytest.raises(ValueError, match="workers=0: give at least 1"):
        cli_main(["arena", "--workers", "0", f"--out={tmp_path}"])


def test_text_windows_predict_the_next_byte(tmp_path):
    text = tmp_path / "t.txt"
    text.write_bytes(bytes(range(256)) * 20)
    dm = CharTextDataModule(str(text), block_size=16, num_train=8, num_val=4)
    dm.setup("fit")
    x, y = dm.train_set[0]
    assert x.shape == y.shape == (16,) and (y[:-1] == x[1:]).all()
    assert len(dm.val_set) == 4


def test_missing_text_file_is_named(tmp_path):
    dm = CharTextDataModule(str(tmp_path / "nope.txt"))
    with pytest.raises(FileNotFoundError, match=r"nope\.txt does not exist"):
        dm.setup("fit")


def test_default_corpus_is_the_standard_library():
    assert len(stdlib_text()) > 300_000
