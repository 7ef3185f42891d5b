-- Task documents (schema text, inputs, outputs, report) are a few KB each and rewritten on
-- every run; lz4 compresses them for a fraction of the CPU of the default pglz.
ALTER TABLE tasks
    ALTER COLUMN schema_json SET COMPRESSION lz4,
    ALTER COLUMN inputs SET COMPRESSION lz4,
    ALTER COLUMN outputs SET COMPRESSION lz4,
    ALTER COLUMN report SET COMPRESSION lz4;
