//! What /metrics counts.
