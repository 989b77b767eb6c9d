//! Import from pytp (being written).
