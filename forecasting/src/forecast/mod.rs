//! Demand forecasting (see issue 3).
