"""The GPT and `tasks.transformer`: causality, the KV cache, the data, every norm placement, the CLI."""

from __future__ import annotations

import csv

import pytest
import torch

from residual_kit import Residual, ScaledAdd
from residual_kit.models.gpt import GPT, GPTConfig, KVCache
from tasks.data.digit_text import DigitTask, DigitTaskDataModule, Tokenizer
from tasks.transformer import DigitTransformer, cli_main

FAST = ["--trainer.fast_dev_run=true", "--data.num_train=256", "--data.num_val=64", "--data.num_test=64"]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


# every norm placement, ReZero (no norm, a zero-initialised branch scale) and Fixup (no norm, Fixup's init)
DESIGNS: dict[str, dict] = {
    **{p: {"placement": p} for p in ("post", "pre", "sandwich", "deepnorm")},
    "rezero": {"placement": None, "scale": "rezero"},
    "fixup": {"placement": None, "scale": "learnable", "init": "fixup"},
}


def tiny(placement: str = "pre", layers: int = 2) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(16, 16, layers=layers, dim=32, heads=4, **DESIGNS[placement])).eval()


def test_causal_no_future_token_changes_a_past_logit():
    model = tiny()
    x = torch.randint(1, 16, (2, 10))
    changed = x.clone()
    changed[:, 6:] = torch.randint(1, 16, (2, 4))
    torch.testing.assert_close(model(x)[:, :6], model(changed)[:, :6])
    assert not torch.allclose(model(x)[:, 6:], model(changed)[:, 6:])


@pytest.mark.parametrize("placement", DESIGNS)
def test_kv_cache_generation_equals_full_recompute(placement):
    model = tiny(placement)
    if placement == "rezero":  # exactly the identity at init: give the branches weight first
        for block in model.blocks:
            block.attn.scale.weight.data.fill_(0.5)
            block.mlp.scale.weight.data.fill_(0.5)
    prompt = torch.randint(1, 16, (3, 5))
    cached = model.generate(prompt, 8, use_cache=True)
    full = model.generate(prompt, 8, use_cache=False)
    assert torch.equal(cached, full)
    cache = KVCache()
    logits_step = torch.cat([model(cached[:, i : i + 1], cache) for i in range(cached.shape[1])], dim=1)
    torch.testing.assert_close(logits_step, model(cached), rtol=1e-4, atol=1e-4)


def test_sampling_is_seeded_and_respects_top_k():
    model = tiny()
    prompt = torch.randint(1, 16, (4, 3))
    a = model.generate(prompt, 6, temperature=1.0, generator=torch.Generator().manual_seed(1))
    b = model.generate(prompt, 6, temperature=1.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    top1 = model.generate(prompt, 6, temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(2))
    assert torch.equal(top1, model.generate(prompt, 6))  # top-1 sampling is greedy


@pytest.mark.parametrize("placement", DESIGNS)
def test_every_placement_builds_the_right_residual_and_trains_a_step(placement):
    model = tiny(placement).train()
    blocks = [sub for block in model.blocks for sub in (block.attn, block.mlp)]
    assert len(blocks) == 4 and all(isinstance(b, Residual) for b in blocks)
    formula = blocks[0].formula()
    expected = {
        "post": "y = norm(x + f(x))",
        "pre": "y = x + f(norm(x))",
        "sandwich": "y = x + norm2(f(norm(x)))",
        "rezero": "y = x + rezero·f(x)",
        "fixup": "y = x + α·f(x)",
    }
    if placement == "deepnorm":
        assert isinstance(blocks[0].merge, ScaledAdd) and blocks[0].merge.alpha == pytest.approx(4**0.25)
    else:
        assert formula == expected[placement]
    x = torch.randint(1, 16, (4, 12))
    loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), x.flatten())
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())


def test_output_weights_are_tied():
    model = tiny()
    assert model.head.weight is model.tok.weight


def test_tokenizer_round_trip_and_unknown_characters():
    tok = Tokenizer()
    text = "123+456=9750$"
    assert tok.decode(tok.encode(text)) == text
    with pytest.raises(ValueError, match="'x'"):
        tok.encode("12x")


@pytest.mark.parametrize(
    ("task", "problem", "text"),
    [
        ("add", (42, 917), "042+917=9590$"),
        ("sort", (3, 0, 4, 1, 2), "s30412=01234$"),
        ("reverse", (3, 0, 4, 1, 2), "r30412=21403$"),
    ],
)
def test_task_formats(task, problem, text):
    t = DigitTask(task, digits=3 if task == "add" else 5, reverse_answer=True)
    assert t.prompt(problem) + t.answer(problem) == text
    assert len(t.prompt(problem)) == t.prompt_len and len(t.answer(problem)) == t.answer_len


def test_addition_answers_read_back_and_prompts_parse():
    t = DigitTask("add", 3, reverse_answer=True)
    assert t.read_answer(t.answer((999, 1))) == "1000"
    assert t.parse_prompt("9+9=") == (9, 9)
    with pytest.raises(ValueError, match="at most 3 digits"):
        t.parse_prompt("1234+1=")


