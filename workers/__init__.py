"""arq worker: scheduled checks, the check runner and adapters, maintenance jobs."""
