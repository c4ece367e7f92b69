//! capacity (see issue 4).
