"""Tests of ``canonflow.sampling``, one file per module (``test_hmc.py`` ↔ ``canonflow/sampling/hmc.py``)."""
