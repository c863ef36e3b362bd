"""What runs hexcast on one machine: the embedded broker, throwaway PostgreSQL and Redis, the
child-process supervisor and the demo city. Used by ``hexcast up``, the tests and the benches;
imports only the core."""
