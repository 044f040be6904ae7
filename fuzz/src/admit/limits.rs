//! `src/admit/limits`: the limits object of the config tree.
#[path = "../../../src/admit/limits/spec.rs"]
pub mod spec;
pub use spec::Limits;
