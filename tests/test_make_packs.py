"""tools/make_packs.py, the regeneration command of the shipped packs, and the built-in plugin
``zoo.packs.shipped`` that offers them through ``zoo_weights()``. One tiny run (convnet-digits, one
epoch, trained in a spawned process as the tool does) feeds the tests of the tool."""
from __future__ import annotations

import ast
import fnmatch
import json
import os
import sys
from pathlib import Path

import pytest

from zoo.errors import ConfigError, WeightsError

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tools")]

import make_packs  # noqa: E402  (tools/ is not a package)

PRESET = "convnet-digits"


def tool_args(root: Path, *extra) -> list[str]:
    return ["--presets", PRESET, "--epochs", "1", "--runs", str(root / "runs"), "--out", str(root / "packs"),
            "--summary", str(root / "packs.json"), "--data-dir", str(root / "no-data"), *extra]


def pack_files(directory: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One run of the tool: train convnet-digits for one epoch and pack it."""
    root = tmp_path_factory.mktemp("make_packs")
    status = make_packs.main(tool_args(root))
    return root, status


def test_the_tool_trains_packs_and_summarises(made):
    from zoo.packs import verify_pack

    root, status = made
    assert status == 0
    pack = root / "packs" / PRESET
    card = verify_pack(pack, strict=True)
    assert card["name"] == PRESET and card["version"] == "1.0.0" and card["recipe"]["epochs"] == 1
    assert "--epochs 1" in card["recipe"]["command"]
    robust = [m for m in card["metrics"] if m["kind"] == "robustness"]
    assert [(m["attack"], m["eps"], m["n"]) for m in robust] == [("pgd", 0.1, 360)]
    assert hidden(root / "packs") == []

    summary = json.loads((root / "packs.json").read_text())
    entry = summary["packs"][PRESET]
    assert entry["bytes"] == sum(p.stat().st_size for p in pack.iterdir()) == summary["total_bytes"]
    assert summary["within_budget"] and summary["budget_bytes"] == 32 * 2**20 and summary["failed"] == {}
    assert entry["status"] == "installed" and entry["version"] == "1.0.0"
    assert isinstance(entry["load_seconds"], float) and entry["load_seconds"] > 0  # measured, in a fresh process
    assert {m["name"] for m in entry["metrics"]} == {"accuracy", "loss", "adv_accuracy"}
    assert entry["training"]["epochs_trained"] == 1 and entry["training"]["wall_seconds"] > 0
    assert entry["training"]["fit_cpu_seconds_all_sessions"] == card["recipe"]["cpu_time_s"] > 0


def test_a_second_run_neither_retrains_nor_changes_the_pack(made, capsys):
    root, _ = made
    before = pack_files(root / "packs" / PRESET)
    trained = (root / "runs" / PRESET / make_packs.TRAINED_FILE).read_text()
    assert make_packs.main(tool_args(root)) == 0
    out = capsys.readouterr().out
    assert f"{PRESET}: trained earlier" in out and "training into" not in out
    assert f"{PRESET}: unchanged" in out
    assert pack_files(root / "packs" / PRESET) == before  # same version, same card, same bytes
    assert (root / "runs" / PRESET / make_packs.TRAINED_FILE).read_text() == trained
    assert json.loads((root / "packs.json").read_text())["packs"][PRESET]["status"] == "unchanged"
    assert hidden(root / "packs") == []


def test_a_failure_while_packing_leaves_the_previous_pack(made, monkeypatch, capsys):
    import zoo.packs.build

    root, _ = made
    before = pack_files(root / "packs" / PRESET)

    def half_written(directory, path, prefix):
        Path(path).write_bytes(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(zoo.packs.build, "write_archive", half_written)
    assert make_packs.main(tool_args(root)) == 1
    assert f"{PRESET}: FAILED packing: OSError: disk full" in capsys.readouterr().out
    assert pack_files(root / "packs" / PRESET) == before
    assert hidden(root / "packs") == []  # no staging directory, no half archive
    assert "OSError: disk full" in json.loads((root / "packs.json").read_text())["failed"][PRESET]


def test_packs_over_the_budget_fail_clearly(made, monkeypatch, capsys):
    root, _ = made
    before = pack_files(root / "packs" / PRESET)
    monkeypatch.setattr(make_packs, "BUDGET_BYTES", 1000)
    assert make_packs.main(tool_args(root, "--summary", str(root / "over.json"))) == 1
    assert "MiB budget" in capsys.readouterr().err
    assert not json.loads((root / "over.json").read_text())["within_budget"]
    assert pack_files(root / "packs" / PRESET) == before


def test_a_pack_over_the_budget_is_not_installed(made, tmp_path, monkeypatch):
    from zoo.packs import CARD_FILE

    root, _ = made
    monkeypatch.setattr(make_packs, "BUDGET_BYTES", 1000)
    with pytest.raises(WeightsError, match=r"over the [0-9.e-]+ MiB budget; not installed"):
        make_packs.pack_preset(PRESET, root / "runs" / PRESET, tmp_path, None)
    assert not (tmp_path / PRESET / CARD_FILE).exists() and hidden(tmp_path) == []


def test_a_shortened_schedule_is_refused_for_the_shipped_packs(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--epochs 1 is not the presets' schedule"):
        make_packs.make_packs([PRESET], epochs=1, runs=tmp_path, summary=None)
    assert make_packs.main(["--presets", "nonesuch", "--runs", str(tmp_path), "--summary", str(tmp_path / "s.json")]) == 2
    assert "make_packs: error:" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()


def test_the_default_is_every_preset_with_its_data_folder(tmp_path):
    from zoo.registry import load_registry

    assert make_packs.all_presets() == list(load_registry())
    assert {"convnet-mnist-pgd-trained", "las-fsdd", "vaegan-digits", "las-tones"} <= set(make_packs.all_presets())
    (tmp_path / "mnist").mkdir()
    assert make_packs.data_dir_for("mnist_noise", tmp_path) == str(tmp_path / "mnist")
    assert make_packs.data_dir_for("digits", tmp_path) is None


def test_install_puts_the_old_pack_back_when_the_new_one_cannot_be_moved(tmp_path, monkeypatch):
    target, new = tmp_path / "p", tmp_path / ".new"
    target.mkdir(), new.mkdir()
    (target / "card.json").write_text("old")
    rename = os.rename

    def failing(src, dst):
        if Path(src) == new:
            raise OSError("no")
        rename(src, dst)

    monkeypatch.setattr(make_packs.os, "rename", failing)
    with pytest.raises(OSError):
        make_packs.install(new, target)
    assert (target / "card.json").read_text() == "old" and not make_packs.replaced(target).exists()
    # an install that died between its renames: recover() puts the old pack back
    monkeypatch.setattr(make_packs.os, "rename", rename)
    rename(target, make_packs.replaced(target))
    make_packs.recover(tmp_path, "p")
    assert (target / "card.json").read_text() == "old" and not make_packs.replaced(target).exists()


def test_recover_deletes_the_staging_directories_a_killed_run_left(tmp_path):
    for name in (".staging-p-x1", ".staging-p-x2", ".staging-p2-x3"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "card.json").write_text("half")
    make_packs.recover(tmp_path, "p")
    assert hidden(tmp_path) == [".staging-p2-x3"]  # another preset's is left to its own packing


# -- the built-in plugin offering the shipped packs -----------------------------------------------------
def test_the_builtin_plugin_offers_a_shipped_pack(made, monkeypatch):
    import zoo.packs.shipped
    from zoo import load
    from zoo.packs import offers

    root, _ = made
    monkeypatch.setattr(zoo.packs.shipped, "SHIPPED_DIR", root / "packs")
    monkeypatch.setenv("ZOO_DISABLE_PLUGIN_AUTOLOAD", "1")  # a built-in: offered without autoloading
    [offer] = offers(PRESET)
    assert (offer.plugin, offer.distribution, offer.version) == ("zoo.packs.shipped", "zoo", "1.0.0")
    model = load(PRESET, weights="pretrained")
    assert model.card["name"] == PRESET and model.card["version"] == "1.0.0"


def test_without_a_shipped_pack_pretrained_says_how_to_make_one(tmp_path, monkeypatch):
    import zoo.packs.shipped
    from zoo import load

    monkeypatch.setattr(zoo.packs.shipped, "SHIPPED_DIR", tmp_path)
    (tmp_path / ".staging-convnet-mnist-x").mkdir()  # a staging directory is never offered
    with pytest.raises(WeightsError, match=r"no pretrained pack for 'convnet-mnist'.*"
                                           r"python tools/make_packs.py --presets convnet-mnist"):
        load("convnet-mnist", weights="pretrained")


def test_setup_installs_every_file_of_a_pack(made):
    """`pip install .` copies the shipped packs: setup.py's package_data globs match every file a
    pack holds and every file type a pack may hold."""
    from zoo.packs.card import ALLOWED_SUFFIXES

    root, _ = made
    call = next(n for n in ast.walk(ast.parse((REPO / "setup.py").read_text()))
                if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "setup")
    package_data = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "package_data"))
    globs = package_data["zoo.packs.shipped"]
    assert (REPO / "zoo" / "packs" / "shipped" / "__init__.py").is_file()  # a package find_packages finds
    for path in (root / "packs" / PRESET).iterdir():
        assert any(fnmatch.fnmatch(f"{PRESET}/{path.name}", g) for g in globs), path.name
    for suffix in ALLOWED_SUFFIXES:
        assert any(fnmatch.fnmatch(f"{PRESET}/x{suffix}", g) for g in globs), suffix


def test_the_shipped_packs_verify_and_fit_the_budget():
    """Whatever the checkout ships (nothing until the lead commits the trained packs)."""
    from zoo.packs import verify_pack
    from zoo.packs.shipped import shipped_packs

    packs = shipped_packs()
    for preset, directory in packs.items():
        assert verify_pack(directory, strict=True)["name"] == preset
    assert sum(make_packs.pack_bytes(d) for d in packs.values()) <= make_packs.BUDGET_BYTES


def test_the_readme_quotes_the_shipped_cards():
    """The README's pack table is the one make_packs renders from the shipped cards, not a copy."""
    text = make_packs.README.read_text(encoding="utf-8")
    block = text[text.index(make_packs.TABLE_BEGIN) + len(make_packs.TABLE_BEGIN):text.index(make_packs.TABLE_END)]
    assert block.strip() == make_packs.readme_table().strip()


def test_update_readme_rewrites_only_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{make_packs.TABLE_BEGIN}\nold\n{make_packs.TABLE_END}\n\nafter\n")
    assert make_packs.update_readme("| a |", readme)
    assert readme.read_text() == f"# x\n\n{make_packs.TABLE_BEGIN}\n| a |\n{make_packs.TABLE_END}\n\nafter\n"
    (tmp_path / "plain.md").write_text("# no block\n")
    assert not make_packs.update_readme("| a |", tmp_path / "plain.md")
    assert (tmp_path / "plain.md").read_text() == "# no block\n"


# -- tools/check_packs.py: a card's metrics measured again through the CLI -------------------------------
def test_check_packs_reproduces_a_card_through_the_cli(made):
    import check_packs

    root, _ = made
    rows = check_packs.check_metrics(PRESET, root / "packs" / PRESET, root / "no-data")
    assert {(r["name"], r["attack"], r["command"]) for r in rows} >= {
        ("accuracy", None, "zoo evaluate"), ("adv_accuracy", "pgd", "zoo attack")}
    assert all(r["agrees"] for r in rows), rows


@pytest.mark.parametrize("name, card, measured, agrees", [
    ("accuracy", 0.9861, 0.9861, True), ("accuracy", 0.9861, 0.9870, True), ("accuracy", 0.9861, 0.9875, False),
    ("cer", 0.0024, 0.0033, True), ("neg_elbo", 87.9, 87.95, False), ("neg_elbo", 87.9, 87.9000001, True),
])
def test_check_packs_tolerates_a_tenth_of_a_point_on_fractions_only(name, card, measured, agrees):
    import check_packs

    assert check_packs.agrees(name, card, measured) is agrees


def test_check_packs_merges_a_partial_check_into_the_report(tmp_path):
    import check_packs

    report = tmp_path / "check.json"
    report.write_text(json.dumps(dict(ok=False, packs={
        "a": dict(load_ok=True, metrics_ok=True, metrics=[]),
        "b": dict(load_ok=True, metrics_error="RuntimeError: zoo attack exited 1")})))
    again = dict(ok=True, packs={"b": dict(load_ok=True, metrics_ok=True, metrics=[])})
    result = check_packs.merged(report, again)
    assert list(result["packs"]) == ["a", "b"] and result["ok"] is True
    assert "metrics_error" not in result["packs"]["b"]
    again["packs"]["b"]["metrics_ok"] = False
    assert check_packs.merged(report, again)["ok"] is False
