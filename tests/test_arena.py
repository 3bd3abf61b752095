"""The arena end to end at a tiny size, its statistics and references against hand-computed values, its data."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
import torch
from scipy.stats import ttest_rel

from tasks.data.char_text import CharTextDataModule, held_out_blocks, read_text, stdlib_text
from tasks.lab import cli_main
from tasks.lab.arena.designs import DESIGNS
from tasks.lab.arena.gains import FAILED_BITS, effective_speedup, steps_to_reach
from tasks.lab.arena.ngram import KneserNey, NGram
from tasks.lab.arena.report import differences
from tasks.lab.arena.run import best_rate, choose_designs, run_name
from tasks.lab.arena.stability import composite_gains
from tasks.lab.arena.train import TEST, VAL, train_design
from tasks.lab.runner import run_all
from tasks.lab.stats import holm, paired_difference

# a GPT of width 16 on windows of 16 bytes: every arena and stability test trains this one
TINY_MODEL = ["--dim", "16", "--heads", "2", "--block_size", "16", "--batch_size", "4"]
TINY_ARENA = ["--depth", "1", "--seeds", "[0, 1]", "--steps", "3", "--compile", "false", *TINY_MODEL]


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
        "Designs against pre-norm (test bits per byte)",
        "Count models on the same test bytes",
        "Learning-rate sweep (validation bits per byte",
        "What each paper reports",
        "Throughput",
        "What the arena can and cannot say",
    ):
        assert heading in report
    assert "| hyper |" in report and "| pre |" in report  # pre-norm joins as the baseline
    assert "SHA-256 " in report and "bigram counts (add-0.5)" in report and "| 5-gram Kneser-Ney |" in report
    assert (
        "p (Holm)" in report
        and "effective speed-up" in report
        and "of this CPU's bfloat16 matrix-multiply rate" in report
    )
    for png in ("loss_curves.png", "designs.png", "wall_clock.png"):
        assert (out / png).stat().st_size > 1000


def test_the_sweep_grows_where_the_best_rate_sits_at_the_edge(tmp_path, corpus, monkeypatch):
    """A design whose best rate is the grid's largest gets one rate more beyond it, until it is bracketed."""
    import tasks.lab.arena.run as arena_run

    def fake(s):  # validation best at 0.008; the test bytes would pick 0.001: the sweep must not see them
        return {
            "design": s["design"],
            "depth": s["depth"],
            "seed": s["seed"],
            "lr": s["lr"],
            "steps to target": 1,
            VAL: abs(math.log2(s["lr"]) - math.log2(0.008)),
            TEST: abs(math.log2(s["lr"]) - math.log2(0.001)),
            "diverged at": "no",
            "params": 10,
            "train seconds": 1.0,
            "step seconds": 0.1,
            "_losses": [1.0],
            "_curve": [(3, 1.0, 1.0)],
            "final train loss": 1.0,
        }

    monkeypatch.setattr(arena_run, "train_design", fake)
    monkeypatch.setattr(arena_run, "step_times", lambda *a, **k: {("pre", 1): (1.0, 1.0, 1.0)})
    out = tmp_path / "arena"
    cli_main(
        [
            "arena",
            "--designs",
            '["pre"]',
            *TINY_ARENA,
            "--rates",
            "[0.001, 0.002]",
            "--extend",
            "3",
            f"--text_file={corpus}",
            f"--out={out}",
            "--workers",
            "1",
        ]
    )
    report = (out / "report.md").read_text()
    assert "lr 0.004" in report and "lr 0.008" in report and "lr 0.016" in report  # grown ×2 twice, bracketed
    assert "| pre | 0.008 |" in report


