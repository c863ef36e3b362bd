"""Campaign scheduling (cron and one-shot runs, local-time waves)."""
