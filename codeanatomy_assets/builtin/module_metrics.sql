-- Size and coupling per parsed module. fan_in: distinct modules importing it; fan_out: distinct
-- modules of the tree it imports (both from module_dependencies).
WITH sym AS (
    SELECT module,
           count(*) AS symbol_count,
           sum(CASE WHEN kind = 'class' THEN 1 ELSE 0 END) AS class_count,
           sum(CASE WHEN kind <> 'class' THEN 1 ELSE 0 END) AS function_count,
           sum(complexity) AS total_complexity
    FROM symbols
    GROUP BY module
),
fan_in AS (
    SELECT target_module AS module, count(DISTINCT source_module) AS fan_in
    FROM module_dependencies GROUP BY target_module
),
fan_out AS (
    SELECT source_module AS module, count(DISTINCT target_module) AS fan_out
    FROM module_dependencies GROUP BY source_module
)
SELECT
    f.module,
    f.package,
    f.path,
    f.lines,
    f.bytes,
    COALESCE(sym.symbol_count, 0) AS symbol_count,
    COALESCE(sym.class_count, 0) AS class_count,
    COALESCE(sym.function_count, 0) AS function_count,
    COALESCE(sym.total_complexity, 0) AS total_complexity,
    COALESCE(fan_in.fan_in, 0) AS fan_in,
    COALESCE(fan_out.fan_out, 0) AS fan_out
FROM source_files f
LEFT JOIN sym ON sym.module = f.module
LEFT JOIN fan_in ON fan_in.module = f.module
LEFT JOIN fan_out ON fan_out.module = f.module
WHERE f.parse_status = 'ok'