def test_designs_all_means_every_registered_design_with_pre_norm_first():
    assert choose_designs("all") == choose_designs(["all"]) == list(DESIGNS)
    assert choose_designs(["x0", "pre"]) == ["pre", "x0"] and choose_designs(None)[0] == "pre"


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt", "lstm"])
def test_designs_all_as_typed_runs_every_design_of_the_family_to_its_report(tmp_path, corpus, family):
    # the step timing runs for real here: every design's training step is timed before its runs
    """`--designs all`, as the README types it: every design trains and has its row, figure and paper (slow: about
    7 minutes a family on 2 CPU cores; `pytest -m slow tests/test_arena.py`)."""
    out = tmp_path / family
    args = [
        "arena",
        "--family",
        family,
        "--designs",
        "all",
        *TINY_ARENA,
        "--depth",
        "3",
        "--steps",
        "2",
        "--rates",
        "[0.003]",
    ]
    cli_main([*args, "--extend", "0", f"--text_file={corpus}", f"--out={out}", "--workers", "2"])
    report = (out / "report.md").read_text()
    assert all(f"| {d} |" in report for d in choose_designs("all", family))
    assert len(list((out / "runs").glob("*/result.json"))) == 2 * len(choose_designs("all", family))
    assert (out / "designs.png").stat().st_size > 1000


def equal_times(build, designs, depths, *args, **kwargs):
    """`step_times` without the timing: every design costs what pre-norm does (the GPT test times for real)."""
    return {(d, depth): (1.0, 1.0, 1.0) for d in designs for depth in depths}


@pytest.mark.parametrize("family", ["lstm", "gru"])
def test_the_recurrent_family_runs_the_protocol_to_its_own_report(tmp_path, corpus, family, monkeypatch):
    monkeypatch.setattr("tasks.lab.arena.run.step_times", equal_times)
    out = tmp_path / family
    args = ["arena", "--family", family, "--designs", '["hyper", "canon"]', *TINY_ARENA, "--rates", "[0.003]"]
    cli_main([*args, "--extend", "0", f"--text_file={corpus}", f"--out={out}", "--workers", "1"])
    report = (out / "report.md").read_text()
    assert report.startswith(f"# Residual arena: the {family.upper()} family")
    assert f"{family.upper()} language model: byte embedding, 1 {family.upper()} layers of width 16" in report
    assert "| hyper |" in report and "| canon |" in report and "p (Holm)" in report
    kept = [json.loads(f.read_text()) for f in (out / "runs").glob("*/result.json")]
    assert len(kept) == 6 and {k["settings"]["family"] for k in kept} == {family}  # 3 designs x 2 seeds
    assert all(math.isfinite(k["result"][TEST]) for k in kept)


def test_the_recurrent_family_takes_every_design_with_a_recurrent_form_and_names_the_others():
    recurrent = choose_designs("all", "lstm")
    left_out = {d for d in DESIGNS if not DESIGNS[d].applies("lstm")}
    assert left_out == {"deepnorm", "fixup", "value-residual"}
    assert recurrent == [d for d in DESIGNS if d not in left_out] and choose_designs("all", "gru") == recurrent
    with pytest.raises(ValueError, match="no faithful form in the lstm family: it mixes attention's values"):
        choose_designs(["value-residual"], "lstm")
    with pytest.raises(ValueError, match="family='rnn' is not one of"):
        choose_designs(["pre"], "rnn")


