"""Every command checks its outputs before any work and refuses bad values where the flag is read.

Each case runs ``nlp182.cli.main`` with the command's work replaced by a function that fails the
test if called, so "exit 2, one line, nothing written, no work done" is checked together. The
commands with ``--out`` are found by walking the parser, so new commands are covered too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from nlp182 import cli
from nlp182.errors import InvalidInputError, OutputError
from nlp182.io import check_run_folder, staged_directory


def _no_work(args: argparse.Namespace) -> int:
    raise AssertionError(f"the command started working: {args}")


BUILD_PARSER = cli.build_parser


def _parser_without_work(modules=None) -> argparse.ArgumentParser:
    parser = BUILD_PARSER(modules)
    for sub in cli.walk_parsers(parser):
        if sub.get_default("func") is not None:
            sub.set_defaults(func=_no_work)
    return parser


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """``main(argv)`` with no command able to work; returns (exit code, stderr lines)."""
    monkeypatch.setattr(cli, "build_parser", _parser_without_work)

    def run(argv: list[str]) -> tuple[int, list[str]]:
        try:
            code = cli.main(argv)
        except SystemExit as stop:
            code = stop.code
        captured = capsys.readouterr()
        assert captured.out == "", captured.out
        return code, captured.err.strip().splitlines()

    return run


def _out_commands(contract: str) -> list[list[str]]:
    """The words of each command with this ``--out`` contract, plus a stand-in for each required
    positional argument (``import PATH``), so the command line parses up to the output check."""
    found = []
    for sub in cli.walk_parsers(cli.build_parser()):
        if sub.get_default("out_contract") == contract:
            positionals = [
                "stand-in" for action in sub._actions
                if not action.option_strings and action.nargs not in ("?", "*", argparse.PARSER)
            ]
            found.append([*sub.prog.split()[1:], *positionals])
    return found


RUN_COMMANDS = _out_commands("run")


def test_the_commands_that_write_runs_are_found() -> None:
    names = {" ".join(words).replace(" stand-in", "") for words in RUN_COMMANDS}
    assert {"train digits", "train shapes", "train seq2seq", "train lsa", "train w2v", "optim plot"} <= names


@pytest.mark.parametrize("words", RUN_COMMANDS, ids=" ".join)
def test_existing_folder_is_refused_and_kept(words: list[str], tmp_path: Path, run_cli) -> None:
    """A user's folder is never replaced, even one holding a config.json of another tool (an
    editor's, a web project's): any config.json made a folder a run, and --overwrite deleted it."""
    for config in (None, '{"theme": "dark"}', "not json", '["method"]'):
        folder = tmp_path / "existing"
        folder.mkdir()
        (folder / "notes.txt").write_text("notes")
        if config is not None:
            (folder / "config.json").write_text(config)
        code, err = run_cli([*words, "--out", str(folder)])
        assert code == 2 and len(err) == 1 and str(folder) in err[0] and "--overwrite" in err[0]
        code, err = run_cli([*words, "--out", str(folder), "--overwrite"])  # not a run of ours
        assert code == 2 and len(err) == 1 and "not an nlp182 run" in err[0]
        assert (folder / "notes.txt").read_text() == "notes" and len(list(tmp_path.iterdir())) == 1
        shutil.rmtree(folder)


@pytest.mark.parametrize("words", RUN_COMMANDS, ids=" ".join)
def test_regular_file_is_never_replaced(words: list[str], tmp_path: Path, run_cli) -> None:
    target = tmp_path / "afile"
    target.write_text("mine")
    for extra in ([], ["--overwrite"]):
        code, err = run_cli([*words, "--out", str(target), *extra])
        assert code == 2 and len(err) == 1 and "is a file" in err[0]
    assert target.read_text() == "mine" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("words", RUN_COMMANDS + _out_commands("files"), ids=" ".join)
@pytest.mark.parametrize("where", ["/proc/x", "/sys/x", "/proc/x/y/z", "", "."])
def test_unwritable_or_meaningless_out_is_refused_naming_it(words: list[str], where: str, run_cli) -> None:
    code, err = run_cli([*words, "--out", where])
    assert code == 2 and len(err) == 1 and "--out" in err[0]
    assert where in err[0] and "staging" not in err[0] and "Traceback" not in err[0]


def test_a_folder_above_the_current_one_is_refused_as_out(tmp_path: Path, monkeypatch) -> None:
    """`--out ..` with `--overwrite` would replace the folder the command runs in: every ancestor of
    the current folder is refused, not only the current folder itself."""
    from nlp182.io import check_output_path

    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    for above in ("..", "../..", str(tmp_path)):
        with pytest.raises(OutputError, match="is the current folder or one above it"):
            check_output_path(above)
    assert check_output_path("../c") == Path("../c")  # a sibling is fine


BAD_VALUES = [
    ("train digits", "--lr", "-1", "--lr must be greater than 0"),
    ("train digits", "--momentum", "-1", "--momentum must be at least 0"),
    ("train digits", "--weight-decay", "-1", "--weight-decay must be at least 0"),
    ("train digits", "--epochs", "0", "--epochs must be at least 1"),
    ("train digits", "--lr", "nan", "--lr must be a finite number"),
    ("train digits", "--batch-size", "x", "--batch-size must be an integer"),
    ("train digits", "--cycles", "4", "--cycles 4 must divide --epochs 15"),
    ("train shapes", "--width", "-2", "--width must be greater than 0"),
    ("train shapes", "--size", "4", "--size must be at least 12"),
    ("train shapes", "--train-size", "0", "--train-size must be at least 1"),
    ("train shapes", "--model", "vgg", "--model: invalid choice"),
    ("train seq2seq", "--hidden-size", "0", "--hidden-size must be a positive even number"),
    ("train seq2seq", "--hidden-size", "33", "--hidden-size must be a positive even number"),
    ("train seq2seq", "--max-length", "0", "--max-length must be at least 1"),
    ("train seq2seq", "--beam-width", "0", "--beam-width must be at least 1"),
    ("train seq2seq", "--teacher-forcing", "1.5", "--teacher-forcing must be at most 1"),
    ("train w2v", "--threads", "-1", "--threads must be at least 1"),
    ("train w2v", "--epochs", "0", "--epochs must be at least 1"),
    ("train lsa", "--dim", "0", "--dim must be at least 1"),
    ("optim plot", "--epochs", "0", "--epochs must be at least 1"),
    ("optim plot", "--steps", "-1", "--steps must be at least 0"),
    ("serve", "--port", "70000", "--port must be at most 65535"),
    ("serve", "--threads", "100000", "--threads must be at most 1024"),
    ("train w2v", "--threads", "40000", "--threads must be at most 1024"),
    ("train w2v", "--seed", "18446744073709551616", "--seed must be at most 4294967295"),
    ("train lsa", "--seed", "4294967296", "--seed must be at most 4294967295"),
    ("train digits", "--seed", "4294967296", "--seed must be at most 4294967295"),
    ("train seq2seq", "--seed", "4294967296", "--seed must be at most 4294967295"),
    ("train caption", "--seed", "4294967296", "--seed must be at most 4294967295"),
    ("train caption", "--threads", "2000", "--threads must be at most 1024"),
    ("train caption", "--max-objects", "0", "--max-objects must be at least 1"),
    ("optim plot", "--seed", "4294967296", "--seed must be at most 4294967295"),
    ("serve", "--workers", "0", "--workers must be at least 1"),
]


@pytest.mark.parametrize(("command", "flag", "value", "message"), BAD_VALUES, ids=lambda v: str(v))
def test_bad_value_is_one_line_naming_the_flag(command, flag, value, message, tmp_path, run_cli) -> None:
    out = tmp_path / "run"
    words = command.split()
    extra = ["--out", str(out)] if any(words == run[: len(words)] for run in RUN_COMMANDS) else ["somerun"]
    code, err = run_cli([*words, *extra, flag, value])
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("words", [["train", "digits"], ["train", "seq2seq"], ["train", "w2v"]], ids=" ".join)
def test_cuda_without_a_gpu_is_one_line(words: list[str], tmp_path: Path, run_cli) -> None:
    code, err = run_cli([*words, "--out", str(tmp_path / "run"), "--device", "cuda"])
    assert code == 2 and len(err) == 1 and "--device" in err[0] and "no CUDA" in err[0]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--heatmap", "x.jpg"], ".png, .pdf or .svg"),
        (["--heatmap", "/sys/x.png"], "/sys/x.png"),
        (["--beam-width", "0"], "--beam-width must be at least 1"),
        (["--max-len", "-3"], "--max-len must be at least 1"),
    ],
)
def test_translate_refuses_before_translating(flags, message, tmp_path, monkeypatch, capsys) -> None:
    from nlp182.seq2seq import translator

    def no_load(*args, **kwargs):
        raise AssertionError("the run was loaded")

    monkeypatch.setattr(translator.Translator, "load", classmethod(no_load))
    run = tmp_path / "run"
    run.mkdir()
    try:
        code = cli.main(["translate", str(run), "some words", *flags])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_translate_names_the_kind_of_a_run_that_is_not_seq2seq(tmp_path, capsys) -> None:
    run = tmp_path / "digits"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "digits"}))
    assert cli.main(["translate", str(run), "hello"]) == 2
    assert f"{run} is a digits run, not a seq2seq run" in capsys.readouterr().err


def test_eval_of_a_missing_run_prints_no_table_first(tmp_path, capsys) -> None:
    eval_dir = Path(__file__).resolve().parents[2] / "corpora" / "eval"
    code = cli.main(["eval", str(tmp_path / "nosuch"), "--eval-dir", str(eval_dir)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "nosuch" in captured.err


def test_eval_of_a_run_it_cannot_write_prints_its_scores_and_says_they_are_not_kept(
    tmp_path, capsys, monkeypatch, caplog, prepared
) -> None:
    """A read-only run (a mount, a colleague's folder) was scored and then refused, naming a
    hidden temporary file, with no table printed."""
    import tempfile as tempfile_module

    from nlp182.embeddings.runs import save_run
    from nlp182.embeddings.vectors import Vectors
    from nlp182.text.vocab import Vocabulary

    eval_dir = prepared.wordsim353.parent
    words = sorted({word.lower() for name in ("wordsim353.tsv", "simlex999.txt")
                    for line in (eval_dir / name).read_text(encoding="utf-8").splitlines()[:40]
                    if not line.startswith("#") for word in line.split("\t")[:2]})
    vectors = Vectors(words, torch.randn(len(words), 4, generator=torch.Generator().manual_seed(0)).numpy())
    vocab = Vocabulary(words, torch.ones(len(words), dtype=torch.int64).numpy(), len(words))
    save_run(tmp_path / "run", vectors, vocab, {}, {})

    def read_only(*args, dir=None, **kwargs):  # as mkstemp fails in a folder the user cannot write
        raise PermissionError(13, "Permission denied", str(Path(dir) / ".metrics.json.1.abc.tmp"))

    monkeypatch.setattr(tempfile_module, "mkstemp", read_only)
    assert cli.main(["eval", str(tmp_path / "run"), "--eval-dir", str(eval_dir)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1].startswith("run ")
    assert f"{tmp_path / 'run' / 'metrics.json'} cannot be written (permission denied)" in caplog.text
    assert ".tmp" not in caplog.text


def _many_words_run(folder: Path) -> Path:
    from nlp182.embeddings.runs import save_run
    from nlp182.embeddings.vectors import Vectors
    from nlp182.text.vocab import Vocabulary

    words = ["café", *(f"mot{i}é" for i in range(6000))]
    vectors = Vectors(words, torch.randn(len(words), 4, generator=torch.Generator().manual_seed(0)).numpy())
    counts = torch.ones(len(words), dtype=torch.int64).numpy()
    save_run(folder, vectors, Vocabulary(words, counts, len(words)), {}, {})
    return folder


def test_output_to_a_closed_pipe_or_a_terminal_without_the_characters_ends_quietly(tmp_path) -> None:
    """``nlp182 neighbors ... | head -1`` said "error: broken pipe" and exited 2; printing ``café``
    where the output encoding is ASCII (a Windows console, PYTHONIOENCODING=ascii) raised a traceback."""
    import subprocess
    import sys

    run = _many_words_run(tmp_path / "run")
    command = [sys.executable, "-c", "import sys; from nlp182.cli import main; sys.exit(main())",
               "neighbors", str(run), "café", "--k", "5000"]
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = writer.stdout.readline()
    writer.stdout.close()  # what `head -1` does once it has its line
    code, err = writer.wait(timeout=120), writer.stderr.read().decode()
    assert first.startswith(b"mot") and code == 141 and err == "", (code, err)
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run([*command[:-1], "3"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith("mot") and "\\xe9" in done.stdout  # mot0\xe9, escaped


def test_neighbors_lines_split_into_word_and_score_whatever_the_words_length(tmp_path, capsys) -> None:
    """A word of 24 characters or more touched its score (``installationsverzeichnis0.7951``)."""
    from nlp182.embeddings.runs import save_run
    from nlp182.embeddings.vectors import Vectors
    from nlp182.text.vocab import Vocabulary

    words = ["haus", "installationsverzeichnisse", "installationsverzeichnis"]
    vectors = Vectors(words, torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.8, 0.3]]).numpy())
    counts = torch.ones(3, dtype=torch.int64).numpy()
    save_run(tmp_path / "run", vectors, Vocabulary(words, counts, 3), {}, {})
    assert cli.main(["neighbors", str(tmp_path / "run"), "haus", "-k", "2"]) == 0
    shown = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [fields[0] for fields in shown] == words[1:] and all(len(fields) == 2 for fields in shown)


# The contract itself, on the library function every command shares.


#: A run's config.json as the commands write one: it names the kind of run.
RUN_CONFIG = json.dumps({"task": "digits"})


def _write_run(folder: Path, marker: str) -> None:
    (folder / "config.json").write_text(RUN_CONFIG)
    (folder / "weights.bin").write_text(marker)


def test_overwrite_replaces_only_a_run_of_ours_as_a_whole(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with staged_directory(run, overwrite=False) as folder:
        _write_run(folder, "first")
    with pytest.raises(OutputError, match="--overwrite"):
        check_run_folder(run, overwrite=False)
    with staged_directory(run, overwrite=True) as folder:
        (folder / "config.json").write_text("{}")
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]  # replaced, not merged
    assert oct(run.stat().st_mode & 0o777) == "0o755"


def test_a_replaced_run_that_cannot_be_deleted_is_named(tmp_path: Path, monkeypatch, caplog) -> None:
    """A read-only previous run was moved aside and its delete failed in silence: a hidden full
    copy of the old run stayed behind for good."""
    import shutil

    run = tmp_path / "run"
    with staged_directory(run, overwrite=False) as folder:
        _write_run(folder, "first")
    (run / "sub").mkdir()
    os.chmod(run / "sub", 0o555)
    os.chmod(run, 0o555)  # the user made it read-only: still theirs to replace
    with staged_directory(run, overwrite=True) as folder:
        _write_run(folder, "second")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (run / "weights.bin").read_text() == "second"

    real = shutil.rmtree

    def refused(path, *args, **kwargs):  # the delete of the moved-aside run fails
        if str(path).endswith("backup.old") and not kwargs.get("ignore_errors"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", refused)
    with staged_directory(run, overwrite=True) as folder:
        _write_run(folder, "third")
    left = [p for p in tmp_path.iterdir() if p.name != "run"]
    assert len(left) == 1 and f"{left[0]} could not be deleted (permission denied)" in caplog.text
    monkeypatch.undo()
    shutil.rmtree(left[0])


def test_a_failed_run_leaves_the_previous_one_and_no_staging(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _write_run(run, "first")
    with pytest.raises(RuntimeError), staged_directory(run, overwrite=True) as folder:
        _write_run(folder, "second")
        raise RuntimeError("training failed")
    assert (run / "weights.bin").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_a_swap_whose_second_rename_fails_puts_the_previous_run_back(tmp_path: Path, monkeypatch) -> None:
    """The swap is two renames (run aside, staging in); when the second fails the previous run is
    renamed back at once, not left hidden as a backup until a later command finds it."""
    run = tmp_path / "run"
    with staged_directory(run, overwrite=False) as folder:
        _write_run(folder, "first")
    real = os.replace

    def failing(source, destination) -> None:  # the staging folder cannot be moved in
        if str(source).endswith(".staging"):
            raise OSError(5, "Input/output error")
        real(source, destination)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="Input/output error"), staged_directory(run, overwrite=True) as folder:
        _write_run(folder, "second")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (run / "weights.bin").read_text() == "first"


def test_atomic_writes_sync_the_data_before_the_rename(tmp_path: Path, monkeypatch) -> None:
    """Every atomic writer fsyncs its temporary file before renaming it over the target, so a crash
    after the rename never leaves an empty or partial file under the final name."""
    import numpy as np

    from nlp182 import io

    events: list[tuple[str, int]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(source, destination) -> None:
        events.append(("replace", os.stat(source).st_ino))
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    writes = {"b.bin": lambda path: io.atomic_write_bytes(path, b"data"),
              "t.txt": lambda path: io.atomic_write_text(path, "text"),
              "j.json": lambda path: io.atomic_write_json(path, {"a": 1}),
              "v.npy": lambda path: io.atomic_save_npy(path, np.zeros(3))}
    for name, write in writes.items():
        events.clear()
        write(tmp_path / name)
        inode = (tmp_path / name).stat().st_ino
        before_rename = events[: events.index(("replace", inode))]
        assert ("fsync", inode) in before_rename, (name, events)


def test_empty_folder_is_used_and_a_folder_filled_meanwhile_is_kept(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    refused = pytest.raises(OutputError, match="not an nlp182 run")
    with refused, staged_directory(run, overwrite=True) as folder:
        _write_run(folder, "new")
        (run / "notes.txt").write_text("written by the user during training")
    assert (run / "notes.txt").exists() and [p.name for p in tmp_path.iterdir()] == ["run"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--out", "/sys/bv"], "--out /sys/bv"),
        (["--out", "/proc/bv"], "--out /proc/bv"),
        (["--threads", "-1"], "--threads must be at least 0"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--alpha", "2"], "--alpha must be at most 1"),
    ],
)
def test_bench_vision_refuses_before_training(argv, message, monkeypatch, capsys) -> None:
    from bench import vision

    monkeypatch.setattr(vision, "digits_section", _no_work)
    with pytest.raises(SystemExit) as stop:
        vision.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and message in err[0], err


def test_written_files_and_folders_are_readable_by_others(tmp_path: Path) -> None:
    from nlp182.io import atomic_write_text

    with staged_directory(tmp_path / "run") as folder:
        atomic_write_text(folder / "config.json", "{}")
        atomic_write_text(folder / "sub" / "notes.txt", "x")
    assert oct((tmp_path / "run" / "config.json").stat().st_mode & 0o777) == "0o644"
    assert oct((tmp_path / "run" / "sub").stat().st_mode & 0o777) == "0o755"


def _every_command_raises(error: BaseException, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every command raise ``error`` as soon as it starts working."""

    def failing(args: argparse.Namespace) -> int:
        raise error

    parser = BUILD_PARSER()
    for sub in cli.walk_parsers(parser):
        if sub.get_default("func") is not None:
            sub.set_defaults(func=failing)
    monkeypatch.setattr(cli, "build_parser", lambda modules=None: parser)


@pytest.mark.parametrize("error", [
    MemoryError(),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                 "you tried to allocate 8200000000000 bytes."),
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
], ids=["python", "torch-cpu", "torch-cuda"])
def test_running_out_of_memory_is_one_line_not_a_traceback(error, monkeypatch, capsys) -> None:
    _every_command_raises(error, monkeypatch)
    assert cli.main(["neighbors", "runs/x", "king"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nlp182: error: ran out of memory") and err.count("\n") == 1


def test_a_runtime_error_that_is_not_about_memory_is_not_hidden(monkeypatch) -> None:
    _every_command_raises(RuntimeError("a bug"), monkeypatch)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["neighbors", "runs/x", "king"])


def test_an_interrupt_says_whether_checkpoints_were_kept(tmp_path, capsys) -> None:
    from nlp182.commands.flags import interrupted, kept_after_error
    from nlp182.train.run import incomplete_dir

    out = tmp_path / "run"
    interrupted("train seq2seq", str(out))  # stopped while the data was read: no staged run at all
    assert capsys.readouterr().err.startswith("interrupted before the run saved its settings: nothing")
    incomplete_dir(out).mkdir()
    interrupted("train seq2seq", str(out))  # staged, but stopped before its settings were written
    told = capsys.readouterr().err
    assert "nothing is kept to resume" in told and "--resume" not in told
    for name in ("chosen.json", "config.json"):
        (incomplete_dir(out) / name).write_text("{}")
    interrupted("train seq2seq", str(out))
    assert capsys.readouterr().err.startswith("interrupted before the first checkpoint; the run's settings "
                                              "are kept in")
    kept_after_error("train seq2seq", str(out))  # an error, no checkpoint: nothing to say
    assert capsys.readouterr().err == ""
    (incomplete_dir(out) / "train" / "checkpoints").mkdir(parents=True)
    (incomplete_dir(out) / "train" / "checkpoints" / "step-000000001.safetensors").write_bytes(b"")
    interrupted("train seq2seq", str(out))
    told = capsys.readouterr().err
    assert "the run and its checkpoints are kept" in told and told.rstrip().endswith(f"--out {out} --resume")
    out.mkdir()  # an earlier run the interrupted one (started with --overwrite) is to replace
    (out / "config.json").write_text("{}")
    interrupted("train seq2seq", str(out))
    assert capsys.readouterr().err.rstrip().endswith(f"--out {out} --resume --overwrite")


def test_eval_without_its_files_is_one_line_before_any_table(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert cli.main(["eval", str(run), "--eval-dir", str(tmp_path / "nope")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "evaluation file" in captured.err and captured.err.count("\n") == 1
    assert "--pairs FILE / --analogies FILE" in captured.err  # a domain user has no English sets


def test_a_run_finished_meanwhile_in_the_same_out_is_replaced_only_with_overwrite(tmp_path: Path) -> None:
    """Two trainings started into one new --out both pass the check made before any work; the one
    that finishes second must not silently replace the other's run."""
    from nlp182.embeddings.runs import save_run
    from nlp182.embeddings.vectors import Vectors
    from nlp182.text.vocab import Vocabulary

    vectors = Vectors(["a", "b"], torch.eye(2).numpy())
    vocab = Vocabulary(["a", "b"], torch.tensor([3, 2]).numpy(), 5)
    run = tmp_path / "run"
    with pytest.raises(OutputError, match="pass --overwrite"), staged_directory(run) as folder:
        _write_run(folder, "second")
        save_run(run, vectors, vocab, {"method": "lsa"}, {})  # the first run, finished meanwhile
    assert json.loads((run / "config.json").read_text()) == {"method": "lsa"}
    save_run(run, vectors, vocab, {"method": "word2vec-sg"}, {}, overwrite=True)
    assert json.loads((run / "config.json").read_text()) == {"method": "word2vec-sg"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_second_writer_of_one_resumable_run_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    from nlp182.errors import InvalidInputError
    from nlp182.train.run import incomplete_dir, resumable_run

    out = tmp_path / "q"
    with resumable_run(out) as staging:
        (staging / "train").mkdir()
        for resume in (False, True):  # a fresh run would delete the folder; --resume would share it
            refused = pytest.raises(InvalidInputError, match="another process is writing the run")
            with refused, resumable_run(out, resume=resume):
                pass
        assert (staging / "train").is_dir()
        (staging / "config.json").write_text(RUN_CONFIG)
    assert (out / "config.json").is_file() and not incomplete_dir(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q"]  # the lock file is gone too
    with resumable_run(out, resume=False, overwrite=True) as staging:  # the next run takes the lock again
        (staging / "config.json").write_text(RUN_CONFIG)


def test_overwrite_starts_over_past_an_interrupted_run(tmp_path: Path, caplog) -> None:
    """Without --resume an interrupted run with checkpoints is refused; --overwrite, which says to
    start over, was refused too, and the message named only deleting the folder by hand."""
    from nlp182.errors import InvalidInputError
    from nlp182.train.run import incomplete_dir, resumable_run

    out = tmp_path / "q"
    checkpoint = incomplete_dir(out) / "train" / "checkpoints" / "step-000000001.safetensors"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    refused = pytest.raises(InvalidInputError, match="pass --resume to continue it, or --overwrite to start")
    with refused, resumable_run(out, resume=False):
        pass
    assert checkpoint.exists()
    with caplog.at_level("WARNING"), resumable_run(out, resume=False, overwrite=True) as staging:
        assert not (staging / "train").exists()  # a fresh start
        (staging / "config.json").write_text(RUN_CONFIG)
    assert "starting over (--overwrite): the interrupted run in" in caplog.text
    assert (out / "config.json").is_file() and not incomplete_dir(out).exists()


@pytest.mark.parametrize("trainer", ["seq2seq", "caption"])
def test_training_from_python_keeps_the_run_folder_contract(tmp_path: Path, trainer: str) -> None:
    """``train_seq2seq(config, "userdir")`` deleted the user's files there (the data file too, when
    it lay in that folder), and turned a file into a run folder; only the command checked."""
    from nlp182.captioning import CaptionConfig
    from nlp182.captioning.train import train_captioner
    from nlp182.seq2seq import Seq2SeqConfig
    from nlp182.seq2seq.train import train_seq2seq
    from nlp182.train.run import resumable_run

    if trainer == "seq2seq":
        def train(out: Path, **kw: bool) -> dict:
            return train_seq2seq(Seq2SeqConfig(data="dates", epochs=1, progress=False), out, **kw)
    else:
        def train(out: Path, **kw: bool) -> dict:
            return train_captioner(CaptionConfig(data="digits", epochs=1, progress=False), out, **kw)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me too")
    with pytest.raises(OutputError, match="exists and is not empty; pass --overwrite"):
        train(mine)
    with pytest.raises(OutputError, match="holds files that are not an nlp182 run"):
        train(mine, overwrite=True)
    with pytest.raises(OutputError, match="is a file, not a folder"):
        train(a_file)
    assert (mine / "notes.txt").read_text() == "keep me" and a_file.read_text() == "keep me too"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "mine"]  # nothing staged

    earlier = tmp_path / "earlier"  # a run's folder is replaced only with overwrite
    with resumable_run(earlier) as staging:
        (staging / "config.json").write_text(RUN_CONFIG)
    with pytest.raises(OutputError, match="pass --overwrite"), resumable_run(earlier):
        pass
    with resumable_run(earlier, overwrite=True) as staging:
        (staging / "config.json").write_text('{"task": "digits", "second": 1}')
    assert json.loads((earlier / "config.json").read_text()) == {"task": "digits", "second": 1}


def test_resume_of_a_finished_run_says_there_is_nothing_to_resume(tmp_path: Path, capsys) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    assert cli.main(["train", "seq2seq", "--out", str(tmp_path / "run"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "nothing to resume: " in err and "is a finished run" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (OSError(28, "No space left on device", "/data/run/vectors.npy"),
         "/data/run/vectors.npy: no space left on device"),
        (OSError(27, "File too large", "/data/c.u32"), "/data/c.u32: the file-size limit was reached"),
        (OSError("537930 requested and 256000 written"),
         "a write stopped short (537930 requested and 256000 written): the disk is full or a file-size "
         "limit was reached"),
    ],
)
def test_a_failed_write_is_one_line_not_a_traceback(error, line, monkeypatch, capsys) -> None:
    _every_command_raises(error, monkeypatch)
    assert cli.main(["neighbors", "runs/x", "king"]) == 2
    assert capsys.readouterr().err == f"nlp182: error: {line}\n"


def test_a_short_write_names_the_file_it_was_writing(tmp_path: Path) -> None:
    from nlp182.io import atomic_open

    with pytest.raises(OSError) as caught, atomic_open(tmp_path / "vectors.npy") as handle:
        handle.write(b"x")
        raise OSError("10 requested and 1 written")  # what NumPy's tofile raises on a full disk
    assert str(caught.value) == "10 requested and 1 written" and not list(tmp_path.iterdir())
    assert cli._os_error_line(caught.value) == (
        f"{tmp_path / 'vectors.npy'}: a write stopped short (10 requested and 1 written): the disk is full "
        "or a file-size limit was reached"
    )


def test_a_full_cache_says_how_to_train_anyway(tmp_path: Path, monkeypatch) -> None:
    """A full ``~/.cache`` stopped the training of every new corpus with "no space left" and no
    word of the cache, or of NLP182_CACHE."""
    import errno

    monkeypatch.setenv("NLP182_CACHE", str(tmp_path / "cache"))
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "cache" / "corpora" / "x.tmp"))
    assert cli._os_error_line(full).endswith("no space left on device; that is the package's cache (encoded "
                                             "corpora, built kernels): delete what it holds or set "
                                             "NLP182_CACHE to a folder with room")
    elsewhere = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "vectors.npy"))
    assert cli._os_error_line(elsewhere).endswith("vectors.npy: no space left on device")


def test_corpus_prepare_writes_over_no_file_without_overwrite_nor_over_its_input(tmp_path, capsys) -> None:
    notes, other = tmp_path / "notes.txt", tmp_path / "important.txt"
    notes.write_text("My precious Notes, first paragraph!\n\nSecond paragraph.\n")
    other.write_text("not a corpus\n")
    refusals = [
        (["--text", str(notes), "--out", str(other)], "exists; pass --overwrite to replace it"),
        (["--text", str(notes), "--out", str(notes), "--overwrite"], "is the input"),
        (["--text", str(tmp_path), "--out", str(tmp_path / "sub" / "c.txt")], "is the input"),
        (["--out", str(notes)], "is a file; the default corpus is written into a folder"),
    ]
    for argv, message in refusals:
        assert cli.main(["corpus", "prepare", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)
    assert notes.read_text().startswith("My precious") and other.read_text() == "not a corpus\n"
    assert cli.main(["corpus", "prepare", "--text", str(notes), "--out", str(other), "--overwrite"]) == 0
    assert other.read_text() == "my precious notes first paragraph\nsecond paragraph\n"


@pytest.mark.parametrize("host", ["", " "])
def test_serve_with_an_empty_host_is_refused_not_bound_to_every_interface(host, tmp_path, capsys) -> None:
    assert cli.main(["serve", str(tmp_path / "run"), "--host", host]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nlp182: error: --host must name an address") and err.count("\n") == 1
    from nlp182.server.config import ServeConfig

    assert ServeConfig().loopback and ServeConfig(host="localhost").loopback  # no warning when serving
    assert not ServeConfig(host="0.0.0.0").loopback and not ServeConfig(host="10.1.2.3").loopback


def test_a_digits_split_that_leaves_a_class_out_is_refused_naming_the_range(tmp_path, capsys) -> None:
    assert cli.main(["train", "digits", "--out", str(tmp_path / "d"), "--test-fraction", "0.999"]) == 2
    err = capsys.readouterr().err
    assert "test_fraction 0.999 leaves 1 of 1797 digits on one side" in err and "use 0.006 to 0.994" in err
    assert err.count("\n") == 1 and not (tmp_path / "d").exists()


def test_a_staged_run_under_torchrun_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["train", "seq2seq", "--out", str(tmp_path / "run"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "this run is trained by one process, but torchrun started 2" in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_a_failed_write_in_a_staged_run_names_the_run_not_its_removed_staging_folder(tmp_path) -> None:
    from nlp182.io import atomic_open, failed_write_target

    with pytest.raises(OSError) as full, staged_directory(tmp_path / "run") as folder, atomic_open(
        folder / "vectors.npy"
    ) as handle:
        handle.write(b"x")
        raise OSError("10 requested and 1 written")  # NumPy's short write names no file
    assert failed_write_target(full.value) == str(tmp_path / "run" / "vectors.npy")
    with pytest.raises(OSError) as quota, staged_directory(tmp_path / "run") as folder:
        raise OSError(122, "Disk quota exceeded", str(folder / "counts.tsv"))
    assert failed_write_target(quota.value) == str(tmp_path / "run" / "counts.tsv")
    with pytest.raises(OSError) as memmap, staged_directory(tmp_path / "run"):
        raise OSError(28, "No space left on device")  # a memory map's flush names no file either
    assert failed_write_target(memmap.value) == str(tmp_path / "run")
    assert not list(tmp_path.iterdir())


def test_a_run_moved_aside_by_a_swap_killed_halfway_is_put_back(tmp_path: Path, caplog) -> None:
    """A command killed (kill -9) between the two renames of its swap leaves the previous run moved
    aside and its new one staged: the next command puts the previous run back (the killed one never
    finished), removes the staged one, and refuses to replace the run without --overwrite, before
    any work."""
    dead = 2**22 + 12345  # a process id no process has here
    run = tmp_path / "run"
    backup, staged = tmp_path / f".run.{dead}.backup.old", tmp_path / f".run.{dead}.x1y2z3.staging"
    for folder, marker in ((backup, "first"), (staged, "second")):
        folder.mkdir()
        _write_run(folder, marker)
    with pytest.raises(OutputError, match="exists and is not empty"):
        check_run_folder(run)
    assert (run / "weights.bin").read_text() == "first" and not backup.exists()
    assert "back: a command killed while it replaced that run had moved it aside" in caplog.text
    with staged_directory(run, overwrite=True) as folder:  # the next run clears the dead staging
        _write_run(folder, "third")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (run / "weights.bin").read_text() == "third"


def test_the_cache_folder_follows_the_environment_and_falls_back_where_home_is_unwritable(
    tmp_path, monkeypatch, caplog
) -> None:
    """A service user without a writable home (HOME=/nonexistent) could train nothing, not even
    sentences in memory, and the error named only /nonexistent; NLP182_CACHE="" or "." loaded no
    C kernel (a relative path for ctypes)."""
    from nlp182 import io

    monkeypatch.setattr(io, "_CHECKED_CACHES", {})
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # nothing can be made under a file, not even by root
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(blocked))
    for unset in ("", "  "):
        monkeypatch.setenv("NLP182_CACHE", unset)
        folder = io.cache_folder()
        assert folder == tmp_path / "tmp" / f"nlp182-cache-{os.getuid()}" and folder.is_dir()
        assert folder.stat().st_mode & 0o777 == 0o700
    assert "cannot be written; caching in" in caplog.text
    monkeypatch.delenv("HOME")
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: (_ for _ in ()).throw(RuntimeError("no home"))))
    assert io.cache_folder() == tmp_path / "tmp" / f"nlp182-cache-{os.getuid()}"  # no home at all
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert io.cache_folder() == tmp_path / "xdg" / "nlp182"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NLP182_CACHE", ".")
    assert io.cache_folder() == tmp_path and io.cache_folder().is_absolute()
    monkeypatch.setenv("NLP182_CACHE", str(blocked / "cache"))
    with pytest.raises(OutputError, match=r"\(\$NLP182_CACHE\) cannot be created or written"):
        io.cache_folder()
    monkeypatch.setattr(io, "_CHECKED_CACHES", {})
    monkeypatch.delenv("NLP182_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    (tmp_path / "tmp" / f"nlp182-cache-{os.getuid()}").chmod(0o777)  # another user could write in it
    with pytest.raises(OutputError, match="is not this user's private folder"):
        io.cache_folder()


def test_a_relative_xdg_cache_home_is_ignored(tmp_path: Path, monkeypatch) -> None:
    """The XDG rule: a relative `XDG_CACHE_HOME` is ignored, so the cache does not move with the
    folder a command runs in; `~/.cache/nlp182` is used instead."""
    from nlp182 import io

    monkeypatch.setattr(io, "_CHECKED_CACHES", {})
    monkeypatch.delenv("NLP182_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "rel")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert io.cache_folder() == tmp_path / ".cache" / "nlp182"
    assert not (tmp_path / "rel").exists()


def test_reading_the_umask_does_not_change_it_for_other_threads(monkeypatch) -> None:
    """The umask was read by setting it to 0o022 and back: a thread saving meanwhile wrote a private
    file readable by all (2 of 9 stress runs at umask 077)."""
    from nlp182 import io

    previous = os.umask(0o077)
    try:
        def refuse(mask: int) -> int:
            raise AssertionError("the process umask was changed")

        monkeypatch.setattr(os, "umask", refuse)
        assert io.current_umask() == 0o077
    finally:
        monkeypatch.undo()
        os.umask(previous)


def test_an_error_before_the_first_checkpoint_leaves_no_run_to_resume(tmp_path: Path) -> None:
    """A misspelt setting (caption --freeze-encoder bogus) failed after the staging folder was made,
    and left OUT.incomplete behind; Ctrl-C keeps it, since its settings resume."""
    from nlp182.train.run import incomplete_dir, resumable_run

    out = tmp_path / "run"
    with pytest.raises(InvalidInputError), resumable_run(out) as staging:
        (staging / "config.json").write_text("{}")
        raise InvalidInputError("no layer named 'bogus'")
    assert not incomplete_dir(out).exists()
    with pytest.raises(KeyboardInterrupt), resumable_run(out) as staging:
        raise KeyboardInterrupt  # before the settings are saved: nothing a resume could continue
    assert not incomplete_dir(out).exists()
    with pytest.raises(KeyboardInterrupt), resumable_run(out) as staging:
        (staging / "chosen.json").write_text("{}")
        (staging / "config.json").write_text("{}")
        raise KeyboardInterrupt
    assert incomplete_dir(out).is_dir()
    with pytest.raises(InvalidInputError), resumable_run(out, resume=True):  # a resumed run stays
        raise InvalidInputError("a setting the run refuses")
    assert incomplete_dir(out).is_dir()
