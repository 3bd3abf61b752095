"""The README stays true: every Python block runs and prints what its comments say, every `python -m` command
parses, its quick start matches CI, and the examples run."""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
CHECKPOINTS = {"resnet": "tasks.resnet", "transformer": "tasks.transformer", "lstm": "tasks.lstm", "gan": "tasks.gan"}


def expected_prints(code: str) -> list[tuple[str, str]]:
    """(kind, text) per print line: "->" must be printed exactly, "e.g." names the form of a trained model's answer."""
    return [(kind, text.strip()) for kind, text in re.findall(r"print\(.*\)\s+# (->|e\.g\.) (.*)", code)]


def test_every_python_block_says_what_it_prints():
    assert len(BLOCKS) >= 7 and all(expected_prints(code) for code in BLOCKS if "print(" in code)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, judge_path_module):
    """Checkpoints at the paths the README names, each trained for a couple of steps, and the images it reads."""
    root = tmp_path_factory.mktemp("readme")
    steps = [
        "--trainer.max_steps=2",
        "--trainer.limit_val_batches=1",
        "--test_after_fit=false",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={root / 'runs'}",
    ]
    small = {
        "resnet": ["--model.net.arch=resnet8"],
        "transformer": [
            "--data.num_train=256",
            "--data.num_val=32",
            "--model.net.layers=1",
            "--model.net.dim=16",
            "--trainer.val_check_interval=2",
        ],
        "lstm": [
            "--data.batch_size=8",
            "--data.num_train=64",
            "--data.num_val=8",
            "--model.net.dim=16",
            "--model.net.layers=2",
        ],
        "gan": [
            "--data.batch_size=8",
            "--model.net.dim=8",
            f"--evaluation.classifier_path={judge_path_module}",
            "--evaluation.samples=8",
            "--trainer.check_val_every_n_epoch=1",
        ],
    }
    for task, module in CHECKPOINTS.items():
        __import__(module, fromlist=["cli_main"]).cli_main(["fit", *steps, *small[task]])
    resnet = root / "runs" / "resnet" / "version_0" / "checkpoints" / "last.ckpt"
    __import__("tasks.resnet", fromlist=["cli_main"]).cli_main(["export", f"--ckpt_path={resnet}"])  # last.onnx
    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[6:22, 12:16] = 200
    Image.fromarray(pixels).save(root / "digit.png")
    Image.fromarray(np.zeros((28, 60), dtype=np.uint8)).save(root / "strip.png")
    return root


