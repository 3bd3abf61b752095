"""The arena end to end at a tiny size, its statistics and references against hand-computed values, its data."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tasks.data.char_text import CharTextDataModule, held_out_blocks, read_text, stdlib_text
from tasks.lab import cli_main
from tasks.lab.arena.ngram import NGram
from tasks.lab.arena.run import best_rate, run_name
from tasks.lab.arena.stability import composite_gains
from tasks.lab.arena.train import CharLM, decayed, gpt_config, train_design
from tasks.lab.runner import run_all
from tasks.lab.stats import paired_difference

# a GPT of width 16 on windows of 16 bytes: every arena and stability test trains this one
TINY_MODEL = ["--dim", "16", "--heads", "2", "--block_size", "16", "--batch_size", "4"]
TINY_ARENA = ["--depth", "1", "--seeds", "[0, 1]", "--steps", "3", *TINY_MODEL]


@pytest.fixture
def corpus(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("def add(a, b):\n    return a + b\n" * 600)
    return text


def test_arena_writes_its_report_with_every_table(tmp_path, corpus):
    out = tmp_path / "arena"
    cli_main(
        [
            "arena",
            "--designs",
            '["hyper", "x0"]',
            *TINY_ARENA,
            "--rates",
            "[0.001, 0.01]",
            "--extend",
            "1",
            f"--text_file={corpus}",
            f"--out={out}",
            "--workers",
            "1",
        ]
    )
    report = (out / "report.md").read_text()
    for heading in (
        "Designs against pre-norm",
        "Count models on the same held-out bytes",
        "Learning-rate sweep",
        "What each paper reports",
        "What the arena can and cannot say",
    ):
        assert heading in report
    assert "| hyper |" in report and "| pre |" in report  # pre-norm joins as the baseline
    assert "SHA-256 " in report and "bigram counts (add-0.5)" in report
    for png in ("loss_curves.png", "designs.png"):
        assert (out / png).stat().st_size > 1000


def test_the_sweep_grows_where_the_best_rate_sits_at_the_edge(tmp_path, corpus, monkeypatch):
    """A design whose best rate is the grid's largest gets one rate more beyond it, until it is bracketed."""
    import tasks.lab.arena.run as arena_run

    def fake(s):
        return {
            "design": s["design"],
            "depth": s["depth"],
            "seed": s["seed"],
            "lr": s["lr"],
            "steps to target": 1,
            "held-out bits/byte": abs(math.log10(s["lr"]) - math.log10(0.027)),
            "diverged at": "no",
            "params": 10,
            "_losses": [1.0],
            "final train loss": 1.0,
        }

    monkeypatch.setattr(arena_run, "train_design", fake)
    monkeypatch.setattr(arena_run, "step_times", lambda *a, **k: {("pre", 1): 1.0})
    out = tmp_path / "arena"
    cli_main(
        [
            "arena",
            "--designs",
            '["pre"]',
            *TINY_ARENA,
            "--rates",
            "[0.001, 0.003]",
            "--extend",
            "3",
            f"--text_file={corpus}",
            f"--out={out}",
            "--workers",
            "1",
        ]
    )
    report = (out / "report.md").read_text()
    assert "lr 0.009" in report and "lr 0.027" in report and "lr 0.081" in report  # grown twice, bracketed
    assert "| pre | 0.027 |" in report


def test_best_rate_counts_a_diverged_run_as_the_worst():
    runs = [
        {"lr": 0.1, "held-out bits/byte": math.nan},
        {"lr": 0.01, "held-out bits/byte": 3.0},
        {"lr": 0.001, "held-out bits/byte": 3.5},
    ]
    assert best_rate(runs) == 0.01


def test_paired_difference_against_hand_computed_values():
    a, b = [3.0, 3.2, 3.1, 2.9], [3.1, 3.4, 3.15, 3.05]  # d = -0.1, -0.2, -0.05, -0.15
    d = paired_difference(a, b)
    mean, s = -0.125, math.sqrt(((0.025**2) * 2 + 0.075**2 * 2) / 3)
    half = 3.182446305284263 * s / 2  # t_0.975 with 3 degrees of freedom
    assert (
        d.mean == pytest.approx(mean) and d.low == pytest.approx(mean - half) and d.high == pytest.approx(mean + half)
    )
    assert d.significant and str(d).endswith("*")
    noisy = paired_difference([3.0, 3.4], [3.2, 3.1])
    assert not noisy.significant and not str(noisy).endswith("*")
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference([1.0], [1.0, 2.0])


def test_ngram_bits_against_a_hand_count():
    """Text "abab...": after "a" the bigram model has seen "b" every time (add-0.5 over 256 bytes)."""
    train = torch.tensor(list(b"abababab"), dtype=torch.uint8)  # 7 bigrams: ab x4, ba x3
    bigram = NGram(train, 2, 0.5)
    # P(b | a) = (4 + 0.5) / (4 + 128), P(a | b) = (3 + 0.5) / (3 + 128); each byte has its one byte of context
    p_b_a, p_a_b = 4.5 / 132, 3.5 / 131
    p_a = (4 + 0.5) / (8 + 128)  # unigram: a x4, b x4
    windows = [(torch.tensor(list(b"aba")), torch.tensor(list(b"bab")))]
    expected = -(math.log2(p_b_a) + math.log2(p_a_b) + math.log2(p_b_a)) / 3
    assert bigram.bits_per_byte(windows) == pytest.approx(expected)
    unigram = NGram(train, 1, 0.5)
    assert unigram.bits_per_byte(windows) == pytest.approx(-math.log2(p_a))
    assert NGram(train, 3, 0.05).log2_prob(torch.tensor([[97]]), torch.tensor([98])).item() == pytest.approx(
        math.log2(4.05 / (4 + 256 * 0.05))
    )