def test_best_rate_counts_a_diverged_run_as_the_worst():
    runs = [
        {"lr": 0.1, VAL: math.nan, TEST: 1.0},
        {"lr": 0.01, VAL: 3.0, TEST: 9.0},
        {"lr": 0.001, VAL: 3.5, TEST: 2.0},
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
    assert d.significant and d.p == pytest.approx(ttest_rel(a, b).pvalue)
    noisy = paired_difference([3.0, 3.4], [3.2, 3.1])
    assert not noisy.significant and noisy.p == pytest.approx(ttest_rel([3.0, 3.4], [3.2, 3.1]).pvalue)
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference([1.0], [1.0, 2.0])


def test_holm_against_hand_computed_values():
    """m = 4 (the default run's comparisons): the second smallest p is multiplied by 3, so 0.035 is not claimed."""
    adjusted = holm({"post": 0.001, "hyper": 0.035, "mhc": 0.25, "x0": 0.2})
    assert adjusted["post"] == pytest.approx(0.004) and adjusted["hyper"] == pytest.approx(0.035 * 3)
    assert adjusted["x0"] == pytest.approx(0.4) and adjusted["mhc"] == pytest.approx(0.4)  # never below the one before
    with_nan = holm({"a": 0.01, "few": math.nan})  # too few pairs: no p, but it counts in m
    assert with_nan["a"] == pytest.approx(0.02) and math.isnan(with_nan["few"])


def test_a_diverged_run_scores_as_the_uniform_model_and_counts_against_its_design():
    runs = [{"design": d, "seed": s, TEST: math.nan if (d, s) == ("b", 1) else 2.0 + 0.01 * s, "diverged at": "no"}
            for d in ("pre", "b") for s in (0, 1, 2)]  # fmt: skip
    diffs, _ = differences(runs, ["pre", "b"], [0, 1, 2])
    assert diffs["b"].n == 3 and diffs["b"].mean == pytest.approx((FAILED_BITS - 2.01) / 3)


def test_effective_speedup_charges_the_cost_per_step():
    base = {"diverged at": "no", "_curve": [(50, 1.0, 4.0), (100, 2.0, 3.0)]}
    design = {"diverged at": "no", "_curve": [(50, 1.0, 3.5), (100, 2.0, 3.5)]}  # pre-norm reaches 3.5 at step 75
    assert effective_speedup(design, base, cost=1.0).value == pytest.approx(0.75)
    assert effective_speedup(design, base, cost=2.0).value == pytest.approx(0.375)
    better = {"diverged at": "no", "_curve": [(100, 2.0, 2.5)]}  # pre-norm never gets there: a lower bound
    assert str(effective_speedup(better, base, cost=1.0)) == ">1.00×"
    assert steps_to_reach([(0, 8.0), (100, 4.0)], 6.0) == pytest.approx(50)


def naive_kneser_ney(train: bytes, n: int, history: bytes, y: int) -> float:
    """Interpolated Kneser-Ney written out with dictionaries, as Chen & Goodman give it: the reference."""
    counts = [Counter() for _ in range(n + 1)]  # counts[k][k-gram]: raw at n, continuation counts below
    counts[n] = Counter(train[i : i + n] for i in range(len(train) - n + 1))
    for k in range(n - 1, 0, -1):
        counts[k] = Counter(g[1:] for g in counts[k + 1])  # distinct bytes before each k-gram
    p = 1 / 256
    for k in range(1, len(history) + 2):
        ctx = history[len(history) - k + 1 :] if k > 1 else b""
        grams = {g: c for g, c in counts[k].items() if g[:-1] == ctx}
        values = list(counts[k].values())
        d = values.count(1) / (values.count(1) + 2 * values.count(2))
        total = sum(grams.values())
        if total:
            p = (max(grams.get(ctx + bytes([y]), 0) - d, 0) + d * len(grams) * p) / total
    return p


def test_kneser_ney_matches_the_written_out_formula_and_sums_to_one():
    train = b"the cat sat on the mat; the rat ate the hat. " * 3 + b"a bat, a cab, a tab."
    data = torch.tensor(list(train), dtype=torch.uint8)
    for n in (1, 2, 3, 5):
        model = KneserNey(data, n)
        for history in (b"", b"t", b"th", b"the ", b"zzzz", b" ca"):
            history = history[len(history) - (n - 1) :] if n > 1 else b""
            h = torch.tensor([list(history)] * 256, dtype=torch.uint8).reshape(256, len(history))
            probs = 2 ** model.log2_prob(h, torch.arange(256))
            assert probs.sum().item() == pytest.approx(1.0)
            for y in b"e a.":
                assert probs[y].item() == pytest.approx(naive_kneser_ney(train, n, history, y)), (n, history, y)


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
            compile=False,
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
    assert len({r[TEST] for r in at_once.values()}) == 4  # four different runs, not one four times
    capsys.readouterr()
    again = run_all(named, train_design, tmp_path / "parallel", workers=2, resume=True)  # nothing left to train
    assert json.dumps(again, sort_keys=True) == json.dumps(at_once, sort_keys=True)
    assert "reusing 4 finished runs" in capsys.readouterr().out


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


def test_held_out_bytes_are_validation_and_test_blocks_spread_across_the_text():
    data = torch.arange(200, dtype=torch.uint8)
    train, val, test = held_out_blocks(data, 0.25, 10)  # every 4th block of 10, starting at block 2, alternating
    assert [b[0].item() for b in val] == [20, 100, 180] and [b[0].item() for b in test] == [60, 140]
    assert len(train) == 150
    positions = torch.arange(5000)  # positions, so that a byte shared between splits would show
    train, val, test = held_out_blocks(positions, 0.1, 64)
    seen = [set(torch.cat(part).tolist()) for part in ([train], val, test)]
    assert not seen[0] & seen[1] and not seen[0] & seen[2] and not seen[1] & seen[2]
    assert len(seen[0]) + len(seen[1]) + len(seen[2]) == 5000
    _, val, test = held_out_blocks(positions[:400], 0.1, 64)  # one held-out block: its halves
    assert len(val) == len(test) == 1 and val[0][-1] < test[0][0]
    dm = CharTextDataModule(block_size=64)
    dm.setup("fit")
    val_starts, test_starts = [b[0].item() for b in dm.val_blocks], [b[0].item() for b in dm.test_blocks]
    held = dm.val_blocks + dm.test_blocks
    assert sum(len(b) for b in held) >= 128 * 1024 and len(val_starts) > 10 and len(test_starts) > 10
    assert len(dm.sha256) == 64 and dm.num_bytes > 1_000_000
    for split, blocks in ((dm.val_set, dm.val_blocks), (dm.test_set, dm.test_blocks)):
        scored = sum(int((y >= 0).sum()) for _, y in split)
        assert scored == sum(len(b) - 1 for b in blocks)  # every byte of its blocks but a block's first, once


def test_validation_and_test_windows_of_a_text_file_share_no_byte(tmp_path):
    """`tasks.transformer --data.text_file` chooses its checkpoint on validation windows: none overlaps a test one."""
    text = tmp_path / "t.txt"
    text.write_bytes(bytes(range(32, 127)) * 200)
    dm = CharTextDataModule(str(text), block_size=16)
    dm.setup("fit")
    # the blocks are views of the text's bytes: their storage offsets are their places in the text
    val, test = (
        [(b.storage_offset(), b.storage_offset() + len(b)) for b in bs] for bs in (dm.val_blocks, dm.test_blocks)
    )
    assert val and test and all(e1 <= s2 or e2 <= s1 for s1, e1 in val for s2, e2 in test)
    assert dm.val_set is not dm.test_set and len(dm.val_set) and len(dm.test_set)


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


def test_stack_overhead_times_the_recurrent_family_against_pre_norm(monkeypatch, capsys):
    """The benchmark as typed for the GRU family: every design named, its parameters and its step against pre-norm's
    (the timing stubbed: a test does not judge times, and `tasks.core.timing.compare` has tests of its own)."""
    import benchmarks.stack_overhead as bench

    timed = {}

    def compare(steps, baseline, rounds, num_threads=None):
        for step in steps.values():
            step()  # one real training step of every design
        timed.update(steps)
        return {name: {"median_s": 1e-3, "ratio": 1.0, "ratio_min": 1.0, "ratio_max": 1.0} for name in steps}

    monkeypatch.setattr(bench, "compare", compare)
    args = ["--family", "gru", "--layers", "2", "--dim", "8", "--block-size", "4", "--batch-size", "2"]
    monkeypatch.setattr("sys.argv", ["stack_overhead", *args, "--no-compile", "--designs", "hyper", "canon"])
    bench.main()
    out = capsys.readouterr().out
    assert "family=gru" in out and "eager training step:" in out and list(timed) == ["pre", "hyper", "canon"]
    monkeypatch.setattr("sys.argv", ["stack_overhead", "--family", "lstm", "--designs", "value-residual"])
    with pytest.raises(SystemExit) as wrong:
        bench.main()
    assert wrong.value.code == 2 and "'value-residual' is not a design of the lstm family" in capsys.readouterr().err
