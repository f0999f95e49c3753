"""The core every part of the app stands on: the settings read from the environment
(`settings.py`), the workloads' database logins (`logins.py`, the one list, also read by the
infrastructure program), PostgreSQL access and the migration runner (`db.py`), API keys
(`auth.py`), the Redis cache and rate limit with their in-process fallback (`cache.py`) and the
JSON logs (`logs.py`). Nothing here imports the model, the jobs, the API or the CLI; this
package imports nothing itself, so `app.core.logins` stays free of the app's dependencies."""
