"""The CLI's exit codes (sysexits.h where one fits): the Kubernetes Jobs retry on some, and the
operators' runbooks name them."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATA = 65  # EX_DATAERR: the bundle has problems; nothing was written
EXIT_BUSY = 75  # EX_TEMPFAIL: another import holds the lock; try again later
