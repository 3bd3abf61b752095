"""Residual LSTM stacks and `tasks.lstm`: strips, CTC decoding, the hidden state, the CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from residual_kit import Residual
from residual_kit.models.lstm import LSTMConfig, LSTMLayer, LSTMReaderConfig, RecurrentLMConfig
from tasks.data.digit_strips import DigitStripDataModule, DigitStrips, make_strip
from tasks.lstm import StripReader, beam_decode, cli_main, greedy_decode


def LSTMStack(input_size: int, dim: int, **options):
    return LSTMConfig(input_size=input_size, dim=dim, **options).build()


FAST = ["--trainer.fast_dev_run=true", "--data.source=embedded", "--data.batch_size=8", "--model.net.dim=16"]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def one_hot_log_probs(path: list[int], classes: int = 11) -> torch.Tensor:
    """(1, T, C) log-probabilities that put almost all mass on `path`."""
    lp = torch.full((1, len(path), classes), -20.0)
    for t, c in enumerate(path):
        lp[0, t, c] = 0.0
    return lp


def test_strip_label_is_the_digits_drawn():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8)
    labels = torch.arange(50) % 10
    strips = DigitStrips(images, labels, length=20, min_digits=1, max_digits=5, width=148, seed=3)
    for i in range(20):
        canvas, digits, idx = strips.draw(i)
        assert canvas.shape == (28, 148)
        assert torch.equal(digits, labels[idx])
        _, label, k = strips[i]
        assert k == len(digits) and torch.equal(label[:k], digits) and (label[k:] == -1).all()
    assert torch.equal(strips[7][0], strips[7][0])  # strip i is fixed by (seed, i)


def test_strip_pastes_digits_left_to_right():
    digits = torch.zeros(3, 28, 28, dtype=torch.uint8)
    for i in range(3):
        digits[i, 10:18, 10:18] = 50 * (i + 1)  # a square of a distinct brightness per digit
    canvas = make_strip(digits, 100, np.random.default_rng(0), jitter=0)
    cols = [int(canvas[:, c].max()) for c in range(100)]
    order = [v for i, v in enumerate(cols) if v and (i == 0 or cols[i - 1] != v)]
    assert order == [50, 100, 150]
    with pytest.raises(ValueError, match="do not fit"):
        make_strip(torch.zeros(5, 28, 28, dtype=torch.uint8), 60, np.random.default_rng(0))


def test_test_strips_use_only_test_digits():
    dm = DigitStripDataModule(source="embedded", num_train=200, num_val=50, num_test=100)
    dm.setup("fit")
    train_pool = {bytes(img.numpy()) for img in dm.train_set.images}
    for i in range(100):
        _, _, idx = dm.test_set.draw(i)
        assert all(bytes(dm.test_set.images[j].numpy()) not in train_pool for j in idx)
    assert len(dm.test_set.images) == 500 and len(dm.train_set.images) == 4000


def test_greedy_decode_merges_repeats_and_drops_blanks():
    # blank=0, digit d is class d+1: the path "1 1 _ 1 3 3 _" reads "113" (the blank keeps the two 1s apart)
    assert greedy_decode(one_hot_log_probs([2, 2, 0, 2, 4, 4, 0])) == ["113"]
    assert greedy_decode(one_hot_log_probs([0, 0, 0])) == [""]
    assert greedy_decode(one_hot_log_probs([1, 1, 2])) == ["01"]


def test_beam_search_finds_the_prefix_that_greedy_misses():
    # two steps of (blank 0.4, "0" 0.3, "1" 0.3): greedy takes the blank twice, but "0" sums three paths
    # ("0 0", "0 _", "_ 0") to 0.27 > 0.16 for the empty string
    p = torch.tensor([[0.4, 0.3, 0.3] + [0.0] * 8] * 2).clamp_min(1e-12)
    lp = p.log().unsqueeze(0)
    assert greedy_decode(lp) == [""]
    assert beam_decode(lp, beam=4)[0] in ("0", "1")
    assert beam_decode(one_hot_log_probs([2, 2, 0, 2, 4]), beam=4) == greedy_decode(one_hot_log_probs([2, 2, 0, 2, 4]))


def test_residual_lstm_keeps_the_hidden_state_structure():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(8, 8, batch_first=True)
    block = Residual(wrap=lstm)
    x = torch.randn(2, 5, 8)
    y, (h, c) = block(x)
    ref, (h_ref, c_ref) = lstm(x)
    torch.testing.assert_close(y, x + ref)
    assert torch.equal(h, h_ref) and torch.equal(c, c_ref) and h.shape == (1, 2, 8)
    h0 = (torch.randn(1, 2, 8), torch.randn(1, 2, 8))  # extra arguments reach the LSTM
    torch.testing.assert_close(block(x, h0)[0], x + lstm(x, h0)[0])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_stack_residual_from_and_projection(bidirectional):
    stack = LSTMStack(6, 8, layers=4, residual_from=0, bidirectional=bidirectional)
    assert stack.residual_layers == 4
    assert stack(torch.randn(3, 7, 6)).shape == (3, 7, 8)  # projection shortcut on the first layer, 6 -> 8
    assert LSTMStack(8, 8, layers=4, residual_from=2).residual_layers == 2  # GNMT
    assert LSTMStack(8, 8, layers=4, residual_from=4).residual_layers == 0  # plain


def test_plain_model_has_no_residual():
    plain = StripReader(LSTMReaderConfig(layers=3, dim=16, residual=False))
    assert plain.net.lstm.residual_layers == 0
    assert StripReader(LSTMReaderConfig(layers=3, dim=16)).net.lstm.residual_layers == 2


def test_cli_fit_fast_dev_run_writes_the_strip_grid(tmp_path):
    cli = cli_main(["fit", *FAST, f"--trainer.default_root_dir={tmp_path}"])
    assert cli.trainer.state.finished
    assert "test/cer" in cli.trainer.callback_metrics
    assert (tmp_path / "test_strips.png").stat().st_size > 1000


def test_predict_reads_png_strips(tmp_path):
    fit = cli_main(["fit", *FAST, "--model.decoder=beam", "--model.beam_width=2"])
    ckpt = tmp_path / "model.ckpt"
    fit.trainer.save_checkpoint(ckpt)
    strips = tmp_path / "strips"
    strips.mkdir()
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (28, 100), dtype=np.uint8)).save(strips / f"{i}.png")
    out = tmp_path / "read.csv"
    cli_main(
        ["predict", *FAST[1:], f"--ckpt_path={ckpt}", f"--data.predict_path={strips}", f"--predictions.output={out}"]
    )
    rows = list(csv.DictReader(open(out)))
    assert [r["path"][-5:] for r in rows] == ["0.png", "1.png", "2.png"]
    assert all(set(r["digits"]) <= set("0123456789") for r in rows)


def test_predict_rejects_a_strip_of_the_wrong_height(tmp_path):
    Image.new("L", (100, 32)).save(tmp_path / "tall.png")
    dm = DigitStripDataModule(predict_path=str(tmp_path / "tall.png"))
    dm.setup("predict")
    with pytest.raises(ValueError, match="28 pixels high"):
        next(iter(dm.predict_dataloader()))


def test_dense_lstm_stack_at_init_is_the_plain_stack():
    x = torch.randn(2, 5, 8)
    torch.manual_seed(0)
    plain = LSTMStack(8, 8, layers=3, residual_from=0)
    torch.manual_seed(0)
    dense = LSTMStack(8, 8, layers=3, residual_from=0, stack="dense")
    torch.testing.assert_close(dense(x), plain(x))


@pytest.mark.parametrize("stack", ["hyper", "mhc", "dense"])
def test_lstm_stack_designs_train_and_keep_a_width_changing_first_layer_plain(stack):
    lstm = LSTMStack(6, 8, layers=3, residual_from=0, stack=stack, drop_path=0.2)
    assert lstm.residual_layers == 2 and isinstance(lstm.layers[0], LSTMLayer)
    out = lstm(torch.randn(2, 5, 6))
    out.square().mean().backward()
    assert out.shape == (2, 5, 8)
    assert all(p.grad is not None for p in lstm.parameters())


def test_a_gru_drops_in_for_the_lstm_and_is_held_under_its_name():
    torch.manual_seed(0)
    stack = LSTMConfig(input_size=8, dim=8, layers=3, residual_from=0, cell="gru").build()
    grus = [m for m in stack.modules() if isinstance(m, torch.nn.GRU)]
    assert len(grus) == 3 and not any(isinstance(m, torch.nn.LSTM) for m in stack.modules())
    assert all(".gru." in k for k in stack.state_dict() if "weight_ih" in k)
    layer = LSTMLayer(8, 8, bidirectional=False, dropout=0.0, cell="gru")
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(Residual(wrap=layer, placement=None)(x)[0], x + layer.gru(x)[0])  # y = x + GRU(x)
    with pytest.raises(ValueError, match=r"cell='rnn' is not one of \('lstm', 'gru'\)"):
        LSTMLayer(8, 8, bidirectional=False, dropout=0.0, cell="rnn")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_recurrent_language_model_reads_left_to_right_with_its_head_tied(cell):
    torch.manual_seed(0)
    lm = RecurrentLMConfig(vocab_size=11, dim=16, layers=6, cell=cell).build().eval()
    assert lm.stack.residual_layers == 6 and lm.head.weight is lm.tok.weight
    idx = torch.randint(11, (2, 9))
    changed = idx.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 11  # the future changed: the logits up to position 4 are not
    out, out_changed = lm(idx), lm(changed)
    assert out.shape == (2, 9, 11)
    torch.testing.assert_close(out[:, :5], out_changed[:, :5])
    assert not torch.allclose(out[:, 5:], out_changed[:, 5:])
    with pytest.raises(ValueError, match="must not read the tokens it predicts"):
        RecurrentLMConfig(vocab_size=11, dim=16, bidirectional=True).build()


def test_the_recurrent_language_model_ends_with_a_norm_where_its_stream_has_none():
    pre = RecurrentLMConfig(vocab_size=11, dim=16, layers=2).build()
    post = RecurrentLMConfig(vocab_size=11, dim=16, layers=2, placement="post").build()
    assert isinstance(pre.norm, torch.nn.LayerNorm) and isinstance(post.norm, torch.nn.Identity)
