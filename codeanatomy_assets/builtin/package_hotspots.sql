-- The 100 most complex functions and methods of the analysed tree's three largest packages (by symbol
-- count, ties by name), so the plan is useful on any --source. It reads every file of symbols: the
-- packages are known only once all of them are counted, so no predicate can let a scan skip files.
WITH largest AS (
    SELECT package
    FROM symbols
    GROUP BY package
    ORDER BY count(*) DESC, package
    LIMIT 3
)
SELECT s.module, s.package, s.qualname, s.kind, s.lineno, s.end_lineno, s.arg_count, s.complexity
FROM symbols s
JOIN largest USING (package)
WHERE s.kind <> 'class'
ORDER BY s.complexity DESC, s.module, s.qualname
LIMIT 100
