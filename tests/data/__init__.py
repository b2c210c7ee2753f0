"""Tests of ``canonflow.data``, one file per module (``test_measured.py`` ↔ ``canonflow/data/measured.py``)."""