def test_train_and_test_problems_are_disjoint():
    dm = DigitTaskDataModule(num_train=5000, num_val=500, num_test=500, seed=7)
    dm.setup("fit")
    train, val, test = (set(s.problems) for s in (dm.train_set, dm.val_set, dm.test_set))
    assert len(train) == 5000 and not train & test and not train & val and not val & test
    _, y = dm.train_set[0]
    assert (y[: dm.prompt_len - 1] == -100).all() and (y[dm.prompt_len - 1 :] >= 0).all()


def test_cli_fit_fast_dev_run_every_placement():
    for design in DESIGNS.values():
        options = [f"--model.net.{k}={'null' if v is None else v}" for k, v in design.items()]
        cli = cli_main(["fit", *FAST, *options, "--model.net.layers=2", "--model.net.dim=32"])
        assert cli.trainer.state.finished
        assert "test/exact" in cli.trainer.callback_metrics


def test_cli_predict_writes_answers(tmp_path):
    cli = cli_main(["fit", *FAST, "--test_after_fit=false", "--model.net.layers=1", "--model.net.dim=32"])
    ckpt = tmp_path / "m.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    (tmp_path / "prompts.txt").write_text("123+456=\n9+9=\n")
    out = tmp_path / "answers.csv"
    cli_main(["predict", f"--ckpt_path={ckpt}", "--data.prompts_file=prompts.txt", f"--predictions.output={out}"])
    rows = list(csv.DictReader(out.open()))
    assert [r["prompt"] for r in rows] == ["123+456=", "9+9="]
    assert all(r["answer"].isdigit() for r in rows)


def test_bad_prompt_is_named(tmp_path):
    cli = cli_main(["fit", *FAST, "--test_after_fit=false", "--model.net.layers=1", "--model.net.dim=32"])
    cli.trainer.save_checkpoint(tmp_path / "m.ckpt")
    with pytest.raises(ValueError, match="12345"):
        cli_main(["predict", f"--ckpt_path={tmp_path / 'm.ckpt'}", '--data.prompts=["12345+1="]'])


def test_module_importable_for_users():
    model = DigitTransformer(GPTConfig(layers=1, dim=32))
    assert model(torch.randint(1, 16, (2, 12))).shape == (2, 12, 16)


@pytest.mark.parametrize("stack", ["hyper", "mhc", "dense"])
def test_every_stack_design_generates_with_the_kv_cache(stack):
    torch.manual_seed(0)
    model = GPT(GPTConfig(16, 16, layers=2, dim=32, heads=4, stack=stack, value_residual=0.5)).eval()
    prompt = torch.randint(1, 16, (3, 5))
    assert torch.equal(model.generate(prompt, 6, use_cache=True), model.generate(prompt, 6, use_cache=False))


def test_hyper_connections_gpt_at_init_is_the_pre_norm_gpt():
    """Same weights: the n streams carry the pre-norm stream, and the final LayerNorm removes their sum's factor n."""
    torch.manual_seed(0)
    plain = GPT(GPTConfig(16, 16, layers=2, dim=32, heads=4)).double().eval()
    hyper = GPT(GPTConfig(16, 16, layers=2, dim=32, heads=4, stack="hyper", stack_options={"streams": 4}))
    hyper = hyper.double().eval()
    state = hyper.state_dict()
    for key, value in plain.state_dict().items():  # the same sub-layers: blocks.i.* are blocks.layers.i.*
        state[key.replace("blocks.", "blocks.layers.", 1) if key.startswith("blocks.") else key] = value
    hyper.load_state_dict(state)
    idx = torch.randint(0, 16, (2, 10))
    torch.testing.assert_close(hyper(idx), plain(idx), rtol=1e-4, atol=1e-4)  # LayerNorm's eps: not bit-exact


def test_value_residual_mix_zero_is_the_plain_attention_and_one_uses_the_first_values():
    torch.manual_seed(0)
    base = GPT(GPTConfig(16, 16, layers=3, dim=32, heads=4)).eval()
    idx = torch.randint(0, 16, (2, 10))
    for mix, same in ((0.0, True), (1.0, False)):
        model = GPT(GPTConfig(16, 16, layers=3, dim=32, heads=4, value_residual=mix)).eval()
        model.load_state_dict(base.state_dict())
        assert torch.allclose(model(idx), base(idx)) == same
    with torch.no_grad():  # mix 1: the later layers' own value projections no longer matter
        before = model(idx)
        for block in list(model.blocks)[1:]:
            block.attn.wrap.qkv.weight[64:].normal_()
        torch.testing.assert_close(model(idx), before)


@pytest.mark.parametrize("causal", [True, False])
def test_explicit_attention_is_sdpa(causal):
    from residual_kit.models.gpt import explicit_attention

    q, k, v = torch.randn(3, 2, 2, 5, 8).unbind(0)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(explicit_attention(q, k, v, causal), expected)


def test_compiled_gpt_on_cpu_equals_eager():
    model = tiny("pre")
    x = torch.randint(1, 16, (2, 9))
    torch.testing.assert_close(torch.compile(model, backend="eager", fullgraph=True)(x), model(x))
