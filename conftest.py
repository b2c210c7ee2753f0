"""The test run executes each notebook (notebooks/) at its small size: the same code on less data and fewer steps.

Notebooks read ``CANONFLOW_NOTEBOOK_SIZE``; a reader who opens one in Jupyter gets the full size. The variable is set
here, before nbmake starts the kernels that inherit it, and only where the caller has not chosen a size.
"""

import os

os.environ.setdefault("CANONFLOW_NOTEBOOK_SIZE", "small")
