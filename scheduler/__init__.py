"""Campaign scheduling (cron and one-shot runs, local-time waves); built in issue 4."""
