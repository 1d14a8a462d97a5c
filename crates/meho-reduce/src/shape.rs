//! Shape detection: tool output into rows.
