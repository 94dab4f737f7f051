//! The `check` and `introspect` subcommands, run as the real binary against the double.
