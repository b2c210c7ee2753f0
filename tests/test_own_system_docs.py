"""``docs/own-system.md`` runs as written and reaches what it says: a quartic oscillator from its potential
(trajectories, a learned Hamiltonian), the Müller–Brown free energy and flow-MCMC with one flow, and measured
trajectories read back from a CSV file, and the module its command-line section names.

Its "Tutorials" section links the four notebooks ``notebooks/own_*.ipynb`` (run by the notebook tests at their small
size); here they are checked to be stored without outputs and to use public names only.

``python tests/test_own_system_docs.py`` runs the page's blocks and prints what the page quotes; ``--all`` adds the
blocks the test leaves out (the "When training stalls" table, minutes of training)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

PAGE = Path(__file__).resolve().parents[1] / "docs" / "own-system.md"
SKIP = "# not run by the tests"


def blocks(everything: bool = False) -> list[str]:
    """The page's ``python`` code blocks in order; those starting with ``SKIP`` only with ``everything``."""
    found = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    return [block for block in found if everything or not block.startswith(SKIP)]


def test_the_page_runs_and_reaches_its_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # the CSV example writes quartic.csv in the working directory
    code = blocks()
    assert len(code) == 4, "docs/own-system.md should have four python blocks that the tests run"
    namespace: dict = {}
    for block in code:
        exec(compile(block, str(PAGE), "exec"), namespace)
    printed = capsys.readouterr().out
    assert printed.count("\n") == 3
    # (a) leapfrog's energy error at h = 0.01 is O(h²); the polynomial model recovers H = p²/2 + q⁴/4
    assert namespace["drift"] < 1e-4
    assert max(namespace["errors"].values()) < 0.02
    # (b) the quadrature is converged (2401² points on a wider box give −13.567467624751...); F_IS is near it even
    # if the short fit misses the upper wells, which shifts it up by −ln(1 − 0.026) = 0.026 at most
    assert namespace["exact"] == pytest.approx(-13.5675, abs=1e-4)
    assert namespace["upper"] == pytest.approx(0.026, abs=1e-3)
    estimate = namespace["estimate"]
    assert abs(estimate.importance - namespace["exact"]) < 0.03 + 3 * estimate.importance_stderr
    assert namespace["chains"].acceptance_rate > 0.1 and namespace["chains"].samples.shape == (500, 8, 2)
    # (c) momenta from noisy positions: noise 0.01·√2 over 2Δt = 0.2 alone gives a mean |error| of 0.056
    measured = namespace["measured"]
    assert (measured.num_trajectories, measured.num_times, measured.n) == (32, 41, 1)
    assert namespace["momentum_error"] < 0.1
    # (d) the module of the command-line section defines the two systems its commands name
    assert (namespace["muller"].n, namespace["quartic_oscillator"].n, namespace["muller_target"].dim) == (2, 1, 2)
    assert namespace["quartic_oscillator"].sample_initial(3, torch.Generator().manual_seed(0)).shape == (3, 2)


def test_the_tutorials_section_links_output_free_notebooks_of_public_names() -> None:
    nbformat = pytest.importorskip("nbformat")
    tutorials = PAGE.read_text().split("## Tutorials", 1)
    assert len(tutorials) == 2, "docs/own-system.md should have a '## Tutorials' section"
    linked = sorted(set(re.findall(r"notebooks/own_[a-z_]+\.ipynb", tutorials[1])))
    root = PAGE.parents[1]
    assert linked == sorted(f"notebooks/{path.name}" for path in (root / "notebooks").glob("own_*.ipynb"))
    assert len(linked) == 4
    for path in linked:
        notebook = nbformat.read(root / path, as_version=4)
        assert notebook.metadata.kernelspec.name == "python3", path
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), f"{path} has outputs"
        source = "\n".join(cell.source for cell in code)
        assert 'os.environ.get("CANONFLOW_NOTEBOOK_SIZE") == "small"' in source, path
        imports = [line for line in source.splitlines() if line.startswith(("from ", "import "))]
        private = re.findall(r"\b_\w+", "\n".join(imports)) + re.findall(r"\.(_\w+)", source)
        assert not private, f"{path} uses private names {private}"


if __name__ == "__main__":
    namespace: dict = {}
    for block in blocks(everything="--all" in sys.argv):
        exec(compile(block, str(PAGE), "exec"), namespace)
