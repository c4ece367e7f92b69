//! profile (see issue 4).
