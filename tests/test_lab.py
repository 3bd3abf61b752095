"""`GradientFlowMonitor` and `tasks.lab`: blocks in depth order, numbers equal to autograd's, clean hooks, sweeps."""

from __future__ import annotations

import csv

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from residual_kit import Residual
from residual_kit.gradient_flow import GradientFlowRecorder, find_blocks
from tasks.core.gradient_flow import GradientFlowMonitor
from tasks.lab import cli_main


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def three_layer() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 6), *[Residual(wrap=nn.Sequential(nn.Linear(6, 6), nn.Tanh())) for _ in range(3)], nn.Linear(6, 1)
    )


def test_auto_finds_outermost_residuals_in_depth_order():
    inner = Residual(wrap=nn.Linear(3, 3))
    model = nn.Sequential(Residual(wrap=nn.Linear(3, 3)), Residual(wrap=nn.Sequential(inner)), nn.Linear(3, 3))
    assert [n for n, _ in find_blocks(model)] == ["0", "1"]  # the inner one belongs to block 1
    assert [n for n, _ in find_blocks(model, r"^\d$")] == ["0", "1", "2"]
    with pytest.raises(ValueError, match="no Residual blocks"):
        find_blocks(nn.Sequential(nn.Linear(3, 3)))
    with pytest.raises(ValueError, match="matches"):
        find_blocks(model, "nothing")


def test_recorded_numbers_equal_autograd():
    model = three_layer()
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    with GradientFlowRecorder(model) as rec:
        loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    got = rec.collect()

    # the same quantities by hand: the input of each block, and autograd's gradient at it
    model.zero_grad()
    inputs, h = [], model[0](x)
    for block in model[1:4]:
        inputs.append(h)
        h = block(h)
    loss = nn.functional.mse_loss(model[4](h), y)
    grads = torch.autograd.grad(loss, inputs, retain_graph=True)
    loss.backward()
    assert got["input_grad"] == pytest.approx([g.norm().item() for g in grads], rel=1e-6)
    assert got["activation_rms"] == pytest.approx([t.pow(2).mean().sqrt().item() for t in inputs], rel=1e-6)
    params = [torch.cat([p.grad.flatten() for p in b.parameters()]).norm().item() for b in model[1:4]]
    assert got["param_grad"] == pytest.approx(params, rel=1e-6)
    # the identity path: dL/dx_l = dL/dx_(l+1) (1 + df/dx_l) keeps the gradient at least comparable down the stack
    assert all(g > 0 for g in got["input_grad"])


def test_hooks_are_removed_after_recording():
    model = three_layer()
    with GradientFlowRecorder(model):
        assert all(len(b._forward_pre_hooks) == 1 for b in model[1:4])
    assert all(len(b._forward_pre_hooks) == 0 for b in model[1:4])


class ToyModule(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = three_layer()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
        return torch.utils.data.DataLoader(data, batch_size=8)


def test_monitor_records_every_k_steps_logs_and_cleans_up(tmp_path):
    model = ToyModule()
    monitor = GradientFlowMonitor(every_n_steps=3, dirpath=str(tmp_path))
    trainer = pl.Trainer(max_epochs=2, callbacks=[monitor], logger=pl.loggers.CSVLogger(tmp_path), accelerator="cpu",
                         enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model)
    assert [r["step"] for r in monitor.history] == [0, 3, 6, 9, 12, 15]  # 16 steps
    assert monitor.recorder.names == ["net.1", "net.2", "net.3"]
    assert all(len(r["input_grad"]) == 3 for r in monitor.history)
    assert all(not m._forward_pre_hooks for m in model.modules())
    assert (tmp_path / "gradient_flow.png").stat().st_size > 1000
    rows = list(csv.DictReader(open(trainer.logger.log_dir + "/metrics.csv")))
    assert any(r.get("gradflow/input_grad/00") for r in rows)


def test_depth_sweep_end_to_end_on_a_tiny_budget(tmp_path):
    out = tmp_path / "lab"
    cli_main(["depth", "--depths=[8, 14]", "--epochs=1", "--limit_batches=2", "--source=embedded", f"--out={out}",
              "--record_every=1"])  # fmt: skip
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(r["depth"], r["net"]) for r in rows] == [("8", "plain"), ("8", "residual"), ("14", "plain"),
                                                      ("14", "residual")]  # fmt: skip
    assert all(float(r["first-block grad at init"]) > 0 for r in rows)
    report = (out / "report.md").read_text()
    for png in ("loss_curves.png", "depth.png", "gradient_flow_depth14.png"):
        assert f"]({png})" in report and (out / png).stat().st_size > 1000


def test_a_killed_sweep_goes_on_from_its_finished_runs(tmp_path, capsys):
    out = tmp_path / "lab"
    args = ["depth", "--depths=[8]", "--epochs=1", "--limit_batches=2", "--source=embedded", f"--out={out}"]
    cli_main(args)
    first = (out / "results.csv").read_text()
    (out / "runs" / "residual8-seed0" / "result.json").unlink()  # as if killed during the residual twin
    capsys.readouterr()
    cli_main(args)
    log = capsys.readouterr().out
    assert "reusing 1 finished runs" in log and "[1/1] residual8-seed0" in log  # only the killed twin trains
    assert (out / "results.csv").read_text() == first  # the retrained twin gives the same numbers
    cli_main([*args, "--epochs=2"])  # other settings: nothing reused
    assert "reusing" not in capsys.readouterr().out


def test_variants_sweep_end_to_end_on_a_tiny_budget(tmp_path):
    out = tmp_path / "variants"
    names = '["ReZero", "gated merge"]'
    cli_main(["variants", "--depth=8", f"--names={names}", "--seeds=[0, 1]", "--epochs=1", "--limit_batches=2",
              "--source=embedded", f"--out={out}"])  # fmt: skip
    report = (out / "report.md").read_text()
    assert "| ReZero | 2 |" in report and "| gated merge | 2 |" in report
    assert (out / "variants.png").exists()
    with pytest.raises(ValueError, match="unknown variants"):
        cli_main(["variants", '--names=["nope"]', f"--out={out}"])
