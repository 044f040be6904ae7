//! `src/config`: the raw tree, the loader and the units.
#[path = "../../../src/config/file.rs"]
pub mod file;
#[path = "../../../src/config/load.rs"]
pub mod load;
#[path = "../../../src/config/units.rs"]
pub mod units;
