//! `src/scope`: the JSON and multipart rewriters, the parameter reader, and the werkzeug model.
#[path = "../../../src/scope/json.rs"]
pub mod json;
#[path = "../../../src/scope/multipart.rs"]
pub mod multipart;
#[path = "../../../src/scope/params.rs"]
pub mod params;
#[path = "../../../src/scope/user.rs"]
pub mod user;
#[path = "../../../src/scope/werkzeug.rs"]
pub mod werkzeug;
