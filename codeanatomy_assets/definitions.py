"""The Dagster code location (``dagster dev -w workspace.yaml``, ``dg dev``, ``dg check defs``).

The spec is resolved when Dagster loads the location, not at import: ``CODEANATOMY_CONFIG`` (a spec file:
TOML, or a ``defs.yaml``), else ``./codeanatomy.toml``, else the project's defs folder
(``codeanatomy_assets/builtin``), whose ``defs.yaml`` is the built-in CodeAnatomy build as a
``CodeAnatomyPipeline`` component. ``CODEANATOMY_SOURCE`` overrides the source tree to analyse,
``CODEANATOMY_HOME`` the project home.
"""

import importlib
import os
import warnings
from pathlib import Path

import dagster as dg

from codeanatomy_assets.defs.definitions import build_definitions
from codeanatomy_assets.defs.resources import CodeAnatomyResource
from codeanatomy_assets.spec import load_spec

DEFS_MODULE = "codeanatomy_assets.builtin"
"""The project's defs folder (``[tool.dg.project] defs_module``): the built-in build's ``defs.yaml``."""


@dg.definitions
def defs() -> dg.Definitions:
    config = os.environ.get("CODEANATOMY_CONFIG") or None
    if config is None and not Path("codeanatomy.toml").is_file():
        return builtin_definitions()
    spec = load_spec(config).with_source(os.environ.get("CODEANATOMY_SOURCE") or None)
    return build_definitions(spec, CodeAnatomyResource(home=os.environ.get("CODEANATOMY_HOME", "")))


def builtin_definitions() -> dg.Definitions:
    """The definitions of the defs folder's components, loaded as ``dg`` loads them; the package's folder is
    the project root, so an installed package (no ``pyproject.toml``) loads them too."""
    package_root = Path(__file__).resolve().parent
    tree = dg.ComponentTree.from_module(
        defs_module=importlib.import_module(DEFS_MODULE), project_root=package_root.parent
    )
    with warnings.catch_warnings():  # Dagster's own beta classes, silenced as by load_from_defs_folder
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return tree.build_defs()
