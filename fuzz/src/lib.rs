//! The gateway's pure modules, compiled from `../src` as they are (no copies): what the fuzz targets
//! exercise. A module listed here may use nothing from the gateway but its own siblings.
#![allow(dead_code)]

pub mod admit;
pub mod config;
pub mod scope;
pub mod stream;
