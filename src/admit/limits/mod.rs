//! Per-tenant limits and budgets (request step 1, after the caller is known): what is configured
//! ([`spec`]).

pub mod spec;

pub use spec::Limits;
