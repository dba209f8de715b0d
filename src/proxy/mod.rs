//! proxy (in progress)
