-- An import edge points at the most specific module of the tree it names:
-- `from a.b import c` is an edge to a.b.c when that is a module, else to a.b;
-- `import a.b` is an edge to a.b. Imports of modules outside the tree are dropped.
WITH resolved AS (
    SELECT
        i.module AS source_module,
        i.package AS source_package,
        COALESCE(sub.module, mod.module) AS target_module,
        COALESCE(sub.package, mod.package) AS target_package,
        i.lineno
    FROM imports i
    LEFT JOIN source_files sub
        ON i.imported_name IS NOT NULL
        AND sub.module = concat(i.imported_module, '.', i.imported_name)
    LEFT JOIN source_files mod
        ON mod.module = i.imported_module
)
SELECT
    source_module,
    source_package,
    target_module,
    target_package,
    count(*) AS import_count,
    min(lineno) AS first_lineno
FROM resolved
WHERE target_module IS NOT NULL AND target_module <> source_module
GROUP BY source_module, source_package, target_module, target_package