@pytest.fixture(scope="module")
def judge_path_module(tmp_path_factory):
    import torch

    from residual_kit.models import create_model

    path = tmp_path_factory.mktemp("judge") / "judge.pt"
    torch.save(create_model("resnet20", in_channels=1, num_classes=10).state_dict(), path)
    return path


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs_and_prints_what_it_says(index, trained, monkeypatch, capsys):
    code = BLOCKS[index]
    monkeypatch.chdir(trained)
    exec(compile(code, f"README.md block {index}", "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out.strip().splitlines()
    expected = expected_prints(code)
    assert len(printed) == len(expected), (printed, expected)
    for line, (kind, text) in zip(printed, expected, strict=True):
        if kind == "->":
            assert line == text
        else:  # a trained model's answer: the same form (a list of strings of the same kind of characters)
            got, like = eval(line), eval(text)
            assert isinstance(got, list) and len(got) == len(like) and all(isinstance(g, str) for g in got)


def readme_commands() -> list[str]:
    """Every `python -m` command in the README's shell blocks and tables, placeholders left as they are."""
    text = "\n".join(re.findall(r"```bash\n(.*?)```", README, flags=re.S)) + "\n" + README
    commands = []
    for match in re.finditer(r"python -m ((?:tasks|benchmarks)\.[\w.]+)([^`|\n#]*)", text):
        module, rest = match[1], match[2].replace("\\", " ").strip()
        if "<name>" in module or "fit|validate" in rest:
            continue
        commands.append(f"{module} {rest}".strip())
    return sorted(set(commands))


@pytest.mark.parametrize("command", readme_commands())
def test_every_python_m_command_in_the_readme_parses(command, tmp_path, monkeypatch):
    module, *args = shlex.split(command)
    monkeypatch.chdir(ROOT)
    if module.startswith("benchmarks."):
        done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-1000:]
        return
    main = __import__(module, fromlist=["cli_main"]).cli_main
    args = [a.replace("<ckpt>", str(tmp_path / "none.ckpt")) for a in args]
    with pytest.raises(SystemExit) as done:
        main([*args, "--print_config"])
    assert done.value.code in (0, None)


def test_quick_start_is_two_commands_and_ci_runs_the_test_one():
    quick = re.search(r"## Quick start\n\n```bash\n(.*?)```", README, flags=re.S).group(1).strip().splitlines()
    assert len(quick) == 2
    test_command = quick[1].split("#")[0].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_readme_is_a_guide_not_a_log():
    assert len(README.splitlines()) <= 400
    prose = re.sub(r"`[^`]*`", "", README)  # commands may say `--rounds`; the prose says no word of how work went
    for word in ("round", "stop", "probe", "fresh machine", "straight run"):
        assert not re.search(rf"\b{word}", prose, flags=re.I), word
    assert "{{" not in README


def test_example_runs(capsys):
    runpy.run_path(str(ROOT / "examples" / "wrap_any_module.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "Residual(y = relu(pad(x) + f(x))" in out and out.rstrip().endswith("True")


def test_register_variant_example_runs_and_cleans_up(capsys):
    from residual_kit import MERGES

    try:
        runpy.run_path(str(ROOT / "examples" / "register_variant.py"), run_name="__main__")
    finally:
        MERGES.pop("convex", None)  # the example registers it for its own process
    out = capsys.readouterr().out
    assert "y = (1-λ)·x + λ·f(norm(x))" in out and out.rstrip().endswith("True")


def test_the_library_is_plain_pytorch():
    """Importing every module of residual_kit loads neither Lightning nor matplotlib."""
    code = (
        "import importlib, pkgutil, sys, residual_kit\n"
        "for m in pkgutil.walk_packages(residual_kit.__path__, 'residual_kit.'): importlib.import_module(m.name)\n"
        "print(sorted({k.split('.')[0] for k in sys.modules} & {'pytorch_lightning', 'lightning', 'matplotlib'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


def test_no_source_file_is_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in [*ROOT.glob("residual_kit/**/*.py"), *ROOT.glob("tasks/**/*.py")]
            if (n := len(p.read_text().splitlines())) > 300}  # fmt: skip
    assert not long


def test_the_layout_section_names_what_is_in_the_tree():
    layout = README[README.index("## Layout") :]
    names = set(re.findall(r"`([\w./]+(?:\.py|/))`", layout))
    assert len(names) > 20
    missing = [n for n in names if not list(ROOT.glob(f"**/{n.rstrip('/')}"))]
    assert not missing


DOCS = {p.relative_to(ROOT).as_posix(): p.read_text() for p in [ROOT / "README.md", *sorted(ROOT.glob("docs/**/*.md"))]}
DOCS.pop("docs/history.md")  # dated records of earlier versions: their options are those of their day
LAB = ("depth", "variants", "arena", "stability")
CLIS = [*(("tasks." + t, "fit") for t in ("resnet", "transformer", "lstm", "gan")), *(("tasks.lab", s) for s in LAB)]


def documented_options() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(file, arguments) of every code span or shell line of the README and docs/ that sets a task's or the lab's
    option to a value, and (file, option) of every option they name bare (`--model.net.stack`)."""
    settings, names = set(), set()
    for name, text in DOCS.items():
        spans = re.findall(r"`([^`\n]*--[a-z][^`\n]*)`", text)
        spans += [line for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
                  for line in block.replace("\\\n", " ").splitlines()]  # fmt: skip
        for span in spans:
            span = span.split("#")[0].replace("...", " ").strip()
            if any(w in span for w in ("<name>", "|", "*", "benchmarks.", "torchrun")):
                continue
            if re.fullmatch(r"--[\w.]+", span):
                names.add((name, span))
            elif span.startswith("--") or span.split()[0] in ("fit", "test", "predict") or "python -m tasks" in span:
                settings.add((name, span))
    return sorted(settings), sorted(names)


def parses(module: str, args: list[str]) -> bool:
    main = __import__(module, fromlist=["cli_main"]).cli_main
    try:
        main([*args, "--print_config"])
    except SystemExit as done:
        return done.code in (0, None)
    except Exception:
        return False
    return True


@pytest.mark.parametrize(("doc", "span"), documented_options()[0])
def test_every_option_value_the_docs_name_runs_as_typed(doc, span, tmp_path, monkeypatch, capsys):
    """Each option setting in the README and docs/ parses (`--print_config`) in the command it names, or, where it
    names none, in one of the tasks' or the lab's commands."""
    monkeypatch.chdir(ROOT)
    span = re.sub(r"<[^>]*>", str(tmp_path / "placeholder"), span)
    own = re.search(r"python -m (tasks\.\w+) ?(.*)", span)
    if own:
        args = shlex.split(own[2])
        candidates = [(own[1], args)]
    else:
        args = shlex.split(span)
        candidates = [(m, args if args[0] in (sub, "fit", "test", "predict") else [sub, *args]) for m, sub in CLIS]
    assert any(parses(module, a) for module, a in candidates), f"{doc}: `{span}` runs in no command"
    capsys.readouterr()


@pytest.fixture(scope="module")
def help_texts():
    texts = []
    for module, sub in [*CLIS, ("tasks.resnet", "export")]:
        main = __import__(module, fromlist=["cli_main"]).cli_main
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            main([sub, "--help"])
        texts.append(out.getvalue())
    return "\n".join(texts)


@pytest.mark.parametrize(("doc", "option"), documented_options()[1])
def test_every_option_the_docs_name_exists(doc, option, help_texts):
    assert re.search(re.escape(option) + r"\b", help_texts), f"{doc}: {option} is an option of no command"
