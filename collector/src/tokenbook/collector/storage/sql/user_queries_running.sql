-- The user queries of one store still running (Store.cancel_user_queries): their text holds the
-- store's marker, bound here in two halves so that this query's own text does not hold it. Each user
-- (the collector's, the tenant reader) kills its own.
SELECT query_id
FROM system.processes
WHERE position(query, concat({head:String}, {tail:String})) > 0 AND user = currentUser()
