-- The 100 most complex functions and methods of a few packages. The predicate on `package` is what
-- lets a scan skip the files of every other package (see scan_unit_pruning_v1 in the report).
SELECT module, package, qualname, kind, lineno, end_lineno, arg_count, complexity
FROM symbols
WHERE package IN ('email', 'json', 'asyncio') AND kind <> 'class'
ORDER BY complexity DESC, module, qualname
LIMIT 100
