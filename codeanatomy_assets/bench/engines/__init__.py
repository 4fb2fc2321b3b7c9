"""TPC-H over the same Delta tables: DataFusion native, the engines users pick instead, and the product.

Data: TPC-H at ``scale`` from :func:`~codeanatomy_assets.bench.tpch.cached_tpch` (SF 1 with 24
files per table in full mode; ``lineitem`` and ``orders`` clustered by date). Every engine runs the same 22
query files (``bench/queries``) and collects the result into Arrow. Each query's timing starts from nothing
registered, as a build step meets its inputs, and covers registering *the tables the query names*, planning,
execution and collecting:

- ``native`` (the baseline of every ratio): DataFusion's own listing table over exactly the table's live
  files, one scan per table: a fresh ``SessionContext``, ``ctx.register_parquet(name, folder)`` per table,
  then the query. The folder is the table's own when its log records no ``remove`` and its ``*.parquet`` files
  are exactly the live files (checked, :func:`~.native_sources.native_sources`); otherwise a folder of hard
  links to exactly the live files, built once outside the timing (DataFusion 55's ``register_listing_table``
  takes one path, not a file list). A table with partition columns, deletion vectors or column mapping cannot
  be read as plain Parquet: the case refuses it rather than compare against a wrong baseline;
- ``native_warm``: the same listing tables registered once per process, outside the timing (an extra column:
  what the registration and the cold session cost);
- ``deltalake_querybuilder``: ``QueryBuilder().register(name, DeltaTable(uri)).execute(sql).read_all()``;
- ``polars_sql``: ``pl.SQLContext({name: pl.scan_delta(uri)}).execute(sql).collect().to_arrow()``;
- ``duckdb_read_parquet``: a new in-memory connection, per table a view
  ``read_parquet([...DeltaTable(uri).file_uris()])`` (exact here: the same check as ``native``), then
  ``con.sql(sql).to_arrow_table()``;
- ``datafusion_delta_provider``: a fresh ``SessionContext``, ``ctx.register_table(name, DeltaTable(uri))``;
- ``product_build`` and ``product_build_no_capture``: the product as a user runs it. A pipeline spec
  (``datasets`` = the tables by uri, ``plans`` = ``tpch_q1`` .. ``tpch_q22`` as ``sql_file`` s) is built with
  ``<venv>/bin/codeanatomy build --config spec.toml --home HOME`` (and ``--no-capture``) as a subprocess; per
  plan, the sum of its recorded phases (``datafusion_plan_phase_v1``: logical, optimized, physical, execute;
  ``--no-capture`` records no separate optimized phase) is the headline figure, and the plan's Dagster step
  duration (``STEP_START`` to ``STEP_SUCCESS`` in the home's instance: registration of the inputs, the query,
  writing the result, the diagnostics flush, Dagster's own work) a second column. The phase sum leaves out the
  registration of the plan's inputs, which ``native`` includes; the step includes much more than ``native``
  does. Both are reported, each as a ratio to ``native``.

``rounds`` rounds run the engines pass and the two builds in rotated order, reversed in odd rounds
(:func:`~.case.round_order`: with three steps, plain rotation would always run the no-capture build right
after the capture build or first; six rounds cover every order), each step after an ``os.sync()`` so the
previous step's writes are not flushed inside the next one's timing; inside the engines pass each query runs
every engine in rotated order. Figures are medians over rounds. The engines pass runs in a child process
(``python -m codeanatomy_assets.bench.engines.child``) that ends with ``os._exit``: several native libraries
share it, and one of them could crash the interpreter at exit (deltalake's pyarrow path does).

Results are checked: every engine's row count against ``native`` in every round, and in round 0 the row
multiset of every engine and of the product's Delta outputs against ``native``'s
(:func:`~.results.results_match`: rows sorted, column names and types ignored, decimals and floats equal
within 1e-6 absolute or 1e-9 relative, since DataFusion averages decimals to 6 places where DuckDB and polars
return doubles). A row-count mismatch of any engine, a multiset mismatch of any engine or of the product, or a
failed build is reported in ``result_problems`` and fails the case (its ``error``).

The session-settings ablation (``ablation``): the ``native`` path with one DataFusion setting changed at a
time against the defaults (:data:`~.ablation.ABLATION_SETTINGS`, values equal to the default skipped), in
rotated order per query, ``rounds`` rounds in its own child; the geometric mean of the per-query ratio to the
defaults per setting.

The modules, by what they hold: :mod:`.names` (the engines, plans and tables a query names), :mod:`.case`
(the settings and the rounds: :func:`~.case.measure_engines`), :mod:`.native_sources`, :mod:`.peers` (one
runner per engine), :mod:`.child` (a round in the child process), :mod:`.product` (the product builds and
what they recorded), :mod:`.results` (result comparison), :mod:`.table` (the per-query and per-engine
figures) and :mod:`.ablation`.
"""
