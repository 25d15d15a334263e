//! Placeholder until the recorder lands.
