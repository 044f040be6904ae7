//! Tenants, apps and keys as admission sees them (beside the request flow): [`build`] merges what
//! the configuration file declares with what the store holds into one snapshot, and [`publish`]
//! swaps it in whenever either changes.

pub mod build;
pub mod publish;

pub use build::{Declared, build};
pub use publish::Tenancy;
