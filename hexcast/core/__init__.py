"""The ground floor: settings, errors, logging, PostgreSQL (pool, migrations), Redis, the Kafka
bus and topics, tenant auth and shared web dependencies, the text and time rules, dead letters
and poison isolation. It imports no domain package (``streams targeting scheduler sender``),
nothing of the app layer and nothing of the devstack: import-linter checks it (pyproject.toml)."""
