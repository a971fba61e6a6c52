-- The decision pass (storage/decisions.py): the decision facts of the call rows (a span with usage,
-- a model span without, or one that was recorded before migration 030) of the touched traces,
-- response IDs and match buckets, of the roots without usage (lone layers) of the buckets' service
-- instances and of the calls of the touched lone layers' instances (their possible partners), as the
-- ledger holds them; a bucket's calls only where they meet the buckets' time span, the others where
-- they meet one of the stretches of the touched calls' and lone layers' intervals (`stretches`: the
-- bounds of each, at most `decisions._MAX_STRETCHES`).
--
-- Read by time from the ledger's time-ordered projection (migration 130), not with FINAL (which reads
-- every column of whole month partitions), over a span of time that follows what the pass touched,
-- not the day: from the first to the last start of the touched traces' calls within [since, until)
-- (a day around the touched calls), looked up in the trace-ordered projection (migration 150), and
-- at least [near_since, near_until] (an hour around them), where the calls of other traces related by
-- response ID or bucket lie (two layers of one call). Every version, in that span, that matches a key.
-- The caller needs every version of each span it keeps (every version of a span has the same
-- timestamp and trace): it reads the traces of the spans matched by response ID or bucket alone
-- again, by trace (the same statement, with those traces and no other key), then keeps the newest
-- version of each span (the highest version, then the latest ingestion: the row FINAL keeps), drops
-- it when it is a fetch row, and applies the keys again, exactly, to it (`Related.relation`, stricter
-- than the keys here): the query does none of this, as each clause costs the engine's analysis on
-- every pass. The filter is written as a PREWHERE: the engine would move all of it there itself, and
-- choosing that costs it about a third of the statement on every pass.
WITH (
    SELECT (
        if(count() = 0, {near_since:DateTime64(6, 'UTC')}, least(min(timestamp), {near_since:DateTime64(6, 'UTC')})),
        if(count() = 0, {near_until:DateTime64(6, 'UTC')}, greatest(max(timestamp), {near_until:DateTime64(6, 'UTC')}))
    )
    FROM {{db}}.llm_calls
    WHERE trace_id IN {traces:Array(String)}
        AND timestamp >= {since:DateTime64(6, 'UTC')}
        AND timestamp < {until:DateTime64(6, 'UTC')}
) AS span
SELECT
    timestamp, tenant_id, context_id, trace_id, span_id, parent_span_id, ancestors, kind, scope_name,
    scope_version, service_instance, model, response_id, input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, duration_ms, price_status, quote_status, billing_rule, billed_by, status, version,
    ingested_at
FROM {{db}}.llm_calls
PREWHERE timestamp >= span.1
    AND timestamp <= span.2
    AND (
        trace_id IN {traces:Array(String)}
        OR (response_id != '' AND response_id IN {response_ids:Array(String)})
        OR (
            input_tokens IN {inputs:Array(UInt64)}
            AND service_instance IN {instances:Array(String)}
            AND timestamp <= {bucket_to:DateTime64(6, 'UTC')}
            AND addMicroseconds(timestamp, toInt64(duration_ms * 1000)) >= {bucket_from:DateTime64(6, 'UTC')}
        )
        OR (
            (
                (input_tokens = 0 AND parent_span_id = '' AND service_instance IN {instances:Array(String)})
                OR service_instance IN {lone_instances:Array(String)}
            )
            AND arrayExists(
                stretch -> timestamp <= stretch.2
                    AND addMicroseconds(timestamp, toInt64(duration_ms * 1000)) >= stretch.1,
                {stretches:Array(Tuple(DateTime64(6, 'UTC'), DateTime64(6, 'UTC')))}
            )
        )
    )
