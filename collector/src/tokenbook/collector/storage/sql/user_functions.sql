-- User-defined functions (SQL or executable): the guard refuses them, their body is not checked
-- (storage/guard.py).
SELECT name FROM system.functions WHERE origin != 'System'
