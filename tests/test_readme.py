"""The README's example runs as written and trains to the entropy of its data."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from randomness import Z_SCORE

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.statistical
def test_readme_example_runs_and_reaches_the_entropy(capsys: pytest.CaptureFixture) -> None:
    code = re.search(r"## Example\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert code is not None, "README.md has no '## Example' python block"
    namespace: dict = {}
    exec(compile(code.group(1), str(README), "exec"), namespace)
    fit, exact = namespace["fit"], namespace["exact"]
    # a held-out mean NLL of a 4-d Gaussian scatters with variance (d/2)/N_validation around the entropy; a fixed
    # N(0, I) base (which cannot rescale) would be off by 1.8 nats
    assert abs(fit.best_validation - exact) < Z_SCORE * math.sqrt(2 / 400) + 0.05  # 400 held out
    assert "held-out NLL" in capsys.readouterr().out
