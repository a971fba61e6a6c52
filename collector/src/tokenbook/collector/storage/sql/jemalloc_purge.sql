-- The embedded engine's allocator hands its freed (dirty) pages back to the kernel now instead of
-- after its decay time (Store.release_freed_memory, after an aggregate refresh).
SYSTEM JEMALLOC PURGE
