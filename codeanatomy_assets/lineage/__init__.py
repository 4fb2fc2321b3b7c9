"""OpenLineage run events of a build: the job and each plan, with their datasets and facets.

``config`` (where events go), ``datasets`` (dataset names and facets), ``facets`` (the producer and the
custom facets), ``facts`` (what the build's records say of a plan's datasets), ``events`` (the run events),
``emitter`` (sending them; a failure is a warn diagnostic) and ``runs`` (the hooks of the runner and the
plan asset).
"""
