"""The Dagster code location (``dagster dev -w workspace.yaml``, ``dg check defs``).

The spec is resolved when Dagster loads the location, not at import: ``CODEANATOMY_CONFIG`` (a spec file),
else ``./codeanatomy.toml``, else the built-in CodeAnatomy build; ``CODEANATOMY_SOURCE`` overrides the
source tree to analyse, ``CODEANATOMY_HOME`` the project home.
"""

import os

import dagster as dg

from codeanatomy_assets.defs.definitions import build_definitions
from codeanatomy_assets.defs.resources import CodeAnatomyResource
from codeanatomy_assets.spec import load_spec


@dg.definitions
def defs() -> dg.Definitions:
    spec = load_spec(os.environ.get("CODEANATOMY_CONFIG") or None).with_source(
        os.environ.get("CODEANATOMY_SOURCE") or None
    )
    return build_definitions(spec, CodeAnatomyResource(home=os.environ.get("CODEANATOMY_HOME", "")))
