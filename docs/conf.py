"""Sphinx configuration: numpydoc API reference, Markdown user guide (MyST), and a
sphinx-gallery of examples executed on small data at every build.

Build (offline, warnings as errors): ``sphinx-build -W -b html docs docs/_build/html``
(``pip install ".[docs]"``).  No intersphinx: nothing is fetched.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's kmeans_xp
os.environ.setdefault("MPLBACKEND", "Agg")

import kmeans_xp  # noqa: E402

project = "kmeans_xp"
author = "the kmeans_xp developers"
copyright = "the kmeans_xp developers"
version = release = kmeans_xp.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = [
    "_build",
    "examples/README.txt",
    "**/*.ipynb",
    "**/*.py.md5",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.json",
]
templates_path = ["_templates"]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # the numpydoc sections say the types
numpydoc_show_class_members = False  # the class pages list their members themselves
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set = set()

myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/(plot_|example_)",
    "download_all_examples": False,
    "remove_config_comments": True,
    "reset_modules": ("matplotlib",),
    "capture_repr": ("_repr_html_",),
    "min_reported_time": 999,
    "plot_gallery": "True",
    "abort_on_example_error": True,
}

html_theme = "furo"
html_title = f"kmeans_xp {release}"
html_static_path: list = []
