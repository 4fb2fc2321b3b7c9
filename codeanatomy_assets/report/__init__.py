"""``run_diagnostics_report.md``: one run's diagnostics read back from the durable store.

:mod:`~codeanatomy_assets.report.facts` reads the events the report and the assets use into typed records;
:mod:`~codeanatomy_assets.report.sections` collects the facts of a run into sections (the JSON form has one
key per section); :mod:`~codeanatomy_assets.report.gates` evaluates the acceptance gates of seed 000 on
them; :mod:`~codeanatomy_assets.report.markdown` renders them, with the tables of
:mod:`~codeanatomy_assets.report.tables`; :mod:`~codeanatomy_assets.report.run_report` builds, serializes
and writes the report of a run. Order is deterministic (sorted by dataset, plan, phase), so golden files
can pin the output.
"""
