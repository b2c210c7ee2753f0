"""Tests of ``canonflow.systems``, one file per module (``test_kepler.py`` ↔ ``canonflow/systems/kepler.py``)."""
