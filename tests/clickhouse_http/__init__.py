"""A test double of ClickHouse's HTTP interface with the real engine (chDB) behind it; see `server`."""
