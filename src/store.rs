//! The write side: appending events atomically with their invariants.