def test_runs_in_parallel_match_runs_in_turn_and_are_kept(tmp_path, corpus, capsys):
    """Two worker processes give each run its own result: the same numbers as one process, run by run."""
    todo = [
        dict(
            design=d,
            depth=1,
            seed=s,
            lr=3e-3,
            steps=4,
            dim=16,
            heads=2,
            block_size=16,
            batch_size=4,
            warmup=0.1,
            target=2.0,
            precision=None,
            text_file=str(corpus),
        )
        for d in ("pre", "post")
        for s in (0, 1)
    ]
    named = {run_name(s): s for s in todo}
    in_turn = run_all(named, train_design, tmp_path / "serial", workers=1, resume=False)
    at_once = run_all(named, train_design, tmp_path / "parallel", workers=2, resume=False)
    assert sorted(in_turn) == sorted(at_once) == sorted(named)
    for name, result in in_turn.items():
        assert at_once[name]["_losses"] == pytest.approx(result["_losses"], rel=1e-4), name
        assert (tmp_path / "parallel" / name / "result.json").is_file()
    assert len({r["held-out bits/byte"] for r in at_once.values()}) == 4  # four different runs, not one four times
    capsys.readouterr()
    again = run_all(named, train_design, tmp_path / "parallel", workers=2, resume=True)  # nothing left to train
    assert json.dumps(again, sort_keys=True) == json.dumps(at_once, sort_keys=True)
    assert "reusing 4 finished runs" in capsys.readouterr().out


def test_weight_decay_falls_on_linear_and_embedding_weights_only():
    model = CharLM(gpt_config("hyper", 2, 16, 2, 16))
    decay, rest = decayed(model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(
        names[id(p)].endswith("weight")
        and (
            "tok" in names[id(p)]
            or "qkv" in names[id(p)]
            or "proj" in names[id(p)]
            or "fc" in names[id(p)]
            or "pos" in names[id(p)]
        )
        for p in decay
    )
    kept = {names[id(p)] for p in rest}
    assert {"net.blocks.read", "net.blocks.mix", "net.blocks.write", "net.blocks.w_dynamic"} <= kept


def test_unknown_design_is_named():
    with pytest.raises(ValueError, match="design='pre-nrom' is not one of"):
        cli_main(["arena", "--designs", '["pre-nrom"]'])


def test_workers_below_one_are_refused(tmp_path):
    with pytest.raises(ValueError, match="workers=0: give at least 1"):
        cli_main(["arena", "--workers", "0", f"--out={tmp_path}"])


def test_composite_gain_is_the_largest_row_and_column_sum_of_the_product():
    a1 = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    a2 = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    forward, backward = composite_gains([a1, a2])
    c2 = a2.T @ a1.T
    assert forward == pytest.approx([1.0, c2.abs().sum(-1).max().item()])
    assert backward == pytest.approx([1.0, c2.abs().sum(-2).max().item()])


def test_stability_writes_its_report(tmp_path, corpus):
    out = tmp_path / "stability"
    cli_main(
        [
            "stability",
            "--designs",
            '["pre", "mhc"]',
            "--depths",
            "[2]",
            "--steps",
            "2",
            *TINY_MODEL,
            f"--text_file={corpus}",
            f"--out={out}",
            "--workers",
            "1",
        ]
    )
    report = (out / "report.md").read_text()
    assert "| mhc | 2 |" in report and "max mixing gain" in report
    assert (out / "mixing_gain.png").stat().st_size > 1000


def test_held_out_bytes_are_blocks_spread_across_the_text():
    data = torch.arange(100, dtype=torch.uint8)
    train, held = held_out_blocks(data, 0.25, 10)  # every 4th block of 10, starting at block 2
    assert [b[0].item() for b in held] == [20, 60] and len(train) == 80
    dm = CharTextDataModule(block_size=64)
    dm.setup("fit")
    spread = [b[0].item() for b in dm.held_out]
    assert sum(len(b) for b in dm.held_out) >= 128 * 1024 and len(spread) > 20
    assert len(dm.sha256) == 64 and dm.num_bytes > 1_000_000
    scored = sum(int((y >= 0).sum()) for _, y in dm.val_set)
    assert scored == sum(len(b) - 1 for b in dm.held_out)  # every held-out byte but a block's first, once


def test_text_windows_predict_the_next_byte(tmp_path):
    text = tmp_path / "t.txt"
    text.write_bytes(bytes(range(32, 127)) * 60)
    dm = CharTextDataModule(str(text), block_size=16, num_train=8, num_val=4)
    dm.setup("fit")
    x, y = dm.train_set[0]
    assert x.shape == y.shape == (16,) and (y[:-1] == x[1:]).all()
    assert len(dm.val_set) == 4


@pytest.mark.parametrize(("content", "message"), [(b"", "is empty"), (b"\x00\x01\x02" * 50, "looks binary")])
def test_an_empty_or_binary_text_file_is_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_text(path)


def test_missing_text_file_is_named(tmp_path):
    dm = CharTextDataModule(str(tmp_path / "nope.txt"))
    with pytest.raises(FileNotFoundError, match=r"nope\.txt does not exist"):
        dm.setup("fit")


def test_default_corpus_is_the_standard_library():
    assert len(stdlib_text()) > 300_000
