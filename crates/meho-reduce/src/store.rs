//! The kept rows of reduced results, in meho's store (being written; see issue #15).
