"""Sphinx configuration: the API reference from the docstrings (autodoc) and the guide (Markdown,
myst-parser). Built by `make docs` with warnings as errors."""
from __future__ import annotations

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)  # document this checkout, not an installed copy

from neurosim.version import __version__  # noqa: E402

project = "neurosim"
author = "neurosim developers"
copyright = "neurosim developers"
release = version = __version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
default_role = "literal"  # `x` in a docstring is code
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_class_signature = "separated"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
myst_heading_anchors = 3
html_theme = "alabaster"
html_static_path: list[str] = []
