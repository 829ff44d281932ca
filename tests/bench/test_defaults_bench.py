"""``bench.defaults`` types what a user would: no tuning flag, seeds the only difference; its goals
are judged as stated."""

from __future__ import annotations

from pathlib import Path

from bench import defaults

#: Flags a user's first run may carry: where the data and the run are, the budget or epochs, threads,
#: the seed, and --overwrite for reruns of the bench.
PLAIN = {"--data", "--time-budget-s", "--time-budget", "--epochs", "--seed", "--num-threads", "--threads",
         "--out", "--overwrite"}  # fmt: skip


def test_every_command_uses_the_defaults_and_seeds_are_the_only_difference(tmp_path: Path) -> None:
    runs = defaults.commands(tmp_path / "runs", tmp_path / "data")
    assert len([n for n in runs if n.startswith("digits-seed")]) == 5 and {
        "shapes",
        "cmudict",
        "user60",
    } <= set(runs)
    for name, argv in runs.items():
        assert {a for a in argv if a.startswith("--")} <= PLAIN, name
    # the tracker's command, with the budget flag under its one name (--time-budget still parses to it)
    assert runs["cmudict"][:8] == [
        "train",
        "seq2seq",
        "--data",
        "cmudict",
        "--time-budget-s",
        "2700",
        "--threads",
        "2",
    ]
    def without(argv: list[str], *flags: str) -> list[str]:
        drop = {i + k for i, a in enumerate(argv) if a in flags for k in (0, 1)}
        return [a for i, a in enumerate(argv) if i not in drop]

    digits = [without(argv, "--seed", "--out") for name, argv in runs.items() if name.startswith("digits")]
    assert all(argv == digits[0] for argv in digits) and "--seed" in runs["digits-seed4"]


def test_goals_are_judged_as_stated() -> None:
    def caption_run(exact: float, correctness: float | None, uniform: float | None, warnings=()) -> dict:
        greedy = {"exact_match": exact, "attention_correctness": correctness, "uniform_baseline": uniform}
        return {"test": {"greedy": greedy, "beam5": greedy}, "history": [{}] * 3, "best_epoch": 2,
                "warnings": list(warnings)}  # fmt: skip

    assert defaults.judge("digits-seed3", caption_run(0.95, 0.6, 0.04))["met"]
    assert not defaults.judge("digits-seed3", caption_run(0.99, 0.59, 0.04))["met"]
    assert defaults.judge("shapes", caption_run(0.5, 0.30, 0.14))["met"]
    assert not defaults.judge("shapes", caption_run(0.9, 0.27, 0.14))["met"]  # under 2 x uniform
    assert not defaults.judge("user300-seed1", caption_run(0.89, None, None))["met"]
    assert not defaults.judge("user60", caption_run(0.2, None, None))["met"]  # silent failure
    assert defaults.judge("user60", caption_run(0.2, None, None, ["the kept epoch (1) has ..."]))["met"]
    cmudict = {"test": {"wer": 0.279, "per": 0.069, "greedy": {}}, "history": [{}]}
    assert defaults.judge("cmudict", cmudict)["met"]
    assert not defaults.judge("cmudict", {**cmudict, "test": {"wer": 0.281, "per": 0.05, "greedy": {}}})[
        "met"
    ]


def test_user_sets_are_written_once_from_fixed_seeds(tmp_path: Path) -> None:
    tiny = {"user300": (4, 2, 2), "user60": (3, 1, 1)}
    defaults.write_user_data(tmp_path, tiny)
    assert len(list((tmp_path / "user60" / "images").iterdir())) == 5
    first = tmp_path / "user300-seed0" / "images" / "image-00000.png"
    assert first.read_bytes() != (tmp_path / "user300-seed1" / "images" / "image-00000.png").read_bytes()
    written = first.stat().st_mtime_ns
    defaults.write_user_data(tmp_path, tiny)
    assert first.stat().st_mtime_ns == written
