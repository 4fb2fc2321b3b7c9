-- Each call is resolved to a symbol of the tree by the first rule that matches:
--   1 local            f() or C.m() naming a symbol of the same module
--   2 self_method      self.m() inside a method of class C resolves to C.m of the same module
--   3 imported_name    from mod import f; f() or f.attr()
--   4 module_attribute import pkg.mod; pkg.mod.f()
-- Calls that no rule resolves are kept with a NULL target (resolution = 'unresolved').
WITH resolved AS (
    SELECT c.module, c.enclosing_symbol, c.callee, c.lineno,
           s.module AS callee_module, s.qualname AS callee_qualname, s.kind AS callee_kind,
           1 AS priority, 'local' AS resolution
    FROM calls c
    JOIN symbols s ON s.module = c.module AND s.qualname = c.callee
    UNION ALL
    SELECT c.module, c.enclosing_symbol, c.callee, c.lineno,
           s.module, s.qualname, s.kind, 2, 'self_method'
    FROM calls c
    JOIN symbols s
        ON s.module = c.module
        AND s.qualname = concat(split_part(c.enclosing_symbol, '.', 1), '.', substr(c.callee, 6))
    WHERE starts_with(c.callee, 'self.') AND strpos(c.enclosing_symbol, '.') > 0
    UNION ALL
    SELECT c.module, c.enclosing_symbol, c.callee, c.lineno,
           s.module, s.qualname, s.kind, 3, 'imported_name'
    FROM calls c
    JOIN imports i
        ON i.module = c.module AND i.imported_name IS NOT NULL
    JOIN symbols s
        ON s.module = i.imported_module
        AND s.qualname = concat(i.imported_name, substr(c.callee, length(i.imported_name) + 1))
    WHERE c.callee = i.imported_name OR starts_with(c.callee, concat(i.imported_name, '.'))
    UNION ALL
    SELECT c.module, c.enclosing_symbol, c.callee, c.lineno,
           s.module, s.qualname, s.kind, 4, 'module_attribute'
    FROM calls c
    JOIN imports i
        ON i.module = c.module AND i.imported_name IS NULL
    JOIN symbols s
        ON s.module = i.imported_module
        AND s.qualname = substr(c.callee, length(i.imported_module) + 2)
    WHERE starts_with(c.callee, concat(i.imported_module, '.'))
),
best AS (
    SELECT *, row_number() OVER (
        PARTITION BY module, enclosing_symbol, callee, lineno ORDER BY priority
    ) AS rank
    FROM resolved
)
SELECT
    c.module AS caller_module,
    c.package AS caller_package,
    c.enclosing_symbol AS caller_symbol,
    c.callee AS callee_expression,
    c.lineno,
    b.callee_module,
    b.callee_qualname,
    b.callee_kind,
    COALESCE(b.resolution, 'unresolved') AS resolution
FROM calls c
LEFT JOIN (SELECT * FROM best WHERE rank = 1) b
    ON b.module = c.module
    AND b.enclosing_symbol = c.enclosing_symbol
    AND b.callee = c.callee
    AND b.lineno = c.lineno
