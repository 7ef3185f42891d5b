-- Task documents as `json` instead of `jsonb`: `jsonb` cannot hold the escape \u0000, so a run
-- whose inputs, outputs or report held a NUL character could not be stored on Postgres (while
-- SQLite stored it). Nothing queries inside these documents: they are written and read whole,
-- and `json` keeps the text as written instead of converting it on every write and read.
ALTER TABLE tasks
    ALTER COLUMN inputs TYPE json USING inputs::json,
    ALTER COLUMN outputs TYPE json USING outputs::json,
    ALTER COLUMN report TYPE json USING report::json;
-- Kept from 0004 whatever the type change does to the columns' settings.
ALTER TABLE tasks
    ALTER COLUMN inputs SET COMPRESSION lz4,
    ALTER COLUMN outputs SET COMPRESSION lz4,
    ALTER COLUMN report SET COMPRESSION lz4;
