"""The `tide` client verbs, one module per area (`main.py` builds the parser; `base.py`
holds what they share); the exit codes every command module and `tidechain.ops` use."""

EXIT_OK = 0
EXIT_VERIFICATION_FAILED = 1
EXIT_REJECTED = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a process killed by it
