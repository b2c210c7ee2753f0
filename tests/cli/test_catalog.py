"""``canonflow/cli/catalog.py`` and ``canonflow/cli/__init__.py``: the subcommands as data, their help and
choices (the library's), and the presets they offer."""

from __future__ import annotations

import subprocess
import sys

import pytest

from canonflow.cli import COMMANDS, main
from canonflow.presets import COMMANDS as PRESET_COMMANDS
from canonflow.presets import GENERIC, load_preset, merge, presets
from cli.common import run_canonflow

pytestmark = pytest.mark.usefixtures("restore_threads")


def test_help_lists_every_subcommand() -> None:
    done = run_canonflow("--help")
    assert done.returncode == 0
    assert all(name in done.stdout for name in COMMANDS)


def test_help_and_version_import_neither_torch_nor_the_library() -> None:
    # --help within 1.5 s needs a parser built from data: the catalog and the options, not the subcommands' modules
    probe = (
        "import sys\nfrom canonflow.cli import main\n"
        "for argv in (['--help'], ['--version'], *([name, '--help'] for name in sys.argv[1:])):\n"
        "    try:\n        main(argv)\n    except SystemExit as exit_:\n        assert exit_.code == 0, argv\n"
        "loaded = sorted(name for name in sys.modules if name.split('.')[0] in ('torch', 'numpy', 'nflows'))\n"
        "assert not loaded, loaded[:5]\n"
        "assert not [name for name in sys.modules if name.startswith('canonflow.cli.') and name not in "
        "('canonflow.cli.catalog', 'canonflow.cli.options')]\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, *COMMANDS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_catalog_choices_are_the_library_s() -> None:
    # the catalog names choices as data; the library's own lists are the truth
    from canonflow.hamiltonian_learning import MODES
    from canonflow.sampling import TARGETS

    choices = {name: {option.name: option.choices for option in command.options} for name, command in COMMANDS.items()}
    assert tuple(choices["learn-hamiltonian"]["mode"]) == tuple(MODES)
    assert sorted(choices["sample"]["target"]) == sorted(TARGETS)
    for name, command in COMMANDS.items():
        assert command.command().options == command.options and command.command().name == name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_of_each_subcommand_lists_choices_and_defaults(name: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0
    for option in COMMANDS[name].options:
        if not option.positional:
            assert option.flag in text
        for choice in option.choices or ():
            assert str(choice) in text
    assert "(default:" in text and "--config" in text and "--out" in text
    assert ("--resume" in text) == COMMANDS[name].resumable
    assert not any(markup in text for markup in (":func:", ":class:", ":mod:", "``")), "help in plain words"


def test_presets_are_the_choices_and_quick_merges_over_them() -> None:
    for command in ("action-angle", "free-energy"):  # the generic preset is for the user's own systems
        choices = {option.name: option.choices for option in COMMANDS[command].options}
        assert sorted(set(presets(command)) - {GENERIC}) == list(choices["system"])
    for command in PRESET_COMMANDS:  # every shipped file loads, and --quick changes only what it lists
        for preset in presets(command).values():
            assert preset.settings(quick=True) == merge(preset.settings(), preset.quick)
    kepler = load_preset("action-angle", "kepler2d")
    assert kepler.settings()["train"]["steps"] == 3000 and kepler.settings(quick=True)["train"]["steps"] == 1000
    assert kepler.settings(quick=True)["train"]["lr"] == 1e-2  # tables merge into tables
    assert load_preset("sample", "funnel").settings(quick=True)["leapfrog_steps"] == 2
    with pytest.raises(ValueError, match="choose one of calogero_moser"):
        load_preset("action-angle", "saturn")


def test_the_sample_options_offer_the_library_choices() -> None:
    # the catalog names them without importing torch; the library's tuples are the truth
    from canonflow.sampling import METRICS
    from canonflow.sampling.comparison import SAMPLERS

    options = {option.name: option for option in COMMANDS["sample"].options}
    assert tuple(options["metric"].choices) == METRICS and tuple(options["sampler"].choices) == SAMPLERS
    assert options["metric"].default == "auto" and options["sampler"].default == "hmc"
